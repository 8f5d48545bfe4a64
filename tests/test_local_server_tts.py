"""The local server speaks Qwen-TTS-Realtime (SPEECH_FAMILIES.md §A), checked with raw frames.

Two layers: the family's pure state and audio (``dashscope_sync.testing._tts``,
no sockets), then whole sessions over loopback with websocket-client sending
the documented frames by hand, so these tests do not depend on the library's
own TTS client.
"""

from __future__ import annotations

import base64
import io
import json
import wave
from collections.abc import Iterator
from typing import Any

import pytest
import websocket

from dashscope_sync.testing import LocalRealtimeServer, pcm16_peak_dbfs
from dashscope_sync.testing import _tts as tts
from dashscope_sync.testing._session import ClientEventError

from .conftest import need

pytestmark = pytest.mark.timeout(60)

FLASH = "qwen3-tts-flash-realtime"
INSTRUCT = "qwen3-tts-instruct-flash-realtime"
LEGACY = "qwen-tts-realtime"
VOICE_DESIGN = "qwen3-tts-vd-realtime-2026-01-15"

Frame = dict[str, Any]


def _state(model: str = FLASH) -> tts.TtsState:
    return tts.TtsState(model, session_id="sess_test", chunk_ms=100)


def _update(state: tts.TtsState, **session: Any) -> Frame:
    steps = state.session_update({"type": "session.update", "session": session})
    assert len(steps) == 1 and isinstance(steps[0], dict)
    return steps[0]


def _texts(steps: list[tts.TtsStep]) -> list[str]:
    return [step.stream.text for step in steps if isinstance(step, tts.Synthesis)]


def _append(state: tts.TtsState, text: str) -> list[tts.TtsStep]:
    return state.text_append({"type": "input_text_buffer.append", "text": text})


# --------------------------------------------------------------------------
# Audio (pure)


def test_audio_length_follows_the_text() -> None:
    """The simulated voice lasts 60 ms per character at every rate, at least 0.3 s."""
    for rate in tts.TTS_SAMPLE_RATES:
        assert len(tts.synthesize_pcm("x" * 50, sample_rate=rate)) == 2 * rate * 3
        assert len(tts.synthesize_pcm("hi", sample_rate=rate)) == 2 * round(0.3 * rate)


def test_audio_is_deterministic_and_voice_like() -> None:
    """The same text gives the same samples; the signal is neither silent nor clipped."""
    first = tts.synthesize_pcm("Hello, I am Qwen.", sample_rate=24000)
    assert first == tts.synthesize_pcm("Hello, I am Qwen.", sample_rate=24000)
    peak = max(
        abs(int.from_bytes(first[i : i + 2], "little", signed=True))
        for i in range(0, len(first), 2)
    )
    assert 3000 < peak < 32767


def test_speech_rate_and_volume_shape_the_audio() -> None:
    """speech_rate 2.0 halves the duration; volume 0 is silence, 100 is louder than 50."""
    normal = tts.synthesize_pcm("x" * 40, sample_rate=16000)
    assert len(tts.synthesize_pcm("x" * 40, sample_rate=16000, speech_rate=2.0)) == len(normal) // 2
    assert set(tts.synthesize_pcm("x" * 40, sample_rate=16000, volume=0)) == {0}
    loud = tts.synthesize_pcm("x" * 40, sample_rate=16000, volume=100)
    assert len(loud) == len(normal)
    assert pcm16_peak_dbfs(loud) == pytest.approx(pcm16_peak_dbfs(normal) + 6.02, abs=0.1)


def test_wav_is_a_playable_file() -> None:
    """A WAV response is one complete file: header sizes match, rate and width are right."""
    pcm = tts.synthesize_pcm("Hello there", sample_rate=8000)
    with wave.open(io.BytesIO(tts.encode_audio(pcm, "wav", 8000))) as reader:
        assert (reader.getframerate(), reader.getnchannels(), reader.getsampwidth()) == (8000, 1, 2)
        assert reader.readframes(reader.getnframes()) == pcm


@pytest.mark.parametrize("response_format", ["mp3", "opus"])
def test_compressed_formats_decode(response_format: str) -> None:
    """MP3 and Ogg Opus, where soundfile can encode them, decode back to the audio's length."""
    soundfile = need("soundfile")  # the [test] extra's; it encodes both (libsndfile >= 1.1)
    assert response_format in tts.available_formats()
    pcm = tts.synthesize_pcm("x" * 25, sample_rate=48000)
    info = soundfile.info(io.BytesIO(tts.encode_audio(pcm, response_format, 48000)))
    assert info.samplerate == 48000
    assert info.duration == pytest.approx(1.5, abs=0.1)


def test_pcm_and_wav_are_always_available() -> None:
    """PCM and WAV need no encoder."""
    assert {"pcm", "wav"} <= tts.available_formats()


# --------------------------------------------------------------------------
# Session state (pure)


@pytest.mark.parametrize(
    ("model", "voice"),
    [(FLASH, "Cherry"), (INSTRUCT, "Cherry"), (LEGACY, "Cherry"), (VOICE_DESIGN, None)],
)
def test_session_created_shape(model: str, voice: str | None) -> None:
    """session.created has the documented fields and default voice (none for custom-voice models)."""
    session = _state(model).session_created()["session"]
    expected = {
        "id": "sess_test",
        "object": "realtime.session",
        "mode": "server_commit",
        "model": model,
        "response_format": "pcm",
        "sample_rate": 24000,
    }
    if voice is not None:
        expected["voice"] = voice
    assert session == expected


def test_every_documented_model_is_recognised() -> None:
    """Every documented TTS model and snapshot is served as TTS; Omni models are not."""
    assert all(tts.is_tts_model(model) for model in tts.TTS_MODELS)
    assert not tts.is_tts_model("qwen3-omni-flash-realtime")
    assert not tts.is_tts_model("qwen3-asr-flash-realtime")


def test_update_echoes_the_effective_session() -> None:
    """session.updated echoes every effective field, defaults filled in."""
    state = _state()
    updated = _update(state, voice="Ethan", mode="commit", response_format="wav", sample_rate=8000)
    assert updated["type"] == "session.updated"
    assert updated["session"] == {
        "id": "sess_test",
        "object": "realtime.session",
        "model": FLASH,
        "voice": "Ethan",
        "mode": "commit",
        "language_type": "Auto",
        "response_format": "wav",
        "sample_rate": 8000,
        "speech_rate": 1.0,
        "volume": 50,
        "pitch_rate": 1.0,
    }


def test_the_sdk_full_update_is_accepted_by_instruct() -> None:
    """The SDK 2.0.2 frame with every option (SPEECH_FAMILIES.md §A6) is accepted by an instruct model."""
    formats = tts.available_formats()
    response_format = "opus" if "opus" in formats else "pcm"
    session = _update(
        _state(INSTRUCT),
        voice="Cherry",
        mode="commit",
        response_format=response_format,
        sample_rate=48000,
        volume=60,
        speech_rate=1.2,
        pitch_rate=1.0,
        bit_rate=128,
        enable_tn=True,
        language_type="English",
        instructions="warm",
        optimize_instructions=True,
    )["session"]
    assert session["instructions"] == "warm" and session["bit_rate"] == 128


@pytest.mark.parametrize(
    ("model", "field", "value"),
    [
        (FLASH, "voice", "Nobody"),
        (FLASH, "voice", 3),
        (FLASH, "mode", "manual"),
        (FLASH, "language_type", "Klingon"),
        (FLASH, "response_format", "flac"),
        (FLASH, "sample_rate", 44100),
        (FLASH, "sample_rate", True),
        (FLASH, "speech_rate", 2.5),
        (FLASH, "speech_rate", 0.4),
        (FLASH, "pitch_rate", 0.49),
        (FLASH, "volume", 101),
        (FLASH, "volume", 50.5),
        (FLASH, "bit_rate", 5),
        (FLASH, "bit_rate", 511),
        (FLASH, "instructions", "warm"),
        (FLASH, "optimize_instructions", True),
        (FLASH, "temperature", 0.5),
        (INSTRUCT, "instructions", 7),
        (INSTRUCT, "optimize_instructions", "yes"),
        (INSTRUCT, "instructions", "x" * 6404),
        (LEGACY, "response_format", "wav"),
        (LEGACY, "sample_rate", 16000),
        (LEGACY, "speech_rate", 1.0),
        (LEGACY, "volume", 50),
        (LEGACY, "pitch_rate", 1.0),
        (LEGACY, "voice", "Momo"),
    ],
)
def test_out_of_range_fields_are_refused(model: str, field: str, value: Any) -> None:
    """Each value outside the documented range or model is refused, naming the field."""
    state = _state(model)
    with pytest.raises(ClientEventError) as caught:
        _update(state, **{field: value})
    assert caught.value.param == f"session.{field}"
    assert state.session == _state(model).session | {"id": "sess_test"}


def test_custom_voice_models_take_any_voice_but_need_one() -> None:
    """Voice-design and voice-clone models take a custom voice id, and refuse an update without one."""
    with pytest.raises(ClientEventError, match="voice"):
        _update(_state(VOICE_DESIGN), mode="commit")
    assert _update(_state(VOICE_DESIGN), voice="my-designed-voice")["session"]["voice"] == (
        "my-designed-voice"
    )


def test_missing_encoder_refuses_the_format(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without an MP3/Opus encoder the update naming that format is refused, as the service refuses one."""
    monkeypatch.setattr(tts, "available_formats", lambda: frozenset({"pcm", "wav"}))
    for response_format in ("mp3", "opus"):
        with pytest.raises(ClientEventError, match="cannot be encoded") as caught:
            _update(_state(), response_format=response_format)
        assert caught.value.param == "session.response_format"


def test_second_update_is_refused() -> None:
    """A second session.update gets the documented 'session already started' error."""
    state = _state()
    _update(state, voice="Ethan")
    with pytest.raises(ClientEventError, match="session already started or finished or failed"):
        _update(state, voice="Cherry")


def test_update_after_text_is_refused() -> None:
    """Once text was appended the session has started: an update is refused."""
    state = _state()
    _append(state, "Hello")
    with pytest.raises(ClientEventError, match="session already started"):
        _update(state, voice="Ethan")


def test_server_commit_synthesises_whole_sentences() -> None:
    """server_commit cuts after each complete sentence, and never inside a number."""
    state = _state()
    assert _texts(_append(state, "Pi is 3.14 and")) == []
    assert _texts(_append(state, " e is 2.71. Next")) == ["Pi is 3.14 and e is 2.71."]
    assert _texts(_append(state, " one!\n你好。世界")) == [" Next one!", "你好。"]


def test_server_commit_cuts_long_text_without_sentence_ends() -> None:
    """Text with no sentence end is synthesised in 200-character segments."""
    state = _state()
    assert _texts(_append(state, "a" * 450)) == ["a" * 200, "a" * 200]


def test_commit_mode_waits_for_commit() -> None:
    """In commit mode appends only buffer; commit answers committed and synthesises the buffer."""
    state = _state()
    _update(state, mode="commit")
    assert _append(state, "One. Two. ") == []
    assert _append(state, "Three.") == []
    steps = state.text_commit({"type": "input_text_buffer.commit"})
    committed = steps[0]
    assert isinstance(committed, dict)
    assert committed["type"] == "input_text_buffer.committed" and committed["item_id"] == ""
    assert _texts(steps) == ["One. Two. Three."]


def test_empty_commit_is_an_error() -> None:
    """A commit with nothing (or only what was already synthesised) buffered is an error."""
    state = _state()
    with pytest.raises(ClientEventError, match="empty"):
        state.text_commit({"type": "input_text_buffer.commit"})
    _append(state, "All said. ")
    with pytest.raises(ClientEventError, match="empty"):
        state.text_commit({"type": "input_text_buffer.commit"})


def test_clear_drops_the_buffer() -> None:
    """clear answers cleared and the dropped text is never synthesised."""
    state = _state()
    _update(state, mode="commit")
    _append(state, "Forget me")
    cleared = state.text_clear({"type": "input_text_buffer.clear"})
    assert [step["type"] for step in cleared if isinstance(step, dict)] == [
        "input_text_buffer.cleared"
    ]
    assert state.finish() == []


def test_finish_flushes_server_commit_and_closes_the_buffer() -> None:
    """finish synthesises what server_commit still holds; later text events are refused."""
    state = _state()
    _append(state, "No sentence end")
    assert _texts(state.finish()) == ["No sentence end"]
    with pytest.raises(ClientEventError, match="finished"):
        _append(state, "more")


def test_text_must_be_a_string() -> None:
    """An append whose text is not a string is refused, naming text."""
    with pytest.raises(ClientEventError) as caught:
        _state().text_append({"type": "input_text_buffer.append", "text": 5})
    assert caught.value.param == "text"


# --------------------------------------------------------------------------
# Over loopback, raw frames


class Raw:
    """A websocket-client connection sending documented TTS frames by hand."""

    def __init__(self, server: LocalRealtimeServer, model: str = FLASH) -> None:
        self.ws = websocket.create_connection(
            server.model_url(model), header=[f"Authorization: Bearer {server.api_key}"], timeout=20
        )
        self.count = 0

    def send(self, event_type: str, **fields: Any) -> str:
        """Send one client event; return its event_id."""
        self.count += 1
        event_id = f"event_{self.count}"
        self.ws.send(json.dumps({"event_id": event_id, "type": event_type, **fields}))
        return event_id

    def recv(self) -> Frame:
        """The next server event."""
        message = self.ws.recv()
        assert message, "the server closed the connection"
        frame: Frame = json.loads(message)
        return frame

    def until(self, event_type: str) -> list[Frame]:
        """Every event up to and including the next one of ``event_type``."""
        frames = [self.recv()]
        while frames[-1]["type"] != event_type:
            frames.append(self.recv())
        return frames

    def close_code(self) -> int:
        """Read until the server's close frame; return its code."""
        opcode, data = self.ws.recv_data(control_frame=True)
        while opcode != websocket.ABNF.OPCODE_CLOSE:
            opcode, data = self.ws.recv_data(control_frame=True)
        # websocket-client answered the close frame but keeps the socket open.
        self.ws.shutdown()
        return int.from_bytes(data[:2], "big")


@pytest.fixture
def raw(server: LocalRealtimeServer) -> Iterator[Raw]:
    """A raw connection to a TTS model, with session.created read."""
    peer = Raw(server)
    assert peer.recv()["type"] == "session.created"
    yield peer
    peer.ws.close()


def _audio(frames: list[Frame]) -> bytes:
    return b"".join(
        base64.b64decode(f["delta"]) for f in frames if f["type"] == "response.audio.delta"
    )


def _types(frames: list[Frame]) -> list[str]:
    return [f["type"] for f in frames if f["type"] != "response.audio.delta"]


RESPONSE_TYPES = [
    "response.created",
    "response.output_item.added",
    "response.content_part.added",
    "response.audio.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.done",
]


def test_commit_mode_session_end_to_end(raw: Raw) -> None:
    """commit mode: the live trace's order and shapes, usage.characters, session.finished, then the server closes."""
    raw.send("session.update", session={"voice": "Ethan", "mode": "commit"})
    assert raw.recv()["session"]["mode"] == "commit"
    raw.send("input_text_buffer.append", text="Hello, I am Qwen. ")
    raw.send("input_text_buffer.append", text="Nice to meet you.")
    raw.send("input_text_buffer.commit")
    frames = raw.until("response.done")
    assert _types(frames) == ["input_text_buffer.committed", *RESPONSE_TYPES]
    text = "Hello, I am Qwen. Nice to meet you."
    assert len(_audio(frames)) == 2 * 24000 * len(text) * 60 // 1000
    response_id = frames[1]["response"]["id"]
    item_id = frames[2]["item"]["id"]
    for frame in frames[3:-1]:
        assert frame["response_id"] == response_id and frame["output_index"] == 0
        if frame["type"] != "response.output_item.done":
            assert frame["item_id"] == item_id and frame["content_index"] == 0
    assert frames[1]["response"] == {
        "id": response_id,
        "object": "realtime.response",
        "conversation_id": "",
        "status": "in_progress",
        "voice": "Ethan",
        "output": [],
    }
    done = frames[-1]["response"]
    assert done["status"] == "completed" and done["modalities"] == ["text", "audio"]
    assert done["output"][0]["content"] == [{"type": "audio", "transcript": ""}]
    assert done["usage"] == {"characters": len(text)}
    raw.send("session.finish")
    assert raw.recv()["type"] == "session.finished"
    assert raw.close_code() == 1000


def test_server_commit_session_end_to_end(raw: Raw) -> None:
    """server_commit (the default, no update): sentences are spoken as they complete; finish speaks the rest."""
    raw.send("input_text_buffer.append", text="First sentence. Sec")
    first = raw.until("response.done")
    assert _types(first) == RESPONSE_TYPES
    assert first[-1]["response"]["usage"] == {"characters": len("First sentence.")}
    raw.send("input_text_buffer.append", text="ond one")
    raw.send("session.finish")
    rest = raw.until("session.finished")
    assert _types(rest) == [*RESPONSE_TYPES, "session.finished"]
    assert rest[-2]["response"]["usage"] == {"characters": len(" Second one")}
    assert raw.close_code() == 1000


@pytest.mark.parametrize("response_format", ["pcm", "wav", "mp3", "opus"])
@pytest.mark.parametrize("sample_rate", [8000, 16000, 24000, 48000])
def test_every_format_and_rate(raw: Raw, response_format: str, sample_rate: int) -> None:
    """Each documented format and rate gives audio of that format, rate and length (or the format's error)."""
    raw.send(
        "session.update",
        session={"mode": "commit", "response_format": response_format, "sample_rate": sample_rate},
    )
    answer = raw.recv()
    if response_format not in tts.available_formats():
        assert answer["type"] == "error"
        assert answer["error"]["param"] == "session.response_format"
        return
    assert answer["type"] == "session.updated"
    text = "x" * 30  # 1.8 s
    raw.send("input_text_buffer.append", text=text)
    raw.send("input_text_buffer.commit")
    frames = raw.until("response.done")
    assert sum(f["type"] == "response.audio.delta" for f in frames) == 18  # 100 ms each
    audio = _audio(frames)
    samples = round(1.8 * sample_rate)
    if response_format == "pcm":
        assert len(audio) == 2 * samples
    elif response_format == "wav":
        with wave.open(io.BytesIO(audio)) as reader:
            assert reader.getframerate() == sample_rate
            assert reader.getnframes() == samples
    else:
        soundfile = need("soundfile")
        info = soundfile.info(io.BytesIO(audio))
        assert info.samplerate == sample_rate
        assert info.duration == pytest.approx(1.8, abs=0.1)
        assert audio.startswith(b"OggS") == (response_format == "opus")


def test_errors_name_the_client_event(raw: Raw) -> None:
    """Empty commit, second update and out-of-range fields answer error carrying the offending event_id."""
    commit_id = raw.send("input_text_buffer.commit")
    empty = raw.recv()
    assert empty["type"] == "error" and empty["error"]["event_id"] == commit_id
    assert empty["error"]["type"] == "invalid_request_error"
    bad_id = raw.send("session.update", session={"speech_rate": 3.0})
    bad = raw.recv()["error"]
    assert (bad["event_id"], bad["code"], bad["param"]) == (
        bad_id,
        "invalid_value",
        "session.speech_rate",
    )
    raw.send("session.update", session={"voice": "Ethan"})
    assert raw.recv()["type"] == "session.updated"
    second_id = raw.send("session.update", session={"voice": "Cherry"})
    second = raw.recv()["error"]
    assert second["event_id"] == second_id
    assert (
        second["message"] == "Session update error: session already started or finished or failed."
    )
    other_id = raw.send("input_audio_buffer.append", audio="")
    other = raw.recv()["error"]
    assert (other["event_id"], other["code"]) == (other_id, "invalid_event_type")
    raw.send("input_text_buffer.append", text="Still fine. ")
    assert _types(raw.until("response.done")) == RESPONSE_TYPES


def test_client_closes_when_the_server_does_not() -> None:
    """With tts_close_after_finish=False the connection outlives session.finished until the client closes."""
    with LocalRealtimeServer(tts_close_after_finish=False) as server:
        peer = Raw(server)
        try:
            peer.recv()
            peer.send("input_text_buffer.append", text="Bye")
            peer.send("session.finish")
            assert _types(peer.until("session.finished"))[-1] == "session.finished"
            late = peer.send("input_text_buffer.append", text="late")
            error = peer.recv()["error"]
            assert error["event_id"] == late and "finished" in error["message"]
        finally:
            peer.ws.close()
        connection = server.wait_for_connection()
        assert connection.wait_closed(10)
        assert connection.close_code == 1000


def test_finish_refused_when_the_server_does_not_support_it() -> None:
    """support_session_finish=False refuses a TTS session.finish as an invalid event type too."""
    with LocalRealtimeServer(support_session_finish=False) as server:
        peer = Raw(server)
        try:
            peer.recv()
            finish_id = peer.send("session.finish")
            error = peer.recv()["error"]
            assert (error["event_id"], error["code"]) == (finish_id, "invalid_event_type")
        finally:
            peer.ws.close()


def test_clear_is_acknowledged(raw: Raw) -> None:
    """input_text_buffer.clear answers input_text_buffer.cleared."""
    raw.send("input_text_buffer.append", text="Unfinished")
    raw.send("input_text_buffer.clear")
    assert raw.recv()["type"] == "input_text_buffer.cleared"
    raw.send("session.finish")
    assert raw.recv()["type"] == "session.finished"


def test_legacy_model_bills_tokens(server: LocalRealtimeServer) -> None:
    """The legacy qwen-tts-realtime reports token usage (50 audio tokens a second) instead of characters."""
    peer = Raw(server, LEGACY)
    try:
        assert peer.recv()["session"]["voice"] == "Cherry"
        peer.send("input_text_buffer.append", text="x" * 30)
        peer.send("input_text_buffer.commit")
        usage = peer.until("response.done")[-1]["response"]["usage"]
        assert usage["output_tokens_details"] == {"text_tokens": 0, "audio_tokens": 90}
        assert usage["total_tokens"] == usage["input_tokens"] + 90
    finally:
        peer.ws.close()


def test_response_cancel_stops_the_audio() -> None:
    """response.cancel (sent by the official SDK) ends the streaming response as cancelled."""
    with LocalRealtimeServer(delta_delay=0.05) as server:
        peer = Raw(server)
        try:
            peer.recv()
            peer.send("input_text_buffer.append", text="x" * 500)
            peer.until("response.audio.delta")
            peer.send("response.cancel")
            frames = peer.until("response.done")
            assert frames[-1]["response"]["status"] == "cancelled"
            assert frames[-1]["response"]["output"][0]["status"] == "incomplete"
            assert "response.audio.done" in _types(frames)
        finally:
            peer.ws.close()


def test_omni_models_do_not_take_text_buffers(server: LocalRealtimeServer) -> None:
    """An Omni connection still refuses the TTS events: the dialect follows the model."""
    peer = Raw(server, "qwen3-omni-flash-realtime")
    try:
        assert "turn_detection" in peer.recv()["session"]
        peer.send("input_text_buffer.append", text="hi")
        assert peer.recv()["error"]["code"] == "invalid_event_type"
    finally:
        peer.ws.close()


def test_server_knobs_apply_to_tts(server: LocalRealtimeServer) -> None:
    """inject_error and script_response work on TTS connections as on the others."""
    server.inject_error(
        "input_text_buffer.append", {"type": "server_error", "code": "X", "message": "boom"}
    )
    server.script_response([{"type": "response.created"}, {"type": "response.done"}])
    peer = Raw(server)
    try:
        peer.recv()
        append_id = peer.send("input_text_buffer.append", text="Lost. ")
        assert peer.recv()["error"]["event_id"] == append_id
        peer.send("input_text_buffer.append", text="Scripted. ")
        assert _types(peer.until("response.done")) == ["response.created", "response.done"]
        assert server.connections[0].session["model"] == FLASH
    finally:
        peer.ws.close()
