"""Socket plumbing under the local server: a websockets connection that can stall.

websockets answers pings on its reader thread, inside the same ``socket.recv``
loop that reads data frames. To make the server look hung without closing
(no answers, not even pongs), reads must stop at the socket: this module wraps
the accepted socket in a proxy whose ``recv`` waits on an event, and plugs it
in through websockets' ``create_connection`` hook.

The same proxy is the server's front door for plain HTTP: websockets only
handles ``GET`` (before version 17 it closes any other method without an
answer, and no version accepts a request body), so the first ``recv`` of a
connection peeks at the request method, and a request that is not ``GET`` is
handed to a front-door function that answers it on the raw socket. websockets
then sees an empty stream and closes the connection quietly.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from typing import Any, cast

from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.sync.server import ServerConnection

__all__ = [
    "ConnectionRegistry",
    "FrontDoor",
    "GatedSocket",
    "StallableServerConnection",
    "WEBSOCKETS_LOGGER",
]


def _closed_before_request(record: logging.LogRecord) -> bool:
    """Whether websockets logs a handshake that failed only because the stream ended first.

    Matched on the message and the EOFError cause, not on the exception class
    (InvalidMessage), whose import is deprecated in some websockets versions.
    """
    exc = record.exc_info[1] if record.exc_info else None
    return record.msg == "opening handshake failed" and isinstance(
        getattr(exc, "__cause__", None), EOFError
    )


class _RedactingFilter(logging.Filter):
    """Keep credentials, payloads and routine tracebacks out of websockets' debug log.

    websockets logs every request header (``< Authorization: Bearer sk-...``)
    and an excerpt of every frame. A developer may point a client configured
    with a real key at this server, and responses carry base64 audio, so the
    header value and data-frame payloads are replaced before formatting.

    A connection that ends before sending a request (one the front door
    answered as plain HTTP, or a port probe) is routine here, but websockets
    before 17 logs it as an ERROR "opening handshake failed" with a
    traceback: such records are downgraded to one DEBUG line.
    """

    _DATA_OPCODES = frozenset({Opcode.TEXT, Opcode.BINARY, Opcode.CONT})

    def filter(self, record: logging.LogRecord) -> bool:
        if _closed_before_request(record):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        if record.levelno <= logging.DEBUG and record.exc_info and record.exc_info[1]:
            # "! error while receiving data" and the like: a client that went
            # away is routine for a test server, so one line, no traceback.
            exc = record.exc_info[1]
            record.msg = f"{record.getMessage()}: {type(exc).__name__}: {exc}"
            record.args = None
            record.exc_info = None
            record.exc_text = None
            return True
        args = record.args
        if not isinstance(args, tuple) or not args:
            return True
        if record.msg in ("< %s: %s", "> %s: %s") and str(args[0]).lower() == "authorization":
            record.args = (args[0], "<redacted>")
        elif record.msg in ("< %s", "> %s") and isinstance(args[0], Frame):
            frame = args[0]
            if frame.opcode in self._DATA_OPCODES:
                record.args = (f"{frame.opcode.name} [{len(frame.data)} bytes]",)
        return True


logger = logging.getLogger("dashscope_sync.testing")

WEBSOCKETS_LOGGER = logging.getLogger("dashscope_sync.testing.websockets")
"""Logger given to websockets, a child of ``dashscope_sync.testing``, with redaction."""
WEBSOCKETS_LOGGER.addFilter(_RedactingFilter())


FrontDoor = Callable[[socket.socket, bytes], None]
"""Answers a plain (non-``GET``) HTTP request, given the raw socket and the bytes read so far."""

# Longest method token worth waiting for ("OPTIONS", "CONNECT") plus its space.
_METHOD_PEEK = 8


class GatedSocket:
    """Socket proxy whose ``recv`` blocks while the gate is closed.

    While :attr:`readable` is cleared, incoming bytes (pings included) wait in
    the kernel buffer. Everything but ``recv`` and ``close`` is delegated to
    the real socket, :attr:`raw`. With a ``front_door``, a connection whose
    request method is not ``GET`` is answered by it, and reads as empty.

    Thread safety: ``recv`` runs on websockets' reader thread; the gate may be
    opened and closed from any thread.
    """

    def __init__(self, sock: socket.socket, front_door: FrontDoor | None = None) -> None:
        self.raw = sock
        # Set while reads may proceed. Cleared by a stall; set again by resume
        # and by close(), so that a stalled reader thread can always terminate.
        self.readable = threading.Event()
        self.readable.set()
        # Only the reader thread touches these two.
        self._front_door = front_door
        self._served_http = False

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        self.readable.wait()
        if self._served_http:
            return b""
        data = self.raw.recv(bufsize, flags)
        # Again: a stall that began while this thread was blocked in recv()
        # (websockets < 17 reads without a selector) holds the data back too.
        self.readable.wait()
        if self._front_door is None:
            return data
        front_door, self._front_door = self._front_door, None
        # The first read of the connection: find the request method.
        while data and b" " not in data and len(data) < _METHOD_PEEK:
            more = self.raw.recv(bufsize)
            if not more:
                break
            data += more
        method = data.split(b" ", 1)[0] if b" " in data[:_METHOD_PEEK] else b""
        if not method or method == b"GET":
            return data  # websockets' business, the upgrade or its rejection
        self._served_http = True
        try:
            front_door(self.raw, data)
        except Exception:
            logger.exception("the local server failed to answer a plain HTTP request")
        return b""

    def close(self) -> None:
        try:
            self.raw.close()
        finally:
            # After the real close, so the woken reader fails on a closed socket
            # instead of racing the close for data.
            self.readable.set()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)


class StallableServerConnection(ServerConnection):
    """websockets server connection reading through a :class:`GatedSocket`.

    Thread safety: as websockets' ``ServerConnection``.
    """

    def __init__(
        self,
        sock: socket.socket,
        protocol: ServerProtocol,
        *args: Any,
        front_door: FrontDoor | None = None,
        **kwargs: Any,
    ) -> None:
        self.gated_socket = GatedSocket(sock, front_door)
        # *args: websockets 17 passes the Server here; earlier versions do not.
        super().__init__(cast(socket.socket, self.gated_socket), protocol, *args, **kwargs)


class ConnectionRegistry:
    """websockets' ``create_connection`` hook that remembers who handles what.

    websockets before 17 does not wait for its connection handler threads on
    shutdown; this registry lets the server do it on every version: it
    creates each :class:`StallableServerConnection` (with the front door)
    and records the handler thread it was created on.

    Thread safety: every method may be called from any thread.
    """

    def __init__(self, front_door: FrontDoor | None) -> None:
        self._front_door = front_door
        self._lock = threading.Lock()
        self._handlers: list[tuple[threading.Thread, StallableServerConnection]] = []

    def create(
        self, sock: socket.socket, protocol: ServerProtocol, *args: Any, **kwargs: Any
    ) -> StallableServerConnection:
        """Create a connection (called by websockets on the handler thread)."""
        connection = StallableServerConnection(
            sock, protocol, *args, front_door=self._front_door, **kwargs
        )
        with self._lock:
            self._handlers = [(t, c) for t, c in self._handlers if t.is_alive()]
            self._handlers.append((threading.current_thread(), connection))
        return connection

    def join(self, timeout: float) -> None:
        """After shutdown: end opening handshakes still waiting, join every handler."""
        with self._lock:
            handlers = list(self._handlers)
        for _, connection in handlers:
            if connection.protocol.state is State.CONNECTING:
                connection.close_socket()
        for thread, _ in handlers:
            if thread is not threading.current_thread():
                thread.join(timeout)
