"""What a handler may do (raise, block forever, close, send), each with its documented end in bounded time."""

from __future__ import annotations

import threading
import time

import pytest

import dashscope_sync as ds
from dashscope_sync.testing import LocalRealtimeServer

from .conftest import MODEL

# Both modes (issue 18): each test runs with threads and again on a ds.Reactor.
pytestmark = [pytest.mark.timeout(60), pytest.mark.both_modes]


def manual(client: ds.Client, **options: object) -> ds.RealtimeSession:
    session = client.realtime.connect(ds.RealtimeConfig(model=MODEL, **options))  # type: ignore[arg-type]
    session.update_session(ds.SessionUpdate(turn_detection=None))
    return session


def test_raising_handler_reaches_the_caller_and_the_session_goes_on(client: ds.Client) -> None:
    """A raising handler's error reaches the caller once; the session and later handlers go on."""
    ran = threading.Event()
    with manual(client) as session:
        session.on(ds.ResponseCreated, lambda event: 1 / 0)
        session.on(ds.ResponseDone, lambda event: ran.set())
        handle = session.create_response()
        started = time.monotonic()
        # Handlers run in order on one thread: once the later one ran, the
        # failure is recorded, and the next call into the session raises it.
        # (Waiting on the handle first would race the handler thread: the
        # iterator side never waits for handlers.)
        assert ran.wait(10)
        with pytest.raises(ds.HandlerError) as info:
            handle.wait(10)
        assert isinstance(info.value.__cause__, ZeroDivisionError)
        assert handle.wait(10).status == "completed"  # raised once, not again
        assert time.monotonic() - started < 10


def test_blocked_handler_is_left_behind_by_close_in_bounded_time(
    client: ds.Client, caplog: pytest.LogCaptureFixture
) -> None:
    """A handler blocked forever delays close() by handler_timeout only, and is named."""
    release = threading.Event()
    entered = threading.Event()

    def stuck(event: ds.ServerEvent) -> None:
        entered.set()
        release.wait(30)

    session = manual(client, handler_timeout=0.5, close_timeout=1.0)
    try:
        session.on(ds.ResponseCreated, stuck)
        session.create_response().wait(10)  # the iterator side never waits for handlers
        assert entered.wait(10)
        started = time.monotonic()
        session.close()
        elapsed = time.monotonic() - started
        assert elapsed < 1.0 + 0.5 + 2.0, f"close() took {elapsed:.2f} s"
        assert any("stuck" in r.message or "still running" in r.message for r in caplog.records)
    finally:
        release.set()  # let the thread go, so no thread outlives the test


def test_close_from_a_handler_ends_the_session(
    server: LocalRealtimeServer, client: ds.Client
) -> None:
    """close() from a handler ends the session at once; waiting callers wake with its end."""
    server.script_response([{"type": "response.created"}])  # and then nothing: only close ends it
    session = manual(client)
    session.on(ds.ResponseCreated, lambda event: session.close())
    handle = session.create_response()
    started = time.monotonic()
    with pytest.raises(ds.SessionClosedError):
        handle.wait(10)
    assert time.monotonic() - started < 10
    assert session.closed
    session.close()  # idempotent, and now joins the handler thread


def test_sending_from_a_handler_works(server: LocalRealtimeServer, client: ds.Client) -> None:
    """A handler may send: its frames go out and their answers arrive."""
    with manual(client) as session:
        session.wait_for(ds.SessionUpdated, timeout=10)  # manual()'s own update
        sent: list[str] = []
        returned = threading.Event()

        def send(event: ds.ResponseDone) -> None:
            session.update_session({"voice": "Ethan"}, wait=False)
            sent.append("x")  # the call returned, without raising
            returned.set()

        session.on(ds.ResponseDone, send)
        session.create_response().wait(10)
        updated = session.wait_for(ds.SessionUpdated, timeout=10)
        assert updated.session.voice == "Ethan"
        # The answer can arrive before the handler's own call has returned.
        assert returned.wait(10)
        assert sent == ["x"]
