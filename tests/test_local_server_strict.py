"""The local server is as strict as the service, family by family (issue 14).

Most tests speak raw frames over a real loopback socket, so what is checked is
the server's answer to exactly those frames, whatever the library's client
would send.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import websocket

import dashscope_sync as ds
from dashscope_sync.testing import LocalRealtimeServer, speech_like_pcm16

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
        import base64

        for start in range(0, len(pcm), 3200):
            chunk = base64.b64encode(pcm[start : start + 3200]).decode("ascii")
            self.send({"type": "input_audio_buffer.append", "audio": chunk})

    def close(self) -> None:
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
