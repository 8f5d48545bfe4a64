"""The only module that imports websocket-client; its errors stop here.

Every websocket-client or socket exception is translated into the library's
own tree at this boundary and chained as ``__cause__``: a refused upgrade
becomes an `APIError` subclass built from the HTTP status and JSON body,
running out of time a `DashScopeTimeout`, anything else a `TransportError`.
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import struct
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from ._errors import APIError, DashScopeTimeout, TransportError, api_error_class

if TYPE_CHECKING:
    import ssl

    # Imported at the first connect, not with the package: websocket-client
    # and the ssl module it pulls in are a good part of start-up time.
    import websocket

__all__ = ["OP_BINARY", "OP_CLOSE", "OP_PING", "OP_PONG", "OP_TEXT", "WebSocketTransport"]

# Opcodes (RFC 6455, section 5.2).
_OP_CONT: Final = 0x0
OP_TEXT: Final = 0x1
OP_BINARY: Final = 0x2
OP_CLOSE: Final = 0x8
OP_PING: Final = 0x9
OP_PONG: Final = 0xA
#: Bytes asked of the socket per read while idle or paced: one audio delta
#: fits, and an idle session keeps little memory.
_READ_SMALL: Final = 16 * 1024
#: Bytes asked per read during a burst (a read filled the small buffer): a
#: burst of deltas then arrives in few reads.
_READ_LARGE: Final = 256 * 1024
#: The largest frame accepted; the service's are far smaller, and a bogus
#: length must not make the client try to buffer gigabytes.
MAX_FRAME: Final = 1 << 28

#: The close code for a connection lost without a close frame (RFC 6455).
CLOSE_ABNORMAL: Final = 1006
#: The close code for "no status code in the close frame" (RFC 6455).
CLOSE_NO_STATUS: Final = 1005


def _handshake_error(exc: websocket.WebSocketBadStatusException) -> APIError:
    """Build the typed error of a refused upgrade from its status and JSON body."""
    status = exc.status_code
    body = exc.resp_body or b""
    code = message = request_id = None
    try:
        data: Any = json.loads(body) if body else None
    except ValueError:
        data = None
    if isinstance(data, dict):
        # DashScope's body is {"code","message","request_id"}; some gateways
        # nest it as {"error": {"code","message"}}.
        nested = data.get("error")
        inner: dict[str, Any] = nested if isinstance(nested, dict) else data
        code = inner.get("code") if isinstance(inner.get("code"), str) else None
        message = inner.get("message") if isinstance(inner.get("message"), str) else None
        rid = data.get("request_id", inner.get("request_id"))
        request_id = rid if isinstance(rid, str) else None
    if not message:
        text = body.decode("utf-8", "replace").strip()[:200]
        message = text or exc.status_message or f"HTTP {status}"
    cls = api_error_class(status, code)
    return cls(
        f"the server refused the connection: {message}",
        code=code,
        request_id=request_id,
        http_status=status,
    )


def _proxy_options(proxy: str | None) -> dict[str, Any]:
    if proxy is None:
        return {}
    parts = urlsplit(proxy)
    options: dict[str, Any] = {
        "http_proxy_host": parts.hostname,
        "http_proxy_port": parts.port or (443 if parts.scheme == "https" else 80),
        "proxy_type": parts.scheme if parts.scheme in ("socks4", "socks5", "socks5h") else "http",
    }
    if parts.username:
        options["http_proxy_auth"] = (parts.username, parts.password or "")
    return options


class WebSocketTransport:
    """One WebSocket connection, with websocket-client's errors translated.

    Thread safety: `recv` must be called from one thread only (the session's
    reader). The send methods are not locked here: the session serialises
    them with its own send lock, which also orders them against closing.
    """

    __slots__ = (
        "_buf",
        "_errors",
        "_fragment_opcode",
        "_fragments",
        "_poll",
        "_pos",
        "_read",
        "_timeout_error",
        "_ws",
    )

    def __init__(self, ws: websocket.WebSocket) -> None:
        import websocket

        self._ws = ws
        # What a failed send may raise, translated in _send.
        self._errors = (websocket.WebSocketException, OSError, ValueError)
        self._timeout_error = (websocket.WebSocketTimeoutException, TimeoutError)
        # Bytes read but not yet parsed start at _pos (reader thread only).
        self._buf = bytearray()
        self._pos = 0
        # Where the socket reads land, reused from read to read (a fresh
        # object per read costs an allocation and page faults, more than the
        # read itself). Small while idle, large while a burst lasts (_fill).
        self._read = memoryview(bytearray(_READ_SMALL))
        # Waits for readability, so that the reader can run the keepalive
        # without a socket timeout (which belongs to sends).
        self._poll: Any = None
        # The parts of a fragmented message being received, and its opcode.
        self._fragments: list[bytes] | None = None
        self._fragment_opcode = OP_TEXT

    @classmethod
    def connect(
        cls,
        url: str,
        headers: Mapping[str, str],
        *,
        timeout: float | None,
        proxy: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> WebSocketTransport:
        """Open the connection and complete the upgrade within ``timeout`` seconds.

        Raises:
            APIError: The server refused the upgrade (`AuthenticationError` for
                401/403, `RateLimitError` for 429).
            DashScopeTimeout: The connection or upgrade did not finish in time.
            TransportError: DNS, TCP, TLS or proxy failure.
        """
        import ssl

        import websocket

        options: dict[str, Any] = _proxy_options(proxy)
        if ssl_context is not None:
            options["sslopt"] = {"context": ssl_context}
        host = urlsplit(url).hostname
        try:
            ws = websocket.create_connection(
                url,
                timeout=timeout,
                header=[f"{k}: {v}" for k, v in headers.items()],
                # One thread reads and the session locks sends itself, so the
                # library's own locks would only add cost.
                enable_multithread=False,
                # websocket-client's pure-Python UTF-8 check is most of its
                # receive cost; decoding the text in C validates it anyway.
                skip_utf8_validation=True,
                **options,
            )
        except websocket.WebSocketBadStatusException as exc:
            raise _handshake_error(exc) from exc
        except (websocket.WebSocketTimeoutException, TimeoutError) as exc:
            raise DashScopeTimeout(
                f"connecting to {host} timed out after {timeout} s", timeout=timeout
            ) from exc
        except websocket.WebSocketAddressException as exc:
            raise TransportError(f"cannot resolve host {host!r}: {exc}") from exc
        except ssl.SSLError as exc:
            raise TransportError(f"TLS failure connecting to {host}: {exc}") from exc
        except (websocket.WebSocketException, OSError) as exc:
            raise TransportError(f"cannot connect to {host}: {exc}") from exc
        return cls(ws)

    def settimeout(self, timeout: float | None) -> None:
        """Set how long a send may block before it fails with `DashScopeTimeout`."""
        self._ws.settimeout(timeout)

    def recv(self, timeout: float | None) -> tuple[int, bytes] | None:
        """Return the next whole message or control frame as ``(opcode, payload)``.

        Fragmented messages are reassembled. Control frames are returned to
        the caller, which answers pings and closes itself.

        Reading is done here rather than by websocket-client's frame reader,
        which makes two to four ``recv`` calls and many Python calls per
        frame; this reads up to 256 KiB per call and parses frames out of the
        buffer, so a burst of small frames costs a fraction of a syscall each.

        Args:
            timeout: The longest wait for more bytes, in seconds (None: no
                limit). It does not use the socket's timeout, which bounds sends.

        Returns:
            The frame, or None when no whole frame arrived within ``timeout``
            (the connection is intact; call again).

        Raises:
            TransportError: The connection was lost (``code`` 1006) or the
                peer broke the protocol (``code`` 1002).
        """
        while True:
            frame = self._next_frame()
            if frame is None:
                if not self._wait_readable(timeout):
                    return None
                self._fill()
                continue
            fin, opcode, payload = frame
            if opcode >= OP_CLOSE:  # control frames are never fragmented
                return opcode, payload
            if opcode == _OP_CONT:
                if self._fragments is None:
                    raise self._protocol_error("continuation frame without a message")
                self._fragments.append(payload)
                if not fin:
                    continue
                opcode, parts = self._fragment_opcode, self._fragments
                self._fragments = None
                return opcode, b"".join(parts)
            if self._fragments is not None:
                raise self._protocol_error("new message inside a fragmented one")
            if fin:
                return opcode, payload
            self._fragment_opcode, self._fragments = opcode, [payload]

    def _wait_readable(self, timeout: float | None) -> bool:
        """Wait until the socket has bytes to read (or is closed): False on timeout."""
        sock = self._ws.sock
        if sock is None:
            return True  # _fill reports the closed socket
        pending = getattr(sock, "pending", None)
        if pending is not None and pending():  # TLS bytes already decrypted
            return True
        poller = self._poll
        if poller is None:
            if not hasattr(select, "poll"):  # pragma: no cover - Windows
                readable, _, _ = select.select([sock], [], [], timeout)
                return bool(readable)
            poller = self._poll = select.poll()
            poller.register(sock, select.POLLIN | select.POLLPRI)
        try:
            events = poller.poll(None if timeout is None else max(0, int(timeout * 1000) + 1))
        except (OSError, ValueError):
            return True  # the socket went away: _fill reports it
        return bool(events)

    def _next_frame(self) -> tuple[bool, int, bytes] | None:
        """Parse one frame out of the buffer, or None if it is not all there yet."""
        buf = self._buf
        pos = self._pos
        available = len(buf) - pos
        if available < 2:
            return None
        first, second = buf[pos], buf[pos + 1]
        if first & 0x70:
            raise self._protocol_error("reserved bits set (no extension was negotiated)")
        length = second & 0x7F
        header = 2
        if length == 126:
            if available < 4:
                return None
            length = int.from_bytes(buf[pos + 2 : pos + 4], "big")
            header = 4
        elif length == 127:
            if available < 10:
                return None
            length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
            header = 10
            if length > MAX_FRAME:
                raise self._protocol_error(f"frame of {length} bytes is too large", code=1009)
        masked = second & 0x80
        if masked:
            header += 4
        end = pos + header + length
        if len(buf) < end:
            return None
        payload = bytes(buf[pos + header : end])
        if masked:  # servers must not mask, but unmasking costs little
            mask = bytes(buf[pos + header - 4 : pos + header])
            payload = _unmask(mask, payload)
        self._pos = end
        return bool(first & 0x80), first & 0x0F, payload

    def _fill(self) -> None:
        """Read more bytes into the buffer, dropping what was parsed."""
        if self._pos:
            if self._pos == len(self._buf):
                # All parsed: start afresh, so a burst's capacity is released.
                self._buf = bytearray()
            else:
                # Deleting from the front of a bytearray is O(1) in CPython.
                del self._buf[: self._pos]
            self._pos = 0
        sock = self._ws.sock
        read = self._read
        try:
            if sock is None:
                raise OSError("socket is closed")
            count = sock.recv_into(read)
        except TimeoutError:
            # A TLS record arrived in part: the rest comes on a later read.
            return
        except OSError as exc:
            raise TransportError(
                f"connection lost: {exc}", code=CLOSE_ABNORMAL, reason=str(exc)
            ) from exc
        if not count:
            raise TransportError(
                "connection lost: the peer closed the socket without a close frame",
                code=CLOSE_ABNORMAL,
                reason="",
            )
        self._buf += read[:count]
        size = len(read)
        if count == size and size < _READ_LARGE:
            self._read = memoryview(bytearray(_READ_LARGE))  # a burst: read more at once
        elif size > _READ_SMALL and count < _READ_SMALL // 2:
            self._read = memoryview(bytearray(_READ_SMALL))  # the burst is over

    @staticmethod
    def _protocol_error(message: str, *, code: int = 1002) -> TransportError:
        return TransportError(f"protocol error: {message}", code=code, reason=message)

    def _send(self, payload: bytes | str, opcode: int) -> None:
        try:
            self._ws.send(payload, opcode)
        except self._timeout_error as exc:
            raise DashScopeTimeout(
                "sending timed out: the server is not reading", timeout=self._ws.gettimeout()
            ) from exc
        except self._errors as exc:
            raise TransportError(
                f"sending failed: {str(exc) or type(exc).__name__}",
                code=CLOSE_ABNORMAL,
                reason=str(exc),
            ) from exc

    def send_text(self, text: str) -> None:
        """Send one text frame."""
        self._send(text, OP_TEXT)

    def send_ping(self, payload: bytes = b"") -> None:
        """Send a ping frame."""
        self._send(payload, OP_PING)

    def send_pong(self, payload: bytes) -> None:
        """Answer a ping."""
        self._send(payload, OP_PONG)

    def send_close(self, code: int, reason: str = "") -> None:
        """Send a close frame (the close handshake's first or second half)."""
        self._send(struct.pack("!H", code) + reason.encode("utf-8")[:123], OP_CLOSE)

    def abort(self) -> None:
        """Shut the socket down so a `recv` blocked in another thread returns at once."""
        sock = self._ws.sock
        if sock is not None:
            # Already closed or never connected: nothing to wake.
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close_socket(self) -> None:
        """Release the socket; idempotent."""
        # Best effort: the descriptor is gone either way.
        with contextlib.suppress(OSError):
            self._ws.shutdown()  # type: ignore[no-untyped-call]


def _unmask(mask: bytes, data: bytes) -> bytes:
    """XOR ``data`` with the 4-byte ``mask``, as whole integers (fast in C)."""
    n = len(data)
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(key, "little")).to_bytes(n, "little")


def parse_close(payload: bytes) -> tuple[int, str]:
    """Return ``(code, reason)`` of a close frame's payload."""
    if len(payload) < 2:
        return CLOSE_NO_STATUS, ""
    (code,) = struct.unpack("!H", payload[:2])
    return code, payload[2:].decode("utf-8", "replace")
