"""interrupt() against handlers that lag behind the socket: staleness in handler order."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import dashscope_sync as ds
from dashscope_sync._core.state import SessionState
from dashscope_sync.testing import LocalRealtimeServer

# Both modes (issue 18): each test runs with threads and again on a ds.Reactor.
pytestmark = pytest.mark.both_modes

MODEL = ds.MODEL_QWEN3_OMNI_FLASH_REALTIME
#: What a blocking player spends on each chunk.
CHUNK_SECONDS = 0.1
#: Chunks in a reply: seconds of blocking playback, so a loaded machine
#: cannot play them all before the test interrupts.
CHUNKS = 30


def created(rid: str) -> dict[str, Any]:
    return {"type": "response.created", "response": {"id": rid, "status": "in_progress"}}


def done(rid: str, status: str = "completed") -> dict[str, Any]:
    return {"type": "response.done", "response": {"id": rid, "status": status}}


def audio(rid: str) -> dict[str, Any]:
    return {
        "type": "response.audio.delta",
        "response_id": rid,
        "item_id": "item_1",
        "output_index": 0,
        "content_index": 0,
        "delta": base64.b64encode(b"\x10\x00" * 240).decode(),
    }


@pytest.fixture
def server() -> Iterator[LocalRealtimeServer]:
    with LocalRealtimeServer(delta_delay=0.02) as srv:
        yield srv


@pytest.fixture
def manual(server: LocalRealtimeServer) -> Iterator[ds.RealtimeSession]:
    client = ds.Client(server.api_key, base_url=server.url)
    with client.realtime.connect(model=MODEL) as session:
        session.update_session(ds.SessionUpdate(turn_detection=None))
        yield session


class BlockingPlayer:
    """A handler that blocks on each chunk as a blocking player does, noting which
    chunks it started after the interrupt returned."""

    def __init__(self) -> None:
        self.first = threading.Event()
        self.returned = threading.Event()  # set once interrupt() has returned
        self.late: list[str] = []
        self.before = 0

    def __call__(self, event: ds.ResponseAudioDelta) -> None:
        if self.returned.is_set():
            self.late.append(event.response_id)
        else:
            self.before += 1
        self.first.set()
        time.sleep(CHUNK_SECONDS)


def play_then_interrupt(
    server: LocalRealtimeServer,
    session: ds.RealtimeSession,
    wait_for_done: bool,
    interrupt: Callable[[], ds.Interruption],
) -> tuple[BlockingPlayer, ds.Interruption]:
    """Queue a whole reply behind a blocking player, interrupt it, let handlers drain."""
    player = BlockingPlayer()
    handled_done = threading.Event()
    session.on(ds.ResponseAudioDelta, player)
    session.on(ds.ResponseDone, lambda event: handled_done.set())
    connection = server.connections[0]
    connection.send(created("resp_slow"))
    for _ in range(CHUNKS):
        connection.send(audio("resp_slow"))
    assert player.first.wait(10)
    if wait_for_done:
        connection.send(done("resp_slow"))
        # The reader has read the whole reply; the player is still on chunk one or two.
        session.wait_for(ds.ResponseDone, timeout=10)
    stopped = interrupt()
    player.returned.set()
    if not wait_for_done:
        connection.send(done("resp_slow", "cancelled"))
    assert handled_done.wait(30)
    return player, stopped


class TestHandlersLaggingBehind:
    def test_reply_the_reader_finished_is_still_interrupted(
        self, server: LocalRealtimeServer, manual: ds.RealtimeSession
    ) -> None:
        """A reply read whole before interrupt() reaches no handler after it returns."""
        player, stopped = play_then_interrupt(server, manual, True, manual.interrupt)
        assert player.late == []
        assert stopped.response_id == "resp_slow" and not stopped.cancelled
        assert player.before < CHUNKS

    def test_running_reply_whose_done_comes_first(
        self, server: LocalRealtimeServer, manual: ds.RealtimeSession
    ) -> None:
        """A running reply interrupted, then ended by the server while handlers still
        hold its audio, reaches no handler after interrupt() returns."""
        player, stopped = play_then_interrupt(server, manual, False, manual.interrupt)
        assert player.late == []
        assert stopped.response_id == "resp_slow" and stopped.cancelled

    def test_second_handler_of_the_same_event_is_skipped(
        self, server: LocalRealtimeServer, manual: ds.RealtimeSession
    ) -> None:
        """A handler after a blocking one gets no chunk of a response interrupted meanwhile."""
        after: list[bool] = []
        player = BlockingPlayer()
        manual.on(ds.ResponseAudioDelta, player)
        manual.on(ds.ResponseAudioDelta, lambda event: after.append(player.returned.is_set()))
        handled_done = threading.Event()
        manual.on(ds.ResponseDone, lambda event: handled_done.set())
        connection = server.connections[0]
        connection.send(created("resp_two"))
        connection.send(audio("resp_two"))
        assert player.first.wait(10)  # the player is inside the one chunk now
        manual.interrupt()
        player.returned.set()
        connection.send(done("resp_two", "cancelled"))
        assert handled_done.wait(30)
        assert after == []

    def test_next_reply_plays(
        self, server: LocalRealtimeServer, manual: ds.RealtimeSession
    ) -> None:
        """Only the interrupted reply is silenced: the next one reaches the handler whole."""
        play_then_interrupt(server, manual, True, manual.interrupt)
        got: list[str] = []
        handled = threading.Event()
        manual.on(ds.ResponseAudioDelta, lambda event: got.append(event.response_id))
        manual.on(ds.ResponseDone, lambda event: handled.set())
        handled.clear()
        connection = server.connections[0]
        connection.send(created("resp_next"))
        connection.send(audio("resp_next"))
        connection.send(done("resp_next"))
        assert handled.wait(10)
        assert got.count("resp_next") == 1


class TestIterAudioLaggingBehind:
    def test_slow_consumer_gets_nothing_after_interrupt(
        self, server: LocalRealtimeServer, manual: ds.RealtimeSession
    ) -> None:
        """An iter_audio() loop behind a reply the reader finished yields none of it once
        interrupt() has returned."""
        manual.append_text("Tell me a long story.")
        response = manual.create_response()
        chunks = response.iter_audio(timeout=30)
        first = next(chunks)
        whole = response.wait(timeout=30)  # the reader has it all; the consumer is behind
        assert len(whole.audio) > len(first)
        manual.interrupt()
        assert list(chunks) == []


class FakeSpeaker:
    """A speaker whose write blocks like a device's and records the writing thread."""

    rate = 24000

    def __init__(self, block: float = CHUNK_SECONDS) -> None:
        # Guards writes.
        self._lock = threading.Lock()
        self._block = block
        self.writes: list[tuple[str, bool]] = []  # (thread name, after the interrupt)
        self.returned = threading.Event()
        self.first = threading.Event()
        self.closed = False
        self.playing = False
        self.played_seconds = 0.0
        self.written_seconds = 0.0
        self.interrupts = 0

    def write(self, pcm: bytes) -> None:
        with self._lock:
            self.writes.append((threading.current_thread().name, self.returned.is_set()))
        self.first.set()
        time.sleep(self._block)

    def mark_end(self) -> None:
        pass

    def interrupt(self) -> None:
        self.interrupts += 1

    def set_tap(self, tap: object) -> None:
        pass


class TestAttachedSpeaker:
    def test_audio_reaches_the_speaker_from_the_handler_thread(
        self, server: LocalRealtimeServer, manual: ds.RealtimeSession
    ) -> None:
        """An attached speaker is written from the handler thread, never the socket reader."""
        # Not blocking: which thread writes does not depend on how long a write takes,
        # and a blocking one would play the whole default reply in real time (~5 s).
        speaker = FakeSpeaker(block=0.0)
        manual.attach(speaker=speaker)
        done_seen = threading.Event()
        manual.on(ds.ResponseDone, lambda event: done_seen.set())
        manual.append_text("hello")
        manual.create_response().wait(timeout=30)
        assert done_seen.wait(30)
        names = {name.rstrip("0123456789-") for name, _ in speaker.writes}  # pool: -N
        assert speaker.writes and names == {"dashscope_sync-handlers"}

    def test_speaker_gets_nothing_after_interrupt(
        self, server: LocalRealtimeServer, manual: ds.RealtimeSession
    ) -> None:
        """A blocking speaker behind a reply the reader finished gets none of it after
        interrupt(), which stops it and names that reply."""
        speaker = FakeSpeaker()
        manual.attach(speaker=speaker)
        handled_done = threading.Event()
        manual.on(ds.ResponseDone, lambda event: handled_done.set())
        connection = server.connections[0]
        connection.send(created("resp_spk"))
        for _ in range(CHUNKS):
            connection.send(audio("resp_spk"))
        connection.send(done("resp_spk"))
        assert speaker.first.wait(10)
        manual.wait_for(ds.ResponseDone, timeout=10)
        stopped = manual.interrupt()
        speaker.returned.set()
        assert handled_done.wait(30)
        assert [after for _, after in speaker.writes if after] == []
        assert stopped.response_id == "resp_spk" and speaker.interrupts == 1


class TestCancelFalse:
    def test_later_response_cancel_still_works(
        self, server: LocalRealtimeServer, manual: ds.RealtimeSession
    ) -> None:
        """interrupt(cancel=False) leaves Response.cancel() working: it sends the cancel."""
        manual.append_text("Tell me a long story.")
        response = manual.create_response()
        for _ in response.iter_audio(timeout=10):
            break
        stopped = manual.interrupt(cancel=False)
        assert not stopped.cancelled
        assert response.cancel() is True
        with pytest.raises(ds.ResponseCancelledError) as info:
            response.wait(timeout=10)
        sent = [f["type"] for f in server.connections[0].received]
        assert sent.count("response.cancel") == 1
        assert info.value.result is not None and info.value.result.interrupted

    def test_result_of_an_interrupted_reply_says_so(
        self, server: LocalRealtimeServer, manual: ds.RealtimeSession
    ) -> None:
        """A reply cut by interrupt(cancel=False) completes with interrupted=True; a whole one False."""
        manual.append_text("Tell me a long story.")
        response = manual.create_response()
        for _ in response.iter_audio(timeout=10):
            break
        manual.interrupt(cancel=False)
        result = response.wait(timeout=30)
        assert result.status == "completed" and result.interrupted
        manual.append_text("Again.")
        # A short scripted reply: a simulated one streams for 1.5 s at this server's pace.
        server.script_response(
            [
                {"type": "response.created"},
                {
                    "type": "response.audio.delta",
                    "delta": base64.b64encode(b"\x10\x20" * 2400).decode(),
                },
                {"type": "response.audio.done"},
                {"type": "response.done", "response": {"status": "completed"}},
            ]
        )
        whole = manual.create_response().wait(timeout=30)
        assert not whole.interrupted


class TestState:
    def test_interrupt_without_cancel_leaves_cancel_to_the_handle(self) -> None:
        """The state machine: interrupt(cancel=False) marks no cancel on the track."""
        from dashscope_sync._wire.codec import decode

        state = SessionState()
        state.receive(decode(b'{"type":"session.created","session":{"id":"s"}}'), 0.0)
        track, _ = state.track_response("e1", 0.0)
        state.receive(decode(ds_json(created("resp_1"))), 0.0)
        assert state.interrupt(cancel=False) == ("resp_1", False)
        assert state.cancel(track) is True and track.interrupted

    def test_handler_order_decides_what_is_over(self) -> None:
        """After the reader read response.done, the reply is still open until the
        handler thread takes it: interrupt() still names and silences it."""
        from dashscope_sync._wire.codec import decode

        state = SessionState()
        state.handlers_follow = True
        for frame in (created("resp_1"), audio("resp_1"), done("resp_1")):
            state.receive(decode(ds_json(frame)), 0.0)
        assert state.interrupt() == ("resp_1", False)
        assert state.interrupted("resp_1")
        state.handler_done("resp_1")
        state.receive(decode(ds_json(created("resp_2"))), 0.0)
        assert state.interrupt() == ("resp_2", True)
        assert not state.interrupted("resp_3")


def ds_json(frame: dict[str, Any]) -> bytes:
    import json

    return json.dumps(frame).encode()
