"""`session.record(path)`'s handle: `Recorder`, public, over a `RecordWriter`.

The writer (record_writer.py) is fed by the session's threads and writes
``frames.jsonl`` and ``conversation.wav``; this handle is what a program
holds: the folder, `flush`, `close` (the context manager). Recordings still
open when the interpreter exits are completed by an exit hook, so a program
that never closed its session still leaves whole files.
"""

from __future__ import annotations

import atexit
import logging
import threading
import weakref
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Final

from .record_writer import RecordWriter

__all__ = ["Recorder"]

logger = logging.getLogger("dashscope_sync")


class Recorder:
    """A recording of a session in progress, into one folder; from ``session.record``.

    Use it as a context manager, or call `close`; closing the session closes
    it too. The folder gets ``frames.jsonl`` (every frame in and out, with its
    time and direction) and, with audio, ``conversation.wav`` (the user left,
    the assistant right); see the README's "Recording a session".

    Thread safety: every method may be called from any thread; `close` is
    idempotent and returns once the files are complete.

    Attributes:
        path: The folder written to.
        audio: Whether audio and image payloads are kept in ``frames.jsonl``
            and ``conversation.wav`` is written.
    """

    def __init__(
        self,
        writer: RecordWriter,
        on_close: Callable[[Recorder], None],
        *,
        exit_timeout: float | None = None,
    ) -> None:
        self._writer = writer
        # The exit hook's bound on the files (the session's close_timeout):
        # a stuck disk must not hang the interpreter's exit.
        self._exit_timeout = exit_timeout
        self.path: Path = writer.path
        self.audio: bool = writer.audio
        # Undoes what the session set up (the frame tap, the speaker's tap).
        self._on_close = on_close
        # Guards _closed: the first close() stops the feeding, every one waits.
        self._lock = threading.Lock()
        self._closed = False
        _open_at_exit(self)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "recording"
        return f"<Recorder {str(self.path)!r} audio={self.audio} {state}>"

    @property
    def closed(self) -> bool:
        """True once `close` was called (by you or by the session's close)."""
        return self._closed

    @property
    def error(self) -> BaseException | None:
        """Why writing failed (a full disk...; a `DashScopeTimeout`: not complete
        within `close`'s timeout), or None; `close` raises it too."""
        return self._writer.error

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every frame that crossed the socket before this call is in
        ``frames.jsonl`` (handed to the operating system; not fsynced).

        Args:
            timeout: The longest wait, in seconds; None waits as long as it takes.

        Raises:
            DashScopeTimeout: Not written within ``timeout``.
            DashScopeError: The recorder is closed, or writing failed.
            ConfigError: A bad ``timeout``.
        """
        self._writer.flush(timeout)

    def close(self, timeout: float | None = None) -> None:
        """Stop recording and complete the files (mixing the WAV); idempotent.

        Args:
            timeout: The longest wait for the files, in seconds; None (the
                default) waits as long as it takes. The session's close
                waits ``config.close_timeout``. A recorder thread still
                writing then (a stuck disk) finishes on its own as a daemon,
                and `error` is a `DashScopeTimeout`: the files may stay
                incomplete.

        Raises:
            DashScopeTimeout: The files were not complete within ``timeout``.
            DashScopeError: Writing the recording failed (`error` says why).
            ConfigError: A bad ``timeout``.
        """
        with self._lock:
            first = not self._closed
            self._closed = True
        if first:
            self._on_close(self)  # no frame is handed on after this
        self._writer.close(timeout)

    def __enter__(self) -> Recorder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


#: Recorders not closed yet, completed when the interpreter exits (weakly: a
#: recorder is never kept alive by this). Guarded by _OPEN_LOCK, with _HOOKED.
_OPEN: weakref.WeakSet[Recorder] = weakref.WeakSet()
_OPEN_LOCK: Final = threading.Lock()
_HOOKED = False


def _open_at_exit(recorder: Recorder) -> None:
    global _HOOKED
    with _OPEN_LOCK:
        _OPEN.add(recorder)
        if not _HOOKED:
            atexit.register(_close_all)
            _HOOKED = True


def _close_all() -> None:
    """At exit: complete every recording still open (its files would be cut short)."""
    with _OPEN_LOCK:
        open_now = list(_OPEN)
    for recorder in open_now:
        try:
            recorder.close(recorder._exit_timeout)
        except Exception:
            logger.debug("completing a recording at exit failed", exc_info=True)
