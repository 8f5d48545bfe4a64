"""A session the program drops: its finalizer only signals, and the reader ends it.

The same for every kind of session (conversation, text to speech, speech
recognition): each is a facade over one `SessionCore`, and each finalizer
only asks the reader to end it.
"""

from __future__ import annotations

import gc
import threading
import warnings
import weakref
from collections.abc import Callable
from typing import Any

import pytest

import dashscope_sync as ds
from dashscope_sync._core.core import SessionCore
from dashscope_sync.testing import LocalRealtimeServer

# Both modes (issue 18): each test runs with threads and again on a ds.Reactor.
pytestmark = pytest.mark.both_modes

MODEL = ds.MODEL_QWEN3_OMNI_FLASH_REALTIME

#: How to open each kind of session, by the name of its public class.
OPENERS: dict[str, Callable[[ds.Client], Any]] = {
    "RealtimeSession": lambda client: client.realtime.connect(model=MODEL),
    "SpeechSession": lambda client: client.speech.connect(
        model=ds.MODEL_QWEN3_TTS_FLASH_REALTIME, voice="Cherry"
    ),
    "TranscriptionSession": lambda client: client.transcription.connect(
        ds.MODEL_QWEN3_ASR_FLASH_REALTIME
    ),
}

kinds = pytest.mark.parametrize("kind", list(OPENERS))


def open_and_drop(client: ds.Client, kind: str) -> tuple[SessionCore, weakref.ref[Any]]:
    """Open a session whose handler refers to it, and drop it: only a cycle keeps it."""
    session = OPENERS[kind](client)
    assert type(session).__name__ == kind
    session.on("*", lambda event: print(session.id))
    return session._core, weakref.ref(session)


@kinds
@pytest.mark.parametrize("held", ["mailbox", "request", "send"])
def test_collecting_thread_holding_a_session_lock_never_blocks(
    server: LocalRealtimeServer, client: ds.Client, kind: str, held: str
) -> None:
    """Collecting a dropped session on a thread that holds one of its locks returns, and
    the session still ends cleanly (the reader does the work)."""
    core, ref = open_and_drop(client, kind)
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
    assert collected.wait(10), "the finalizer blocked the collecting thread"
    assert ref() is None
    assert core.connection.ended.wait(30)
    end = core.mailbox.state.end
    assert end is not None and end.error is None
    # The finalizer sent nothing itself: no frame was written while the send lock was held.
    assert core.closed.wait(30)


@kinds
def test_dropped_session_still_warns_and_closes(server: LocalRealtimeServer, kind: str) -> None:
    """A dropped session warns once with ResourceWarning, naming its own class; the
    finalizer sends nothing (not even a close frame: the server sees 1006), and the
    reader ends the session cleanly."""
    client = ds.Client(server.api_key, base_url=server.url)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        core, ref = open_and_drop(client, kind)
        for _ in range(3):
            gc.collect()
    assert ref() is None
    unclosed = [
        str(w.message)
        for w in caught
        if issubclass(w.category, ResourceWarning) and str(w.message).startswith("unclosed <")
    ]
    assert len(unclosed) == 1, unclosed
    assert unclosed[0].startswith(f"unclosed <{kind} "), unclosed
    assert core.connection.ended.wait(30)
    core.connection.join(30)  # its reader thread, or its reactor's report
    assert core.connection.ended.is_set()
    end = core.mailbox.state.end
    assert end is not None and end.error is None
    assert core.closed.wait(30)
    (connection,) = server.connections
    assert connection.wait_closed(30)
    assert connection.close_code == 1006
