"""TTS frames built in the codec, and the TTS echo's sample_rate read as the output rate (review 15, finding 12)."""

from __future__ import annotations

import json
from pathlib import Path

import dashscope_sync as ds
from dashscope_sync._wire.codec import decode

_SESSIONS = Path(ds.__file__).parent / "_sessions"


def _echo(session: dict[str, object]) -> ds.SessionInfo:
    event = decode(
        json.dumps({"event_id": "event_x", "type": "session.updated", "session": session})
    )
    assert isinstance(event, ds.SessionUpdated)
    return event.session


def test_tts_echo_sample_rate_is_the_output_rate_not_the_input_rate() -> None:
    """A Qwen-TTS session.updated's flat sample_rate is output_sample_rate; input_sample_rate stays None."""
    info = _echo(
        {
            "id": "sess_x",
            "model": ds.MODEL_QWEN3_TTS_FLASH_REALTIME,
            "voice": "Cherry",
            "mode": "commit",
            "response_format": "pcm",
            "sample_rate": 48000,
        }
    )
    assert info.input_sample_rate is None
    assert info.output_sample_rate == 48000 and info.sample_rate == 48000


def test_tts_echo_with_a_placeholder_model_is_still_read_as_tts() -> None:
    """The documented session.updated example's model is a placeholder: response_format marks it TTS."""
    info = _echo({"id": "sess_x", "model": "…", "response_format": "pcm", "sample_rate": 24000})
    assert info.input_sample_rate is None and info.output_sample_rate == 24000


def test_livetranslate_flat_sample_rate_is_still_the_input_rate() -> None:
    """A conversation family's flat sample_rate (LiveTranslate 3/3.5) stays the input rate."""
    info = _echo(
        {"id": "sess_x", "model": "qwen3-livetranslate-flash-realtime", "sample_rate": 16000}
    )
    assert info.input_sample_rate == 16000 and info.output_sample_rate is None


def test_text_append_frame_escapes_only_the_text() -> None:
    """encode_text_append gives the documented append event, the text's quotes and newlines escaped."""
    from dashscope_sync._wire.codec import encode_simple, encode_text_append

    frame = encode_text_append("event_1", 'He said "hi"\n你好')
    assert json.loads(frame) == {
        "event_id": "event_1",
        "type": "input_text_buffer.append",
        "text": 'He said "hi"\n你好',
    }
    assert "你好" in frame  # UTF-8 kept, as dumps writes it
    assert json.loads(encode_simple("event_2", "input_text_buffer.commit")) == {
        "event_id": "event_2",
        "type": "input_text_buffer.commit",
    }


def test_no_session_module_builds_a_wire_frame_itself() -> None:
    """No module under _sessions/ spells a frame's JSON: frames are the codec's (house rule)."""
    for module in sorted(_SESSIONS.glob("*.py")):
        source = module.read_text(encoding="utf-8")
        assert '"event_id":"' not in source and '"type":"' not in source, module.name
