"""The I/O shell: the only part of a session that touches the transport.

It runs the reader thread (read, decode, hand on; answer pings; keepalive),
sends frames under one lock with a bound (``send_timeout``), and closes: a
close handshake when the socket is free, an abort when it is not, so `close`
never queues behind a send stuck on a peer that stopped reading.

It knows no protocol beyond WebSocket frames: decoded events go to
``on_event`` with the size of the message they came in (for byte bounds),
and the end of the connection to ``on_end``, both provided by
the session, which keeps the books.

Shared mode (a `Reactor` reads the socket): the reactor's thread serves
every session, so it never waits on one. What this connection sends on that
thread (the state machine's cancels and item replacements, pongs, pings)
goes through its `Outbox` (see ``outbox.py``: why, and the order it keeps
with the user's sends).

A frame tap (`tap`, set by a recorder, and by the core while the session
opens) sees the text of every frame that crossed the socket, in and out, as
``(monotonic time, FRAME_IN or FRAME_OUT, text, event)``: one call per frame
handing references on (the received bytes, the sent str, the decoded event
or None), so the reader does no file I/O, parsing or base64 work for it.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Final, Protocol, TypeVar

from .._deadline import Deadline
from .._errors import DashScopeTimeout, TransportError
from .._fmt import seconds
from .._wire.codec import decode, decode_binary
from .fork import PROCESS, inherited_error
from .outbox import Outbox
from .transport import OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, parse_close

_T = TypeVar("_T")

if TYPE_CHECKING:
    from .._wire.events import ServerEvent
    from .transport import WebSocketTransport


class ReaderLoop(Protocol):
    """What a connection needs of a reactor reading it (`Reactor` has it)."""

    @property
    def thread(self) -> threading.Thread | None:
        """The thread that reads (and calls `Connection.readable` and `tick`)."""

    def add(self, connection: Connection) -> None:
        """Start reading ``connection``'s socket; any thread."""

    def forget(self, connection: Connection) -> None:
        """Stop watching ``connection``'s socket; on the reading thread, before it closes."""

    def schedule(self, connection: Connection, when: float) -> None:
        """Call ``connection.tick`` at monotonic time ``when``; on the reading thread."""

    def want_write(self, connection: Connection, on: bool) -> None:
        """Call ``connection.writable`` when its socket has room (``on``), or stop; on
        the reading thread."""

    def flush_soon(self, connection: Connection) -> None:
        """Call ``connection.writable`` on the reading thread soon; any thread."""


__all__ = ["CLOSE_KEEPALIVE", "FRAME_IN", "FRAME_OUT", "Connection", "FrameTap"]

logger = logging.getLogger("dashscope_sync")

#: The normal close code (RFC 6455).
CLOSE_NORMAL: Final = 1000
#: The close code used when the keepalive finds the peer dead (as websockets does).
CLOSE_KEEPALIVE: Final = 1011
#: Close codes that describe a close but may never be sent in one (RFC 6455 7.4.1).
_UNSENDABLE: Final = frozenset({1004, 1005, 1006, 1015})
#: How long `close` waits for a send in progress before aborting the socket
#: under it: long enough for any healthy send of one frame.
_SEND_GRACE: Final = 0.25
#: How long to wait for the reader to notice an aborted socket.
_ABORT_JOIN: Final = 2.0
#: A frame tap's direction: received from the server.
FRAME_IN: Final = "in"
#: A frame tap's direction: sent to the server.
FRAME_OUT: Final = "out"

#: Takes ``(monotonic time, FRAME_IN | FRAME_OUT, frame text, decoded event or None)``;
#: must not block (it runs on the reader, and under the send lock).
FrameTap = Callable[[tuple[float, str, "bytes | str", "ServerEvent | None"]], None]


class Connection:
    """One WebSocket connection's threads and writes; see the module docstring.

    Thread safety: `send` and `close` may be called from any thread, the
    reader thread included (it sends pongs and cancels).
    """

    def __init__(
        self,
        transport: WebSocketTransport,
        *,
        on_event: Callable[[ServerEvent, int], None],
        on_end: Callable[[int, str, TransportError | None], None],
        ping_interval: float | None,
        ping_timeout: float | None,
        send_timeout: float | None,
        reactor: ReaderLoop | None = None,
    ) -> None:
        self._transport = transport
        self._on_event = on_event
        self._on_end = on_end
        self._ping_interval = ping_interval
        self._ping_timeout = ping_timeout
        self._send_timeout = send_timeout
        # Serialises writes to the socket and orders them against the close
        # frame: nothing is sent after it. Guards _close_sent and _failure.
        self._send_lock = threading.Lock()
        self._close_sent = False
        # Why the connection failed on our side (a send that timed out), for
        # the reader to report instead of the bare socket error it then sees.
        self._failure: TransportError | DashScopeTimeout | None = None
        # The stop flag: set when close() starts, so the reader knows the end
        # was asked for.
        self.closing = threading.Event()
        # Set when the reader has finished and reported the end.
        self.ended = threading.Event()
        # Set by `drop` (from a finalizer, which may take no lock): the
        # program dropped the session, so its end is the one asked for.
        self.dropped = False
        # Which process owns the socket: a forked child must not touch it.
        self._forks = PROCESS.forks
        # Sees every frame in and out (a recorder, or the core keeping the
        # session's opening until connect returns); replaced whole by the
        # session's core and read once per frame without a lock.
        self.tap: FrameTap | None = None
        self.pid = os.getpid()
        # The keepalive's clock: when a frame last arrived, and when the
        # unanswered ping went out (reader thread, or the reactor's, only).
        self._last_rx = time.monotonic()
        self._ping_sent_at: float | None = None
        # What the close frame said, for the end report (reader only).
        self._close_code, self._close_reason = 1006, "connection lost without a close frame"
        # Reads the socket instead of a thread of our own (shared mode).
        self._reactor = reactor
        self._started = False
        # Shared mode: when bytes last arrived (the reactor's thread only).
        self._last_bytes = time.monotonic()
        # Shared mode: what the reactor's thread sends, without waiting.
        # Posted on that thread; written under the send lock, by the reactor
        # as the socket takes it or by a user's send before its own frame.
        self._outbox = Outbox()
        self._reader = threading.Thread(
            target=self._read_loop,
            name="dashscope_sync-reader",
            # Daemon: a peer that never answers must not keep the interpreter
            # alive; close() joins it when the program ends properly.
            daemon=True,
        )

    def start(self) -> None:
        # Sends are bounded by the socket timeout; the reader waits with poll.
        self._transport.settimeout(self._send_timeout)
        self._started = True
        if self._reactor is None:
            self._reader.start()
        else:
            self._last_rx = time.monotonic()
            self._transport.set_nonblocking()
            try:
                self._reactor.add(self)
            except BaseException:
                self._started = False  # so that abort() releases the socket
                raise

    @property
    def shared(self) -> bool:
        """Whether a reactor reads this connection (no reader thread of its own)."""
        return self._reactor is not None

    def on_reader(self) -> bool:
        """Whether the calling thread is the one reading this connection."""
        current = threading.current_thread()
        reactor = self._reactor
        return current is (self._reader if reactor is None else reactor.thread)

    def join(self, timeout: float | None) -> None:
        """Wait up to ``timeout`` seconds for the end to be reported (never from the reader)."""
        if not self._started or self.on_reader():
            return
        if self._reactor is None:
            self._reader.join(timeout)
        else:
            self.ended.wait(timeout)

    @property
    def reader(self) -> threading.Thread:
        return self._reader

    @property
    def inherited(self) -> bool:
        """True in a forked child: the socket and the threads are the parent's."""
        return self._forks != PROCESS.forks

    # Sending ---------------------------------------------------------------------

    def send(self, text: str) -> bool:
        """Send one text frame; False if the close frame went out (nothing sent).

        See `send_many` for what it raises.
        """
        return self._send_with(self._transport.send_text, text)

    def send_many(self, texts: Sequence[str]) -> bool:
        """Send several text frames, in order, with one write; False if the close
        frame went out (nothing sent). One send as far as the lock, the timeout
        and failures go.

        Raises:
            DashScopeTimeout: The peer did not take the frame within
                ``send_timeout``; the connection is then failed.
            TransportError: The connection failed.
            UsageError: In a forked child (the connection is the parent's).
        """
        if len(texts) == 1:
            return self._send_with(self._transport.send_text, texts[0])
        return self._send_with(self._transport.send_texts, texts)

    def _send_with(self, send: Callable[[_T], None], arg: _T) -> bool:
        """``send(arg)`` under the send lock and ``send_timeout``: the one send path."""
        if self._forks != PROCESS.forks:
            raise inherited_error("cannot send", self.pid)
        reactor = self._reactor
        if reactor is not None and threading.current_thread() is reactor.thread:
            return self._post(arg)  # type: ignore[arg-type]
        if not self._send_lock.acquire(
            timeout=-1 if self._send_timeout is None else self._send_timeout
        ):
            raise self._fail(
                DashScopeTimeout(
                    f"sending timed out after {seconds(self._send_timeout)}: another send "
                    "is stuck on a server that is not reading",
                    timeout=self._send_timeout,
                )
            )
        try:
            if self._close_sent or self.closing.is_set():
                return False
            try:
                if self._outbox:
                    # Frames the reactor's thread decided on before this one go first.
                    self._write_outbox(wait=True)
                    if self._outbox.closed:
                        return False  # a close frame the reactor's thread posted went last
                tap = self.tap
                if tap is not None:
                    # Under the send lock, and before the write: the tap sees the
                    # frames in wire order, and a frame always before the server's
                    # answer to it (which the reader may tap as soon as it is
                    # written). A write that then fails fails the connection.
                    now = time.monotonic()
                    if isinstance(arg, str):
                        tap((now, FRAME_OUT, arg, None))
                    else:
                        for text in arg:  # type: ignore[attr-defined]
                            tap((now, FRAME_OUT, text, None))
                send(arg)
            except DashScopeTimeout as exc:
                raise self._fail(
                    DashScopeTimeout(
                        f"sending timed out after {seconds(self._send_timeout)}: the "
                        "server is not reading",
                        timeout=self._send_timeout,
                    )
                ) from exc
            except TransportError as exc:
                if self.closing.is_set():
                    return False  # close() aborted the socket under this send
                # A failed write leaves a partial frame behind: the connection
                # is unusable. Wake the reader so the session ends visibly.
                self._transport.abort()
                raise exc
        finally:
            self._send_lock.release()
            if self._outbox and reactor is not None:
                # Posted while this send held the lock: the reactor writes it now.
                reactor.flush_soon(self)
        return True

    # Shared mode: the outbox -----------------------------------------------------------

    def _post(self, texts: str | Sequence[str]) -> bool:
        """A send on the reactor's thread: into the outbox, written as the socket
        takes it (never waiting); False if the connection is closing or over."""
        if self._close_sent or self.closing.is_set() or self.ended.is_set():
            return False
        now = time.monotonic()
        for text in (texts,) if isinstance(texts, str) else texts:
            self._outbox.post(OP_TEXT, text, now)
        self._flush(now)
        return True

    def _flush(self, now: float) -> None:
        """Write what the outbox holds as far as the socket takes it now; watch for
        room while bytes wait. On the reactor's thread only."""
        reactor = self._reactor
        assert reactor is not None
        if not self._outbox:
            reactor.want_write(self, False)
            return
        if not self._send_lock.acquire(blocking=False):
            # A user's send holds it: it writes the outbox before its own frame,
            # or has this called again as it ends (flush_soon). The tick keeps
            # the bound meanwhile. Not watched for room until then: a socket
            # with room would wake the reactor at every select, to fail the
            # lock again, as long as that send lasts.
            reactor.want_write(self, False)
            reactor.schedule(self, now + _SEND_GRACE)
            return
        try:
            done = self._write_outbox(wait=False)
        except TransportError:
            # The socket failed: the next read reports the end.
            logger.debug("writing the outbox failed", exc_info=True)
            self._outbox.clear()
            done = True
        finally:
            self._send_lock.release()
        reactor.want_write(self, not done)
        if not done:
            reactor.schedule(self, now + _SEND_GRACE)

    def _write_outbox(self, *, wait: bool) -> bool:
        """`Outbox.write` under the send lock (held): True once it is empty."""
        tap = None if self.tap is None else self._tap_out
        outbox = self._outbox
        try:
            return outbox.write(self._transport, tap, wait=wait, more=not self._close_sent)
        finally:
            if outbox.closed:
                self._close_sent = True  # a close frame posted by the reactor's thread started

    def _tap_out(self, text: str) -> None:
        tap = self.tap
        if tap is not None:
            tap((time.monotonic(), FRAME_OUT, text, None))

    def writable(self, now: float) -> None:
        """The socket has room (or a user's send ended): write the outbox. On the
        reactor's thread only; a failure ends this connection only."""
        if not self.ended.is_set():
            try:
                self._flush(now)
            except BaseException as exc:
                self._finish(*self._internal_error(exc))

    def _stuck(self, send_timeout: float) -> DashScopeTimeout:
        """The error of an outbox that did not move for ``send_timeout``, worded as
        thread mode words the same stall."""
        if self._send_lock.locked():
            what = "a control frame" if self._outbox.head_is_control else "a frame"
            message = f"{what} waited over {seconds(send_timeout)} for a stuck send"
        else:
            message = f"sending timed out after {seconds(send_timeout)}: the server is not reading"
        return DashScopeTimeout(message, timeout=send_timeout)

    def _fail(self, error: DashScopeTimeout) -> DashScopeTimeout:
        """Fail the connection because of ``error`` (a stuck send); return it to raise."""
        if self._failure is None:
            self._failure = error
        self._transport.abort()
        return error

    def _send_control(self, opcode: int, payload: bytes, *, closing: bool = False) -> None:
        """Send a control frame from the reader, unless the close frame went out.

        A reactor's thread never waits: pings, pongs and the close frame go
        through the outbox (the close frame last, after what was posted before
        it, or by a user's send holding the lock as it ends; bounded by
        ``send_timeout`` as the rest).
        """
        if self._reactor is not None:
            if self._close_sent or self.ended.is_set():
                return
            now = time.monotonic()
            if closing:
                self._outbox.post_close(payload, now)
            elif opcode == OP_PONG:
                self._outbox.post_pong(payload, now)
            else:
                self._outbox.post(opcode, payload, now)
            self._flush(now)
            return
        if not self._send_lock.acquire(
            timeout=-1 if self._send_timeout is None else self._send_timeout
        ):
            self._fail(
                DashScopeTimeout(
                    f"a control frame waited over {seconds(self._send_timeout)} for a stuck send",
                    timeout=self._send_timeout,
                )
            )
            return
        try:
            if self._close_sent:
                return
            if closing:
                self._close_sent = True
            self._transport.send_control(opcode, payload)
        except DashScopeTimeout as exc:
            self._fail(exc)
        except TransportError:
            # The reader will see the connection fail on its next read.
            logger.debug("sending a control frame failed", exc_info=True)
        finally:
            self._send_lock.release()

    # The reader thread -------------------------------------------------------------

    def _text(self, data: bytes) -> None:
        """Decode a text frame and hand its event on (and to the tap); on the
        reading thread, whichever reads this connection."""
        event = decode(data)
        tap = self.tap
        if tap is not None:
            tap((time.monotonic(), FRAME_IN, data, event))
        self._on_event(event, len(data))

    def _read_loop(self) -> None:
        """Read frames until the connection ends; runs on the reader thread."""
        transport = self._transport
        interval = self._ping_interval
        ping_timeout = self._ping_timeout
        # How long one read may wait with nothing arriving, to run the keepalive.
        tick = None if interval is None else min(interval, ping_timeout or interval) / 2
        code, reason = 1006, "connection lost without a close frame"
        error: TransportError | None = None
        try:
            while True:
                frame = transport.recv(tick)
                if frame is None:
                    error = self.keepalive(time.monotonic())
                    if error is not None:
                        code, reason = error.code or CLOSE_KEEPALIVE, error.reason or ""
                        break
                    continue
                if tick is not None:
                    self._last_rx = time.monotonic()
                    self._ping_sent_at = None
                opcode, data = frame
                if opcode == OP_TEXT:
                    self._text(data)
                elif self._control(opcode, data):
                    code, reason = self._close_code, self._close_reason
                    break
        except TransportError as exc:
            error = exc
            code = exc.code or 1006
            reason = exc.reason or str(exc)
        except BaseException as exc:
            code, reason, error = self._internal_error(exc)
        finally:
            self._finish(code, reason, error)

    def _control(self, opcode: int, data: bytes) -> bool:
        """Handle a frame other than text; True when it ended the connection (a close)."""
        if opcode == OP_CLOSE:
            code, reason = parse_close(data)
            logger.debug("server closed the connection: %d %s", code, reason)
            # Complete the close handshake unless we started it; 1005
            # ("no status") and the like may not be sent, so echo 1000.
            echo = code if 1000 <= code < 5000 and code not in _UNSENDABLE else 1000
            self._send_control(OP_CLOSE, struct.pack("!H", echo), closing=True)
            self._close_code, self._close_reason = code, reason
            return True
        if opcode == OP_PING:
            self._send_control(OP_PONG, data)
        elif opcode == OP_BINARY:
            event = decode_binary(data)
            tap = self.tap
            if tap is not None:
                tap((time.monotonic(), FRAME_IN, data, event))
            self._on_event(event, len(data))
        # Pongs need nothing beyond refreshing the keepalive's clock.
        return False

    def keepalive(self, now: float) -> TransportError | None:
        """Run the keepalive at monotonic time ``now``: ping after ``ping_interval``
        of silence; the error that ends the connection once a ping went unanswered
        for ``ping_timeout``."""
        ping_sent_at = self._ping_sent_at
        if ping_sent_at is not None:
            ping_timeout = self._ping_timeout
            if ping_timeout is not None and now - ping_sent_at >= ping_timeout:
                reason = f"keepalive ping timeout: no answer in {seconds(ping_timeout)}"
                return TransportError(
                    f"the server stopped answering ({reason})", code=CLOSE_KEEPALIVE, reason=reason
                )
        elif self._ping_interval is not None and now - self._last_rx >= self._ping_interval:
            self._send_control(OP_PING, b"keepalive")
            self._ping_sent_at = now
        return None

    @staticmethod
    def _internal_error(exc: BaseException) -> tuple[int, str, TransportError]:
        logger.exception("unexpected internal error in the reader thread")
        reason = f"internal error: {type(exc).__name__}: {exc}"
        error = TransportError(f"the session failed: {reason}", code=1011, reason=reason)
        error.__cause__ = exc
        return 1011, reason, error

    def _finish(self, code: int, reason: str, error: TransportError | None) -> None:
        """Report the end (once, from the reader): release the socket, tell the session."""
        failure = self._failure
        if failure is not None:
            # Our own send failed the connection: say so, not "connection lost".
            code, reason = CLOSE_KEEPALIVE, str(failure)
            error = TransportError(f"the session failed: {failure}", code=code, reason=reason)
            error.__cause__ = failure
        reactor = self._reactor
        if reactor is not None:
            reactor.forget(self)  # before the descriptor is closed under its selector
            self._outbox.clear()  # nothing more can be written
        self._transport.close_socket()
        try:
            self._on_end(code, reason, error)
        except BaseException:
            if reactor is None:
                raise
            # A reactor's thread serves every session: this one's failure to
            # record its end must not end the others.
            logger.exception("unexpected internal error reporting the end of a session")
        finally:
            self.ended.set()

    # Shared mode: a reactor reads the socket ------------------------------------------

    def readable(self, now: float) -> bool:
        """Read and handle every frame the socket holds; False once the connection
        ended (reported). On the reactor's thread only; never blocks on the socket."""
        transport = self._transport
        try:
            while True:
                if transport.read_available():
                    # Bytes keep a peer alive, as they keep the thread's read
                    # from timing out: a frame trickling in is no dead peer.
                    self._last_bytes = now
                frame = transport.next_frame()
                if frame is not None:
                    self._last_rx = now
                    self._ping_sent_at = None
                while frame is not None:
                    opcode, data = frame
                    if opcode == OP_TEXT:
                        self._text(data)
                    elif self._control(opcode, data):
                        self._finish(self._close_code, self._close_reason, None)
                        return False
                    frame = transport.next_frame()
                if not transport.pending():
                    break
        except TransportError as exc:
            self._finish(exc.code or 1006, exc.reason or str(exc), exc)
            return False
        except BaseException as exc:
            self._finish(*self._internal_error(exc))
            return False
        return True

    def tick(self, now: float) -> float | None:
        """The keepalive from the reactor's timer heap: when to call again (None:
        never, the connection ended or has no keepalive). A failure ends this
        connection only."""
        try:
            return self._tick(now)
        except BaseException as exc:
            if not self.ended.is_set():
                self._finish(*self._internal_error(exc))
            return None

    def _tick(self, now: float) -> float | None:
        if self.ended.is_set():
            return None
        waiting = bool(self._outbox)
        if waiting:
            self._flush(now)
            waiting = bool(self._outbox)
            since, send_timeout = self._outbox.since, self._send_timeout
            if (
                waiting
                and send_timeout is not None
                and since is not None
                and now - since >= send_timeout
            ):
                # As the reader thread would have: waited send_timeout for the
                # send lock or for room, then failed the connection.
                self._fail(self._stuck(send_timeout))
                return None  # the abort wakes the selector: readable() reports the end
        interval = self._ping_interval
        if interval is None:
            return now + _SEND_GRACE if waiting else None
        tick = min(interval, self._ping_timeout or interval) / 2
        if now - self._last_bytes >= tick:
            # Only when nothing arrived for a tick, as the reader thread runs it.
            error = self.keepalive(now)
            if error is not None:
                self._finish(error.code or CLOSE_KEEPALIVE, error.reason or "", error)
                return None
        return now + (min(tick, _SEND_GRACE) if waiting else tick)

    def fileno(self) -> int:
        return self._transport.fileno()

    def end_shared(self, reason: str) -> None:
        """The reactor stops reading this connection (it closes): end it now.
        On the reactor's thread only."""
        if self.ended.is_set():
            return
        self._transport.abort()
        error = TransportError(f"the session ended: {reason}", code=1006, reason=reason)
        self._finish(1006, reason, error)

    # Closing -----------------------------------------------------------------------

    def close(self, timeout: float | None, *, wait: bool = True) -> None:
        """Close within ``timeout`` seconds: the handshake if possible, else an abort.

        Idempotent. From the reader thread, or with ``wait=False``, it starts
        the close and returns without joining the reader. In a forked child it
        does nothing: the connection is the parent's.
        """
        if self.inherited:
            return
        self.closing.set()
        deadline = Deadline(timeout)
        grace = deadline.remaining()
        grace = _SEND_GRACE if grace is None else min(_SEND_GRACE, grace)
        if self._reactor is not None and self.on_reader():
            # The reactor's thread (a family's server error ends the session)
            # waits for nothing: the close frame goes through the outbox.
            self._send_control(OP_CLOSE, struct.pack("!H", CLOSE_NORMAL), closing=True)
        elif self._send_lock.acquire(timeout=grace):
            try:
                # A dropped session's socket is shut down: no handshake is possible.
                if not self._close_sent and not self.ended.is_set() and not self.dropped:
                    self._close_sent = True
                    left = deadline.remaining()
                    bound = (
                        self._send_timeout
                        if left is None
                        else min(left, self._send_timeout or left)
                    )
                    try:
                        # Nobody else sends now, and the reader does not use
                        # the socket timeout: bound the close frame by ours.
                        self._transport.settimeout(max(bound, 0.001) if bound is not None else None)
                        if self._outbox:
                            # Shared mode: a frame the reactor wrote in part ends
                            # before the close frame; the rest of its outbox (a
                            # cancel, a replacement) is moot once the session ends.
                            self._write_outbox(wait=True)
                        self._transport.send_close(CLOSE_NORMAL)
                    except (TransportError, DashScopeTimeout, OSError):
                        # OSError: the reader released the socket meanwhile (the peer closed).
                        logger.debug("sending the close frame failed", exc_info=True)
                        self._transport.abort()
            finally:
                self._send_lock.release()
        else:
            # A send is stuck on a peer that does not read: do not queue behind it.
            logger.debug("a send is in progress: aborting the connection to close it")
            self._transport.abort()
        if not self._started:
            if not self.ended.is_set():
                self._transport.close_socket()  # never started
            return
        if self.ended.is_set() or not wait or self.on_reader():
            return
        # The reader ends when the server answers the close frame.
        self.join(deadline.remaining())
        if not self.ended.is_set():
            self._transport.abort()
            self.join(_ABORT_JOIN)

    def drop(self) -> None:
        """The program dropped the session: end it from the reader thread.

        Called by a finalizer, which may run on any thread holding any lock:
        it takes no lock and sends nothing. It shuts the socket down (one
        system call), so the reader wakes at once and reports the end; a
        close handshake would need the send lock.
        """
        if self.inherited:
            return  # the parent's socket: shutting it down would end its session
        self.dropped = True
        self._transport.abort()

    def abort(self) -> None:
        """Drop the connection now, without a close handshake (e.g. a failed connect)."""
        if self.inherited:
            return
        self.closing.set()
        self._transport.abort()
        if not self._started:
            self._transport.close_socket()
