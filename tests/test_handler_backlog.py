"""The handler queue is bounded (``RealtimeConfig(max_handler_backlog=...)``).

Before the bound, 100 000 unpaced audio deltas to a counting handler peaked at
12.4 MiB of traced memory (2.3 MiB when paced), growing with the traffic.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
import tracemalloc

import pytest

import dashscope_sync as ds

from ._net import RawPeer, raw_session, text
from .test_leaks import DELTA, blast

# Both modes (issue 18): each test runs with threads and again on a ds.Reactor.
pytestmark = [pytest.mark.timeout(300), pytest.mark.both_modes]

FLOOD = 20_000
BACKLOG = 1_000


class TracedPeak:
    """tracemalloc around a block: ``bytes`` is the peak of traced memory above its start."""

    bytes = 0

    def __enter__(self) -> TracedPeak:
        gc.collect()
        tracemalloc.start()
        self._base = tracemalloc.get_traced_memory()[0]
        return self

    def __exit__(self, *exc: object) -> None:
        self.bytes = tracemalloc.get_traced_memory()[1] - self._base
        tracemalloc.stop()


def test_unpaced_flood_to_a_handler_keeps_memory_bounded(caplog: pytest.LogCaptureFixture) -> None:
    """An unpaced flood to a counting handler that falls behind holds at most max_handler_backlog events; the rest are counted as dropped, with one warning."""
    caplog.set_level(logging.INFO, logger="dashscope_sync")
    peer = RawPeer()
    handled = 0
    sent = threading.Event()  # the whole flood is on the wire
    done = threading.Event()  # the handler has seen the sentinel

    def count(event: ds.ServerEvent) -> None:
        nonlocal handled
        # Fall behind at once, and stay behind until the flood is sent: the
        # reader outruns a counting handler only sometimes, and this test
        # must reach the bound every time.
        sent.wait(120)
        if event.type == "x.sentinel":
            done.set()
        else:
            handled += 1

    config = {"max_buffered_events": 0, "max_handler_backlog": BACKLOG}
    with raw_session(peer, **config) as session:
        session.on("*", count)
        with TracedPeak() as traced:
            blast(peer, FLOOD).join(120)
            sent.set()
            assert done.wait(120)
        # The socket buffers hold far fewer than FLOOD - BACKLOG deltas, so the
        # reader has read past the bound while the handler was held.
        assert session.dropped_events > 0
        assert handled >= BACKLOG
        assert handled + session.dropped_events == FLOOD
    print(f"counting handler: handled {handled}, dropped {session.dropped_events}")
    assert traced.bytes < (8 << 20) + BACKLOG * len(DELTA) * 2
    backlog_warnings = [
        r
        for r in caplog.records
        if r.levelno == logging.WARNING and "events behind" in r.getMessage()
    ]
    assert len(backlog_warnings) == 1


def test_stuck_handler_holds_bounded_memory(caplog: pytest.LogCaptureFixture) -> None:
    """A handler that never returns holds at most max_handler_backlog events; the rest are dropped and counted, with one warning, and close() still ends in bounded time."""
    caplog.set_level(logging.INFO, logger="dashscope_sync")
    peer = RawPeer()
    release = threading.Event()
    config = {"max_buffered_events": 0, "max_handler_backlog": BACKLOG, "handler_timeout": 1.0}
    with raw_session(peer, **config) as session:
        session.on("*", lambda event: release.wait(60))
        try:
            with TracedPeak() as traced:
                blast(peer, FLOOD).join(120)
                deadline = time.monotonic() + 60
                while session.dropped_events < FLOOD - BACKLOG - 1 and time.monotonic() < deadline:
                    time.sleep(0.05)
            # The flood and the sentinel, less the backlog and the event in hand.
            assert FLOOD - BACKLOG - 1 <= session.dropped_events <= FLOOD + 1
            # The handler is still stuck: close() leaves it behind after
            # handler_timeout (1 s) and the close handshake (close_timeout 1 s).
            started = time.monotonic()
            session.close()
            took = time.monotonic() - started
            assert session.closed
            assert took < 2.0 + 5.0, f"close() took {took:.1f} s behind a stuck handler"
        finally:
            release.set()
    assert traced.bytes < (8 << 20) + BACKLOG * len(DELTA) * 2
    backlog_warnings = [
        r
        for r in caplog.records
        if r.levelno == logging.WARNING and "events behind" in r.getMessage()
    ]
    assert len(backlog_warnings) == 1


def test_huge_messages_are_bounded_in_bytes(caplog: pytest.LogCaptureFixture) -> None:
    """1 MiB messages with nobody reading and a stuck handler: the pull buffer and the handler backlog each hold at most max_buffered_bytes."""
    caplog.set_level(logging.INFO, logger="dashscope_sync")
    big = {"type": "response.text.delta", "response_id": "r", "delta": "x" * (1 << 20)}
    count, bound = 40, 4 << 20
    peer = RawPeer()
    release = threading.Event()
    config = {"max_buffered_bytes": bound, "handler_timeout": 1.0}
    message, sentinel_frame = text(big), text({"type": "x.sentinel"})  # made before tracing

    def send_all() -> None:
        for _ in range(count):
            peer.send(message)
        peer.send(sentinel_frame)

    with raw_session(peer, **config) as session:
        session.on("*", lambda event: release.wait(60))
        try:
            with TracedPeak() as traced:
                sender = threading.Thread(target=send_all, name="test-sender")
                sender.start()
                sender.join(60)
                sentinel = session.wait_for(ds.UnknownEvent, timeout=60)
        finally:
            release.set()
    assert sentinel.type == "x.sentinel"
    print(f"1 MiB messages: dropped {session.dropped_events}, peak {traced.bytes / 2**20:.1f} MiB")
    # Each queue keeps what fits in `bound` (three of these messages, give or
    # take the one in the handler's hands); the rest was dropped and counted,
    # for the iterator and for handlers alike; an event both lost counts once.
    assert 0 < session.dropped_from_buffer <= session.dropped_events
    assert session.dropped_for_handlers >= count - 8
    assert count - 8 <= session.dropped_events <= count + 2
    # Two bounded queues, the message being decoded and the read buffer;
    # unbounded, the 40 MiB would sit in each queue.
    assert traced.bytes < 3 * bound + (8 << 20), f"peak {traced.bytes / 2**20:.1f} MiB"
