"""session.interrupt() over a real socket: cancel, drop late audio everywhere, report what was heard."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterator

import pytest

import dashscope_sync as ds
from dashscope_sync.testing import LocalRealtimeServer

# Both modes (issue 18): each test runs with threads and again on a ds.Reactor.
pytestmark = pytest.mark.both_modes

MODEL = ds.MODEL_QWEN3_OMNI_FLASH_REALTIME


@pytest.fixture
def slow_server() -> Iterator[LocalRealtimeServer]:
    """A server whose responses stream slowly enough to be interrupted mid-way."""
    with LocalRealtimeServer(delta_delay=0.02) as srv:
        yield srv


@pytest.fixture
def manual(slow_server: LocalRealtimeServer) -> Iterator[ds.RealtimeSession]:
    client = ds.Client(slow_server.api_key, base_url=slow_server.url)
    with client.realtime.connect(model=MODEL) as session:
        session.update_session(ds.SessionUpdate(turn_detection=None))
        yield session


def late_audio(rid: str) -> dict[str, object]:
    return {
        "type": "response.audio.delta",
        "response_id": rid,
        "item_id": "item_x",
        "output_index": 0,
        "content_index": 0,
        "delta": base64.b64encode(b"\x10\x00" * 240).decode(),
    }


class TestInterrupt:
    def test_cancels_and_drops_late_audio_everywhere(
        self, slow_server: LocalRealtimeServer, manual: ds.RealtimeSession
    ) -> None:
        """Late audio of the interrupted response reaches no handler, recv or iter_audio."""
        seen: list[tuple[str, str]] = []
        first_audio = threading.Event()

        def on_audio(event: ds.ResponseAudioDelta) -> None:
            seen.append(("audio", event.response_id))
            first_audio.set()

        manual.on(ds.ResponseAudioDelta, on_audio)
        marker_seen = threading.Event()
        manual.on(ds.UnknownEvent, lambda event: marker_seen.set())
        manual.append_text("Tell me a long story.")
        response = manual.create_response()
        assert first_audio.wait(10)
        connection = slow_server.connections[0]
        # Hold the server's own frames back, so the response cannot finish
        # before the late frames below are in.
        connection.stall()
        try:
            started = time.perf_counter()
            stopped = manual.interrupt()
            took = time.perf_counter() - started
            assert stopped.response_id == response.id and stopped.cancelled
            assert stopped.played_seconds is None  # no speaker attached
            heard_before = len(seen)
            for _ in range(3):
                connection.send(late_audio(stopped.response_id))
            connection.send({"type": "test.marker"})
            assert marker_seen.wait(10)
        finally:
            connection.resume()
        print(f"interrupt() returned in {took * 1000:.2f} ms")
        with pytest.raises(ds.ResponseCancelledError):
            response.wait(timeout=10)
        # No handler saw audio after the interrupt (one may have been running
        # at that very moment; the three late frames never arrive).
        assert len(seen) <= heard_before + 1
        assert manual.dropped_audio >= 3
        # The pull buffer holds none of the response's audio: not the late
        # frames, nor the unread ones from before the interrupt.
        events = []
        while (event := manual.recv(timeout=0)) is not None:
            events.append(event)
            if isinstance(event, ds.ResponseDone):
                break
        assert not any(isinstance(e, ds.ResponseAudioDelta) for e in events)
        assert [e.type for e in events].count("response.done") == 1
        assert any(f["type"] == "response.cancel" for f in connection.received)

    def test_iter_audio_stops_at_the_interrupt(self, manual: ds.RealtimeSession) -> None:
        """iter_audio() yields nothing after the interrupt, then raises ResponseCancelledError
        whose result holds the audio that came before it."""
        manual.append_text("Tell me a long story.")
        response = manual.create_response()
        got = 0
        with pytest.raises(ds.ResponseCancelledError) as info:
            for chunk in response.iter_audio(timeout=10):
                got += len(chunk)
                if got >= 4800:
                    manual.interrupt()
        result = info.value.result
        assert result is not None and len(result.audio) >= got and result.interrupted

    def test_nothing_running(self, session: ds.RealtimeSession) -> None:
        """interrupt() with no response running sends nothing and says so."""
        stopped = session.interrupt()
        assert stopped == ds.Interruption(response_id=None, played_seconds=None, cancelled=False)

    def test_from_a_handler(self, manual: ds.RealtimeSession) -> None:
        """interrupt() may be called from a handler: it never waits."""
        done = threading.Event()
        results: list[ds.Interruption] = []

        def on_first(event: ds.ResponseAudioDelta) -> None:
            if not results:
                results.append(manual.interrupt())

        manual.on(ds.ResponseAudioDelta, on_first)
        manual.on(ds.ResponseDone, lambda event: done.set())
        manual.append_text("Tell me a long story.")
        response = manual.create_response()
        assert done.wait(10)
        assert results[0].cancelled and results[0].response_id == response.id
        assert response.status == "cancelled"

    def test_attach_barge_in_drops_late_audio_without_a_cancel(self) -> None:
        """attach(barge_in=True): speech during a reply drops its late audio; the server cancels it."""
        from dashscope_sync.testing import speech_like_pcm16

        with LocalRealtimeServer(server_vad=True, delta_delay=0.05) as server:
            client = ds.Client(server.api_key, base_url=server.url)
            with client.realtime.connect(model=MODEL) as session:
                session.attach(barge_in=True)
                first = session.next_response()
                session.append_audio(speech_like_pcm16(1.0) + bytes(16000 * 2))
                for _ in first.iter_audio(timeout=10):
                    break
                session.append_audio(speech_like_pcm16(0.5))  # the user talks over the reply
                with pytest.raises(ds.ResponseCancelledError) as info:
                    first.wait(timeout=10)
                assert (info.value.status_details or {}).get("reason") == "turn_detected"
                events = []
                while (event := session.recv(timeout=0)) is not None and len(events) < 10_000:
                    events.append(event)
                    if isinstance(event, ds.ResponseDone):
                        break
                types = [e.type for e in events]
                barge = types.index(
                    "input_audio_buffer.speech_started", types.index("response.created")
                )
                after = [e for e in events[barge:] if isinstance(e, ds.ResponseAudioDelta)]
                assert after == []  # nothing after the barge-in, whatever was in flight
                sent = [f["type"] for f in server.connections[0].received]
                assert "response.cancel" not in sent
                session.detach()
                session.detach()  # idempotent
