"""A handler's failure reaches every call blocked when it happened, then the next call."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

import dashscope_sync as ds
from dashscope_sync.testing import LocalRealtimeServer

# Both modes (issue 18): each test runs with threads and again on a ds.Reactor.
pytestmark = pytest.mark.both_modes

MODEL = ds.MODEL_QWEN3_OMNI_FLASH_REALTIME


def wait_until(check: Callable[[], bool], timeout: float = 30.0) -> bool:
    """A precondition that has no event to wait on: checked until it holds (bounded)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def failing(event: ds.ServerEvent) -> None:
    raise LookupError("user code")


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_every_blocked_call_then_the_next_one_raises(server: LocalRealtimeServer) -> None:
    """Three calls blocked when a handler fails each raise HandlerError; so does the next
    call from another thread, and then it is cleared."""
    client = ds.Client(server.api_key, base_url=server.url)
    with client.realtime.connect(model=MODEL) as session:
        session.update_session(ds.SessionUpdate(turn_detection=None))
        session.on("test.boom", failing)
        outcomes: list[BaseException | None] = []
        lock = threading.Lock()

        def blocked(call: Callable[[], object]) -> None:
            try:
                call()
                outcome: BaseException | None = None
            except BaseException as exc:
                outcome = exc
            with lock:
                outcomes.append(outcome)

        calls: list[Callable[[], object]] = [
            lambda: session.wait_for("test.never", timeout=20),
            lambda: session.wait_for("test.never", timeout=20),
            # A response that never comes. (An update_session here raced: its
            # answer could reach this thread before the handler thread failed.)
            lambda: session.next_response().wait(timeout=20),
        ]
        threads = [threading.Thread(target=blocked, args=(call,)) for call in calls]
        for thread in threads:
            thread.start()
        mailbox = session._core.mailbox
        assert wait_until(lambda: mailbox._waiting == 3)
        server.connections[0].send({"type": "test.boom"})
        for thread in threads:
            thread.join(40)
        assert len(outcomes) == 3
        assert all(isinstance(outcome, ds.HandlerError) for outcome in outcomes), outcomes
        assert len({id(outcome) for outcome in outcomes}) == 3  # each its own copy
        # The next call (this thread was not blocked) raises it too, then it is cleared.
        with pytest.raises(ds.HandlerError) as info:
            session.append_text("hello")
        assert isinstance(info.value.__cause__, LookupError)
        session.append_text("hello")


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_one_thread_sees_it_once(server: LocalRealtimeServer) -> None:
    """A thread whose blocked call raised the failure does not get it again next call."""
    client = ds.Client(server.api_key, base_url=server.url)
    with client.realtime.connect(model=MODEL) as session:
        session.on("test.boom", failing)
        server.connections[0].send({"type": "test.boom"})
        with pytest.raises(ds.HandlerError):
            session.wait_for("test.never", timeout=30)
        session.append_text("hello")  # no second HandlerError on this thread


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_no_call_blocked_the_next_call_raises_once(server: LocalRealtimeServer) -> None:
    """With nobody blocked, the next call raises the failure once, counting later ones."""
    client = ds.Client(server.api_key, base_url=server.url)
    with client.realtime.connect(model=MODEL) as session:
        failed = threading.Event()

        def fail_and_note(event: ds.ServerEvent) -> None:
            failed.set()
            raise LookupError("user code")

        session.on("test.boom", fail_and_note)
        marker = threading.Event()
        session.on("test.marker", lambda event: marker.set())
        server.connections[0].send({"type": "test.boom"})
        server.connections[0].send({"type": "test.boom"})
        server.connections[0].send({"type": "test.marker"})
        assert marker.wait(30) and failed.is_set()
        with pytest.raises(ds.HandlerError) as info:
            session.append_text("hello")
        assert info.value.more_failures == 1
        session.append_text("hello")
