"""Shared mode: an internal failure on a `ds.Reactor`'s thread, injected with a trace hook.

No library code raises here by itself: a `threading.settrace` hook set while
the reactor starts its threads raises where the test says, on the reactor's
thread only, to check what such a failure can and cannot do. Real loopback
sessions against the local server.
"""

from __future__ import annotations

import threading
import types
from collections.abc import Callable, Iterator

import pytest

import dashscope_sync as ds
from dashscope_sync._core.reactor import Reactor
from dashscope_sync.testing import LocalRealtimeServer

pytestmark = pytest.mark.timeout(60)

MODEL = ds.MODEL_QWEN3_OMNI_FLASH_REALTIME


class Injected(RuntimeError):
    """The failure the hook raises."""


class Fault:
    """Raises `Injected` once, on the reactor's thread, at the next call of ``code``
    for which ``when(frame)`` holds, after `arm`."""

    def __init__(
        self, code: types.CodeType, when: Callable[[types.FrameType], bool] = lambda f: True
    ) -> None:
        self.code = code
        self.when = when
        self.armed = threading.Event()
        self.fired = threading.Event()

    def arm(self) -> None:
        self.armed.set()

    def hook(self, frame: types.FrameType, event: str, _arg: object) -> None:
        if (
            event == "call"
            and frame.f_code is self.code
            and self.armed.is_set()
            and not self.fired.is_set()
            and threading.current_thread().name == "dashscope_sync-reactor"
            and self.when(frame)
        ):
            self.fired.set()
            raise Injected("injected by the test")


@pytest.fixture
def traced() -> Iterator[Callable[[Fault], Reactor]]:
    """Makes a reactor, and connects its first session, with a fault's hook on its threads."""
    previous = threading.gettrace()
    made: list[Reactor] = []

    def make(fault: Fault) -> Reactor:
        threading.settrace(fault.hook)  # type: ignore[arg-type]
        reactor = ds.Reactor(handler_threads=2)
        made.append(reactor)
        return reactor

    try:
        yield make
    finally:
        threading.settrace(previous)  # type: ignore[arg-type]
        for reactor in made:
            reactor.close()


def connect(server: LocalRealtimeServer, reactor: ds.Reactor) -> ds.RealtimeSession:
    client = ds.Client(server.api_key, base_url=server.url, reactor=reactor)
    session = client.realtime.connect(model=MODEL, timeout=10)
    # The hook is on the reactor's threads once they run (they may start lazily).
    threading.settrace(None)  # type: ignore[arg-type]
    return session


def test_a_reactor_whose_thread_died_refuses_new_sessions_at_once(
    server: LocalRealtimeServer,
    traced: Callable[[Fault], Reactor],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """After an internal error ends the reactor's thread, its sessions have ended and
    opening another is a UsageError at once, not a wait for the connect timeout."""
    fault = Fault(Reactor._take_new.__code__)
    reactor = traced(fault)
    session = connect(server, reactor)
    fault.arm()
    with pytest.raises(ds.DashScopeError):
        connect(server, reactor)  # its hand-over wakes the reactor: the fault fires
    assert fault.fired.is_set()
    reactor.thread.join(10)
    assert not reactor.thread.is_alive()
    with pytest.raises(ds.TransportError):
        session.wait_for(ds.ResponseDone, timeout=10)
    with pytest.raises(ds.UsageError, match="internal error"):
        connect(server, reactor)
    assert any("internal error in the reactor thread" in r.getMessage() for r in caplog.records)
    session.close()


def test_a_failure_reporting_one_sessions_end_leaves_the_others_running(
    server: LocalRealtimeServer, traced: Callable[[Fault], Reactor]
) -> None:
    """A session whose end fails to be recorded (on the reactor's thread) does not end the
    reactor: another session on it answers afterwards."""
    from dashscope_sync._core.core import SessionCore

    gone: list[ds.RealtimeSession] = []
    fault = Fault(SessionCore._on_end.__code__, lambda f: f.f_locals["self"] is gone[0]._core)
    reactor = traced(fault)
    gone.append(connect(server, reactor))
    healthy = connect(server, reactor)
    fault.arm()
    server.connections[0].drop()  # read on the reactor's thread: its end is reported there
    assert healthy.respond(text="still there?", timeout=20).status == "completed"
    assert fault.fired.is_set() and reactor.thread.is_alive()
    gone[0].close()
    healthy.close()


def test_a_failure_in_one_sessions_keepalive_ends_that_session_only(
    server: LocalRealtimeServer, traced: Callable[[Fault], Reactor]
) -> None:
    """A keepalive tick that fails (on the reactor's timer) ends its own session with an
    internal error (1011); another session on the reactor answers afterwards."""
    from dashscope_sync._core.connection import Connection

    gone: list[ds.RealtimeSession] = []
    fault = Fault(
        Connection.keepalive.__code__,
        lambda f: f.f_locals["self"] is gone[0]._core.connection,
    )
    reactor = traced(fault)
    client = ds.Client(server.api_key, base_url=server.url, reactor=reactor)
    config = ds.RealtimeConfig(model=MODEL, ping_interval=0.2, ping_timeout=5.0)
    gone.append(client.realtime.connect(config, timeout=10))
    threading.settrace(None)  # type: ignore[arg-type]
    healthy = connect(server, reactor)
    fault.arm()  # its next quiet tick runs the keepalive
    with pytest.raises(ds.TransportError) as info:
        gone[0].wait_for(ds.ResponseDone, timeout=20)
    assert info.value.code == 1011 and "Injected" in (info.value.reason or "")
    assert healthy.respond(text="still there?", timeout=20).status == "completed"
    assert reactor.thread.is_alive()
    gone[0].close()
    healthy.close()
