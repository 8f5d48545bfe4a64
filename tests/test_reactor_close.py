"""Shared mode: `ds.Reactor.close` while a handler is stuck, and where it may be called.

Real loopback sessions against the local server; handlers are released by
each test before it ends, so that the leak check sees every thread end.
"""

from __future__ import annotations

import logging
import threading
import time

import pytest

import dashscope_sync as ds
from dashscope_sync._core.pool import HandlerPool
from dashscope_sync._deadline import Deadline
from dashscope_sync.testing import LocalRealtimeServer

pytestmark = pytest.mark.timeout(60)

MODEL = ds.MODEL_QWEN3_OMNI_FLASH_REALTIME


def connect(server: LocalRealtimeServer, reactor: ds.Reactor) -> ds.RealtimeSession:
    client = ds.Client(server.api_key, base_url=server.url, reactor=reactor)
    return client.realtime.connect(model=MODEL, timeout=10)


def handler_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("dashscope_sync-handlers-")]


def test_close_leaves_a_stuck_handler_behind_with_a_warning_naming_it(
    server: LocalRealtimeServer, caplog: pytest.LogCaptureFixture
) -> None:
    """close(timeout) returns while a handler is stuck, warning with the handler's name and
    event, and leaves its thread running until the handler returns; another session's
    handlers finish the events already queued."""
    release = threading.Event()
    entered = threading.Event()
    other_done = threading.Event()

    def block_forever(_event: ds.ServerEvent) -> None:
        entered.set()
        release.wait(60)

    reactor = ds.Reactor(handler_threads=2)
    try:
        stuck, other = connect(server, reactor), connect(server, reactor)
        stuck.on("response.created", block_forever)
        other.on("response.done", lambda _e: other_done.set())
        stuck.create_response()
        assert entered.wait(20)
        other.create_response()
        assert other_done.wait(20)
        threads = handler_threads()
        with caplog.at_level(logging.WARNING, logger="dashscope_sync"):
            started = time.monotonic()
            reactor.close(timeout=0.5)
            took = time.monotonic() - started
        assert not release.is_set()
        assert took < 30  # bounded by the timeout (generously: a loaded machine)
        warnings = [
            r.getMessage() for r in caplog.records if "reactor closed with" in r.getMessage()
        ]
        assert len(warnings) == 1, warnings
        assert "block_forever" in warnings[0] and "response.created" in warnings[0]
        assert (
            "dashscope_sync-handlers-" in warnings[0]
            and "leaving that thread behind" in warnings[0]
        )
        left = [t for t in threads if t.is_alive()]
        assert len(left) == 1 and left[0].daemon  # the stuck one only; the other ended
        assert left[0].name in warnings[0] and "after 0.5 s" in warnings[0]
    finally:
        release.set()
    left[0].join(10)
    assert not left[0].is_alive()  # it ended once its handler returned
    assert stuck.closed and stuck.close_code == 1006  # ended by the reactor's close
    stuck.close()
    other.close()


def test_close_from_a_handler_is_a_usage_error(server: LocalRealtimeServer) -> None:
    """A handler that closes the reactor (which would wait for that very handler) gets a
    UsageError, and the reactor stays open for its sessions."""
    raised: list[BaseException] = []
    done = threading.Event()

    with ds.Reactor() as reactor:
        session = connect(server, reactor)

        def close_it(_event: ds.ServerEvent) -> None:
            try:
                reactor.close()
            except BaseException as exc:
                raised.append(exc)
            done.set()

        session.on("response.done", close_it)
        assert session.respond(text="hello", timeout=20).status == "completed"
        assert done.wait(20)
        assert len(raised) == 1 and isinstance(raised[0], ds.UsageError)
        assert "not a handler" in str(raised[0])
        assert session.respond(text="still open?", timeout=20).status == "completed"
        session.close()


def test_close_with_no_time_left_still_ends_every_sessions_handlers(
    server: LocalRealtimeServer,
) -> None:
    """close(timeout=0) with twenty sessions open returns with its reader thread ended and
    every session's end handed to the handlers, so closing the sessions then waits for
    nothing."""
    reactor = ds.Reactor(handler_threads=2)
    sessions = [connect(server, reactor) for _ in range(20)]
    for session in sessions:
        session.on("*", lambda _e: None)
    reactor.close(timeout=0)
    assert not reactor.thread.is_alive()  # no reader left under a closed selector
    for session in sessions:
        dispatcher = session._core.dispatcher
        assert dispatcher is not None
        # The pool ran the session's end (STOP) though the reactor gave it no time.
        assert dispatcher._done.wait(20)
    closer = threading.Thread(target=lambda: [s.close() for s in sessions])
    closer.start()
    closer.join(30)  # generous: each close waiting its handler_timeout (5 s) would take 100 s
    assert not closer.is_alive()
    for thread in handler_threads():
        thread.join(10)
    assert handler_threads() == []


def test_pool_close_runs_work_queued_behind_a_stuck_task_on_a_free_thread() -> None:
    """A task handed over in one chunk behind a stuck one runs on the other, idle pool
    thread during close, not only once the stuck task returns."""
    pool = HandlerPool(2, 2)
    pool.start()
    release, started, ran = threading.Event(), threading.Event(), threading.Event()
    pool.reader_ident = threading.get_ident()  # submit as the reactor's thread: one chunk
    pool.submit(lambda: (started.set(), release.wait(60)))
    pool.submit(ran.set)
    pool.flush()
    closer = threading.Thread(target=pool.close, args=(Deadline(60),))
    try:
        assert started.wait(20)
        closer.start()
        assert ran.wait(20), "the task behind the stuck one waited for it"
    finally:
        release.set()
    closer.join(30)
    assert not closer.is_alive() and handler_threads() == []


def test_a_second_close_waits_for_the_first(server: LocalRealtimeServer) -> None:
    """A close called while another thread's close waits for a handler returns only
    once that close is done (the pool's threads ended), not at once."""
    release, entered = threading.Event(), threading.Event()
    reactor = ds.Reactor(handler_threads=1)
    session = connect(server, reactor)

    def block(_event: ds.ServerEvent) -> None:
        entered.set()
        release.wait(60)

    session.on("response.created", block)
    session.create_response()
    assert entered.wait(20)
    first = threading.Thread(target=reactor.close, kwargs={"timeout": 60})
    second = threading.Thread(target=reactor.close, kwargs={"timeout": 60})
    try:
        first.start()
        second.start()
        second.join(0.5)  # bounded by the handler, held until released below
        assert second.is_alive(), "the second close returned while the first still waits"
    finally:
        release.set()
    second.join(30)
    assert not second.is_alive()
    assert handler_threads() == []  # the second close returned once the pool was closed
    first.join(30)
    session.close()
