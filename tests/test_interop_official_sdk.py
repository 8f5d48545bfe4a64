"""The local server against a client nobody here wrote: the official ``dashscope`` SDK.

``dashscope.audio.qwen_omni.OmniRealtimeConversation`` (PROTOCOL.md section
5.1) connects to the local server, configures the session, streams audio and
gets a response, in manual mode and with server VAD. Skipped when the SDK is
not installed.

Closing: the SDK's connect() polls and its WebSocket thread is a daemon, so
the fixture makes sure that thread ends. It lets the server close the
connection, which the SDK's thread reads and acts on at once, then calls the
SDK's close() (a no-op by then), joins the thread and shuts the socket
(websocket-client does not close the socket of a WebSocketApp that the peer
closed, which would surface as a ResourceWarning in some later test). Calling
close() first is racy in websocket-client: close() reads the server's close
frame itself and closes the socket under the thread's select(), which then
sleeps out its 10 s timeout (or, if the thread wins, close() waits 3 s).
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from dashscope_sync.testing import LocalRealtimeServer, speech_like_pcm16

from .conftest import need

qwen_omni = need("dashscope.audio.qwen_omni", reason="the official dashscope SDK is not installed")

pytestmark = pytest.mark.timeout(60)

MODEL = "qwen3-omni-flash-realtime"
AUDIO_AND_TEXT = [qwen_omni.MultiModality.AUDIO, qwen_omni.MultiModality.TEXT]
# The SDK has no type hints: its callback base class is Any to mypy.
OmniRealtimeCallback: Any = qwen_omni.OmniRealtimeCallback

Event = dict[str, Any]


class Recorder(OmniRealtimeCallback):  # type: ignore[misc]
    """Collects the SDK's events; sets ``response_done`` on each response.done."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.changed = threading.Condition()
        self.response_done = threading.Event()
        self.closed = threading.Event()

    def on_event(self, message: Event) -> None:
        with self.changed:
            self.events.append(message)
            self.changed.notify_all()
        if message.get("type") == "response.done":
            self.response_done.set()

    def on_close(self, close_status_code: Any, close_msg: Any) -> None:
        self.closed.set()

    def wait_for(self, event_type: str, timeout: float = 10) -> Event:
        """Block until an event of ``event_type`` has arrived; return the first one."""
        with self.changed:
            found = self.changed.wait_for(
                lambda: any(e.get("type") == event_type for e in self.events), timeout
            )
            assert found, f"no {event_type} within {timeout} s: {self.types()}"
            return next(e for e in self.events if e.get("type") == event_type)

    def types(self) -> list[str]:
        """Event types so far, deltas left out."""
        with self.changed:
            return [e["type"] for e in self.events if not e["type"].endswith(".delta")]

    def of_type(self, event_type: str) -> list[Event]:
        """Events of one type so far."""
        with self.changed:
            return [e for e in self.events if e["type"] == event_type]


Open = Callable[..., tuple[Any, Recorder]]


@pytest.fixture
def open_conversation() -> Iterator[Open]:
    """Factory of connected official conversations, closed and joined at teardown."""
    opened: list[tuple[Any, Recorder, LocalRealtimeServer, Any]] = []

    def factory(
        server: LocalRealtimeServer, api_key: str | None = None, model: str = MODEL
    ) -> tuple[Any, Recorder]:
        recorder = Recorder()
        conversation = qwen_omni.OmniRealtimeConversation(
            model=model,
            callback=recorder,
            url=server.url,
            api_key=api_key or server.api_key,
        )
        conversation.connect()
        # websocket-client's WebSocket under the SDK's WebSocketApp.
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
def make_server() -> Iterator[Callable[..., LocalRealtimeServer]]:
    """Factory of started servers, all closed at teardown."""
    servers: list[LocalRealtimeServer] = []

    def factory(**kwargs: Any) -> LocalRealtimeServer:
        server = LocalRealtimeServer(**kwargs).start()
        servers.append(server)
        return server

    yield factory
    for server in servers:
        server.close()


def append_audio(conversation: Any, pcm: bytes) -> None:
    """Append PCM16 as base64 strings in 100 ms packets, as the SDK expects."""
    for start in range(0, len(pcm), 3200):
        conversation.append_audio(base64.b64encode(pcm[start : start + 3200]).decode("ascii"))


def response_audio_and_transcript(recorder: Recorder) -> tuple[bytes, str]:
    """The decoded audio deltas and the transcript deltas of the recorded response."""
    audio = b"".join(base64.b64decode(e["delta"]) for e in recorder.of_type("response.audio.delta"))
    transcript = "".join(e["delta"] for e in recorder.of_type("response.audio_transcript.delta"))
    return audio, transcript


RESPONSE_EVENTS = [
    "response.created",
    "response.output_item.added",
    "conversation.item.created",
    "response.content_part.added",
    "response.audio_transcript.done",
    "response.audio.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.done",
]


def test_manual_turn_with_the_official_sdk(
    make_server: Callable[..., LocalRealtimeServer], open_conversation: Open
) -> None:
    """update_session, append, commit and create_response give the documented turn."""
    server = make_server()
    conversation, recorder = open_conversation(server)
    conversation.update_session(
        output_modalities=AUDIO_AND_TEXT, voice="Cherry", enable_turn_detection=False
    )
    updated = recorder.wait_for("session.updated")["session"]
    assert updated["turn_detection"] is None
    assert (updated["modalities"], updated["voice"]) == (["audio", "text"], "Cherry")
    sent = server.wait_for_received("session.update")["session"]
    assert sent["input_audio_transcription"] == {"model": None}
    assert sent["input_audio_format"] == sent["output_audio_format"] == "pcm16"

    pcm = speech_like_pcm16(1.2)
    append_audio(conversation, pcm)
    conversation.commit()
    recorder.wait_for("input_audio_buffer.committed")
    conversation.create_response()
    assert recorder.response_done.wait(10)

    assert recorder.types() == [
        "session.created",
        "session.updated",
        "input_audio_buffer.committed",
        "conversation.item.created",
        "conversation.item.input_audio_transcription.completed",
        *RESPONSE_EVENTS,
    ]
    audio, transcript = response_audio_and_transcript(recorder)
    assert "I heard 1.20 seconds of audio." in transcript
    assert recorder.wait_for("response.audio_transcript.done")["transcript"] == transcript
    assert len(audio) == 2 * round(max(0.5, len(transcript) * 0.06) * 24_000)
    done = recorder.wait_for("response.done")["response"]
    assert done["status"] == "completed"
    assert done["output"][0]["content"][0]["transcript"] == transcript
    # The SDK's own bookkeeping followed the events.
    assert conversation.get_session_id() == recorder.wait_for("session.created")["session"]["id"]
    assert conversation.get_last_response_id() == done["id"]
    assert conversation.get_last_first_audio_delay() is not None
    connection = server.wait_for_connection()
    assert connection.last_committed_audio == pcm
    assert connection.headers["user-agent"].startswith("dashscope/")
    assert server.wait_for_received("response.create")["response"] == {"instructions": None}
    conversation.end_session(timeout=10)
    assert recorder.types()[-1] == "session.finished"


def test_vad_turn_with_the_official_sdk(
    make_server: Callable[..., LocalRealtimeServer], open_conversation: Open
) -> None:
    """With turn detection on, speech then silence makes the server commit and respond."""
    server = make_server(server_vad=True)
    conversation, recorder = open_conversation(server)
    conversation.update_session(
        output_modalities=AUDIO_AND_TEXT, voice="Cherry", enable_turn_detection=True
    )
    detection = recorder.wait_for("session.updated")["session"]["turn_detection"]
    assert (detection["threshold"], detection["silence_duration_ms"]) == (0.2, 800)
    append_audio(conversation, speech_like_pcm16(1.0) + bytes(32_000))
    assert recorder.response_done.wait(10)
    assert recorder.types() == [
        "session.created",
        "session.updated",
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "conversation.item.created",
        "conversation.item.input_audio_transcription.completed",
        *RESPONSE_EVENTS,
    ]
    started = recorder.wait_for("input_audio_buffer.speech_started")
    stopped = recorder.wait_for("input_audio_buffer.speech_stopped")
    assert started["audio_start_ms"] == 0
    # The last syllable fades out shortly before 1 s; 800 ms of silence follow it.
    assert 1700 <= stopped["audio_end_ms"] <= 1800
    assert recorder.wait_for("input_audio_buffer.committed")["item_id"] == started["item_id"]
    assert recorder.wait_for("response.done")["response"]["status"] == "completed"
    assert "response.create" not in [frame["type"] for frame in server.received]


@pytest.mark.parametrize(
    ("model", "voice"),
    [
        ("qwen-omni-turbo-realtime", "Chelsie"),
        ("qwen3.5-omni-flash-realtime", "Tina"),
        ("qwen3.8-omni-flash-realtime", "Tina"),
        ("qwen-audio-3.0-realtime-plus", "longanqian"),
    ],
)
def test_manual_turn_in_every_answering_family(
    make_server: Callable[..., LocalRealtimeServer], open_conversation: Open, model: str, voice: str
) -> None:
    """The SDK's flat update, commit and create_response complete a turn on each family that answers."""
    server = make_server()
    conversation, recorder = open_conversation(server, model=model)
    conversation.update_session(
        output_modalities=AUDIO_AND_TEXT, voice=voice, enable_turn_detection=False
    )
    assert recorder.wait_for("session.updated")["session"]["voice"] == voice
    append_audio(conversation, speech_like_pcm16(1.0))
    conversation.commit()
    conversation.create_response()
    assert recorder.response_done.wait(10)
    assert recorder.wait_for("response.done")["response"]["status"] == "completed"


@pytest.mark.parametrize(
    "model", ["qwen3-livetranslate-flash-realtime", "qwen3.8-livetranslate-flash-realtime"]
)
def test_translation_in_every_livetranslate_family(
    make_server: Callable[..., LocalRealtimeServer], open_conversation: Open, model: str
) -> None:
    """LiveTranslate as its docs flow: stream speech, end_session, one translation, then finished."""
    server = make_server()
    conversation, recorder = open_conversation(server, model=model)
    append_audio(conversation, speech_like_pcm16(1.0))
    conversation.end_session(timeout=10)
    assert recorder.types().count("response.done") == 1
    assert recorder.types()[-1] == "session.finished"
    transcript = recorder.wait_for("response.audio_transcript.done")["transcript"]
    assert "simulated translation into en" in transcript


def test_official_sdk_connects_with_a_temporary_key(
    make_server: Callable[..., LocalRealtimeServer], open_conversation: Open
) -> None:
    """A key minted by POST /api/v1/tokens opens a session for the official SDK."""
    server = make_server()
    minted = requests.post(
        f"{server.http_base_url}/tokens?expire_in_seconds=30",
        headers={"Authorization": f"Bearer {server.api_key}"},
        timeout=5,
    )
    token = minted.json()["token"]
    conversation, recorder = open_conversation(server, api_key=token)
    conversation.create_response(output_modalities=[qwen_omni.MultiModality.TEXT])
    assert recorder.response_done.wait(10)
    assert recorder.wait_for("response.done")["response"]["modalities"] == ["text"]
    assert server.wait_for_connection().headers["Authorization"] == f"Bearer {token}"
