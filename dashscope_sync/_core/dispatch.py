"""Callbacks: the handler registry, the handler thread, and what happens when one fails.

The registry (`Handlers`) belongs to the public session; the handler thread
reaches it only through a weak reference, between events. So a session the
program dropped can be collected (and warn) even when a handler's closure
refers to it: nothing a thread holds keeps it alive.
"""

from __future__ import annotations

import collections
import enum
import itertools
import logging
import queue
import threading
import weakref
from collections.abc import Callable
from typing import Any, Final, Protocol

from .._conversation.tools import ToolCall
from .._errors import HandlerError
from .._wire.events import ServerEvent, UnknownEvent

__all__ = [
    "TOOL_CALL_KEY",
    "UNKNOWN_KEY",
    "Dispatched",
    "Dispatcher",
    "HandlerHandle",
    "Handlers",
    "Pool",
]

logger = logging.getLogger("dashscope_sync")

#: The registry key of handlers for every `UnknownEvent`.
UNKNOWN_KEY: Final = "\0unknown"
#: The registry key of handlers for every `ToolCall` (not an event: ``"*"``
#: handlers, which take server events, never get one).
TOOL_CALL_KEY: Final = "\0tool_call"

#: What the handler thread hands to handlers: a server event, or a record of
#: the library's own (a finished tool call).
Dispatched = ServerEvent | ToolCall


def _kind(item: Dispatched) -> str:
    """What a handler was handling, for messages: the wire type, or the record's class."""
    return item.type if isinstance(item, ServerEvent) else type(item).__name__


class _Stop(enum.Enum):
    """The end-of-queue marker."""

    STOP = "STOP"


def _name(fn: object) -> str:
    """A handler's name for messages; never raises."""
    try:
        name = getattr(fn, "__qualname__", None)
        return name if isinstance(name, str) else repr(fn)
    except BaseException:  # user code: whatever it raises must not escape
        return f"<{type(fn).__name__} object>"


def _describe(exc: BaseException) -> str:
    """``Type: message`` of an exception whose ``__str__`` may itself raise."""
    try:
        text = str(exc)
    except BaseException:  # user code: whatever it raises must not escape
        text = "<unprintable>"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class HandlerHandle:
    """What `RealtimeSession.on` returns: call `remove` to unsubscribe.

    Thread safety: `remove` may be called from any thread, including from
    inside a handler; an event already being dispatched may still reach it.
    """

    __slots__ = ("_handlers", "_key", "active", "fn")

    def __init__(self, handlers: Handlers, key: str, fn: Callable[[Any], object]) -> None:
        self._handlers = handlers
        self._key = key
        self.fn = fn
        self.active = True

    def remove(self) -> None:
        """Stop calling this handler; idempotent."""
        self._handlers.remove(self)

    @property
    def key(self) -> str:
        return self._key

    def __repr__(self) -> str:
        key = "UnknownEvent" if self._key == UNKNOWN_KEY else self._key
        state = "active" if self.active else "removed"
        return f"<HandlerHandle {key!r} -> {_name(self.fn)} ({state})>"


class Handlers:
    """The handler registry: wire type (or ``"*"``, or `UNKNOWN_KEY`) -> handles.

    Thread safety: add and remove from any thread; `match` reads a snapshot
    without locking (the mapping is replaced, never changed in place).
    """

    def __init__(self) -> None:
        # Serialises add/remove, which replace the mapping (copy-on-write).
        self._lock = threading.Lock()
        self._by_key: dict[str, tuple[HandlerHandle, ...]] = {}

    def add(self, key: str, fn: Callable[[Any], object]) -> HandlerHandle:
        handle = HandlerHandle(self, key, fn)
        with self._lock:
            self._by_key = {**self._by_key, key: (*self._by_key.get(key, ()), handle)}
        return handle

    def remove(self, handle: HandlerHandle) -> None:
        with self._lock:
            handle.active = False
            remaining = tuple(h for h in self._by_key.get(handle.key, ()) if h is not handle)
            by_key = dict(self._by_key)
            if remaining:
                by_key[handle.key] = remaining
            else:
                by_key.pop(handle.key, None)
            self._by_key = by_key

    def match(self, event: Dispatched) -> tuple[HandlerHandle, ...]:
        """The handles for an event: its type's, then UnknownEvent's, then ``"*"``'s
        (for a `ToolCall`: its own handlers only)."""
        by_key = self._by_key
        if isinstance(event, ToolCall):
            return by_key.get(TOOL_CALL_KEY, ())
        matched = by_key.get(event.type, ())
        if type(event) is UnknownEvent:
            matched += by_key.get(UNKNOWN_KEY, ())
        return matched + by_key.get("*", ())


class Pool(Protocol):
    """Threads shared by many sessions' handlers (a reactor's `HandlerPool`)."""

    def submit(self, task: Callable[[], None]) -> None:
        """Run ``task`` on one of the pool's threads; never blocks."""

    @property
    def closed(self) -> bool:
        """Whether the pool was closed (its threads take no new work)."""


#: Events one session's handlers handle before a pool thread turns to the
#: next session with events waiting: no session keeps a thread to itself.
_POOL_BATCH: Final = 64

#: Failures of one handler after which its failures are logged again (as a count).
_RELOG_AT: Final = frozenset({10, 100, 1000, 10_000, 100_000})


class Dispatcher:
    """Runs handlers one at a time, in arrival order, on its own thread.

    Events are queued by the reader (`put`), which never waits here: past
    ``max_backlog`` undelivered events (or ``max_backlog_bytes`` of their
    messages) the oldest are dropped for handlers,
    counted in `dropped` and warned about once. A handler that raises is
    logged (its first failure with a traceback, then counts) and reported
    through ``report``, which keeps one for the caller's thread.

    With a ``pool`` (shared mode) there is no thread of its own: the events
    are handled by the pool's threads, one batch at a time and never two at
    once, so handlers still run one at a time in arrival order.

    Thread safety: `put` from the reader thread; `start`, `stop` and `join`
    from any thread.
    """

    def __init__(
        self,
        handlers: Handlers,
        report: Callable[[Callable[[], HandlerError]], None],
        max_backlog: int,
        skip: Callable[[ServerEvent], bool] | None = None,
        max_backlog_bytes: int | None = None,
        taken: Callable[[ServerEvent], None] | None = None,
        on_drop: Callable[[int], None] | None = None,
        pool: Pool | None = None,
        on_thread: Callable[[threading.Thread | None], None] | None = None,
    ) -> None:
        # Where the handlers run in shared mode (None: a thread of our own).
        self._pool = pool
        # Told which pool thread runs this session's handlers, and None after.
        self._on_thread = on_thread
        # Guards _scheduled: whether a pool task for this session is queued
        # or running (so that one runs at a time). Shared mode only.
        self._schedule_lock = threading.Lock()
        self._scheduled = False
        # Set once STOP was handled (or the session collected): join() waits on it.
        self._done = threading.Event()
        # Weak: see the module docstring.
        self._handlers = weakref.ref(handlers)
        self._report = report
        self._max_backlog = max_backlog
        self._max_bytes = max_backlog_bytes
        # The bytes of the backlog, as counters with one writer each (no
        # lock on the hot path): queued and dropped (reader thread), taken
        # (handler thread). The reader may read `_taken` a little late, which
        # only makes it drop a little early.
        self._queued_bytes = 0
        self._dropped_bytes = 0
        self._taken_bytes = 0
        # Says, before each handler, that an event queued before it became
        # stale must not reach handlers after all (audio of a response
        # interrupted meanwhile, even while an earlier handler ran).
        self._skip = skip
        # Told of each event as the handler thread takes it, before its
        # handlers: what is over for handlers is decided in their order.
        self._on_taken = taken
        # Events waiting for the handler thread with their message sizes and
        # arrival numbers, in arrival order, then STOP; records (`put_record`)
        # have no arrival number. Bounded by put() dropping the oldest;
        # SimpleQueue keeps put() in C.
        self._queue: queue.SimpleQueue[tuple[Dispatched, int, int | None] | _Stop] = (
            queue.SimpleQueue()
        )
        # Records are never dropped: one the reader's trimming takes off the
        # front waits here (appended by the reader, taken by the handler
        # thread; deque ends are thread-safe) with its place in the order,
        # and goes to the handlers before the first later item.
        self._ahead: collections.deque[tuple[tuple[int, int], ToolCall]] = collections.deque()
        # Guards moving a record from the queue's front to _ahead (the reader's
        # trimming): the handler side waits it out before looking at _ahead,
        # or an item it took just after would run before that record.
        self._trim_lock = threading.Lock()
        # Each record's place: (the arrival number of the last event queued
        # before it, a count of records), so that it sorts after that event
        # and before the next. Written by the reader thread only.
        self._last_seq = -1
        # itertools.count: its next() is atomic, records come from any thread.
        self._record_no = itertools.count()
        # The place of each record in the queue (handler thread pops them).
        self._places: dict[int, tuple[int, int]] = {}
        #: Events dropped for handlers (the backlog was full).
        self.dropped = 0
        # Told the arrival number of each event dropped (reader thread).
        self._on_drop = on_drop
        #: The arrival number of the last event the handler thread took
        #: (written by it only; read by the reader thread).
        self.taken_seq = -1
        self._warned_drop = False
        # Per handler (by id): its name and how many times it failed, for
        # bounded logging. Handler thread only.
        self._failures: dict[int, tuple[str, int]] = {}
        # The handler running now and its event type, for close()'s warning
        # about a stuck handler (written by the handler thread only).
        self.running: HandlerHandle | None = None
        self.running_type = ""
        self.thread: threading.Thread | None = None
        self.stopped = False

    def start(self) -> threading.Thread | None:
        """Start the handler thread (None in shared mode: the pool runs handlers)."""
        if self._pool is not None:
            return None
        self.thread = threading.Thread(
            target=self._run,
            name="dashscope_sync-handlers",
            # Daemon: a handler stuck forever must not keep the interpreter
            # alive; close() warns about it instead.
            daemon=True,
        )
        self.thread.start()
        return self.thread

    def put(self, event: ServerEvent, size: int = 0, seq: int = -1) -> None:
        """Queue an event (its message: ``size`` bytes; ``seq``: its arrival number)
        for the handlers; never blocks.

        Reader thread only.
        """
        q = self._queue
        q.put((event, size, seq))
        self._last_seq = seq
        if self._pool is not None:
            self._schedule()
        self._queued_bytes += size
        limit = self._max_bytes
        while q.qsize() > self._max_backlog or (
            limit is not None
            and self._queued_bytes - self._dropped_bytes - self._taken_bytes > limit
            and q.qsize() > 1
        ):
            with self._trim_lock:
                try:
                    oldest = q.get_nowait()
                except queue.Empty:  # the handler thread took it meanwhile
                    return
                if oldest is _Stop.STOP:  # pragma: no cover - STOP is queued after the reader ends
                    q.put(oldest)
                    return
                if oldest[2] is None:
                    # A record (a ToolCall) is never dropped: it goes first.
                    record = oldest[0]
                    assert isinstance(record, ToolCall)
                    self._ahead.append((self._places.pop(id(record)), record))
            self._dropped_bytes += oldest[1]
            if oldest[2] is None:
                continue
            self.dropped += 1
            if self._on_drop is not None:
                self._on_drop(oldest[2])
            if not self._warned_drop:
                self._warned_drop = True
                logger.warning(
                    "event handlers are %d events behind (%d bytes of messages): dropping the "
                    "oldest for handlers (a handler is too slow for the event rate; raise "
                    "max_handler_backlog or max_buffered_bytes to keep more; "
                    "session.dropped_for_handlers counts them)",
                    q.qsize(),
                    self._queued_bytes - self._dropped_bytes - self._taken_bytes,
                )

    def put_record(self, record: ToolCall) -> None:
        """Queue a record of the library's own for its handlers; never blocks, any thread.

        Not counted against the backlog, and never dropped: records come one
        per tool call (each ``on(ToolCall)`` handler gets every call), and the
        reader's drop accounting knows only events.
        """
        self._places[id(record)] = (self._last_seq, next(self._record_no))
        self._queue.put((record, 0, None))
        if self._pool is not None:
            self._schedule()

    def stop(self) -> None:
        """Let the handlers finish what is queued, then end the thread."""
        if not self.stopped:
            self.stopped = True
            self._queue.put(_Stop.STOP)
            if self._pool is not None:
                self._schedule()

    def join(self, timeout: float | None) -> None:
        """Wait up to ``timeout`` seconds for the handlers to finish (after `stop`)."""
        if self._pool is None:
            if self.thread is not None:
                self.thread.join(timeout)
        elif not self._pool.closed:
            self._done.wait(timeout)  # a stuck handler: the caller warns (stuck())
        # A closed pool (its reactor closed) ran what it could by its own
        # deadline: waiting longer here could only wait for nothing.

    def _schedule(self) -> None:
        """Have a pool thread run the queue, unless one is already on it."""
        with self._schedule_lock:
            if self._scheduled or self._done.is_set():
                return
            self._scheduled = True
        assert self._pool is not None
        self._pool.submit(self._drain)

    def _drain(self) -> None:
        """Run handlers for up to a batch of events; on a pool thread, never two at once."""
        q = self._queue
        current = threading.current_thread()
        self.thread = current
        if self._on_thread is not None:
            self._on_thread(current)
        ended = False
        try:
            for _ in range(_POOL_BATCH):
                try:
                    item = q.get_nowait()
                except queue.Empty:
                    if self._ahead and not self._take_ahead():
                        ended = True
                    break
                if not self._take(item):
                    ended = True
                    break
        finally:
            self.thread = None
            if self._on_thread is not None:
                self._on_thread(None)
        if ended:
            self._log_failure_counts()
            self._done.set()
            return
        with self._schedule_lock:
            # Checked under the lock put() schedules under: an event queued
            # after this check finds _scheduled False and schedules itself.
            if q.empty() and not self._ahead:
                self._scheduled = False
                return
        assert self._pool is not None
        self._pool.submit(self._drain)  # the rest after the other sessions' turns

    def _run(self) -> None:
        """Run handlers for each event; runs on the handler thread until STOP."""
        get = self._queue.get
        while self._take(get()):
            # Nothing of the session (handlers, their closures) is held while
            # waiting for the next event: _take's locals are gone.
            pass
        self._log_failure_counts()
        self._done.set()

    def _take(self, item: tuple[Dispatched, int, int | None] | _Stop) -> bool:
        """Run the handlers of one queued item, after the records trimmed off the
        front that came before it; False at STOP or once the session was collected.

        One handler thread (or pool task) at a time.
        """
        ahead = self._ahead
        with self._trim_lock:
            pass  # a record the reader is moving to _ahead is there once this is free
        if item is _Stop.STOP:
            self._take_ahead()
            return False
        event, size, seq = item
        if ahead:
            place = (seq, -1) if seq is not None else self._places.get(id(event), (-1, -1))
            while ahead and ahead[0][0] < place:
                if not self._dispatch(ahead.popleft()[1]):
                    return False
        if seq is None:
            self._places.pop(id(event), None)
        else:
            self.taken_seq = seq
        self._taken_bytes += size
        return self._dispatch(event)

    def _take_ahead(self) -> bool:
        """Run the handlers of every record trimmed off the front; False once the
        session was collected."""
        ahead = self._ahead
        while ahead:
            if not self._dispatch(ahead.popleft()[1]):
                return False
        return True

    def _dispatch(self, event: Dispatched) -> bool:
        """Run the handlers of one event; False once the session was collected."""
        handlers = self._handlers()
        if handlers is None:
            return False
        is_event = isinstance(event, ServerEvent)
        if self._on_taken is not None and isinstance(event, ServerEvent):
            self._on_taken(event)
        skip = self._skip if is_event else None  # a record is never stale audio
        for handle in handlers.match(event):
            if not handle.active or (skip is not None and skip(event)):  # type: ignore[arg-type]
                continue
            self.running = handle
            self.running_type = _kind(event)
            try:
                handle.fn(event)
            except BaseException as exc:
                try:
                    self._failed(handle, event, exc)
                except BaseException:  # pragma: no cover - last resort: never die
                    logger.exception("reporting a handler failure failed")
            finally:
                self.running = None
        return True

    def _failed(self, handle: HandlerHandle, event: Dispatched, exc: BaseException) -> None:
        name = _name(handle.fn)
        count = self._failures.get(id(handle), (name, 0))[1] + 1
        self._failures[id(handle)] = (name, count)
        # Logged before it is reported, so the traceback is in the log by the
        # time the caller sees the error; guarded, as formatting a traceback
        # runs the exception's own code, which may raise anything.
        try:
            if count == 1:
                logger.error(
                    "event handler %s raised while handling %s (later failures of this "
                    "handler are counted, not logged each time)",
                    name,
                    _kind(event),
                    exc_info=exc,
                )
            elif count in _RELOG_AT:
                logger.error(
                    "event handler %s has failed %d times (last on %s: %s)",
                    name,
                    count,
                    _kind(event),
                    _describe(exc),
                )
        except BaseException:
            logger.error("event handler %s raised an exception that cannot be logged", name)

        def make_error() -> HandlerError:
            error = HandlerError(
                f"event handler {name} raised {_describe(exc)} (while handling {_kind(event)})",
                handler=handle.fn,
                event=event if isinstance(event, ServerEvent) else None,
            )
            error.__cause__ = exc
            return error

        self._report(make_error)

    def _log_failure_counts(self) -> None:
        for name, count in self._failures.values():
            if count > 1:
                logger.error("event handler %s failed %d times in this session", name, count)

    def stuck(self) -> str | None:
        """What the handler thread is still running, if it is alive."""
        thread = self.thread
        running = self.running
        if thread is None or not thread.is_alive() or running is None:
            return None
        return f"event handler {_name(running.fn)} (handling {self.running_type})"
