"""The local server's Qwen-TTS-Realtime against the official SDK 2.0.2's ``QwenTtsRealtime``.

The SDK's own class (SPEECH_FAMILIES.md §A6) connects, updates the session,
appends text, commits and finishes, and the server carries the session to
``session.finished`` and closes it, as the client-events page says. Skipped
when the SDK is not installed.

Closing: the server closes after ``session.finished``, which the SDK's
WebSocket thread reads and acts on at once; the fixture then calls the SDK's
``close()`` (a no-op by then), joins the thread and shuts the socket, which
websocket-client leaves open when the peer closed (see
tests/test_interop_official_sdk.py for why not the other way round).
"""

from __future__ import annotations

import base64
import io
import threading
import wave
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from dashscope_sync.testing import LocalRealtimeServer

from .conftest import need

dashscope = need("dashscope", reason="the official dashscope SDK is not installed")
qwen_tts = need(
    "dashscope.audio.qwen_tts_realtime", reason="the official dashscope SDK is not installed"
)

pytestmark = pytest.mark.timeout(60)

FLASH = "qwen3-tts-flash-realtime"
# The SDK has no type hints: its callback base class is Any to mypy.
QwenTtsRealtimeCallback: Any = qwen_tts.QwenTtsRealtimeCallback

Event = dict[str, Any]

RESPONSE_EVENTS = [
    "response.created",
    "response.output_item.added",
    "response.content_part.added",
    "response.audio.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.done",
]


class Recorder(QwenTtsRealtimeCallback):  # type: ignore[misc]
    """Collects the SDK's events and its close."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.changed = threading.Condition()
        self.closed = threading.Event()
        self.close_code: Any = None

    def on_event(self, message: Event) -> None:
        with self.changed:
            self.events.append(message)
            self.changed.notify_all()

    def on_close(self, close_status_code: Any, close_msg: Any) -> None:
        self.close_code = close_status_code
        self.closed.set()

    def wait_for(self, event_type: str, count: int = 1, timeout: float = 20) -> Event:
        """Block until ``count`` events of ``event_type`` arrived; return the last of them."""
        with self.changed:
            found = self.changed.wait_for(lambda: len(self.of_type(event_type)) >= count, timeout)
            assert found, f"no {count} {event_type} within {timeout} s: {self.types()}"
            return self.of_type(event_type)[count - 1]

    def types(self) -> list[str]:
        """Event types so far, deltas left out."""
        with self.changed:
            return [e["type"] for e in self.events if not e["type"].endswith(".delta")]

    def of_type(self, event_type: str) -> list[Event]:
        """Events of one type so far."""
        with self.changed:
            return [e for e in self.events if e["type"] == event_type]

    def audio(self) -> bytes:
        """The decoded audio deltas, in order."""
        return b"".join(base64.b64decode(e["delta"]) for e in self.of_type("response.audio.delta"))


Open = Callable[..., tuple[Any, Recorder]]


@pytest.fixture
def tts_server() -> Iterator[LocalRealtimeServer]:
    """A started local server, closed at teardown."""
    with LocalRealtimeServer() as server:
        yield server


@pytest.fixture
def open_tts(tts_server: LocalRealtimeServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Open]:
    """Factory of connected official QwenTtsRealtime clients, closed and joined at teardown."""
    # The SDK reads the key from the module global only (no api_key argument).
    monkeypatch.setattr(dashscope, "api_key", tts_server.api_key)
    opened: list[tuple[Any, Recorder, Any]] = []

    def factory(model: str = FLASH) -> tuple[Any, Recorder]:
        recorder = Recorder()
        client = qwen_tts.QwenTtsRealtime(model=model, callback=recorder, url=tts_server.url)
        client.connect()
        opened.append((client, recorder, client.ws.sock))
        recorder.wait_for("session.created")
        return client, recorder

    yield factory
    for client, recorder, sock in opened:
        tts_server.close_connections(1000, "test over")
        assert recorder.closed.wait(10)
        client.close()
        client.thread.join(10)
        assert not client.thread.is_alive()
        sock.shutdown()


def test_commit_mode_session_with_the_official_sdk(
    tts_server: LocalRealtimeServer, open_tts: Open
) -> None:
    """update_session(mode=commit), append_text, commit and finish give audio, session.finished and the server's close."""
    client, recorder = open_tts()
    client.update_session(voice="Ethan", mode="commit", audio_format="wav", sample_rate=16000)
    updated = recorder.wait_for("session.updated")["session"]
    assert (updated["voice"], updated["mode"], updated["response_format"]) == (
        "Ethan",
        "commit",
        "wav",
    )
    client.append_text("Hello, I am Qwen. ")
    client.append_text("Nice to meet you.")
    client.commit()
    done = recorder.wait_for("response.done")["response"]
    text = "Hello, I am Qwen. Nice to meet you."
    assert done["usage"] == {"characters": len(text)}
    client.finish()
    recorder.wait_for("session.finished")
    assert recorder.closed.wait(10)
    assert recorder.close_code == 1000
    assert recorder.types() == [
        "session.created",
        "session.updated",
        "input_text_buffer.committed",
        *RESPONSE_EVENTS,
        "session.finished",
    ]
    with wave.open(io.BytesIO(recorder.audio())) as reader:
        assert reader.getframerate() == 16000
        assert reader.getnframes() == round(len(text) * 0.06 * 16000)
    # The SDK's own bookkeeping followed the events.
    assert client.get_session_id() == recorder.wait_for("session.created")["session"]["id"]
    assert client.get_last_response_id() == done["id"]
    assert client.get_first_audio_delay() is not None
    sent = [frame["type"] for frame in tts_server.received]
    assert sent == [
        "session.update",
        "input_text_buffer.append",
        "input_text_buffer.append",
        "input_text_buffer.commit",
        "session.finish",
    ]


def test_server_commit_session_with_the_official_sdk(open_tts: Open) -> None:
    """The SDK's default server_commit mode: sentences are spoken as they arrive, finish speaks the rest."""
    client, recorder = open_tts()
    client.update_session(voice="Cherry")
    recorder.wait_for("session.updated")
    client.append_text("The first sentence. The sec")
    recorder.wait_for("response.done")
    client.append_text("ond one, without an end")
    client.finish()
    recorder.wait_for("session.finished")
    assert recorder.closed.wait(10)
    assert recorder.types() == [
        "session.created",
        "session.updated",
        *RESPONSE_EVENTS,
        *RESPONSE_EVENTS,
        "session.finished",
    ]
    billed = [e["response"]["usage"]["characters"] for e in recorder.of_type("response.done")]
    assert billed == [len("The first sentence."), len(" The second one, without an end")]
    assert len(recorder.audio()) == 2 * round(sum(billed) * 0.06 * 24000)


def test_every_sdk_option_with_the_official_sdk(open_tts: Open) -> None:
    """The SDK's update with every option is accepted by an instruct model, and its commit is spoken."""
    client, recorder = open_tts("qwen3-tts-instruct-flash-realtime")
    client.update_session(
        voice="Cherry",
        mode="commit",
        sample_rate=48000,
        volume=60,
        speech_rate=1.2,
        pitch_rate=1.0,
        enable_tn=True,
        language_type="English",
        instructions="warm and slow",
        optimize_instructions=True,
    )
    updated = recorder.wait_for("session.updated")["session"]
    assert updated["instructions"] == "warm and slow" and updated["sample_rate"] == 48000
    client.append_text("x" * 24)
    client.commit()
    recorder.wait_for("response.done")
    assert len(recorder.audio()) == 2 * round(24 * 0.06 / 1.2 * 48000)
    client.clear_appended_text()
    recorder.wait_for("input_text_buffer.cleared")
    client.finish()
    recorder.wait_for("session.finished")
    assert recorder.closed.wait(10)
