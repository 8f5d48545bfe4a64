"""What the command line's commands share: the --timeout budget and the terminal.

A command is several steps (connect, configure, upload, wait for the reply);
``--timeout`` bounds them together, as a person reading the option expects,
not each step on its own. `Screen` keeps what the commands write readable on
a terminal: an in-place status line never shares a line with other output.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol, TextIO, cast

from .._deadline import Deadline
from .._errors import DashScopeError, DashScopeTimeout
from .._fmt import seconds

if TYPE_CHECKING:
    from .._sessions.conversation import RealtimeSession

__all__ = ["Budget", "Finisher", "Screen", "screen_of"]

logger = logging.getLogger("dashscope_sync")


class _Closable(Protocol):
    """A session of any family: what `Budget.watch` needs of it."""

    def close(self) -> None: ...


class Budget:
    """One command's ``--timeout``: every step takes what is left of it.

    `watch` closes the session when the time is up, so whatever the command
    is blocked in (a send, a wait for the reply, a paced upload) ends at
    once; `bound` turns the failure that causes into one timeout error that
    names the option and the step.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._deadline = Deadline(timeout)
        #: What the command is doing, for the message: "connecting"...
        self.stage = "starting"
        # Set by the timer thread once it has closed the session at the deadline.
        self._expired = threading.Event()
        self._timer: threading.Timer | None = None

    def left(self) -> float:
        """Seconds left; raises the timeout error when none are."""
        remaining = self._deadline.remaining()
        assert remaining is not None  # a budget always has a limit
        if remaining <= 0:
            raise self.error()
        return remaining

    def error(self) -> DashScopeTimeout:
        """The error of a command that ran out of time, naming the option and the step."""
        return DashScopeTimeout(
            f"timed out after {seconds(self.timeout)} (--timeout) {self.stage}",
            timeout=self.timeout,
        )

    def watch(self, session: _Closable) -> None:
        """Close ``session`` when the time is up (from a timer thread), ending every wait."""

        def expire() -> None:
            self._expired.set()
            try:
                session.close()
            except Exception:  # the main thread reports the timeout; nothing to add here
                logger.debug("closing the session at --timeout failed", exc_info=True)

        self._timer = threading.Timer(self.left(), expire)
        self._timer.name = "dashscope-sync-cli-timeout"
        self._timer.daemon = True  # never keeps the process alive after Ctrl-C
        self._timer.start()

    @contextlib.contextmanager
    def bound(self) -> Iterator[None]:
        """Run a command's steps; a failure once the time is up is the timeout error."""
        try:
            yield
        except DashScopeError as exc:
            if self._expired.is_set() or self._deadline.remaining() == 0:
                raise self.error() from exc
            raise
        finally:
            if self._timer is not None:
                self._timer.cancel()


class Finisher(threading.Thread):
    """``session.finish_session()`` on a thread, its failure kept for the main thread."""

    def __init__(self, session: RealtimeSession) -> None:
        super().__init__(name="dashscope-sync-cli-finish", daemon=True)
        self._session = session
        self._error: BaseException | None = None  # written before run() ends, read after join()

    def run(self) -> None:
        try:
            self._session.finish_session(timeout=None)
        except BaseException as exc:  # raised again on the main thread by result()
            self._error = exc

    def result(self) -> None:
        """Wait for the finish; raise what it raised."""
        self.join()
        if self._error is not None:
            raise self._error


def _cells(char: str) -> int:
    """Terminal columns ``char`` takes: 2 for wide (CJK) characters, 0 for combining marks."""
    import unicodedata

    if unicodedata.combining(char):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def _tail(text: str, width: int) -> str:
    """The end of ``text`` that fits ``width`` columns, after an ellipsis if cut."""
    if sum(_cells(c) for c in text) <= width:
        return text
    kept: list[str] = []
    used = 1  # the ellipsis
    for char in reversed(text):
        used += _cells(char)
        if used > width:
            break
        kept.append(char)
    return "…" + "".join(reversed(kept))


class Screen:
    """Where a command writes: standard output and error, and one status line updated in place.

    On a terminal the status line (upload progress, a live caption) is
    redrawn on standard error with a carriage return. Anything else written
    first finishes it (clears it), and a line left unfinished on one stream
    (a prompt, streamed text) is ended before the other stream writes on the
    same terminal: the two never share a line, so nothing is erased or
    glued. A status line is cut to the terminal's width, counting wide
    characters as two columns, so it never wraps and leaves a stale
    half-line behind.

    Thread safety: the streams and `status` can be used from any thread
    (handlers print from the handler thread while the main thread uploads).
    """

    def __init__(self, out: TextIO, err: TextIO) -> None:
        self._raw_out = out
        self._raw_err = err
        self._err_tty = _isatty(err)
        # Both streams on one terminal: an unfinished line on one is ended
        # before the other writes (never for a pipe, which has no screen).
        self._shared = self._err_tty and _isatty(out)
        #: Whether a status line is shown at all (standard error is a terminal).
        self.live = self._err_tty
        # Guards the writes and the two fields below, from any thread.
        self._lock = threading.Lock()
        self._status = False  # a status line is on the screen
        self._open: TextIO | None = None  # the raw stream whose last line is unfinished
        self.out: TextIO = cast("TextIO", _Stream(self, out))
        self.err: TextIO = cast("TextIO", _Stream(self, err))

    @property
    def shared(self) -> bool:
        """Standard output and error are the same terminal."""
        return self._shared

    def status(self, text: str, dim: str = "", *, prefix: str = "") -> None:
        """Show ``text`` (then ``dim`` in faint type) as the status line; nothing off a terminal.

        What does not fit is cut from the start of ``text``, after the
        ``prefix`` (kept whole: the upload's progress before a caption).
        """
        if not self.live:
            return
        width = max(10, _columns(self._raw_err) - 1)
        prefix = _tail(prefix, width)
        width = max(1, width - sum(_cells(c) for c in prefix))
        whole = _tail(text + dim, width)
        # The faint part is the end of what is kept: as much of ``dim`` as fits.
        kept = len(whole) - (1 if whole != text + dim else 0)
        faint_len = min(len(dim), kept)
        plain, faint = whole[: len(whole) - faint_len], whole[len(whole) - faint_len :]
        with self._lock:
            self._end_open(self._raw_err)
            styled = prefix + plain + (f"\x1b[2m{faint}\x1b[0m" if faint else "")
            # Marked first: a Ctrl-C landing in the write still leaves it to clear.
            self._status = True
            self._raw_err.write(f"\r\x1b[K{styled}")
            self._raw_err.flush()

    def end_status(self) -> None:
        """Keep the status line as it stands (end it with a newline)."""
        with self._lock:
            if self._status:
                self._raw_err.write("\n")
                self._raw_err.flush()
                self._status = False

    def new_line(self) -> None:
        """Put what is written next on a line of its own: end a half-written line, if any."""
        with self._lock:
            self._finish_status()
            if self._open is not None:
                self._open.write("\n")
                self._open.flush()
                self._open = None

    def finish(self, *, keep: bool = False) -> None:
        """End whatever is unfinished, before a last message: the status line, a partial line.

        With ``keep`` the status line stays as it stands (ended with a
        newline): after a failure it shows where the command was.
        """
        with self._lock:
            if keep and self._status:
                self._status = False
                self._raw_err.write("\n")
                self._raw_err.flush()
            self._finish_status()
            if self._open is not None:
                self._open.write("\n")
                self._open.flush()
                self._open = None

    def _finish_status(self) -> None:
        if self._status:
            self._raw_err.write("\r\x1b[K")
            self._raw_err.flush()
            self._status = False

    def _end_open(self, writer: TextIO) -> None:
        """End another stream's unfinished line if it shares the terminal with ``writer``."""
        if self._open is not None and self._open is not writer and self._shared:
            self._open.write("\n")
            self._open.flush()
            self._open = None

    def _write(self, stream: TextIO, text: str) -> int:
        if not text:
            return 0
        with self._lock:
            if stream is self._raw_err or self._shared:
                self._finish_status()
            self._end_open(stream)
            # Marked first, as in `status`: at worst an extra newline after a Ctrl-C.
            self._open = stream
            written = stream.write(text)
            if text.endswith("\n"):
                self._open = None
            return written


class _Stream(io.TextIOBase):
    """One of a `Screen`'s streams: writes go through the screen's bookkeeping."""

    def __init__(self, screen: Screen, raw: TextIO) -> None:
        super().__init__()
        self.screen = screen
        self._raw = raw

    def write(self, text: str) -> int:
        return self.screen._write(self._raw, text)

    def flush(self) -> None:
        self._raw.flush()

    def isatty(self) -> bool:
        return _isatty(self._raw)

    def fileno(self) -> int:
        return self._raw.fileno()


def screen_of(stream: TextIO) -> Screen | None:
    """The `Screen` a stream belongs to, if it is one of a screen's."""
    return stream.screen if isinstance(stream, _Stream) else None


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or minimal stream
        return False


def _columns(stream: TextIO) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns or 80
    except (AttributeError, ValueError, OSError):
        return 80
