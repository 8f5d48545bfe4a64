"""A session the program drops: its finalizer only signals, and the reader ends it."""

from __future__ import annotations

import gc
import threading
import warnings
import weakref

import pytest

import dashscope_sync as ds
from dashscope_sync._core.core import SessionCore
from dashscope_sync.testing import LocalRealtimeServer

MODEL = ds.MODEL_QWEN3_OMNI_FLASH_REALTIME


def open_and_drop(client: ds.Client) -> tuple[SessionCore, weakref.ref[ds.RealtimeSession]]:
    """Open a session whose handler refers to it, and drop it: only a cycle keeps it."""
    session = client.realtime.connect(model=MODEL)
    session.on("response.done", lambda event: print(session.id))
    return session._core, weakref.ref(session)


@pytest.mark.parametrize("held", ["mailbox", "request", "send"])
def test_collecting_thread_holding_a_session_lock_never_blocks(
    server: LocalRealtimeServer, client: ds.Client, held: str
) -> None:
    """Collecting a dropped session on a thread that holds one of its locks returns, and
    the session still ends cleanly (the reader does the work)."""
    core, ref = open_and_drop(client)
    lock = {
        "mailbox": core.mailbox.lock,
        "request": core._request_lock,
        "send": core.connection._send_lock,
    }[held]
    collected = threading.Event()

    def collect() -> None:
        with lock, warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            for _ in range(3):
                gc.collect()
        collected.set()

    thread = threading.Thread(target=collect, daemon=True)
    thread.start()
    assert collected.wait(30), "the finalizer blocked the collecting thread"
    assert ref() is None
    assert core.connection.ended.wait(30)
    end = core.mailbox.state.end
    assert end is not None and end.error is None
    # The finalizer sent nothing itself: no frame was written while the send lock was held.
    assert core.closed.wait(30)


def test_dropped_session_still_warns_and_closes(server: LocalRealtimeServer) -> None:
    """A dropped session warns with ResourceWarning and its threads end."""
    client = ds.Client(server.api_key, base_url=server.url)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        core, ref = open_and_drop(client)
        for _ in range(3):
            gc.collect()
    assert ref() is None
    assert any(issubclass(w.category, ResourceWarning) for w in caught)
    assert core.connection.ended.wait(30)
    core.connection.reader.join(30)
    assert not core.connection.reader.is_alive()
