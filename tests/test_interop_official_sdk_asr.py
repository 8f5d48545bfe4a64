"""The local server's Qwen-ASR-Realtime against the official ``dashscope`` SDK 2.0.2.

The official ASR guide (SPEECH_FAMILIES.md §B5) drives
``dashscope.audio.qwen_omni.OmniRealtimeConversation`` with an ASR model:
``update_session(output_modalities=[TEXT], ..., transcription_params=...)``,
``append_audio``, ``commit`` in manual mode, then ``end_session()``, which
sends ``session.finish`` and waits for ``session.finished``; the caller then
closes. The SDK adds Omni fields to the update (``voice: null``,
``output_audio_format``, ``prefix_padding_ms``) that the server must take.
Skipped when the SDK is not installed.

Closing follows test_interop_official_sdk.py: the server closes the
connection, the SDK's thread reads that and ends, then the SDK's close() (a
no-op by then), a join and a socket shutdown.
"""

from __future__ import annotations

import base64
import threading
import wave
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import dashscope_sync as ds
from dashscope_sync.testing import LocalRealtimeServer, spoken_pcm16

from .conftest import need

qwen_omni = need("dashscope.audio.qwen_omni", reason="the official dashscope SDK is not installed")
# The guide imports TranscriptionParams from the module itself; the package does not export it.
omni_realtime = need("dashscope.audio.qwen_omni.omni_realtime")

pytestmark = pytest.mark.timeout(60)

MODEL = "qwen3-asr-flash-realtime"
COMPLETED = "conversation.item.input_audio_transcription.completed"
TEXT = "conversation.item.input_audio_transcription.text"
# The SDK has no type hints: its callback base class is Any to mypy.
OmniRealtimeCallback: Any = qwen_omni.OmniRealtimeCallback

Event = dict[str, Any]


class Recorder(OmniRealtimeCallback):  # type: ignore[misc]
    """Collects the SDK's events, as the guide's callback dispatches them."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.changed = threading.Condition()
        self.closed = threading.Event()

    def on_event(self, message: Event) -> None:
        with self.changed:
            self.events.append(message)
            self.changed.notify_all()

    def on_close(self, close_status_code: Any, close_msg: Any) -> None:
        self.closed.set()

    def wait_for(self, event_type: str, count: int = 1, timeout: float = 10) -> list[Event]:
        """Block until ``count`` events of ``event_type`` have arrived; return them."""
        with self.changed:
            found = self.changed.wait_for(lambda: len(self.of_type(event_type)) >= count, timeout)
            assert found, f"no {count} {event_type} within {timeout} s: {self.types()}"
            return self.of_type(event_type)

    def of_type(self, event_type: str) -> list[Event]:
        """Events of one type so far."""
        with self.changed:
            return [e for e in self.events if e.get("type") == event_type]

    def types(self) -> list[str]:
        """Event types so far, interim .text events left out."""
        with self.changed:
            return [e["type"] for e in self.events if e["type"] != TEXT]


Open = Callable[[LocalRealtimeServer], tuple[Any, Recorder]]


@pytest.fixture
def open_conversation() -> Iterator[Open]:
    """Factory of connected official conversations on an ASR model, closed at teardown."""
    opened: list[tuple[Any, Recorder, LocalRealtimeServer, Any]] = []

    def factory(server: LocalRealtimeServer) -> tuple[Any, Recorder]:
        recorder = Recorder()
        conversation = qwen_omni.OmniRealtimeConversation(
            model=MODEL, callback=recorder, url=server.url, api_key=server.api_key
        )
        conversation.connect()
        opened.append((conversation, recorder, server, conversation.ws.sock))
        recorder.wait_for("session.created")
        return conversation, recorder

    yield factory
    for conversation, recorder, server, sock in opened:
        server.close_connections(1000, "test over")
        assert recorder.closed.wait(10)
        conversation.close()
        conversation.thread.join(10)
        assert not conversation.thread.is_alive()
        sock.shutdown()


@pytest.fixture
def server() -> Iterator[LocalRealtimeServer]:
    """A started local server, closed at teardown."""
    with LocalRealtimeServer() as started:
        yield started


def append_audio(conversation: Any, pcm: bytes) -> None:
    """Append PCM16 as base64 strings in 100 ms packets, as the guide does."""
    for start in range(0, len(pcm), 3200):
        conversation.append_audio(base64.b64encode(pcm[start : start + 3200]).decode("ascii"))


def demo_clip() -> bytes:
    """The bundled demo clip's PCM16 (16 kHz mono)."""
    with wave.open(str(ds.sample_wav_path())) as wav:
        return bytes(wav.readframes(wav.getnframes()))


def test_vad_recognition_with_the_official_sdk(
    server: LocalRealtimeServer, open_conversation: Open
) -> None:
    """The guide's VAD session: speech events, interims, final transcripts, then end_session."""
    conversation, recorder = open_conversation(server)
    params = omni_realtime.TranscriptionParams(
        language="en", sample_rate=16000, input_audio_format="pcm", corpus_text="Hangzhou"
    )
    conversation.update_session(
        output_modalities=[qwen_omni.MultiModality.TEXT],
        enable_turn_detection=True,
        turn_detection_type="server_vad",
        turn_detection_threshold=0.0,
        turn_detection_silence_duration_ms=400,
        transcription_params=params,
    )
    session = recorder.wait_for("session.updated")[0]["session"]
    assert session["input_audio_transcription"] == {
        "language": "en",
        "corpus": {"text": "Hangzhou"},
    }
    assert session["turn_detection"]["silence_duration_ms"] == 400
    sent = server.wait_for_received("session.update")["session"]
    assert sent["voice"] is None and sent["turn_detection"]["prefix_padding_ms"] == 300

    append_audio(conversation, demo_clip() + bytes(32_000))
    finals = recorder.wait_for(COMPLETED, count=2)
    assert [e["transcript"] for e in finals] == [
        "Hello!",
        "What is the weather like in Hangzhou today?",
    ]
    assert recorder.of_type(TEXT), "interim text/stash events while speaking"
    conversation.end_session(timeout=10)
    assert recorder.types() == [
        "session.created",
        "session.updated",
        *[
            "input_audio_buffer.speech_started",
            "input_audio_buffer.speech_stopped",
            "input_audio_buffer.committed",
            "conversation.item.created",
            COMPLETED,
        ]
        * 2,
        "session.finished",
    ]
    assert conversation.get_session_id() == session["id"]


def test_manual_recognition_with_the_official_sdk(
    server: LocalRealtimeServer, open_conversation: Open
) -> None:
    """The guide's manual session: append, commit, the final transcript, then end_session."""
    conversation, recorder = open_conversation(server)
    conversation.update_session(
        output_modalities=[qwen_omni.MultiModality.TEXT],
        enable_turn_detection=False,
        transcription_params=omni_realtime.TranscriptionParams(language="en"),
    )
    assert recorder.wait_for("session.updated")[0]["session"]["turn_detection"] is None
    pcm = spoken_pcm16("turn on the lights")
    append_audio(conversation, pcm)
    conversation.commit()
    (final,) = recorder.wait_for(COMPLETED)
    assert (final["transcript"], final["language"]) == ("turn on the lights", "en")
    conversation.end_session(timeout=10)
    assert recorder.types() == [
        "session.created",
        "session.updated",
        "input_audio_buffer.committed",
        "conversation.item.created",
        COMPLETED,
        "session.finished",
    ]
    assert server.wait_for_connection().last_committed_audio == pcm


def test_end_session_with_no_speech_with_the_official_sdk(
    server: LocalRealtimeServer, open_conversation: Open
) -> None:
    """end_session() right after the update returns: session.finished comes at once."""
    conversation, recorder = open_conversation(server)
    conversation.update_session(output_modalities=[qwen_omni.MultiModality.TEXT])
    recorder.wait_for("session.updated")
    conversation.end_session(timeout=10)
    assert recorder.types() == ["session.created", "session.updated", "session.finished"]
