"""speak(iterable) writes the pieces pulled together with one write, each its own append (issue 15, speed)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import pytest

import dashscope_sync as ds
from tests._net import OP_TEXT
from tests.test_speech import tts_session

# Both modes (issue 18): each test runs with threads and again on a ds.Reactor.
pytestmark = pytest.mark.both_modes


def test_a_thousand_pieces_arrive_in_order_each_its_own_append() -> None:
    """1000 pieces from a generator: every append reaches the wire, in order, one frame each,
    with its own event id, and the commit after the last."""
    n = 1000
    with tts_session() as (session, peer, _):
        speech = session.speak(f"p{i} " for i in range(n))
        deadline = time.monotonic() + 10
        while True:  # the frames after session.update, read at once (next_event is per frame)
            texts = [p for op, p in peer.client_frames() if op == OP_TEXT][1:]
            if len(texts) >= n + 1 or time.monotonic() > deadline:
                break
            with peer.arrived:
                peer.arrived.wait(0.1)
        events = [json.loads(t) for t in texts]
        assert [e["type"] for e in events] == ["input_text_buffer.append"] * n + [
            "input_text_buffer.commit"
        ]
        assert [e["text"] for e in events[:n]] == [f"p{i} " for i in range(n)]
        assert len({e["event_id"] for e in events}) == n + 1
        assert speech.text == "".join(f"p{i} " for i in range(n))


def test_pieces_that_wait_for_the_wire_go_out_together_in_order() -> None:
    """While the wire is busy the pieces queue; they then leave in one write, still one
    append each, in order (empty ones skipped)."""
    with tts_session() as (session, peer, _):
        lock = session._core.connection._send_lock
        pulled = threading.Event()

        def pieces() -> Iterator[str]:
            yield "a"
            yield ""
            yield "b"
            yield "c"
            pulled.set()
            yield "d"

        with lock:  # the wire is busy: the feeder waits with "a", the rest queue
            session.speak(pieces())
            assert pulled.wait(10)
        events = [peer.next_event() for _ in range(5)]
        assert [e.get("text") for e in events] == ["a", "b", "c", "d", None]
        assert events[-1]["type"] == "input_text_buffer.commit"


def test_a_slow_source_gets_each_piece_out_before_the_next_comes() -> None:
    """No piece waits for company: each is on the wire while the source still holds the next."""
    with tts_session() as (session, peer, _):
        seen = [threading.Event() for _ in range(5)]

        def pieces() -> Iterator[str]:
            for i in range(5):
                yield f"piece {i}. "
                assert seen[i].wait(10), f"piece {i} was held back"

        session.speak(pieces())
        for i in range(5):
            event = peer.next_event()
            assert event["text"] == f"piece {i}. "
            seen[i].set()
        assert peer.next_event()["type"] == "input_text_buffer.commit"


@pytest.mark.parametrize("bad", [None, 7])
def test_a_piece_that_is_not_a_string_fails_the_speech_after_the_pieces_before_it(
    bad: object,
) -> None:
    """The pieces pulled before a non-string still go out; the speech then fails, its text cleared."""
    with tts_session() as (session, peer, _):
        speech = session.speak(iter(["a", "b", bad, "never"]))
        events = [peer.next_event() for _ in range(3)]
        assert [e["type"] for e in events] == ["input_text_buffer.append"] * 2 + [
            "input_text_buffer.clear"
        ]
        assert [e.get("text") for e in events[:2]] == ["a", "b"]
        with pytest.raises(ds.ConfigTypeError, match="text pieces must be strings"):
            speech.wait(10)
