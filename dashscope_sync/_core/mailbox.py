"""The session's shared books under one lock, and the one wait every blocking call uses.

`Mailbox` holds the `SessionState`, the bounded buffer behind
``recv``/``events``/``wait_for``, and the handler failure waiting to be raised
on the caller's thread. `Mailbox.wait` is the only condition loop of the
session: ``recv``, ``wait_for``, ``update_session``, ``finish_session``,
``Response.wait``, ``iter_text`` and ``iter_audio`` all wait through it, with one
deadline each, so a wake-up (an event, a handler's failure, the end of the
session) reaches every waiter in one place.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
from collections.abc import Callable
from typing import Final, TypeVar, cast

from .._deadline import Deadline
from .._errors import DashScopeTimeout, HandlerError, ToolError, TransportError, UsageError
from .._fmt import seconds
from .._wire.events import ResponseAudioDelta, ServerEvent
from .fork import PROCESS, inherited_error
from .state import DROP, Effects, End, SessionState

__all__ = ["Mailbox"]

logger = logging.getLogger("dashscope_sync")

_T = TypeVar("_T")

#: What a wait predicate returns while the wait goes on.
PENDING: Final = None


class Mailbox:
    """See the module docstring.

    Thread safety: every method may be called from any thread; the reader
    thread feeds it, user threads wait on it, the dispatcher reports to it.
    """

    def __init__(self, max_buffered_events: int, max_buffered_bytes: int | None = None) -> None:
        # Guards everything below: the state machine, the buffer, the counters
        # and the handler failure. Never held while sending or running user code.
        self.lock = threading.Lock()
        # The one condition of the session: notified whenever anything a
        # waiter may be waiting for changes (an event, an answer, a failure,
        # the end).
        self._changed = threading.Condition(self.lock)
        # How many threads wait on _changed now: the reader skips notifying
        # when nobody waits (most events of a callbacks-only program).
        self._waiting = 0
        self.state = SessionState()
        self.buffer_max = max_buffered_events
        self.buffer: collections.deque[ServerEvent] = collections.deque()
        # The wire size of each buffered event, in step with `buffer`, and
        # their sum, against max_buffered_bytes (None: no byte bound).
        self._sizes: collections.deque[int] = collections.deque()
        self.buffered_bytes = 0
        self.bytes_max = max_buffered_bytes
        # The arrival number of each buffered event, in step with `buffer`.
        self._seqs: collections.deque[int] = collections.deque()
        #: Events delivered (not dropped as interrupted audio), in all; each
        #: one's arrival number is the count before it. Reader thread only.
        self.received = 0
        #: Events the pull buffer dropped when full.
        self.dropped_events = 0
        # Which events were lost by both the pull buffer and the handler
        # backlog, so `SessionCore.dropped_events` counts each once. Reader
        # thread only (both drop there): the arrival numbers each dropped
        # that the other may still drop, increasing.
        self._only_buffer: collections.deque[int] = collections.deque()
        self._only_handlers: collections.deque[int] = collections.deque()
        #: Events dropped by both.
        self.dropped_both = 0
        #: The arrival number of the last event the handler thread took (set
        #: by the core once a handler thread exists; read without a lock).
        self.handlers_took: Callable[[], int] | None = None
        self._warned_drop = False
        self._pulled = False  # someone has read the buffer: its overflow is their problem
        # The handler failure being reported, and how many more came after it
        # while it was owed. Every call blocked when it came raises it (each
        # a copy: see `_failure_gen`), and so does the next call from a
        # thread that has not raised it yet (`_next_owes`), which clears it.
        # A failed tool's `ToolError` (on_tool_error="raise") takes the same path.
        self._handler_error: HandlerError | ToolError | None = None
        self._more_failures = 0
        # Bumped when a failure is kept: a wait that began before the bump
        # was blocked when it came.
        self._failure_gen = 0
        # The next call still has to raise `_handler_error`.
        self._next_owes = False
        # Threads that raised it as blocked calls (not raised there twice),
        # and how many blocked calls have yet to raise it.
        self._raised_on: set[int] = set()
        self._blocked_owed = 0
        # The thread that must never wait (the handler thread), set by the dispatcher.
        self.no_wait_thread: threading.Thread | None = None
        # Which process made it: in a forked child nothing feeds it, and its
        # lock may be held forever by a thread of the parent.
        self._forks = PROCESS.forks
        self._pid = os.getpid()

    # Fed by the reader thread --------------------------------------------------

    def deliver(self, event: ServerEvent, at: float, size: int = 0) -> Effects | None:
        """Book-keep and buffer one event; returns what `SessionState.receive` decided.

        That is None (nothing to do), `DROP` (the event must go nowhere: a
        late audio frame of an interrupted response; it was not buffered) or
        the `Effects` to carry out. ``size`` is the message's size on the
        wire, counted against ``max_buffered_bytes``.
        """
        warn = None
        with self.lock:
            effects = self.state.receive(event, at)
            if effects is DROP:
                return effects
            self.received += 1
            if effects is not None and effects.interrupted is not None:
                self._purge_locked()  # a barge-in
            if self.buffer_max:
                buffer = self.buffer
                buffer.append(event)
                self._sizes.append(size)
                self._seqs.append(self.received - 1)
                self.buffered_bytes += size
                if len(buffer) > self.buffer_max or (
                    self.bytes_max is not None and self.buffered_bytes > self.bytes_max
                ):
                    warn = self._drop_oldest_locked()
            if self._waiting:
                self._changed.notify_all()
        if warn is not None:
            self._warn_drop(*warn)  # outside the lock: a log handler may be slow
        return effects

    def interrupt(self, cancel: bool = True) -> tuple[str | None, bool, int]:
        """Interrupt what is playing (see `SessionState.interrupt`).

        The interrupted audio frames still waiting in the pull buffer are
        removed too: what was not read yet is stale now. Returns the response
        id, whether to send a cancel, and how many buffered frames were removed.
        """
        self.check_inherited("interrupt()")
        with self.lock:
            response_id, send = self.state.interrupt(cancel)
            removed = self._purge_locked()
            self._changed.notify_all()
        return response_id, send, removed

    def _drop_oldest_locked(self) -> tuple[int, int] | None:
        """Drop the oldest events until both bounds hold again (the newest always stays).

        Returns the buffer's events and bytes when this is the first drop, for
        the caller to warn about once the lock is released; else None.
        """
        assert self.lock.locked()
        buffer, sizes, seqs, bytes_max = self.buffer, self._sizes, self._seqs, self.bytes_max
        dropped = 0
        while len(buffer) > 1 and (
            len(buffer) > self.buffer_max
            or (bytes_max is not None and self.buffered_bytes > bytes_max)
        ):
            buffer.popleft()
            self.buffered_bytes -= sizes.popleft()
            self._buffer_dropped(seqs.popleft())
            dropped += 1
        self.dropped_events += dropped
        if dropped and not self._warned_drop:
            self._warned_drop = True
            return len(buffer), self.buffered_bytes
        return None

    def _buffer_dropped(self, seq: int) -> None:
        """The pull buffer dropped event ``seq``: note whether the handlers lost it too."""
        if _matched(self._only_handlers, seq):
            self.dropped_both += 1
            return
        took = self.handlers_took
        if took is None:
            return  # no handler thread: nobody else can drop it
        handled = took()
        mine = self._only_buffer
        while mine and mine[0] <= handled:
            mine.popleft()  # taken by the handler thread: never dropped there
        if seq > handled:
            mine.append(seq)

    def handlers_dropped(self, seq: int) -> None:
        """The handler backlog dropped event ``seq`` (reader thread): note whether the
        pull buffer lost it too."""
        if _matched(self._only_buffer, seq):
            self.dropped_both += 1
            return
        if not self.buffer_max:
            return  # no pull buffer: it drops nothing
        try:
            oldest = self._seqs[0]  # a reader may pop it meanwhile: then it is gone
        except IndexError:
            oldest = self.received
        mine = self._only_handlers
        while mine and mine[0] < oldest:
            mine.popleft()  # read from the pull buffer, or removed: never dropped there
        if seq >= oldest:
            mine.append(seq)

    def _pop_locked(self) -> ServerEvent:
        """The oldest buffered event, taken out (the buffer is not empty)."""
        assert self.lock.locked()
        self.buffered_bytes -= self._sizes.popleft()
        self._seqs.popleft()
        return self.buffer.popleft()

    def _purge_locked(self) -> int:
        """Remove interrupted responses' audio from the pull buffer; how many frames."""
        assert self.lock.locked()
        buffer = self.buffer
        if not buffer:
            return 0
        stale = self.state.interrupted
        kept = [
            (e, size, seq)
            for e, size, seq in zip(buffer, self._sizes, self._seqs, strict=True)
            if not (type(e) is ResponseAudioDelta and stale(e.response_id))
        ]
        removed = len(buffer) - len(kept)
        if removed:
            buffer.clear()  # in place: waiters hold this deque
            buffer.extend(e for e, _, _ in kept)
            self._sizes.clear()
            self._sizes.extend(size for _, size, _ in kept)
            self._seqs.clear()
            self._seqs.extend(seq for _, _, seq in kept)
            self.buffered_bytes = sum(self._sizes)
            self.state.dropped_audio += removed
        return removed

    def _warn_drop(self, events: int, size: int) -> None:
        if self._pulled:
            logger.warning(
                "event buffer full (%d events, %d bytes): dropping the oldest; read events "
                "faster, raise max_buffered_events (or max_buffered_bytes), or set it to 0 "
                "if you only use handlers (session.dropped_from_buffer counts them)",
                events,
                size,
            )
        else:
            # Nobody has pulled: a program that uses only handlers or response
            # handles is not doing anything wrong, and memory stays bounded.
            logger.debug(
                "event buffer full (%d events, %d bytes) and never read: keeping the newest only",
                events,
                size,
            )

    def ended(self, code: int, reason: str, error: TransportError | None) -> End:
        """Record the end of the connection and wake every waiter."""
        with self.lock:
            end = self.state.ended(code, reason, error)
            self._changed.notify_all()
        return end

    def closing(self) -> bool:
        """close() started; True for the first call (see `SessionState.closing`)."""
        with self.lock:
            first = self.state.closing()
            self._changed.notify_all()
        return first

    # Fed by the dispatcher -------------------------------------------------------

    def _replaceable(self) -> bool:
        """Is the failure held (if any) reported already, so a new one is kept instead?"""
        return self._handler_error is None or not self._next_owes or bool(self._raised_on)

    def handler_failed(self, make_error: Callable[[], HandlerError | ToolError]) -> None:
        """Keep a handler failure for the calls blocked now and the next one; while
        one is owed to a call that has not seen it, count the ones after it."""
        # Built outside the lock (it runs the exception's __str__), and only
        # when it may be kept: the unlocked peek is decided under the lock.
        error = make_error() if self._replaceable() else None
        with self.lock:
            if error is not None and self._replaceable():
                self._handler_error = error
                self._more_failures = 0
                self._failure_gen += 1
                self._next_owes = True
                self._raised_on = set()
                self._blocked_owed = self._waiting
            else:
                self._more_failures += 1
            self._changed.notify_all()

    def raise_handler_error(self) -> None:
        """Raise the handler failure owed to the next call, if any, on this (non-handler) thread."""
        if self._next_owes and self._forks == PROCESS.forks:  # unlocked peek
            with self.lock:
                self._raise_handler_error_locked()

    def _raise_handler_error_locked(self) -> None:
        """Raise the failure owed to the next call (then it is cleared), unless this
        thread already raised it as a blocked call."""
        assert self.lock.locked()
        if (
            not self._next_owes
            or threading.current_thread() is self.no_wait_thread
            or threading.get_ident() in self._raised_on
        ):
            return
        error = self._copy_failure_locked()
        self._next_owes = False
        self._raised_on = set()
        self._forget_failure_locked()
        raise error from error.__cause__

    def _raise_blocked_locked(self) -> None:
        """Raise, in a call that was blocked when it came, the failure kept since."""
        assert self.lock.locked()
        error = self._copy_failure_locked()
        if self._next_owes:
            self._raised_on.add(threading.get_ident())
        self._blocked_owed = max(0, self._blocked_owed - 1)
        self._forget_failure_locked()
        raise error from error.__cause__

    def _forget_failure_locked(self) -> None:
        """Drop the failure (and what its traceback holds) once nobody is owed it."""
        if not self._next_owes and self._blocked_owed == 0:
            self._handler_error = None
            self._more_failures = 0

    def _copy_failure_locked(self) -> HandlerError | ToolError:
        """A fresh `HandlerError` (or `ToolError`) for one caller (each thread raises its own)."""
        error = self._handler_error
        assert error is not None
        more = self._more_failures
        message = error.message
        if more:
            message = f"{message} (and {more} more handler failure(s) after it)"
        copy: HandlerError | ToolError
        if isinstance(error, ToolError):
            copy = ToolError(message, call=error.call)
        else:
            copy = HandlerError(message, handler=error.handler, event=error.event)
        copy.more_failures = more
        copy.__cause__ = error.__cause__
        return copy

    # Waiting -----------------------------------------------------------------------

    def check_inherited(self, what: str) -> None:
        """Raise `UsageError` in a forked child: the session is its parent's."""
        if self._forks != PROCESS.forks:
            raise inherited_error(what, self._pid)

    def check_can_block(self, what: str) -> None:
        self.check_inherited(what)
        if threading.current_thread() is self.no_wait_thread:
            raise UsageError(
                f"{what} blocks, and was called from inside an event handler: handlers run "
                "one at a time on the session's handler thread, so waiting there would stall "
                "every other handler (or deadlock). Send without waiting from handlers, and "
                "wait from your own thread."
            )

    def wait(self, ready: Callable[[], _T | None], deadline: Deadline, what: str) -> _T:
        """Wait until ``ready()`` (called under the lock) returns a value, and return it.

        ``ready`` may raise to end the wait (an error answer, the session's
        end). A handler failure is raised first; running out of time raises
        `DashScopeTimeout`.
        """
        self.check_can_block(what)
        with self.lock:
            self._raise_handler_error_locked()
            failures = self._failure_gen
            while True:
                if self._failure_gen != failures:
                    self._raise_blocked_locked()  # a handler failed while this call waited
                value = ready()
                if value is not None:
                    return value
                remaining = deadline.remaining()
                if remaining is not None and remaining <= 0:
                    raise DashScopeTimeout(
                        f"{what} timed out after {seconds(deadline.timeout)}",
                        timeout=deadline.timeout,
                    )
                self._waiting += 1
                try:
                    self._changed.wait(remaining)
                finally:
                    self._waiting -= 1

    def wait_quietly(self, settled: Callable[[], bool], deadline: Deadline) -> bool:
        """Wait until ``settled()`` (called under the lock) holds; False when out of time.

        Unlike `wait`, a handler failure is left for the program's next call:
        the library's own threads (the tool worker) wait here too.
        """
        with self.lock:
            while not settled():
                remaining = deadline.remaining()
                if remaining is not None and remaining <= 0:
                    return False
                self._waiting += 1
                try:
                    self._changed.wait(remaining)
                finally:
                    self._waiting -= 1
            return True

    def peek(self, read: Callable[[], _T]) -> _T:
        """Run ``read`` under the lock (a consistent snapshot), without waiting."""
        self.check_inherited("the session")
        with self.lock:
            return read()

    def notify(self) -> None:
        with self.lock:
            self._changed.notify_all()

    # The pull buffer ---------------------------------------------------------------

    def next_event(self, deadline: Deadline, what: str) -> ServerEvent | None:
        """Pop the next buffered event; None once the session ended cleanly and all was read."""
        self.check_inherited(what)
        self._pulled = True
        buffer = self.buffer
        if buffer and not self._next_owes:
            # The common case in a burst: an event is there and nothing is to
            # be raised first, so skip the wait loop (decided under the lock).
            with self.lock:
                if buffer and not self._next_owes:
                    return self._pop_locked()
        state = self.state

        def ready() -> ServerEvent | _EndOfStream | None:
            if buffer:
                return self._pop_locked()
            end = state.end
            if end is None:
                return None
            if end.error is not None:
                raise state.closed_error(what)
            return _END

        event = cast("ServerEvent | _EndOfStream", self.wait(ready, deadline, what))
        return None if isinstance(event, _EndOfStream) else event


def _matched(dropped: collections.deque[int], seq: int) -> bool:
    """Take ``seq`` out of another consumer's increasing drops, if it is there.

    The ones before it go too: drops come oldest first, so no later drop of
    this consumer can match them.
    """
    while dropped and dropped[0] < seq:
        dropped.popleft()
    if dropped and dropped[0] == seq:
        dropped.popleft()
        return True
    return False


class _EndOfStream:
    """The clean end of the pull buffer (a value, as None means "keep waiting")."""


_END: Final = _EndOfStream()
