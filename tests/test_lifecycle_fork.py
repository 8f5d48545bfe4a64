"""A process that forks with a session open: the child never touches the parent's."""

from __future__ import annotations

import gc
import os
import sys
import warnings

import pytest

import dashscope_sync as ds
from dashscope_sync.testing import LocalRealtimeServer

MODEL = ds.MODEL_QWEN3_OMNI_FLASH_REALTIME

pytestmark = [
    pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only"),
    # A forked child has none of its parent's threads: neither a session's
    # reader nor a reactor's (shared mode).
    pytest.mark.both_modes,
]

#: Exit codes the child reports: each step's outcome as one bit.
SEND_REFUSED = 1
WAIT_REFUSED = 2
HANDLER_REFUSED = 4
CLOSE_QUIET = 8
FAILED = 64
#: Exit codes of a child opening sessions of its own.
OWN_SESSION_WORKS = 1
PARENT_REACTOR_REFUSED = 2
OWN_REACTOR_WORKS = 4


def child(session: ds.RealtimeSession) -> int:
    """What a child does with its inherited session; the bits of what it saw."""
    seen = 0
    try:
        try:
            session.append_text("sent by the child")
        except ds.UsageError as exc:
            seen |= SEND_REFUSED if "fork" in str(exc) else 0
        try:
            session.recv(timeout=0.5)
        except ds.UsageError:
            seen |= WAIT_REFUSED
        try:
            session.on("*", print)
        except ds.UsageError:
            seen |= HANDLER_REFUSED
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no ResourceWarning for the parent's session
            session.close()
            del session
            gc.collect()
        seen |= CLOSE_QUIET
    except BaseException:
        seen |= FAILED
    return seen


def test_child_neither_sends_nor_closes_nor_hangs(server: LocalRealtimeServer) -> None:
    """A forked child's sends, waits and handlers are refused, its close and collection
    do nothing, and the parent's session works on after the child exits."""
    client = ds.Client(server.api_key, base_url=server.url)
    session = client.realtime.connect(model=MODEL)
    try:
        session.update_session(ds.SessionUpdate(turn_detection=None))
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            code = FAILED
            try:
                code = child(session)
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        seen = os.waitstatus_to_exitcode(status)
        assert seen == SEND_REFUSED | WAIT_REFUSED | HANDLER_REFUSED | CLOSE_QUIET, seen
        # The parent's session is intact: nothing of the child reached the server.
        session.append_text("sent by the parent")
        result = session.create_response().wait(timeout=30)
        assert result.status == "completed" and not session.closed
        texts = [str(frame) for frame in server.connections[0].received]
        assert not any("sent by the child" in text for text in texts)
    finally:
        session.close()
    assert session.close_code == 1000


def test_child_that_exits_leaves_the_parent_working(server: LocalRealtimeServer) -> None:
    """A child that leaves a `with` block on its inherited session and exits does not end
    the parent's session."""
    client = ds.Client(server.api_key, base_url=server.url)
    with client.realtime.connect(model=MODEL) as session:
        session.update_session(ds.SessionUpdate(turn_detection=None))
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            code = FAILED
            try:
                with session:
                    pass
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        session.append_text("still there?")
        assert session.create_response().wait(timeout=30).status == "completed"
        assert not any(f["type"] == "session.finish" for f in server.connections[0].received)
    assert session.close_code == 1000


def test_child_opens_sessions_of_its_own(server: LocalRealtimeServer) -> None:
    """A forked child can open a session of its own, except on its parent's reactor (a
    UsageError naming the fork: its thread is the parent's), and on a Reactor it makes."""
    client = ds.Client(server.api_key, base_url=server.url)  # the test's reactor, if shared
    with client.realtime.connect(model=MODEL) as session:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            code = FAILED
            try:
                code = 0
                try:
                    with client.realtime.connect(model=MODEL, timeout=10) as own:
                        if own.respond(text="the child's", timeout=20).status == "completed":
                            code |= OWN_SESSION_WORKS
                except ds.UsageError as exc:
                    if "forked" in str(exc) and "new Reactor" in str(exc):
                        code |= PARENT_REACTOR_REFUSED
                with ds.Reactor() as mine:
                    mine_client = ds.Client(server.api_key, base_url=server.url, reactor=mine)
                    with mine_client.realtime.connect(model=MODEL, timeout=10) as own:
                        if own.respond(text="the child's", timeout=20).status == "completed":
                            code |= OWN_REACTOR_WORKS
            except BaseException:
                code |= FAILED
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        seen = os.waitstatus_to_exitcode(status)
        first = OWN_SESSION_WORKS if client.reactor is None else PARENT_REACTOR_REFUSED
        assert seen == first | OWN_REACTOR_WORKS, seen
        assert session.respond(text="still mine", timeout=20).status == "completed"
