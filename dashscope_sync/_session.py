"""The realtime session: one socket, one reader thread, one handler thread.

How events flow::

    socket ──► reader thread ──┬──► bookkeeping (session info, acknowledgements)
                               ├──► event buffer ──► recv() / events() / wait_for()
                               └──► handler queue ──► dispatcher thread ──► on() handlers

The reader only decodes, keeps the books and hands events on; it also
answers pings and sends keepalive pings, so a slow handler cannot stall the
connection. User code runs on the dispatcher thread (started by the first
`on`), one handler at a time in arrival order, or on the caller's thread for
the iterator. The threads hold the `_SessionCore`, never the public
`RealtimeSession`, so an abandoned session can be garbage-collected and warn.
"""

from __future__ import annotations

import collections
import enum
import logging
import queue
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Literal, TypeVar, overload

from ._config import NOT_GIVEN, NotGiven, RealtimeConfig, SessionUpdate, _modalities
from ._deadline import Deadline
from ._errors import (
    APIError,
    ConfigError,
    DashScopeError,
    DashScopeTimeout,
    HandlerError,
    SessionClosedError,
    TransportError,
    UsageError,
)
from ._events import (
    EVENT_TYPES,
    ErrorEvent,
    InvalidFrame,
    ResponseCreated,
    ResponseDone,
    ServerEvent,
    SessionCreated,
    SessionFinished,
    SessionInfo,
    SessionUpdated,
    UnknownEvent,
)
from ._protocol import (
    EventIds,
    decode,
    decode_binary,
    dumps,
    encode_audio_append,
    encode_image_append,
)
from ._response import Response, ResponseResult
from ._transport import OP_BINARY, OP_CLOSE, OP_PING, OP_TEXT, parse_close

if TYPE_CHECKING:
    from ._transport import WebSocketTransport

__all__ = ["HandlerHandle", "RealtimeSession"]

logger = logging.getLogger("dashscope_sync")

_E = TypeVar("_E", bound=ServerEvent)
_F = TypeVar("_F", bound=Callable[..., object])

#: The most audio one ``input_audio_buffer.append`` may carry (the service's limit).
MAX_AUDIO_APPEND: Final = 15 * 1024 * 1024
#: The largest image the service accepts, before base64.
MAX_IMAGE_BYTES: Final = 500 * 1024
#: The normal close code (RFC 6455).
CLOSE_NORMAL: Final = 1000
#: The close code used when the keepalive finds the peer dead (as websockets does).
CLOSE_KEEPALIVE: Final = 1011
#: Close codes that describe a close but may never be sent in one (RFC 6455 7.4.1).
_UNSENDABLE: Final = frozenset({1004, 1005, 1006, 1015})
#: Handler-queue backlog past which a (single) warning says handlers are behind.
HANDLER_BACKLOG_WARNING: Final = 10_000
#: The key under which handlers for every `UnknownEvent` are kept.
_UNKNOWN_KEY: Final = "\0unknown"
#: Wire types whose arrival the reader must act on before anyone sees them.
_TRACKED: Final = frozenset(
    {SessionCreated, SessionUpdated, SessionFinished, ErrorEvent, ResponseCreated}
)
#: Audio a `respond` call appends per event: 100 ms at 16 kHz, the pace the service wants.
RESPOND_CHUNK: Final = 3200


class _Stop(enum.Enum):
    """The dispatcher's end-of-queue marker."""

    STOP = "STOP"


class _Pending:
    """A request waiting for its acknowledgement (``session.updated``...)."""

    __slots__ = ("done", "error", "event_id", "kind", "response", "result")

    def __init__(self, kind: str, event_id: str, response: Response | None = None) -> None:
        self.kind = kind  # the ack event type that answers it
        self.event_id = event_id
        # Weak: a handle the caller dropped must not keep collecting audio.
        self.response = None if response is None else weakref.ref(response)
        self.done = False
        self.result: ServerEvent | None = None
        self.error: APIError | None = None


class HandlerHandle:
    """What `RealtimeSession.on` returns: call `remove` to unsubscribe.

    Thread safety: `remove` may be called from any thread, including from
    inside a handler; an event already being dispatched may still reach it.
    """

    __slots__ = ("_core", "_key", "active", "fn")

    def __init__(self, core: _SessionCore, key: str, fn: Callable[[Any], object]) -> None:
        self._core = core
        self._key = key
        self.fn = fn
        self.active = True

    def remove(self) -> None:
        """Stop calling this handler; idempotent."""
        self._core.remove_handler(self)

    def __repr__(self) -> str:
        key = "UnknownEvent" if self._key == _UNKNOWN_KEY else self._key
        state = "active" if self.active else "removed"
        return f"<HandlerHandle {key!r} -> {_name(self.fn)} ({state})>"


def _name(fn: Callable[..., object]) -> str:
    return getattr(fn, "__qualname__", None) or repr(fn)


class _SessionCore:
    """The state the session's threads share; see the module docstring.

    Lock order: ``_send_lock`` may be taken while holding nothing, and
    ``_lock`` is never held while sending or calling user code.
    """

    def __init__(self, transport: WebSocketTransport, config: RealtimeConfig) -> None:
        self.transport = transport
        self.config = config
        self.ids = EventIds()
        self.buffer_max = config.max_buffered_events

        # Serialises writes to the socket and orders them against the close
        # frame: nothing is sent after it. Guards `close_sent`.
        self._send_lock = threading.Lock()
        self.close_sent = False

        # Guards every field below up to the handler registry: the event
        # buffer, pending requests, handler errors, end-of-session state and
        # the session info.
        self._lock = threading.Lock()
        # Wakes recv()/events()/wait_for(): an event was buffered, the session
        # ended, or a handler failed.
        self.buffer_cond = threading.Condition(self._lock)
        # Wakes callers waiting for an acknowledgement: a request was
        # answered, the session ended, or a handler failed.
        self.ack_cond = threading.Condition(self._lock)
        self.buffer: collections.deque[ServerEvent] = collections.deque()
        self.dropped_events = 0
        self.pending: list[_Pending] = []
        self.handler_errors: collections.deque[HandlerError] = collections.deque()
        self.ended = False
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self.end_error: TransportError | None = None
        self.session_id = ""
        self.info: SessionInfo | None = None
        self.early_error: ErrorEvent | None = None
        # Running responses whose handle someone still holds, by server id.
        # Weak values, so a handle nobody keeps collects nothing.
        self.responses: weakref.WeakValueDictionary[str, Response] = weakref.WeakValueDictionary()
        # Handles from next_response(), in call order, for the next
        # response.created that answers no request of ours.
        self.adopters: collections.deque[weakref.ref[Response]] = collections.deque()

        # Set once the session is usable (session.created) or can never be
        # (an error or the end came first); connect() waits on it.
        self.ready = threading.Event()
        # The stop flag: set when close() starts, so the reader knows an end
        # of the connection was asked for and is not a failure.
        self.closing = threading.Event()
        # Set when close() has finished, so a second caller can wait for it.
        self.closed = threading.Event()
        self._close_started = False  # guarded by _lock

        # Handler registry: wire type (or "*", or _UNKNOWN_KEY) -> handles, in
        # registration order. Copy-on-write under _lock, so the dispatcher
        # reads a snapshot without locking.
        self.handlers: dict[str, tuple[HandlerHandle, ...]] = {}
        # Events waiting for the dispatcher, in arrival order. Unbounded so
        # the reader never blocks on a slow handler; a backlog is warned about.
        self.dispatch_queue: queue.SimpleQueue[ServerEvent | _Stop] = queue.SimpleQueue()
        self.dispatcher: threading.Thread | None = None  # started by the first on()
        self.running: tuple[HandlerHandle, ServerEvent] | None = None  # for the stuck warning
        self._warned_backlog = False
        self._warned_drop = False
        self.reader = threading.Thread(
            target=self._read_loop,
            name="dashscope_sync-reader",
            # Daemon: a peer that never answers must not keep the interpreter
            # alive; close() joins it when the program ends properly.
            daemon=True,
        )

    # The reader thread ---------------------------------------------------------

    def start(self) -> None:
        self.reader.start()

    def _read_loop(self) -> None:
        """Read frames until the connection ends; runs on the reader thread."""
        transport = self.transport
        interval = self.config.ping_interval
        ping_timeout = self.config.ping_timeout
        keepalive = interval is not None
        if keepalive:
            assert interval is not None
            # recv() wakes this often with nothing read, to run the keepalive.
            transport.settimeout(min(interval, ping_timeout or interval) / 2)
        else:
            transport.settimeout(None)
        deliver = self._deliver
        last_rx = time.monotonic()
        ping_sent_at: float | None = None
        code, reason = 1006, "connection lost without a close frame"
        error: TransportError | None = None
        try:
            while True:
                try:
                    opcode, data = transport.recv()
                except DashScopeTimeout:
                    now = time.monotonic()
                    if ping_sent_at is not None:
                        if ping_timeout is not None and now - ping_sent_at >= ping_timeout:
                            code = CLOSE_KEEPALIVE
                            reason = f"keepalive ping timeout: no answer in {ping_timeout} s"
                            error = TransportError(
                                f"the server stopped answering ({reason})", code=code, reason=reason
                            )
                            break
                    elif interval is not None and now - last_rx >= interval:
                        self._send_control(transport.send_ping, b"keepalive")
                        ping_sent_at = now
                    continue
                if keepalive:
                    last_rx = time.monotonic()
                    ping_sent_at = None
                if opcode == OP_TEXT:
                    deliver(decode(data))
                elif opcode == OP_CLOSE:
                    code, reason = parse_close(data)
                    logger.debug("server closed the connection: %d %s", code, reason)
                    # Complete the close handshake unless we started it; 1005
                    # ("no status") and the like may not be sent, so echo 1000.
                    echo = code if 1000 <= code < 5000 and code not in _UNSENDABLE else 1000
                    self._send_control(transport.send_close, echo, closing=True)
                    break
                elif opcode == OP_PING:
                    self._send_control(transport.send_pong, data)
                elif opcode == OP_BINARY:
                    deliver(decode_binary(data))
                # Pongs need nothing beyond refreshing last_rx above.
        except TransportError as exc:
            error = exc
            code = exc.code or 1006
            reason = exc.reason or str(exc)
        except BaseException as exc:
            logger.exception("unexpected internal error in the reader thread")
            code, reason = 1011, f"internal error: {type(exc).__name__}: {exc}"
            error = TransportError(f"the session failed: {reason}", code=code, reason=reason)
            error.__cause__ = exc
        finally:
            transport.close_socket()
            self._end(code, reason, error)

    def _send_control(
        self, send: Callable[..., None], *args: object, closing: bool = False
    ) -> None:
        """Send a control frame from the reader, unless the close frame went out."""
        with self._send_lock:
            if self.close_sent:
                return
            if closing:
                self.close_sent = True
            try:
                send(*args)
            except TransportError:
                # The reader will see the connection fail on its next read.
                logger.debug("sending a control frame failed", exc_info=True)

    def _deliver(self, event: ServerEvent) -> None:
        """Book-keep, buffer and dispatch one event; runs on the reader thread."""
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("received %s", event.type)
        with self._lock:
            if type(event) in _TRACKED:
                self._track(event)
            if self.responses:
                self._route_to_response(event)
            if self.buffer_max:
                buffer = self.buffer
                buffer.append(event)
                if len(buffer) > self.buffer_max:
                    buffer.popleft()
                    self.dropped_events += 1
                    if not self._warned_drop:
                        self._warned_drop = True
                        logger.warning(
                            "event buffer full (%d events): dropping the oldest; read events "
                            "faster, raise max_buffered_events, or set it to 0 if you only "
                            "use handlers (session.dropped_events counts them)",
                            self.buffer_max,
                        )
                self.buffer_cond.notify()
        if self.handlers:
            self.dispatch_queue.put(event)
            if not self._warned_backlog and self.dispatch_queue.qsize() > HANDLER_BACKLOG_WARNING:
                self._warned_backlog = True
                logger.warning(
                    "event handlers are %d events behind: a handler is too slow for the "
                    "event rate, and the backlog holds memory",
                    HANDLER_BACKLOG_WARNING,
                )

    def _track(self, event: ServerEvent) -> None:
        """Update session state and answer pending requests (holding ``_lock``)."""
        if isinstance(event, SessionCreated):
            self.session_id = event.session.id
            self.info = event.session
            self.ready.set()
        elif isinstance(event, SessionUpdated):
            self.info = event.session
            self._resolve(SessionUpdated.type, event)
        elif isinstance(event, SessionFinished):
            self._resolve(SessionFinished.type, event)
        elif isinstance(event, ResponseCreated):
            pending = self._resolve(ResponseCreated.type, event)
            handle: Response | None = None
            if pending is not None and pending.response is not None:
                handle = pending.response()
            elif pending is None:
                while self.adopters and handle is None:
                    handle = self.adopters.popleft()()
            if handle is not None:
                handle._started(event)
                self.responses[event.response.id] = handle
        elif isinstance(event, ErrorEvent):
            if not self.ready.is_set():
                # An error before session.created: connect() fails with it.
                self.early_error = event
                self.ready.set()
            self._route_error(event)

    def _route_to_response(self, event: ServerEvent) -> None:
        """Hand an event to the handle of its response (holding ``_lock``)."""
        if isinstance(event, ResponseDone):
            handle = self.responses.pop(event.response.id, None)
        else:
            response_id = getattr(event, "response_id", None)
            handle = self.responses.get(response_id) if response_id else None
        if handle is not None:
            handle._feed(event)

    def _resolve(self, kind: str, event: ServerEvent) -> _Pending | None:
        for pending in self.pending:
            if pending.kind == kind:
                self.pending.remove(pending)
                pending.done = True
                pending.result = event
                self.ack_cond.notify_all()
                return pending
        return None

    def _route_error(self, event: ErrorEvent) -> None:
        """Give an error to the request it answers: the one it names, else the oldest."""
        named = event.error.event_id
        target = None
        if named:
            target = next((p for p in self.pending if p.event_id == named), None)
        elif self.pending:
            target = self.pending[0]
        if target is None:
            if event.error.type == "server_error":
                # A server error during a response may mean it never finishes:
                # fail the running responses rather than leave them hanging.
                for running in list(self.responses.values()):
                    running._fail(APIError.from_event(event))
                self.responses.clear()
            return
        self.pending.remove(target)
        target.done = True
        target.error = APIError.from_event(event)
        answered = target.response() if target.response is not None else None
        if answered is not None:
            answered._fail(target.error)
        self.ack_cond.notify_all()

    def _end(self, code: int, reason: str, error: TransportError | None) -> None:
        """Record how the connection ended and wake every waiter."""
        clean = self.closing.is_set() or (error is None and code == CLOSE_NORMAL)
        if not clean and error is None:
            error = TransportError(
                f"the server closed the session with code {code}"
                + (f": {reason}" if reason else ""),
                code=code,
                reason=reason,
            )
        if clean:
            logger.debug("session %s ended (code %d)", self.session_id, code)
        else:
            logger.warning("session %s ended abnormally: %s", self.session_id, error)
        with self._lock:
            self.ended = True
            self.close_code = code
            self.close_reason = reason
            self.end_error = None if clean else error
            self._fail_responses_locked()
            self.ready.set()
            self.buffer_cond.notify_all()
            self.ack_cond.notify_all()

    def _fail_responses_locked(self) -> None:
        """Fail every response still waited for: the session is over."""
        handles: list[Response | None] = list(self.responses.values())
        handles += [p.response() for p in self.pending if p.response is not None]
        handles += [ref() for ref in self.adopters]
        for handle in handles:
            if handle is not None:
                handle._fail(self.closed_error("the session ended before the response finished"))
        self.responses.clear()
        self.adopters.clear()

    # The dispatcher thread -------------------------------------------------------

    def add_handler(self, key: str, fn: Callable[[Any], object]) -> HandlerHandle:
        handle = HandlerHandle(self, key, fn)
        with self._lock:
            self.handlers = {**self.handlers, key: (*self.handlers.get(key, ()), handle)}
            if self.dispatcher is None:
                self.dispatcher = threading.Thread(
                    target=self._dispatch_loop,
                    name="dashscope_sync-handlers",
                    # Daemon: a handler stuck forever must not keep the
                    # interpreter alive; close() warns about it instead.
                    daemon=True,
                )
                self.dispatcher.start()
        return handle

    def remove_handler(self, handle: HandlerHandle) -> None:
        with self._lock:
            handle.active = False
            remaining = tuple(h for h in self.handlers.get(handle._key, ()) if h is not handle)
            handlers = dict(self.handlers)
            if remaining:
                handlers[handle._key] = remaining
            else:
                handlers.pop(handle._key, None)
            self.handlers = handlers

    def _dispatch_loop(self) -> None:
        """Run handlers for each event in arrival order; runs on the dispatcher thread."""
        get = self.dispatch_queue.get
        while True:
            event = get()
            if event is _Stop.STOP:
                return
            handlers = self.handlers
            matched = handlers.get(event.type, ())
            if isinstance(event, UnknownEvent):
                matched += handlers.get(_UNKNOWN_KEY, ())
            matched += handlers.get("*", ())
            for handle in matched:
                if not handle.active:
                    continue
                self.running = (handle, event)
                try:
                    handle.fn(event)
                except BaseException as exc:
                    self._handler_failed(handle, event, exc)
                finally:
                    self.running = None

    def _handler_failed(
        self, handle: HandlerHandle, event: ServerEvent, exc: BaseException
    ) -> None:
        logger.error(
            "event handler %s raised while handling %s", _name(handle.fn), event.type, exc_info=exc
        )
        try:
            text = str(exc)
        except Exception:  # a user exception's __str__ must not kill this thread
            text = "<unprintable>"
        error = HandlerError(
            f"event handler {_name(handle.fn)} raised {type(exc).__name__}: {text} "
            f"(while handling {event.type})",
            handler=handle.fn,
            event=event,
        )
        error.__cause__ = exc
        with self._lock:
            self.handler_errors.append(error)
            self.buffer_cond.notify_all()
            self.ack_cond.notify_all()

    # Calls from user threads ------------------------------------------------------

    def check_can_block(self, what: str) -> None:
        if threading.current_thread() is self.dispatcher:
            raise UsageError(
                f"{what} blocks, and was called from inside an event handler: handlers run "
                "one at a time on the session's handler thread, so waiting there would stall "
                "every other handler (or deadlock). Send without waiting from handlers, and "
                "wait from your own thread."
            )

    def raise_handler_error_locked(self) -> None:
        """Raise the oldest pending handler error (holding ``_lock``)."""
        if self.handler_errors and threading.current_thread() is not self.dispatcher:
            error = self.handler_errors.popleft()
            raise error from error.__cause__

    def raise_handler_error(self) -> None:
        if self.handler_errors:  # cheap unlocked peek; the locked pop decides
            with self._lock:
                self.raise_handler_error_locked()

    def closed_error(self, what: str) -> DashScopeError:
        """The error for using a session that has ended or is closing."""
        if self.end_error is not None:
            error = TransportError(
                f"{what}: {self.end_error}", code=self.end_error.code, reason=self.end_error.reason
            )
            error.__cause__ = self.end_error
            return error
        return SessionClosedError(
            f"{what}: the session is closed", code=self.close_code, reason=self.close_reason
        )

    def send(self, text: str, wire_type: str) -> None:
        """Send one client event's text, unless the session is closing or over."""
        self.raise_handler_error()
        with self._send_lock:
            if self.close_sent or self.ended or self.closing.is_set():
                raise self.closed_error(f"cannot send {wire_type}")
            try:
                self.transport.send_text(text)
            except TransportError:
                # A failed write leaves a partial frame behind: the connection
                # is unusable. Wake the reader so the session ends visibly.
                self.transport.abort()
                raise
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("sent %s (%d chars)", wire_type, len(text))

    def register(self, kind: str, event_id: str, response: Response | None = None) -> _Pending:
        pending = _Pending(kind, event_id, response)
        with self._lock:
            self.pending.append(pending)
        return pending

    def unregister(self, pending: _Pending) -> None:
        """Forget a request whose send failed: no answer will come."""
        with self._lock:
            if pending in self.pending:
                self.pending.remove(pending)

    def await_pending(self, pending: _Pending, timeout: float | None, what: str) -> ServerEvent:
        """Wait for a request's acknowledgement, or raise the error that answered it."""
        deadline = Deadline(timeout)
        # A request whose waiter gives up (timeout, handler error) stays
        # queued, so its late answer is not taken for the answer to a later
        # request of the same kind.
        with self._lock:
            while True:
                self.raise_handler_error_locked()
                if pending.done:
                    if pending.error is not None:
                        raise pending.error
                    assert pending.result is not None
                    return pending.result
                if self.ended:
                    raise self.closed_error(f"{what} got no answer")
                remaining = deadline.remaining()
                if remaining is not None and remaining <= 0:
                    raise DashScopeTimeout(
                        f"{what} got no answer within {timeout} s", timeout=timeout
                    )
                self.ack_cond.wait(remaining)

    def next_event(self, deadline: Deadline, what: str) -> ServerEvent | None:
        """Pop the next buffered event; None at a clean end."""
        with self._lock:
            while True:
                self.raise_handler_error_locked()
                if self.buffer:
                    return self.buffer.popleft()
                if self.ended:
                    if self.end_error is not None:
                        raise self.closed_error(what)
                    return None
                remaining = deadline.remaining()
                if remaining is not None and remaining <= 0:
                    raise DashScopeTimeout(
                        f"{what}: no event within {deadline.timeout} s", timeout=deadline.timeout
                    )
                self.buffer_cond.wait(remaining)

    # Closing --------------------------------------------------------------------

    def close(self, *, wait: bool = True) -> None:
        """Close the connection and stop the threads; idempotent, any thread."""
        with self._lock:
            first = not self._close_started
            self._close_started = True
        in_handler = threading.current_thread() is self.dispatcher
        if not first:
            if wait and not in_handler:
                self.closed.wait(self._close_bound())
                # A close() from inside a handler could not join the handler
                # thread; a later close() from outside finishes that job.
                dispatcher = self.dispatcher
                if dispatcher is not None and dispatcher.is_alive():
                    dispatcher.join(self.config.handler_timeout)
            return
        self.closing.set()
        with self._send_lock:
            if not self.close_sent and not self.ended:
                self.close_sent = True
                try:
                    self.transport.send_close(CLOSE_NORMAL)
                except TransportError:
                    logger.debug("sending the close frame failed", exc_info=True)
        if self.reader.is_alive():
            if wait and threading.current_thread() is not self.reader:
                # The reader ends when the server answers the close frame.
                self.reader.join(self.config.close_timeout)
            if self.reader.is_alive():
                self.transport.abort()
                if wait:
                    self.reader.join(5.0)
        else:
            self.transport.close_socket()
        if self.dispatcher is not None:
            # After the events already queued, so handlers finish them first.
            self.dispatch_queue.put(_Stop.STOP)
            if wait and not in_handler:
                self.dispatcher.join(self.config.handler_timeout)
                running = self.running
                if self.dispatcher.is_alive() and running is not None:
                    logger.warning(
                        "event handler %s is still running on %s after %s s; "
                        "leaving its thread behind",
                        _name(running[0].fn),
                        running[1].type,
                        self.config.handler_timeout,
                    )
        with self._lock:
            if not self.ended:
                # The reader could not be joined; record the end ourselves.
                self.ended = True
                self.close_code = CLOSE_NORMAL
                self.close_reason = ""
                self._fail_responses_locked()
            self.buffer_cond.notify_all()
            self.ack_cond.notify_all()
        self.closed.set()
        logger.debug("session %s closed", self.session_id)

    def _close_bound(self) -> float | None:
        parts = (self.config.close_timeout, self.config.handler_timeout)
        if any(p is None for p in parts):
            return None
        return sum(p for p in parts if p is not None) + 5.0


class RealtimeSession:
    """A connected realtime session, returned ready by `RealtimeService.connect`.

    Use it as a context manager, or call `close`. Send with the methods below;
    receive either with callbacks (`on`) or by pulling (`recv`, `events`,
    iteration, `wait_for`), or both: every event goes to both.

    Thread safety: every method may be called from any thread. Sends are
    serialised in call order. Several threads may pull events; each event
    goes to exactly one of them. Handlers run one at a time on the session's
    own handler thread, never on the thread that reads the socket; from
    inside a handler you may send and call `close`, but not wait (that
    raises `UsageError`).

    Attributes:
        config: The `RealtimeConfig` the session was opened with.
    """

    def __init__(
        self,
        core: _SessionCore,
        reopen: Callable[[float | NotGiven | None], RealtimeSession] | None = None,
    ) -> None:
        self._core = core
        self.config = core.config
        # Opens a fresh session like this one (the client's connect), for reconnect().
        self._reopen = reopen
        # Every session field sent with update_session, merged, so a reconnect
        # can restore the configuration. Guarded by the core's lock.
        self._sent_session: dict[str, Any] = {}

    # State ---------------------------------------------------------------------

    @property
    def id(self) -> str:
        """The server's session id, from ``session.created``."""
        return self._core.session_id

    @property
    def info(self) -> SessionInfo:
        """The effective configuration: from ``session.created``, then each ``session.updated``."""
        info = self._core.info
        assert info is not None  # connect() returns only after session.created
        return info

    @property
    def model(self) -> str:
        """The model this session talks to."""
        return self.config.model

    @property
    def closed(self) -> bool:
        """True once the connection has ended or `close` has been called."""
        core = self._core
        return core.ended or core.closing.is_set()

    @property
    def close_code(self) -> int | None:
        """The WebSocket close code once the connection has ended (1006: lost)."""
        return self._core.close_code

    @property
    def close_reason(self) -> str | None:
        """The close reason once the connection has ended."""
        return self._core.close_reason

    @property
    def dropped_events(self) -> int:
        """How many events the full buffer dropped (oldest first); see ``max_buffered_events``."""
        return self._core.dropped_events

    def __repr__(self) -> str:
        core = self._core
        state = "closed" if self.closed else "open"
        return (
            f"<RealtimeSession id={core.session_id!r} model={self.config.model!r} {state} "
            f"buffered={len(core.buffer)}>"
        )

    # Sending -------------------------------------------------------------------

    @overload
    def update_session(
        self,
        update: SessionUpdate | Mapping[str, Any],
        *,
        wait: Literal[True] = ...,
        timeout: float | NotGiven | None = ...,
    ) -> SessionInfo: ...

    @overload
    def update_session(
        self,
        update: SessionUpdate | Mapping[str, Any],
        *,
        wait: Literal[False],
        timeout: float | NotGiven | None = ...,
    ) -> None: ...

    def update_session(
        self,
        update: SessionUpdate | Mapping[str, Any],
        *,
        wait: bool = True,
        timeout: float | NotGiven | None = NOT_GIVEN,
    ) -> SessionInfo | None:
        """Send ``session.update`` and, by default, wait for the server's verdict.

        Args:
            update: The fields to change: a `SessionUpdate` (only the fields
                set are sent), or a dict sent as the ``session`` object as is.
            wait: Wait for ``session.updated`` and return its configuration.
                With False, return at once; the answer still arrives as events.
            timeout: The longest wait in seconds; None waits forever; default
                ``config.request_timeout``.

        Returns:
            The effective `SessionInfo` (with ``wait=True``), else None.

        Raises:
            APIError: The server answered with an ``error`` (the one naming this
                request, else the first that names no request).
            DashScopeTimeout: No answer in time.
            SessionClosedError: The session is closed.
            UsageError: ``wait=True`` from inside a handler.
            HandlerError: A handler failed earlier (raised first).
        """
        if isinstance(update, SessionUpdate):
            session = update.as_dict()
        elif isinstance(update, Mapping):
            session = dict(update)
        else:
            raise ConfigError(f"update must be a SessionUpdate or a dict, got {update!r}")
        core = self._core
        event_id = core.ids.next()
        text = self._dumps({"event_id": event_id, "type": "session.update", "session": session})
        with core._lock:
            self._sent_session.update(session)
        if not wait:
            core.send(text, "session.update")
            return None
        core.check_can_block("update_session(wait=True)")
        pending = core.register(SessionUpdated.type, event_id)  # before sending: no race
        try:
            core.send(text, "session.update")
        except BaseException:
            core.unregister(pending)
            raise
        result = core.await_pending(pending, self._timeout(timeout), "session.update")
        assert isinstance(result, SessionUpdated)
        return result.session

    def append_audio(self, pcm: bytes | bytearray | memoryview) -> str:
        """Append 16 kHz mono PCM16 (little-endian) audio to the input buffer.

        The server sends no acknowledgement. Send about 100 ms (3200 bytes) at
        a time for live audio. Returns the event id it sent.

        Raises:
            ConfigError: Not bytes, empty, an odd number of bytes (not whole
                16-bit samples), or over the service's 15 MiB per append.
        """
        data = _bytes(pcm, "audio")
        if len(data) % 2:
            raise ConfigError(
                f"audio must be whole 16-bit samples (an even number of bytes), got {len(data)}"
            )
        if len(data) > MAX_AUDIO_APPEND:
            raise ConfigError(
                f"audio appends are limited to {MAX_AUDIO_APPEND} bytes by the service, got "
                f"{len(data)}: append it in smaller chunks"
            )
        event_id = self._core.ids.next()
        self._core.send(encode_audio_append(event_id, data), "input_audio_buffer.append")
        return event_id

    def commit_audio(self) -> str:
        """Commit the input buffer as a user turn (``input_audio_buffer.commit``).

        In manual mode follow it with `create_response`. Returns the event id.
        """
        return self._send_simple("input_audio_buffer.commit")

    def clear_audio(self) -> str:
        """Drop the uncommitted input audio (``input_audio_buffer.clear``)."""
        return self._send_simple("input_audio_buffer.clear")

    def append_image(self, jpeg: bytes | bytearray | memoryview) -> str:
        """Append a JPEG video frame (``input_image_buffer.append``).

        The service wants audio appended before the first image, at most
        about one image a second, and commits images with the audio.

        Raises:
            ConfigError: Not JPEG bytes, or over the service's 500 KB limit.
        """
        data = _bytes(jpeg, "image")
        if not data.startswith(b"\xff\xd8"):
            raise ConfigError("image must be JPEG bytes (the service accepts only JPEG)")
        if len(data) > MAX_IMAGE_BYTES:
            raise ConfigError(
                f"images are limited to {MAX_IMAGE_BYTES} bytes by the service, got {len(data)}"
            )
        event_id = self._core.ids.next()
        self._core.send(encode_image_append(event_id, data), "input_image_buffer.append")
        return event_id

    def append_text(self, text: str) -> str:
        """Add a user text message to the conversation (``conversation.item.create``).

        Follow it with `create_response` for a reply. Returns the event id.
        """
        if not isinstance(text, str) or not text:
            raise ConfigError(f"text must be a non-empty string, got {text!r}")
        item = {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": text}],
        }
        return self._send_event("conversation.item.create", {"item": item})

    def create_response(
        self,
        *,
        instructions: str | None = None,
        modalities: Sequence[str] | None = None,
    ) -> Response:
        """Ask for a response (``response.create``) and return a handle on it.

        The handle is paired with the ``response.created`` that answers this
        request (the server echoes no id, so requests pair with those frames
        in wire order); ``handle.wait()`` returns the `ResponseResult`, and
        ``iter_text()``/``iter_audio()`` stream it. Events flow to handlers
        and the iterator as always. If you drop the handle, nothing is kept.

        Under server VAD with automatic responses the server also starts
        responses itself, so an explicit request can race it (and be refused
        with `ActiveResponseError`): use manual mode (``turn_detection=None``)
        to create every response yourself, or `next_response` to follow the
        server's.

        Args:
            instructions: Instructions for this response only.
            modalities: ``["text"]`` or ``["text", "audio"]`` for this response only.
        """
        response: dict[str, Any] = {}
        if instructions is not None:
            if not isinstance(instructions, str):
                raise ConfigError(f"instructions must be a string, got {instructions!r}")
            response["instructions"] = instructions
        if modalities is not None:
            response["modalities"] = list(_modalities(modalities))
        core = self._core
        event_id = core.ids.next()
        fields = {"response": response} if response else {}
        text = self._dumps({"event_id": event_id, "type": "response.create", **fields})
        handle = Response(core, event_id, self.cancel_response)
        pending = core.register(ResponseCreated.type, event_id, handle)  # before sending
        try:
            core.send(text, "response.create")
        except BaseException:
            core.unregister(pending)
            raise
        return handle

    def next_response(self) -> Response:
        """A handle on the next response the server starts by itself (server VAD).

        Register it before the audio that will trigger the response; it is
        adopted by the next ``response.created`` that answers no request of yours.
        """
        handle = Response(self._core, None, self.cancel_response)
        with self._core._lock:
            self._core.adopters.append(weakref.ref(handle))
        return handle

    def respond(
        self,
        audio: bytes | bytearray | memoryview | None = None,
        *,
        text: str | None = None,
        image: bytes | bytearray | memoryview | None = None,
        instructions: str | None = None,
        timeout: float | None = None,
    ) -> ResponseResult:
        """Hold one whole turn: send the input, get the reply. What a notebook cell calls.

        Appends ``audio`` (16 kHz mono PCM16) in 100 ms chunks, then the
        ``image`` (JPEG; the service wants audio first), then ``text`` as a
        user message; commits; asks for a response, unless server VAD will
        start it by itself (then it follows that one); and waits for it.

        Args:
            audio: The user's speech.
            text: A user text message (with or without audio).
            image: A JPEG frame, sent after the audio.
            instructions: Instructions for this response only (manual mode
                only: under automatic server VAD the server creates the response).
            timeout: The longest time for the whole turn, in seconds.

        Returns:
            The `ResponseResult` (text, audio, usage, timings).

        Raises:
            ConfigError: Nothing to send, or a bad input.
            UsageError: ``instructions`` under automatic server VAD, or called
                from a handler.
            ResponseError, APIError, DashScopeTimeout, TransportError: as
                `Response.wait`.
        """
        core = self._core
        core.check_can_block("respond()")
        if audio is None and text is None and image is None:
            raise ConfigError("respond() needs audio, text or an image")
        deadline = Deadline(_check_timeout(timeout))
        detection = self.info.turn_detection
        server_creates = (
            audio is not None
            and detection is not None
            and detection.get("create_response", True) is not False
        )
        if server_creates and instructions is not None:
            raise UsageError(
                "instructions= needs manual mode: under server VAD the server creates the "
                "response itself (update_session(SessionUpdate(turn_detection=None)))"
            )
        handle = self.next_response() if server_creates else None
        if audio is not None:
            pcm = _bytes(audio, "audio")
            for start in range(0, len(pcm), RESPOND_CHUNK):
                self.append_audio(pcm[start : start + RESPOND_CHUNK])
        if image is not None:
            self.append_image(image)
        if text is not None:
            self.append_text(text)
        if audio is not None or image is not None:
            self.commit_audio()
        if handle is None:
            handle = self.create_response(instructions=instructions)
        return handle.wait(deadline.remaining())

    def cancel_response(self) -> str:
        """Cancel the running response (``response.cancel``); the server errors if none runs."""
        return self._send_simple("response.cancel")

    def finish_session(
        self, *, timeout: float | NotGiven | None = NOT_GIVEN
    ) -> SessionFinished | None:
        """Ask the server to flush and finish (``session.finish``), and wait for it.

        Best effort: some models reject ``session.finish``. Call `close` after.

        Args:
            timeout: The longest wait in seconds; None waits forever; default
                ``config.request_timeout``.

        Returns:
            The `SessionFinished` event, or None when the model rejected the
            request or closed the session without answering.

        Raises:
            DashScopeTimeout: No answer in time.
        """
        core = self._core
        core.check_can_block("finish_session()")
        event_id = core.ids.next()
        pending = core.register(SessionFinished.type, event_id)
        try:
            core.send(dumps({"event_id": event_id, "type": "session.finish"}), "session.finish")
        except BaseException:
            core.unregister(pending)
            raise
        try:
            result = core.await_pending(pending, self._timeout(timeout), "session.finish")
        except APIError as exc:
            logger.info("the model rejected session.finish: %s", exc)
            return None
        except SessionClosedError:
            return None
        assert isinstance(result, SessionFinished)
        return result

    def send_raw(self, event: Mapping[str, Any]) -> str:
        """Send any client event as given, adding an ``event_id`` if it has none.

        Returns:
            The event's ``event_id``.

        Raises:
            ConfigError: Not a dict with a string ``type``, or not JSON-serialisable.
        """
        if not isinstance(event, Mapping) or not isinstance(event.get("type"), str):
            raise ConfigError(f"event must be a dict with a string 'type', got {event!r}")
        payload = dict(event)
        event_id = payload.get("event_id")
        if not isinstance(event_id, str):
            event_id = self._core.ids.next()
            payload = {"event_id": event_id, **payload}
        self._core.send(self._dumps(payload), payload["type"])
        return event_id

    def _send_simple(self, wire_type: str) -> str:
        event_id = self._core.ids.next()
        self._core.send(f'{{"event_id":"{event_id}","type":"{wire_type}"}}', wire_type)
        return event_id

    def _send_event(self, wire_type: str, fields: Mapping[str, Any]) -> str:
        event_id = self._core.ids.next()
        self._core.send(self._dumps({"event_id": event_id, "type": wire_type, **fields}), wire_type)
        return event_id

    @staticmethod
    def _dumps(payload: Mapping[str, Any]) -> str:
        try:
            return dumps(payload)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"the event is not JSON-serialisable: {exc}") from exc

    def _timeout(self, timeout: float | NotGiven | None) -> float | None:
        if timeout is NOT_GIVEN:
            return self.config.request_timeout
        return _check_timeout(timeout)

    # Receiving: callbacks ----------------------------------------------------------

    @overload
    def on(self, event_type: type[_E], handler: Callable[[_E], object]) -> HandlerHandle: ...

    @overload
    def on(self, event_type: str, handler: Callable[[ServerEvent], object]) -> HandlerHandle: ...

    @overload
    def on(self, event_type: type[ServerEvent] | str) -> Callable[[_F], _F]: ...

    def on(
        self,
        event_type: type[ServerEvent] | str,
        handler: Callable[[Any], object] | None = None,
    ) -> HandlerHandle | Callable[[_F], _F]:
        """Call ``handler(event)`` for every event of a type, from now on.

        ``event_type`` is a wire type (``"response.audio.delta"``), an event
        class (`ResponseAudioDelta`; `UnknownEvent` matches every unknown
        type), or ``"*"`` for every event. Handlers run one at a time, in
        arrival order, on the session's handler thread (never the one that
        reads the socket); for one event, handlers of its type run first, then
        `UnknownEvent` handlers, then ``"*"`` handlers, each in registration
        order. A handler that raises is logged with its traceback and raised
        as `HandlerError` on your thread at its next call into the session.

        Used as ``@session.on(ds.ResponseTextDelta)``, it returns the
        function unchanged; called with a handler, it returns a `HandlerHandle`
        whose ``remove()`` unsubscribes.
        """
        key = _handler_key(event_type)
        if handler is None:

            def decorator(fn: _F) -> _F:
                self._on(key, fn)
                return fn

            return decorator
        return self._on(key, handler)

    def _on(self, key: str, handler: Callable[[Any], object]) -> HandlerHandle:
        if not callable(handler):
            raise ConfigError(f"handler must be callable, got {handler!r}")
        return self._core.add_handler(key, handler)

    # Receiving: pulling ------------------------------------------------------------

    def recv(self, timeout: float | None = None) -> ServerEvent | None:
        """Return the next event, waiting at most ``timeout`` seconds for it.

        Events come in arrival order, each once, including those that arrived
        before the first call (since connect). None blocks until one comes; 0
        or less only takes one already there.

        Returns:
            The next event, or None once the session closed cleanly (code
            1000, or by `close`) and every event has been read.

        Raises:
            DashScopeTimeout: No event within ``timeout``.
            TransportError: The connection ended abnormally (after the events
                received before it were read); carries ``code`` and ``reason``.
            HandlerError: A handler failed.
            UsageError: Called from a handler, or the buffer is off.
        """
        core = self._check_pull("recv()")
        return core.next_event(Deadline(_check_timeout(timeout)), "recv()")

    def events(self, timeout: float | None = None) -> Iterator[ServerEvent]:
        """Iterate over events until the session closes cleanly.

        Args:
            timeout: The longest wait for each next event, in seconds; its
                expiry raises `DashScopeTimeout`. None waits forever.

        Raises:
            The same as `recv`.
        """
        core = self._check_pull("events()")
        timeout = _check_timeout(timeout)
        return self._iterate(core, timeout)

    @staticmethod
    def _iterate(core: _SessionCore, timeout: float | None) -> Iterator[ServerEvent]:
        while (event := core.next_event(Deadline(timeout), "events()")) is not None:
            yield event

    def __iter__(self) -> Iterator[ServerEvent]:
        return self.events()

    @overload
    def wait_for(self, event_type: type[_E], timeout: float | None = None) -> _E: ...

    @overload
    def wait_for(self, event_type: str, timeout: float | None = None) -> ServerEvent: ...

    def wait_for(
        self, event_type: type[ServerEvent] | str, timeout: float | None = None
    ) -> ServerEvent:
        """Consume events up to and including the first of a type, and return it.

        The events before it are skipped for `recv`/`events` (handlers still
        see everything). Because it reads the same buffer, it never misses an
        event that came before the call.

        Args:
            event_type: A wire type, an event class (matched with isinstance),
                or ``"*"``.
            timeout: The longest wait for the match, in seconds; None forever.

        Raises:
            DashScopeTimeout: No match in time.
            SessionClosedError: The session closed cleanly before a match.
            TransportError, HandlerError, UsageError: as `recv`.
        """
        key = _handler_key(event_type)
        what = f"wait_for({key if key != _UNKNOWN_KEY else 'UnknownEvent'})"
        core = self._check_pull(what)
        deadline = Deadline(_check_timeout(timeout))
        while True:
            event = core.next_event(deadline, what)
            if event is None:
                raise SessionClosedError(
                    f"{what}: the session closed first",
                    code=core.close_code,
                    reason=core.close_reason,
                )
            if _matches(key, event):
                return event

    def _check_pull(self, what: str) -> _SessionCore:
        core = self._core
        core.check_can_block(what)
        if not core.buffer_max:
            raise UsageError(
                f"{what} reads the event buffer, which is off (max_buffered_events=0); "
                "use handlers, or set max_buffered_events"
            )
        return core

    # Lifecycle ----------------------------------------------------------------------

    def close(self) -> None:
        """Close the session: idempotent, thread-safe, never raises a handler error.

        Sends a normal close frame (1000), waits up to ``config.close_timeout``
        for the server's answer, lets handlers finish the events already
        received (up to ``config.handler_timeout``; a handler still stuck then
        is named in a warning and its thread left behind), and joins the
        threads. Called from a handler, it does not wait for the handler
        thread. Events already buffered can still be read afterwards.
        """
        self._core.close()

    def __enter__(self) -> RealtimeSession:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
        if exc_type is None:
            self._core.raise_handler_error()

    def reconnect(
        self, *, timeout: float | NotGiven | None = NOT_GIVEN, restore: bool = True
    ) -> RealtimeSession:
        """Open a new server session like this one, after a drop or the session cap.

        Realtime state lives on the server, so nothing is resent blindly: the
        new session gets the configuration this one sent with
        `update_session` (all fields, merged; skip with ``restore=False``), but
        not the conversation, pending audio or handlers. This session is
        closed if it was not already. Register handlers on the new session.

        Args:
            timeout: For the connect and the restoring update together, as
                `RealtimeService.connect`'s ``timeout``.
            restore: Replay the configuration sent so far.

        Returns:
            The new, ready session (its own ``id``).

        Raises:
            The errors of `RealtimeService.connect` and `update_session`.
        """
        self._core.check_can_block("reconnect()")
        if self._reopen is None:
            raise UsageError("this session was not opened by a Client, so it cannot reconnect")
        self.close()
        with self._core._lock:
            restored = dict(self._sent_session)
        started = time.monotonic()
        fresh = self._reopen(timeout)
        try:
            if restore and restored:
                left: float | NotGiven | None = timeout
                if isinstance(timeout, (int, float)):
                    left = max(0.0, timeout - (time.monotonic() - started))
                fresh.update_session(restored, timeout=left)
        except BaseException:
            fresh.close()
            raise
        logger.info("reconnected: session %s replaced by %s", self.id, fresh.id)
        return fresh

    def __del__(self) -> None:
        core = getattr(self, "_core", None)
        if core is None or core.closing.is_set():
            return
        try:
            warnings.warn(
                f"unclosed {self!r}: use it in a 'with' block or call close()",
                ResourceWarning,
                stacklevel=2,
                source=self,
            )
            core.close(wait=False)
        except Exception:
            pass  # at interpreter exit, modules may already be torn down


def _bytes(value: object, what: str) -> bytes:
    if isinstance(value, bytes):
        data = value
    elif isinstance(value, (bytearray, memoryview)):
        data = bytes(value)
    else:
        raise ConfigError(f"{what} must be bytes, got {type(value).__name__}")
    if not data:
        raise ConfigError(f"{what} is empty")
    return data


def _check_timeout(timeout: object) -> float | None:
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout != timeout:
        raise ConfigError(f"timeout must be a number of seconds or None, got {timeout!r}")
    return float(timeout)


_KNOWN_KEYS: Final = frozenset({*EVENT_TYPES, InvalidFrame.type, "*"})


def _handler_key(event_type: object) -> str:
    """Map what `on`/`wait_for` accept to one registry key."""
    if isinstance(event_type, str):
        if event_type not in _KNOWN_KEYS:
            warnings.warn(
                f"{event_type!r} is not an event type this library knows: the handler runs "
                "only if the server sends that type (check the spelling)",
                UserWarning,
                stacklevel=3,
            )
        return event_type
    if isinstance(event_type, type) and issubclass(event_type, ServerEvent):
        if event_type is UnknownEvent:
            return _UNKNOWN_KEY
        if event_type is ServerEvent:
            return "*"
        if event_type.type:
            return event_type.type
    raise ConfigError(
        f"event type must be a wire type string, an event class or '*', got {event_type!r}"
    )


def _matches(key: str, event: ServerEvent) -> bool:
    if key == "*":
        return True
    if key == _UNKNOWN_KEY:
        return isinstance(event, UnknownEvent)
    return event.type == key
