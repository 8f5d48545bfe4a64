"""The local server is as strict as the service, family by family (issue 14).

Most tests speak raw frames over a real loopback socket, so what is checked is
the server's answer to exactly those frames, whatever the library's client
would send.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
import websocket

import dashscope_sync as ds
from dashscope_sync.testing import LocalRealtimeServer, speech_like_pcm16

# Both modes (issue 18) for the tests marked both_modes one by one: those that
# open sessions; the others open none.

SILENCE_1S = b"\x00\x00" * 16000


class Raw:
    """A raw websocket-client connection to the local server, reading JSON events."""

    def __init__(self, server: LocalRealtimeServer, model: str) -> None:
        self.ws = websocket.create_connection(
            server.model_url(model),
            header=[f"Authorization: Bearer {server.api_key}"],
            timeout=10,
        )

    def send(self, frame: dict[str, Any]) -> None:
        """Send one client event."""
        self.ws.send(json.dumps(frame))

    def recv(self) -> dict[str, Any]:
        """The next server event (raises on a close frame or after 10 s)."""
        event: dict[str, Any] = json.loads(self.ws.recv())
        return event

    def until(self, event_type: str) -> list[dict[str, Any]]:
        """Every event up to and including the first of ``event_type``."""
        events = [self.recv()]
        while events[-1]["type"] != event_type:
            events.append(self.recv())
        return events

    def append(self, pcm: bytes) -> None:
        """Append PCM16 in 100 ms packets."""
        for start in range(0, len(pcm), 3200):
            chunk = base64.b64encode(pcm[start : start + 3200]).decode("ascii")
            self.send({"type": "input_audio_buffer.append", "audio": chunk})

    def close(self) -> None:
        """Close the handshake, then the socket (the server may have closed first)."""
        self.ws.close()
        self.ws.shutdown()


@pytest.fixture
def raw(server: LocalRealtimeServer) -> Iterator[Any]:
    """Factory of raw connections to the local server, closed at teardown."""
    opened: list[Raw] = []

    def factory(model: str) -> Raw:
        connection = Raw(server, model)
        opened.append(connection)
        return connection

    yield factory
    for connection in opened:
        connection.close()


def created(raw: Any, model: str) -> tuple[Raw, dict[str, Any]]:
    """A raw connection and the session of its ``session.created``."""
    connection = raw(model)
    event = connection.recv()
    assert event["type"] == "session.created"
    return connection, event["session"]


# Echoes: what the docs show ------------------------------------------------------


@pytest.mark.parametrize(
    "model", [ds.MODEL_QWEN3_8_LIVETRANSLATE_FLASH_REALTIME, ds.MODEL_QWEN_AUDIO_3_1_REALTIME_FLASH]
)
def test_no_omni_voice_where_the_docs_state_no_default(raw: Any, model: str) -> None:
    """LiveTranslate 3.8 and Qwen-Audio 3.1 flash, with no documented default voice, echo none."""
    _, session = created(raw, model)
    assert "voice" not in session


def test_livetranslate_echoes_pcm16_and_pcm24(raw: Any) -> None:
    """qwen3 LiveTranslate's session.created shows the documented pcm16 in and pcm24 out."""
    _, session = created(raw, ds.MODEL_QWEN3_LIVETRANSLATE_FLASH_REALTIME)
    assert (session["input_audio_format"], session["output_audio_format"]) == ("pcm16", "pcm24")
    assert session["voice"] == "Cherry"


# LiveTranslate translates speech only ---------------------------------------------


@pytest.mark.parametrize(
    "model",
    [ds.MODEL_QWEN3_LIVETRANSLATE_FLASH_REALTIME, ds.MODEL_QWEN3_8_LIVETRANSLATE_FLASH_REALTIME],
)
def test_livetranslate_silence_then_finish_translates_nothing(raw: Any, model: str) -> None:
    """Silence followed by session.finish gives session.finished and no translation."""
    connection, _ = created(raw, model)
    connection.append(SILENCE_1S)
    connection.send({"type": "session.finish"})
    types = [event["type"] for event in connection.until("session.finished")]
    assert "response.created" not in types
    assert "input_audio_buffer.committed" not in types


@pytest.mark.parametrize(
    "model",
    [ds.MODEL_QWEN3_LIVETRANSLATE_FLASH_REALTIME, ds.MODEL_QWEN3_8_LIVETRANSLATE_FLASH_REALTIME],
)
def test_livetranslate_one_spoken_turn_one_translation(raw: Any, model: str) -> None:
    """One spoken turn then trailing silence and session.finish gives exactly one translation."""
    connection, _ = created(raw, model)
    connection.append(speech_like_pcm16(1.0))
    connection.append(SILENCE_1S)
    connection.send({"type": "session.finish"})
    types = [event["type"] for event in connection.until("session.finished")]
    assert types.count("response.done") == 1
    assert types.count("input_audio_buffer.committed") == 1


def test_livetranslate_finish_mid_speech_translates_it(raw: Any) -> None:
    """Speech still buffered when session.finish comes is translated once, then finished."""
    connection, _ = created(raw, ds.MODEL_QWEN3_5_LIVETRANSLATE_FLASH_REALTIME)
    connection.append(speech_like_pcm16(1.0))
    connection.send({"type": "session.finish"})
    types = [event["type"] for event in connection.until("session.finished")]
    assert types.count("response.done") == 1


# Qwen-Audio takes what its docs allow ------------------------------------------------


@pytest.mark.parametrize(
    "item",
    [
        {
            "type": "message",
            "role": "system",
            "content": [{"type": "input_text", "text": "Be brief."}],
        },
        {"type": "message", "role": "assistant", "content": [{"type": "text", "text": "Hello."}]},
        {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{}"},
    ],
    ids=["system", "assistant", "function_call"],
)
def test_qwen_audio_takes_history_items(raw: Any, item: dict[str, Any]) -> None:
    """Qwen-Audio accepts system and assistant messages and function_call items, and echoes them."""
    connection, _ = created(raw, ds.MODEL_QWEN_AUDIO_3_0_REALTIME_PLUS)
    connection.send({"type": "conversation.item.create", "item": item})
    event = connection.recv()
    assert event["type"] == "conversation.item.created", event
    assert event["item"]["type"] == item["type"]


def test_qwen_audio_history_is_not_the_user_turn(raw: Any) -> None:
    """A system message adds context only: the reply still answers the user's text."""
    connection, _ = created(raw, ds.MODEL_QWEN_AUDIO_3_0_REALTIME_PLUS)
    system = [{"type": "input_text", "text": "Be brief."}]
    user = [{"type": "input_text", "text": "What time is it?"}]
    for role, content in (("system", system), ("user", user)):
        connection.send(
            {
                "type": "conversation.item.create",
                "item": {"type": "message", "role": role, "content": content},
            }
        )
        connection.until("conversation.item.created")
    connection.send({"type": "response.create"})
    done = connection.until("response.done")[-1]
    text = json.dumps(done["response"]["output"])
    assert "What time is it?" in text and "Be brief." not in text


def test_omni_still_refuses_an_assistant_message(raw: Any) -> None:
    """Omni's docs show only user text items: an assistant message is an invalid_value error."""
    connection, _ = created(raw, ds.MODEL_QWEN3_OMNI_FLASH_REALTIME)
    item = {"type": "message", "role": "assistant", "content": [{"type": "text", "text": "Hi."}]}
    connection.send({"type": "conversation.item.create", "item": item})
    event = connection.recv()
    assert event["type"] == "error"
    assert event["error"]["param"] == "item.role"


# Refusals with the service's error envelope --------------------------------------------


def update(connection: Raw, session: dict[str, Any]) -> dict[str, Any]:
    """Send a session.update and return the server's answer (session.updated or error)."""
    connection.send({"type": "session.update", "event_id": "event_mine", "session": session})
    while True:
        event = connection.recv()
        if event["type"] in ("session.updated", "error"):
            return event


def assert_refused(event: dict[str, Any], param: str) -> None:
    """An invalid_request_error naming ``param`` and echoing the client's event id."""
    assert event["type"] == "error", event
    error = event["error"]
    assert error["type"] == "invalid_request_error"
    assert error["code"] == "invalid_value"
    assert error["param"] == param
    assert error["event_id"] == "event_mine"


@pytest.mark.parametrize(
    ("model", "vad_type"),
    [
        (ds.MODEL_QWEN3_OMNI_FLASH_REALTIME, "semantic_vad"),
        (ds.MODEL_QWEN_OMNI_TURBO_REALTIME, "smart_turn"),
        (ds.MODEL_QWEN3_8_OMNI_FLASH_REALTIME, "smart_turn"),
        (ds.MODEL_QWEN3_LIVETRANSLATE_FLASH_REALTIME, "speaker_detection"),
        (ds.MODEL_QWEN_AUDIO_3_0_REALTIME_PLUS, "semantic_vad"),
    ],
)
def test_turn_detection_type_of_another_family_is_refused(
    raw: Any, model: str, vad_type: str
) -> None:
    """A turn detection type the family does not take is an invalid_value on its type."""
    connection, _ = created(raw, model)
    answer = update(connection, {"turn_detection": {"type": vad_type}})
    assert_refused(answer, "session.turn_detection.type")
    assert vad_type in answer["error"]["message"]


def test_livetranslate_38_refuses_server_vad(raw: Any) -> None:
    """LiveTranslate 3.8 takes speaker_detection only: server_vad is refused where it is nested."""
    connection, _ = created(raw, ds.MODEL_QWEN3_8_LIVETRANSLATE_FLASH_REALTIME)
    answer = update(connection, {"audio": {"input": {"turn_detection": {"type": "server_vad"}}}})
    assert_refused(answer, "session.audio.input.turn_detection.type")


@pytest.mark.parametrize(
    ("model", "session", "echoed"),
    [
        (
            ds.MODEL_QWEN3_5_OMNI_FLASH_REALTIME,
            {"turn_detection": {"type": "semantic_vad"}},
            "semantic_vad",
        ),
        (
            ds.MODEL_QWEN_AUDIO_3_1_REALTIME_PLUS,
            {"turn_detection": {"type": "smart_turn"}},
            "smart_turn",
        ),
        (
            ds.MODEL_QWEN3_8_LIVETRANSLATE_FLASH_REALTIME,
            {"audio": {"input": {"turn_detection": {"threshold": 0.3}}}},
            "speaker_detection",
        ),
    ],
    ids=["omni35-semantic", "qwen-audio-smart-turn", "livetranslate38-default-type"],
)
def test_the_family_turn_detection_is_taken(
    raw: Any, model: str, session: dict[str, Any], echoed: str
) -> None:
    """Each family's own types are echoed; a type left out is the family's default."""
    connection, _ = created(raw, model)
    answer = update(connection, session)
    assert answer["type"] == "session.updated", answer
    assert answer["session"]["turn_detection"]["type"] == echoed


@pytest.mark.parametrize(
    ("model", "frame"),
    [
        (ds.MODEL_QWEN3_LIVETRANSLATE_FLASH_REALTIME, {"type": "input_audio_buffer.commit"}),
        (ds.MODEL_QWEN3_5_LIVETRANSLATE_FLASH_REALTIME, {"type": "input_audio_buffer.clear"}),
        (ds.MODEL_QWEN3_8_LIVETRANSLATE_FLASH_REALTIME, {"type": "response.create"}),
        (ds.MODEL_QWEN3_LIVETRANSLATE_FLASH_REALTIME, {"type": "response.cancel"}),
        (
            ds.MODEL_QWEN3_8_LIVETRANSLATE_FLASH_REALTIME,
            {
                "type": "conversation.item.create",
                "item": {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "x"}],
                },
            },
        ),
        (
            ds.MODEL_QWEN3_OMNI_FLASH_REALTIME,
            {"type": "conversation.item.retrieve", "item_id": "item_1"},
        ),
        (
            ds.MODEL_QWEN_AUDIO_3_0_REALTIME_FLASH,
            {"type": "input_image_buffer.append", "image": "AAAA"},
        ),
        (ds.MODEL_QWEN3_5_OMNI_PLUS_REALTIME, {"type": "session.finish"}),
    ],
    ids=lambda value: value if isinstance(value, str) else value["type"],
)
def test_client_event_the_family_does_not_list_is_refused(
    raw: Any, model: str, frame: dict[str, Any]
) -> None:
    """A client event the family's docs do not list gets "invalid event type", as Omni 3.5's finish does."""
    connection, _ = created(raw, model)
    connection.append(speech_like_pcm16(0.1))
    connection.send({**frame, "event_id": "event_mine"})
    event = connection.until("error")[-1]
    assert event["error"]["code"] == "invalid_event_type"
    assert event["error"]["message"] == f"invalid event type: {frame['type']}"
    assert event["error"]["event_id"] == "event_mine"


@pytest.mark.parametrize(
    ("model", "session", "param"),
    [
        (
            ds.MODEL_QWEN3_OMNI_FLASH_REALTIME,
            {"audio": {"output": {"format": {"type": "pcm", "sample_rate": 24000}}}},
            "session.audio.output.format",
        ),
        (
            ds.MODEL_QWEN_OMNI_TURBO_REALTIME,
            {"output_modalities": ["text"]},
            "session.output_modalities",
        ),
        (
            ds.MODEL_QWEN3_5_OMNI_FLASH_REALTIME,
            {"audio": {"output": {"voice": "Tina"}}},
            "session.audio.output.voice",
        ),
        (
            ds.MODEL_QWEN3_8_OMNI_FLASH_REALTIME,
            {"translation": {"language": "en"}},
            "session.translation",
        ),
        (
            ds.MODEL_QWEN3_8_LIVETRANSLATE_FLASH_REALTIME,
            {"modalities": ["text"]},
            "session.modalities",
        ),
        (
            ds.MODEL_QWEN3_8_LIVETRANSLATE_FLASH_REALTIME,
            {"turn_detection": None},
            "session.turn_detection",
        ),
        (
            ds.MODEL_QWEN3_LIVETRANSLATE_FLASH_REALTIME,
            {"max_history_turns": 5},
            "session.max_history_turns",
        ),
        (
            ds.MODEL_QWEN_AUDIO_3_0_REALTIME_PLUS,
            {"enable_voice_clone": True},
            "session.enable_voice_clone",
        ),
    ],
)
def test_field_of_the_wrong_shape_is_refused(
    raw: Any, model: str, session: dict[str, Any], param: str
) -> None:
    """A field the family does not take, or not at that level, is an invalid_value naming it."""
    connection, _ = created(raw, model)
    assert_refused(update(connection, session), param)


@pytest.mark.parametrize(
    ("model", "session"),
    [
        (
            ds.MODEL_QWEN3_8_LIVETRANSLATE_FLASH_REALTIME,
            {
                "output_modalities": ["text", "audio"],
                "audio": {
                    "input": {
                        "format": {"type": "pcm", "sample_rate": 16000},
                        "turn_detection": {"type": "speaker_detection", "threshold": 0.5},
                    }
                },
                "voice": "default",
                "enable_voice_clone": True,
                "voice_clone_options": {"frequency": "once"},
                "translation": {
                    "language": "en",
                    "corpus": {"phrases": {"machine learning": "ML"}},
                },
            },
        ),
        (
            ds.MODEL_QWEN3_8_OMNI_FLASH_REALTIME,
            {"modalities": ["text", "audio"], "audio": {"output": {"voice": "Tina"}}},
        ),
        (
            ds.MODEL_QWEN3_5_OMNI_PLUS_REALTIME,
            {
                "voice": "Tina",
                "audio": {"output": {"format": {"type": "pcm", "sample_rate": 24000}}},
                "turn_detection": {"type": "semantic_vad"},
            },
        ),
    ],
    ids=["livetranslate38-doc", "omni38-nested-voice", "omni35-doc"],
)
def test_documented_shapes_are_taken(raw: Any, model: str, session: dict[str, Any]) -> None:
    """The docs' own session.update of each family is accepted."""
    connection, _ = created(raw, model)
    answer = update(connection, session)
    assert answer["type"] == "session.updated", answer


# Names: models, voices, languages --------------------------------------------------------


def test_unknown_model_gets_an_error_then_a_close(server: LocalRealtimeServer) -> None:
    """A misspelt model gets an error naming the model (and the likely name), no session, then 1008."""
    connection = Raw(server, "qwen3-omni-flsh-realtime")
    try:
        event = connection.recv()
        assert event["type"] == "error"
        assert (event["error"]["code"], event["error"]["param"]) == ("Model.NotExist", "model")
        assert "Did you mean 'qwen3-omni-flash-realtime'" in event["error"]["message"]
        opcode, data = connection.ws.recv_data()
        assert opcode == websocket.ABNF.OPCODE_CLOSE
        assert int.from_bytes(data[:2], "big") == 1008
    finally:
        connection.close()


@pytest.mark.both_modes
def test_unknown_model_fails_connect(server: LocalRealtimeServer) -> None:
    """Through the library, connecting to a misspelt model raises an APIError naming it."""
    client = ds.Client(server.api_key, base_url=server.url)
    with pytest.raises(ds.APIError, match="qwen3-omni-flsh-realtime") as caught:
        client.realtime.connect(model="qwen3-omni-flsh-realtime", timeout=10)
    assert caught.value.code == "Model.NotExist"


@pytest.mark.parametrize(
    ("typo", "meant"),
    [
        ("qwen3-asr-flash-realtim", "qwen3-asr-flash-realtime"),
        ("qwen3-tts-flash", "qwen3-tts-flash"),
    ],
)
def test_unknown_speech_model_gets_a_did_you_mean(raw: Any, typo: str, meant: str) -> None:
    """A misspelt TTS or ASR model is refused like any unknown model, pointing at the real one."""
    event = raw(typo).recv()
    assert event["type"] == "error"
    assert event["error"]["code"] == "Model.NotExist"
    assert meant in event["error"]["message"]


@pytest.mark.parametrize(
    ("model", "session", "param", "hint"),
    [
        (ds.MODEL_QWEN3_OMNI_FLASH_REALTIME, {"voice": "Cheery"}, "session.voice", "Cherry"),
        (ds.MODEL_QWEN_OMNI_TURBO_REALTIME, {"voice": "Tina"}, "session.voice", None),
        (
            ds.MODEL_QWEN3_8_OMNI_FLASH_REALTIME,
            {"audio": {"output": {"voice": "Tinna"}}},
            "session.audio.output.voice",
            "Tina",
        ),
        (ds.MODEL_QWEN_AUDIO_3_0_REALTIME_PLUS, {"voice": "Cherry"}, "session.voice", None),
        (
            ds.MODEL_QWEN3_LIVETRANSLATE_FLASH_REALTIME,
            {
                "input_audio_transcription": {
                    "model": "qwen3-asr-flash-realtime",
                    "language": "english",
                }
            },
            "session.input_audio_transcription.language",
            None,
        ),
        (
            ds.MODEL_QWEN3_5_LIVETRANSLATE_FLASH_REALTIME,
            {"translation": {"language": "English"}},
            "session.translation.language",
            None,
        ),
    ],
    ids=[
        "flash-typo",
        "turbo-omni35-voice",
        "omni38-nested",
        "qwen-audio-omni-voice",
        "asr-language",
        "target",
    ],
)
def test_unknown_voice_or_language_is_refused(
    raw: Any, model: str, session: dict[str, Any], param: str, hint: str | None
) -> None:
    """A voice the model's documented list lacks, or a language that is none, is refused by name."""
    connection, _ = created(raw, model)
    answer = update(connection, session)
    assert_refused(answer, param)
    if hint is not None:
        assert f"Did you mean {hint!r}" in answer["error"]["message"]


@pytest.mark.parametrize(
    ("model", "session"),
    [
        (ds.MODEL_QWEN3_OMNI_FLASH_REALTIME_2025_12_01, {"voice": "Eldric Sage"}),
        (ds.MODEL_QWEN_AUDIO_3_1_REALTIME_PLUS, {"voice": "beth_v3.1"}),
        (
            ds.MODEL_QWEN_AUDIO_3_0_REALTIME_FLASH,
            {"voice": "qwen-audio-3.0-realtime-flash-myvoice-1"},
        ),
        (ds.MODEL_QWEN3_5_OMNI_FLASH_REALTIME, {"voice": "Ethan"}),  # no documented list
        (ds.MODEL_QWEN3_OMNI_FLASH_REALTIME, {"voice": None}),
        (
            ds.MODEL_QWEN3_LIVETRANSLATE_FLASH_REALTIME,
            {
                "input_audio_transcription": {
                    "model": "qwen3-asr-flash-realtime",
                    "language": "zh",
                },
                "translation": {"language": "pt-BR"},
            },
        ),
    ],
    ids=["flash-2025-12-01", "qwen-audio-31", "cloned", "omni35-any", "null", "languages"],
)
def test_documented_names_are_taken(raw: Any, model: str, session: dict[str, Any]) -> None:
    """Documented voices, cloned voices named after the model, and language codes are accepted."""
    connection, _ = created(raw, model)
    answer = update(connection, session)
    assert answer["type"] == "session.updated", answer


def test_strict_names_off_accepts_any_name() -> None:
    """LocalRealtimeServer(strict_names=False) serves a made-up model and takes a made-up voice."""
    with LocalRealtimeServer(strict_names=False) as server:
        connection = Raw(server, "my-model")
        try:
            assert connection.recv()["type"] == "session.created"
            answer = update(connection, {"voice": "Nobody"})
            assert answer["type"] == "session.updated"
            assert answer["session"]["voice"] == "Nobody"
        finally:
            connection.close()


# Qwen-Audio's timing rules --------------------------------------------------------------


def test_qwen_audio_takes_the_voice_of_the_first_update_only(raw: Any) -> None:
    """A later voice is ignored, as Qwen-Audio's docs say: the echo keeps the first one."""
    connection, _ = created(raw, ds.MODEL_QWEN_AUDIO_3_0_REALTIME_PLUS)
    assert update(connection, {"voice": "longanlingxin"})["session"]["voice"] == "longanlingxin"
    assert update(connection, {"voice": "longanxiaoxin"})["session"]["voice"] == "longanlingxin"


@pytest.mark.parametrize("key", ["turn_detection", "input_audio_format"])
def test_qwen_audio_refuses_a_late_mode_change(raw: Any, key: str) -> None:
    """turn_detection and input_audio_format change only before the first audio: refused after it."""
    connection, _ = created(raw, ds.MODEL_QWEN_AUDIO_3_0_REALTIME_FLASH)
    value = None if key == "turn_detection" else "pcm"
    assert update(connection, {key: value})["type"] == "session.updated"
    connection.append(SILENCE_1S)
    answer = update(connection, {key: value})
    assert_refused(answer, f"session.{key}")
    assert "before the first audio" in answer["error"]["message"]
