"""The handler pool of a `Reactor`: a few threads shared by many sessions' handlers.

Tasks the reactor's thread submits while it handles one wake-up's sockets are
handed over together, as one chunk (`HandlerPool.flush`), so one pool thread
wakes for the lot; the thread that became idle last is woken first. A task
that runs over `STALL` seconds has the rest of its chunk taken back and handed
to another thread, and when work waits while every thread has run one task
for that long, a thread is added (up to the pool's maximum), so a stuck
handler holds only itself; extra threads retire after `RETIRE` seconds idle.
Each session's `Dispatcher` has at most one task in the pool at a time, which
keeps its handlers in order.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Final

from .._deadline import Deadline
from .._fmt import seconds

__all__ = ["RETIRE", "STALL", "HandlerPool"]

logger = logging.getLogger("dashscope_sync")

#: How long queued handler work may wait with every pool thread busy before
#: the pool adds a thread (a handler is stuck or slow).
STALL: Final = 0.2
#: How long an extra pool thread stays idle before it ends.
RETIRE: Final = 5.0
#: What a pool thread is handed: a chunk of tasks, or None (end).
_Chunk = collections.deque[Callable[[], None]]


class _Worker:
    """One pool thread: its hand-off slot, its chunk, and when its task started.

    The chunk is shared with the reactor's stall check: both take tasks with
    ``popleft`` (atomic), so each task runs exactly once, on whichever side
    took it.
    """

    __slots__ = ("chunk", "handed", "since", "task", "thread", "wake")

    def __init__(self) -> None:
        self.chunk: _Chunk = collections.deque()
        # Released (as a semaphore) when a chunk or the end is handed over.
        self.wake = threading.Lock()
        self.wake.acquire()
        # What was handed over (set under the pool's lock before wake).
        self.handed: _Chunk | None = None
        # When the task running now started (monotonic); None between tasks.
        self.since: float | None = None
        # The task running now (or last run), for close()'s warning about a stuck one.
        self.task: Callable[[], None] | None = None
        self.thread: threading.Thread | None = None


def _describe(task: Callable[[], None] | None) -> str:
    """What a pool task runs, for a warning: its owner's ``stuck()`` if it has one
    (a `Dispatcher` names the handler and the event it handles), else the task."""
    stuck = getattr(getattr(task, "__self__", None), "stuck", None)
    described = stuck() if callable(stuck) else None
    if isinstance(described, str):
        return described
    return "a handler" if task is None else f"the task {getattr(task, '__qualname__', task)}"


class HandlerPool:
    """The threads shared by a reactor's sessions' handlers; see the module docstring.

    Tasks the reactor's thread submits while it handles one wake-up's
    sockets are handed over together, as one chunk, when it is done with
    them (`flush`): one pool thread wakes for the lot instead of one per
    session, and does not fight the reader for the GIL in the middle of its
    batch. The thread that became idle last is woken first (its caches are
    warm, and the others sleep on). A task that runs over `STALL` has the
    rest of its chunk taken back and handed to another thread (`check`), so
    a stuck handler holds only itself.

    Thread safety: `submit` from any thread; `flush` and `check` from the
    reactor's thread; `start` once, under the reactor's lock; `close` once,
    from the thread closing the reactor.
    """

    def __init__(self, size: int, max_size: int) -> None:
        self._size = size
        self._max = max_size
        # Guards _idle, _backlog, _closed and replacing _workers (read
        # without it: the list is replaced whole, never changed in place).
        self._lock = threading.Lock()
        # Idle threads, the last one to become idle at the end (woken first).
        self._idle: list[_Worker] = []
        # Chunks no thread was free for, in order. Unbounded: each session
        # has at most one task pending at a time.
        self._backlog: collections.deque[_Chunk] = collections.deque()
        self._closed = False
        # The reactor's thread id, whose submissions wait for flush(), and
        # those submissions (that thread only).
        self.reader_ident: int | None = None
        self._deferred: list[Callable[[], None]] = []
        self._workers: list[_Worker] = []
        self._names = itertools.count(1)
        # When check() last looked for stuck tasks (reactor thread only).
        self._checked = 0.0

    def start(self) -> None:
        """Start the ``size`` threads (with the reactor's reader: see `Reactor._start`).

        Raises:
            RuntimeError: A thread could not be started (the ones started are
                left for `close` to end).
        """
        for _ in range(self._size):
            self._spawn()

    @property
    def closed(self) -> bool:
        """Whether `close` was called: work submitted later may never run."""
        return self._closed

    @property
    def threads(self) -> int:
        """How many pool threads are alive now."""
        return len(self._workers)

    def runs_on(self, thread: threading.Thread) -> bool:
        """Whether ``thread`` is one of the pool's."""
        return any(worker.thread is thread for worker in self._workers)

    def _spawn(self) -> None:
        worker = _Worker()
        worker.thread = threading.Thread(
            target=self._work,
            args=(worker,),
            name=f"dashscope_sync-handlers-{next(self._names)}",
            # Daemon: a handler stuck forever must not keep the interpreter
            # alive; close() warns about it instead.
            daemon=True,
        )
        self._workers = [*self._workers, worker]
        worker.thread.start()

    def _hand(self, chunk: _Chunk) -> None:
        """Give ``chunk`` to the last idle thread, or queue it for the first free one."""
        with self._lock:
            if not self._idle:
                self._backlog.append(chunk)
                return
            worker = self._idle.pop()
            worker.handed = chunk
        worker.wake.release()

    def submit(self, task: Callable[[], None]) -> None:
        if threading.get_ident() == self.reader_ident:
            self._deferred.append(task)
        else:
            self._hand(collections.deque((task,)))

    def flush(self) -> None:
        """Hand over what the reactor's thread submitted since the last flush, as one chunk."""
        deferred = self._deferred
        if deferred:
            self._deferred = []
            self._hand(collections.deque(deferred))

    def idle_hint(self) -> bool:
        """Whether no work waits, runs or is about to be handed over (unlocked: a hint
        for the select timeout)."""
        if self._deferred or self._backlog:
            return False
        return all(worker.since is None for worker in self._workers)

    def check(self, now: float) -> None:
        """Hand the rest of a chunk stuck behind a slow task to another thread; add a
        thread when work waits while every thread has run one task over `STALL`."""
        if now - self._checked < STALL / 4:
            return
        self._checked = now
        for worker in self._workers:
            since = worker.since
            if since is None or now - since < STALL or not worker.chunk:
                continue
            taken: _Chunk = collections.deque()
            with contextlib.suppress(IndexError):
                while True:
                    taken.append(worker.chunk.popleft())
            if taken:
                self._hand(taken)
        if not self._backlog:
            return
        with self._lock:
            workers = self._workers
            if self._closed or self._idle or len(workers) >= self._max:
                return
            for worker in workers:
                since = worker.since
                if since is None or now - since < STALL:
                    return  # a thread is between tasks: it takes the backlog next
            logger.warning(
                "event handlers have kept all %d handler threads busy for over %s: adding "
                "one (a handler is stuck or slow)",
                len(workers),
                seconds(STALL),
            )
            self._spawn()

    def _next(self, me: _Worker) -> _Chunk | None:
        """The next chunk for ``me``: the backlog's first, else wait to be handed one."""
        while True:
            with self._lock:
                if self._backlog:
                    return self._backlog.popleft()
                if self._closed:
                    return None
                self._idle.append(me)
            extra = len(self._workers) > self._size
            if not (me.wake.acquire(timeout=RETIRE) if extra else me.wake.acquire()):
                with self._lock:
                    if me in self._idle and len(self._workers) > self._size:
                        # Idle for RETIRE while more threads than asked for: retire.
                        self._idle.remove(me)
                        self._workers = [w for w in self._workers if w is not me]
                        return None
                # Handed something just as the wait ended: it is in the slot.
                me.wake.acquire()
            if me.handed is not None:
                return me.handed
            # Woken by close(), which may just have filled the backlog with work
            # queued behind a stuck task: take it before ending.

    def _work(self, me: _Worker) -> None:
        clock = time.monotonic
        while True:
            chunk = self._next(me)
            me.handed = None
            if chunk is None:
                return
            me.chunk = chunk
            task: Callable[[], None] | None = None
            while True:
                try:
                    task = chunk.popleft()
                except IndexError:
                    break
                me.task = task
                me.since = clock()
                try:
                    task()
                except BaseException:  # pragma: no cover - Dispatcher catches handler failures
                    logger.exception("unexpected internal error in a handler thread")
                me.since = None
            # Hold nothing of a session while waiting.
            task = me.task = None
            me.chunk = chunk = collections.deque()

    def close(self, deadline: Deadline) -> None:
        """Let handed and queued work finish, end the threads; join them by
        ``deadline`` (one spanning the caller's whole close). A thread still running a handler
        then is left behind (a daemon, ending when its handler returns), with a
        warning naming the handler; see `Reactor.close`."""
        with self._lock:
            self._closed = True
            workers = list(self._workers)
            # Tasks queued behind a running one would wait for it: the free
            # threads take them (the reactor's thread no longer checks).
            for worker in workers:
                taken: _Chunk = collections.deque()
                with contextlib.suppress(IndexError):
                    while True:
                        taken.append(worker.chunk.popleft())
                if taken:
                    self._backlog.append(taken)
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.handed = None
            worker.wake.release()
        for worker in workers:
            if worker.thread is not None:
                worker.thread.join(deadline.remaining())
        for worker in workers:
            thread = worker.thread
            if thread is not None and thread.is_alive():
                logger.warning(
                    "the reactor closed with %s still running on %s after %s; leaving that "
                    "thread behind (a daemon: it ends when the handler returns)",
                    _describe(worker.task),
                    thread.name,
                    seconds(deadline.timeout),
                )
