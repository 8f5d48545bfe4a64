"""Many sessions, one reader: `Reactor` reads every socket of its sessions on one thread.

Without a reactor each session has a reader thread and a handler thread, so
each event costs two thread wake-ups. A reactor's thread waits on all its
sessions' sockets at once (`selectors`), and one wake-up serves every socket
that is ready: it reads what each holds (never blocking: the sockets are
non-blocking), parses the frames with the same `framing` parser, and hands
each frame to its `Connection` exactly as that connection's own reader
would (decode, ``on_event``, pongs, the close handshake, ``on_end``).
Keepalive deadlines for all sessions come from one timer heap on the same
thread. Sends stay on the caller's thread, except what a connection must
send from the reader (the state machine's cancels and item replacements,
pongs, pings): that goes through the connection's outbox (see `outbox`),
which this thread writes as each socket takes it, watching a socket for room
(``EVENT_WRITE``) only while bytes wait for it.

Handlers run on a `HandlerPool`: a few threads shared by all the sessions,
each session's handlers one at a time and in order (its `Dispatcher` never
has two pool tasks at once), never on the reader. A handler that does not
return holds one pool thread: when work waits while every pool thread has
been running one task for over `pool.STALL` seconds, the pool adds a thread (up
to ``max_handler_threads``), so stuck handlers delay other sessions by about
that much, and extra threads retire once idle.

Isolation: everything the reactor's thread does for one connection is
guarded (`Connection.readable` turns any failure into that session's end);
it never waits for a peer or a send lock (the outbox); an outbox that cannot
move for ``send_timeout`` fails its own connection; a hostile frame fails
one connection.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import os
import selectors
import socket
import threading
import time
from typing import TYPE_CHECKING, Final

from .._deadline import Deadline
from .._errors import ConfigError, TransportError, UsageError
from .fork import PROCESS
from .pool import STALL, HandlerPool

if TYPE_CHECKING:
    from .connection import Connection

__all__ = ["Reactor"]

logger = logging.getLogger("dashscope_sync")

#: How long `Reactor.close` waits for the reader thread to end (it ends
#: every connection still open first, without waiting for peers).
_JOIN: Final = 5.0


def _count(value: object, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an int of at least {minimum}, got {value!r}")
    return value


class Reactor:
    """One reader thread for many sessions, and a small pool for their handlers.

    Pass it to clients (``Client(..., reactor=reactor)``): every session they
    open is then read by this reactor's thread, and their handlers run on its
    pool. Use it as a context manager, or call `close` (which ends the
    sessions still open on it) after the sessions are closed.

    Args:
        handler_threads: Pool threads for handlers (default 4); each
            session's handlers still run one at a time, in order.
        max_handler_threads: The most pool threads when handlers are stuck
            or slow (default 64): a thread is added when handler work waits
            while every pool thread has been busy with one handler for a
            fraction of a second, and an added thread ends after a few
            seconds idle.

    Raises:
        ConfigError: A count that is not an int, below 1, or a maximum
            below ``handler_threads``.

    Threads: ``dashscope_sync-reactor`` reads every socket, runs the
    keepalive and writes what a session must send from there (a cancel, a
    pong) as the socket takes it; ``dashscope_sync-handlers-N`` run the
    handlers (``handler_threads`` of them, more while handlers are stuck,
    the extra ones ending after 5 s idle). All are daemons; `close` joins
    them. Nothing else runs per session: sends stay on the calling thread.
    The constructor starts no thread and opens no socket: the threads, the
    selector and its wake-up socket pair are made when the first session is
    opened on the reactor (`thread` is None until then).

    Thread safety: share it between threads and clients; open sessions on it
    from any threads at once. `close` from any thread but the reactor's own
    and a handler's (`UsageError`); it is idempotent (a close while another
    is under way waits for that one, within its own timeout), and waits for what its
    docstring says, within its ``timeout``. In a process forked from the one
    that made it, it is the parent's: opening a session on it is a
    `UsageError` (make a new Reactor in the child) and `close` does nothing.

    What one session's fault can do to the others: a hostile frame, a peer
    that vanishes, stops reading or stops answering pings, or a send stuck on
    one ends or fails that session only (its own error, as with threads); the
    reactor's thread never waits for a peer, a send lock or a handler. A
    handler that is slow or never returns holds one pool thread: the other
    sessions' handlers go on on the others, and the pool adds a thread when
    all are busy for 0.2 s (so they are delayed by about that much, up to
    ``max_handler_threads`` stuck handlers). What it cannot avoid: every
    session shares one thread's CPU for reading and decoding, so a flood of
    events on one session delays the others' events by the time they take
    to decode (about 30-60 us each), and sessions on one reactor share one
    interpreter's GIL with the handlers.
    """

    def __init__(self, *, handler_threads: int = 4, max_handler_threads: int = 64) -> None:
        size = _count(handler_threads, "handler_threads", 1)
        # Which process owns the threads: a forked child must not use them (see fork.py).
        self._forks = PROCESS.forks
        self._pid = os.getpid()
        most = _count(max_handler_threads, "max_handler_threads", size)
        # Made by _start (the first add), as the threads are: no I/O here.
        # Used only once started (add, the reader thread, close).
        self._selector: selectors.BaseSelector
        # Wakes the reader when a connection is added or the reactor closes:
        # one byte on a socket pair the selector watches.
        self._wake_in: socket.socket
        self._wake_out: socket.socket
        # Guards _adding, _flushing and _closed: connections handed over by
        # other threads, for the reader to register, or to write to; and
        # starting (_thread is set under it, once).
        self._lock = threading.Lock()
        self._adding: list[Connection] = []
        self._flushing: list[Connection] = []
        self._closed = False
        # Also guarded by _lock: the reader thread has handed its last work
        # to the pool (_run's end); and the deadline of a close() that stopped
        # waiting for it before that, leaving it to close the pool itself.
        self._ended = False
        self._handed: Deadline | None = None
        # Set once a close() has closed the pool and the selector (or handed
        # that to the reader thread, which sets it when done): a second close
        # waits for it.
        self._released = threading.Event()
        # Also guarded by _lock: the reader thread has stopped reading (closed,
        # or ended by an internal error): nothing may be added any more.
        self._stopped = False
        # The stop flag of the reader thread.
        self._stop = threading.Event()
        # Reader thread only: each connection's descriptor as registered (it
        # must be unregistered before the socket closes), and the keepalive
        # heap of (when, tie-breaker, connection).
        self._fds: dict[Connection, int] = {}
        # Reader thread only: the connections watched for room to write too
        # (their outbox holds bytes the socket did not take).
        self._writing: set[Connection] = set()
        self._timers: list[tuple[float, int, Connection]] = []
        # Each connection's live heap entry as (tie-breaker, when): an entry
        # whose tie-breaker is not this one is stale, and dropped when popped.
        self._live: dict[Connection, tuple[int, float]] = {}
        self._order = itertools.count()
        #: The handler threads shared by the sessions.
        self.pool = HandlerPool(size, most)
        # The reader thread, once started (None before the first add).
        self._thread: threading.Thread | None = None

    @property
    def thread(self) -> threading.Thread | None:
        """The reader thread; None until the first session is opened on the reactor."""
        return self._thread

    @property
    def sessions(self) -> int:
        """How many connections the reactor reads now."""
        return len(self._fds) + len(self._adding)

    def __enter__(self) -> Reactor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{self.sessions} sessions"
        return f"<Reactor {state}, {self.pool.threads} handler threads>"

    # For connections ------------------------------------------------------------

    def add(self, connection: Connection) -> None:
        """Start reading ``connection`` (its socket is non-blocking); any thread.

        The first call starts the reactor (`_start`), whose `TransportError` it raises.
        """
        if self._forks != PROCESS.forks:
            # Before the lock: a parent's thread may have held it at the fork.
            raise UsageError(
                f"this reactor was made by process {self._pid}, and this is a child it "
                f"forked ({os.getpid()}): its reader thread is the parent's; make a new "
                "Reactor in the child"
            )
        with self._lock:
            if self._closed:
                raise UsageError("the reactor is closed: open sessions on an open one")
            if self._stopped:
                raise UsageError(
                    "the reactor's thread ended after an internal error (logged): open "
                    "sessions on a new Reactor"
                )
            if self._thread is None:
                self._start()
            self._adding.append(connection)
        self._wake()

    def _start(self) -> None:
        """Make the selector and its wake-up pair, then start the pool's threads and
        the reader; under ``_lock``, on the first add.

        All or nothing: a failure to make the sockets closes what was made and
        leaves the reactor as it was (the next add tries again); a failure to
        start a thread ends the threads started and closes the reactor (it
        would fail again, and later adds are then a clear UsageError).

        The pool's threads start here rather than on the first hand-off of
        work: that hand-off happens on the reader's thread (or a sender's),
        where a thread that cannot start could only end sessions, and it is
        the per-event path; here the failure reaches the caller opening the
        session as a typed error.

        Raises:
            TransportError: A socket or a thread could not be made (no file
                descriptor or thread left); ``code`` is None.
        """
        made: list[selectors.BaseSelector | socket.socket] = []
        try:
            selector = selectors.DefaultSelector()
            made.append(selector)
            wake_in, wake_out = socket.socketpair()
            made += (wake_in, wake_out)
            wake_in.setblocking(False)
            wake_out.setblocking(False)
            selector.register(wake_in, selectors.EVENT_READ, None)
        except (OSError, ValueError) as exc:
            for thing in made:
                thing.close()
            raise TransportError(f"the reactor could not make its sockets: {exc}") from exc
        self._selector, self._wake_in, self._wake_out = selector, wake_in, wake_out
        thread = threading.Thread(
            target=self._run,
            name="dashscope_sync-reactor",
            # Daemon: as a session's reader; close() joins it.
            daemon=True,
        )
        try:
            self.pool.start()
            thread.start()  # last: nothing can fail once it runs
        except BaseException as exc:
            self._closed = True
            self.pool.close(Deadline(_JOIN))
            for thing in made:
                thing.close()
            self._released.set()  # a later close() has nothing to wait for
            if isinstance(exc, Exception):
                raise TransportError(
                    f"the reactor could not start its threads, and is closed: {exc}"
                ) from exc
            raise
        self._thread = thread

    def forget(self, connection: Connection) -> None:
        """Stop watching ``connection``; on the reader thread, before its socket closes."""
        fd = self._fds.pop(connection, None)
        if fd is not None:
            with contextlib.suppress(KeyError, ValueError, OSError):
                self._selector.unregister(fd)
        self._live.pop(connection, None)
        self._writing.discard(connection)
        timers = self._timers
        if any(entry[2] is connection for entry in timers):
            # Not left for its tick to drop: until then it would keep the
            # session's buffers alive (O(sessions), and sessions end rarely).
            timers[:] = [entry for entry in timers if entry[2] is not connection]
            heapq.heapify(timers)

    def schedule(self, connection: Connection, when: float) -> None:
        """Call ``connection.tick`` at ``when`` (monotonic) too; on the reader thread."""
        live = self._live.get(connection)
        if live is None or when < live[1]:
            self._push(connection, when)

    def want_write(self, connection: Connection, on: bool) -> None:
        """Call ``connection.writable`` when its socket has room (``on``), or no
        longer; on the reader thread. Watched only while bytes wait: a socket
        with room is ready at every select."""
        fd = self._fds.get(connection)
        if fd is None or (connection in self._writing) is on:
            return
        events = selectors.EVENT_READ | selectors.EVENT_WRITE if on else selectors.EVENT_READ
        try:
            self._selector.modify(fd, events, connection)
        except (KeyError, ValueError, OSError):  # pragma: no cover - ended meanwhile
            return
        if on:
            self._writing.add(connection)
        else:
            self._writing.discard(connection)

    def flush_soon(self, connection: Connection) -> None:
        """Have the reader thread call ``connection.writable`` soon; any thread."""
        with self._lock:
            if self._closed or self._stopped:
                return
            self._flushing.append(connection)
        self._wake()

    def _push(self, connection: Connection, when: float) -> None:
        order = next(self._order)
        self._live[connection] = (order, when)
        heapq.heappush(self._timers, (when, order, connection))

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):  # already woken, or closed
            self._wake_out.send(b"\0")

    # The reader thread ------------------------------------------------------------

    def _run(self) -> None:
        select = self._selector.select
        timers = self._timers
        pool = self.pool
        pool.reader_ident = threading.get_ident()
        try:
            while not self._stop.is_set():
                timeout = None if not timers else max(0.0, timers[0][0] - time.monotonic())
                if not pool.idle_hint():
                    timeout = STALL if timeout is None else min(timeout, STALL)
                # The handlers' work of the last wake-up, as one chunk, handed
                # over just before this thread waits in select: the pool
                # thread it wakes finds the GIL free instead of sleeping again
                # until this thread is done with its timers and checks.
                pool.flush()
                ready = select(timeout)
                now = time.monotonic()
                for key, events in ready:
                    connection = key.data
                    if connection is None:
                        self._take_new(now)
                        continue
                    if events & selectors.EVENT_READ:
                        connection.readable(now)
                    if events & selectors.EVENT_WRITE:
                        connection.writable(now)
                while timers and timers[0][0] <= now:
                    _, order, connection = heapq.heappop(timers)
                    live = self._live.get(connection)
                    if live is None or live[0] != order:
                        continue  # replaced by an earlier one (schedule)
                    del self._live[connection]
                    after = connection.tick(now)
                    if after is not None:
                        # Unless the tick scheduled an earlier call itself.
                        self.schedule(connection, after)
                pool.check(now)
        except BaseException:  # pragma: no cover - last resort: end every session
            logger.exception("unexpected internal error in the reactor thread")
        finally:
            self._end_all()
            pool.flush()
            with self._lock:
                self._ended = True
                handed = self._handed
            if handed is not None:
                # close() stopped waiting for this thread: the pool and the
                # selector close now, after the sessions' ends were handed over.
                self._release(handed)

    def _take_new(self, now: float) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            while self._wake_in.recv(4096):
                pass
        with self._lock:
            adding, self._adding = self._adding, []
            flushing, self._flushing = self._flushing, []
        for connection in flushing:
            if connection in self._fds:  # still read here: not ended meanwhile
                connection.writable(now)
        for connection in adding:
            fd = connection.fileno()
            try:
                if fd < 0:
                    raise OSError("the socket is closed")
                self._selector.register(fd, selectors.EVENT_READ, connection)
            except (OSError, ValueError, KeyError) as exc:
                connection.end_shared(f"the reactor could not watch the socket: {exc}")
                continue
            self._fds[connection] = fd
            after = connection.tick(now)
            if after is not None:
                self._push(connection, after)
            # Bytes that arrived before registration (session.created) wait in
            # the socket, which the selector reports; TLS bytes OpenSSL already
            # decrypted do not show there: read them now.
            connection.readable(now)

    def _end_all(self) -> None:
        """The reactor closes: end every connection it still reads."""
        with self._lock:
            self._stopped = True
            adding, self._adding = self._adding, []
        # No tick runs any more; emptied first, forget() has no entries to look for.
        self._timers.clear()
        self._live.clear()
        for connection in [*self._fds, *adding]:
            try:
                connection.end_shared("the reactor was closed")
            except BaseException:  # pragma: no cover - end_shared guards the session's end
                logger.exception("unexpected internal error ending a session")
        self._fds.clear()

    # Closing ---------------------------------------------------------------------

    def close(self, timeout: float | None = 10.0) -> None:
        """End the sessions still open on it, stop the reader and the pool; idempotent.

        Sessions still open end with a `TransportError` (code 1006): close
        them first for a clean close handshake. Then, within ``timeout``
        seconds in all (None: no limit):

        - the reader thread ends (at once: it never waits on a peer or a
          handler), having handed the end of every session to the handlers
          (waited for even past ``timeout``: it is bounded work);
        - the handlers finish the events already queued, on the pool threads
          (events queued behind a stuck handler go to the free threads).

        Like a session's ``close`` and its ``handler_timeout``: a pool thread
        whose handler has not returned by then is left behind, with one
        warning per thread naming the handler and the event it handles
        (Python cannot stop a thread). It is a daemon, so it never keeps the
        program from exiting, and it ends by itself as soon as its handler
        returns (it takes no more work). So ``close`` returns within about
        ``timeout`` whatever the handlers do; the test suite's leak check
        still sees such a thread until its handler returns (a test that
        leaves a handler stuck releases it).

        A reactor no session was ever opened on has nothing to end: ``close``
        only marks it closed.

        Raises:
            UsageError: Called from the reactor's own thread or from a handler
                (which it would wait for).
        """
        if self._forks != PROCESS.forks:
            return  # the parent's threads and sockets: nothing here is the child's
        current = threading.current_thread()
        if current is self._thread:
            raise UsageError("close() the reactor from your own thread, not its reader")
        if self.pool.runs_on(current):
            raise UsageError(
                "close() the reactor from your own thread, not a handler: it waits for "
                "the handlers to finish"
            )
        with self._lock:
            first = not self._closed
            self._closed = True
            thread = self._thread
        if not first:
            # Another thread is closing it: return once that is done, as it would.
            self._released.wait(timeout)
            return
        if thread is None:
            self._released.set()  # never started: no thread, pool thread or socket to end
            return
        deadline = Deadline(timeout)
        self._stop.set()
        self._wake()
        # Not bounded by ``timeout``: the thread ends every session still open
        # (CPU work, no waiting) and hands their ends (STOP) to the pool, which
        # must not stop taking work before that.
        thread.join(_JOIN)
        with self._lock:
            if not self._ended:
                self._handed = deadline  # still ending sessions: it closes the rest
                return
        self._release(deadline)

    def _release(self, deadline: Deadline) -> None:
        """Close the pool (by ``deadline``) and the selector, once the reader is done."""
        try:
            self.pool.close(deadline)
            self._selector.close()
            self._wake_in.close()
            self._wake_out.close()
        finally:
            self._released.set()
