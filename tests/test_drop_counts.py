"""dropped_events counts each lost event once; each consumer's drops are public too."""

from __future__ import annotations

import threading

import pytest

import dashscope_sync as ds
from dashscope_sync.testing import LocalRealtimeServer

# Both modes (issue 18): each test runs with threads and again on a ds.Reactor.
pytestmark = pytest.mark.both_modes

MODEL = ds.MODEL_QWEN3_OMNI_FLASH_REALTIME
FLOOD = 200


def test_event_lost_by_buffer_and_handlers_counts_once(server: LocalRealtimeServer) -> None:
    """200 flooded events lost by both a full pull buffer and a stuck handler's backlog
    count as at most the events received, equal to the pull buffer's drops."""
    client = ds.Client(server.api_key, base_url=server.url)
    config = ds.RealtimeConfig(model=MODEL, max_buffered_events=10, max_handler_backlog=10)
    release = threading.Event()
    stuck = threading.Event()

    def stuck_handler(event: ds.ServerEvent) -> None:
        stuck.set()
        release.wait(60)

    with client.realtime.connect(config) as session:
        try:
            session.on("*", stuck_handler)
            connection = server.connections[0]
            for _ in range(FLOOD):
                connection.send({"type": "test.flood"})
            # Answered after the flood in wire order: every flooded event is in.
            session.update_session({"instructions": "after the flood"}, timeout=30)
            assert stuck.wait(30)
            received = FLOOD + 3  # at most: session.created, session.updated, the flood
            assert session.dropped_events <= received
            # Every event the handlers lost, the never-read buffer lost too.
            assert session.dropped_events == session.dropped_from_buffer
            assert session.dropped_from_buffer >= FLOOD - 10
            assert session.dropped_for_handlers >= FLOOD - 12
        finally:
            release.set()


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_handlers_keep_up_buffer_drops_count_once(server: LocalRealtimeServer) -> None:
    """With handlers keeping up, dropped_events is just the pull buffer's drops."""
    client = ds.Client(server.api_key, base_url=server.url)
    config = ds.RealtimeConfig(model=MODEL, max_buffered_events=10)
    with client.realtime.connect(config) as session:
        seen = threading.Event()
        session.on("test.last", lambda event: seen.set())
        connection = server.connections[0]
        for _ in range(50):
            connection.send({"type": "test.flood"})
        connection.send({"type": "test.last"})
        assert seen.wait(30)
        session.update_session({"instructions": "x"}, timeout=30)
        assert session.dropped_for_handlers == 0
        assert session.dropped_events == session.dropped_from_buffer >= 40


def test_ledger_counts_the_overlap_exactly() -> None:
    """The mailbox's ledger: events dropped by both consumers are counted once, and an
    event read from the buffer then dropped for handlers counts for the handlers only."""
    from dashscope_sync._core.mailbox import Mailbox
    from dashscope_sync._deadline import Deadline
    from dashscope_sync._wire.codec import decode

    mailbox = Mailbox(3)
    mailbox.handlers_took = lambda: -1  # a handler thread stuck before its first event
    for _ in range(10):
        mailbox.deliver(decode(b'{"type":"test.x"}'), 0.0)
    assert mailbox.dropped_events == 7  # 0..6; 7, 8, 9 stay
    for seq in range(6):
        mailbox.handlers_dropped(seq)  # the backlog drops 0..5 too
    assert mailbox.dropped_both == 6
    assert mailbox.next_event(Deadline(0), "recv()") is not None  # 7 is read
    mailbox.handlers_dropped(7)
    handlers = 7
    assert mailbox.dropped_both == 6
    assert mailbox.dropped_events + handlers - mailbox.dropped_both == 8
