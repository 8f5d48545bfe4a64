"""Socket plumbing under the local server: a websockets connection that can stall.

websockets answers pings on its reader thread, inside the same ``socket.recv``
loop that reads data frames. To make the server look hung without closing
(no answers, not even pongs), reads must stop at the socket: this module wraps
the accepted socket in a proxy whose ``recv`` waits on an event, and plugs it
in through websockets' ``create_connection`` hook.
"""

from __future__ import annotations

import logging
import socket
import threading
from typing import Any, cast

from websockets.frames import Frame, Opcode
from websockets.server import ServerProtocol
from websockets.sync.server import ServerConnection

__all__ = [
    "GatedSocket",
    "StallableServerConnection",
    "WEBSOCKETS_LOGGER",
]


class _RedactingFilter(logging.Filter):
    """Keep credentials, payloads and routine tracebacks out of websockets' debug log.

    websockets logs every request header (``< Authorization: Bearer sk-...``)
    and an excerpt of every frame. A developer may point a client configured
    with a real key at this server, and responses carry base64 audio, so the
    header value and data-frame payloads are replaced before formatting.
    """

    _DATA_OPCODES = frozenset({Opcode.TEXT, Opcode.BINARY, Opcode.CONT})

    def filter(self, record: logging.LogRecord) -> bool:
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


WEBSOCKETS_LOGGER = logging.getLogger("dashscope_sync.testing.websockets")
"""Logger given to websockets, a child of ``dashscope_sync.testing``, with redaction."""
WEBSOCKETS_LOGGER.addFilter(_RedactingFilter())


class GatedSocket:
    """Socket proxy whose ``recv`` blocks while the gate is closed.

    While :attr:`readable` is cleared, incoming bytes (pings included) wait in
    the kernel buffer. Everything but ``recv`` and ``close`` is delegated to
    the real socket, :attr:`raw`.

    Thread safety: ``recv`` runs on websockets' reader thread; the gate may be
    opened and closed from any thread.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.raw = sock
        # Set while reads may proceed. Cleared by a stall; set again by resume
        # and by close(), so that a stalled reader thread can always terminate.
        self.readable = threading.Event()
        self.readable.set()

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        self.readable.wait()
        return self.raw.recv(bufsize, flags)

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
        self, sock: socket.socket, protocol: ServerProtocol, *args: Any, **kwargs: Any
    ) -> None:
        self.gated_socket = GatedSocket(sock)
        # *args: websockets 17 passes the Server here; earlier versions do not.
        super().__init__(cast(socket.socket, self.gated_socket), protocol, *args, **kwargs)
