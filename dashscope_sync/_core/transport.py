"""The only module that imports websocket-client; its errors stop here.

Every websocket-client or socket exception is translated into the library's
own tree at this boundary: a refused upgrade becomes an `APIError` subclass
built from the HTTP status and JSON body, running out of time a
`DashScopeTimeout` (whichever layer noticed it: the TCP connect, a proxy's
CONNECT, TLS or the upgrade), anything else a `TransportError`. Only the
last is chained (``__cause__``), where the socket's or TLS's own error says
more; the first two carry all there is to know, and websocket-client's
exception for a refused upgrade prints the response's raw headers, which a
notebook would show above the error the user needs.

Frames are parsed and built by `framing` (the one framing implementation,
shared with the reactor's non-blocking reads): strict where RFC 6455 says
the client MUST fail the connection (close code 1002), and refusing a
message over ``max_message_size`` from its header (1009). In both cases a
close frame with that code is sent (best effort) and `recv` raises a
`TransportError` carrying it. websocket-client does the handshake only.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import select
import socket
import struct
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import unquote, urlsplit

from .._constants import DEFAULT_MAX_MESSAGE_SIZE
from .._deadline import Deadline
from .._errors import APIError, DashScopeTimeout, TransportError, api_error_class, body_summary
from .._fmt import seconds
from .framing import (
    CLOSE_MESSAGE_TOO_BIG,
    CLOSE_PROTOCOL_ERROR,
    MAX_CONTROL_PAYLOAD,
    OP_BINARY,
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    FrameParser,
    encode_frame,
)

logger = logging.getLogger("dashscope_sync")

if TYPE_CHECKING:
    import ssl

    # Imported at the first connect, not with the package: websocket-client
    # and the ssl module it pulls in are a good part of start-up time.
    import websocket

__all__ = ["OP_BINARY", "OP_CLOSE", "OP_PING", "OP_PONG", "OP_TEXT", "WebSocketTransport"]

#: Bytes asked of the socket per read while idle or paced: one audio delta
#: fits, and an idle session keeps little memory.
_READ_SMALL: Final = 16 * 1024
#: Bytes asked per read during a burst (a read filled the small buffer): a
#: burst of deltas then arrives in few reads.
_READ_LARGE: Final = 256 * 1024

#: Where a reactor's reads land: one buffer of `_READ_LARGE` per reading
#: thread (in practice each reactor's), shared by every connection it reads,
#: since `read_available` copies what it read into the connection's parser at
#: once. A buffer per connection cost each session 16 KiB, and one that grew
#: for a backlog and shrank after it cost a 256 KiB allocation (zeroed) per
#: such read, just when the reactor was behind. Used only by its own thread.
_REACTOR_READS = threading.local()
#: What a connection a reactor reads keeps as its own buffer: none.
_NO_READ: Final = memoryview(b"")


def _tls_wants(exc: OSError) -> bool:
    """Whether a non-blocking TLS read failed only for want of more bytes (or room)."""
    import ssl  # loaded by then: the socket is a TLS one if this can be true

    return isinstance(exc, (ssl.SSLWantReadError, ssl.SSLWantWriteError))


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
    except (ValueError, RecursionError):  # not JSON, or nested too deeply to parse
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
    if not message:  # a gateway's page (HTML, text) as one line: never its markup
        message = body_summary(body, status, exc.status_message)
    cls = api_error_class(status, code)
    return cls(
        f"the server refused the connection: {message}",
        code=code,
        request_id=request_id,
        http_status=status,
    )


def _env(name: str) -> str:
    """An environment variable, lowercase first (as requests, curl and wget read them)."""
    return (os.environ.get(name) or os.environ.get(name.upper()) or "").strip()


def _bypasses_proxy(host: str, port: int) -> bool:
    """Whether ``NO_PROXY`` exempts ``host``, matched as requests matches it.

    Entries are host names (matching the host and its subdomains, with or
    without ``:port``), IP addresses or CIDR blocks; ``*`` alone exempts all.
    """
    import ipaddress

    value = _env("no_proxy").replace(" ", "")
    if value == "*":  # only on its own, as for requests (and curl)
        return True
    entries = [e for e in value.split(",") if e]
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is not None:
        for entry in entries:
            with contextlib.suppress(ValueError):
                if address in ipaddress.ip_network(entry, strict=False):
                    return True
        return False
    with_port = f"{host}:{port}"
    for entry in entries:
        entry = entry.lstrip(".")
        if entry in (host, with_port) or host.endswith("." + entry):
            return True
        if with_port.endswith("." + entry):
            return True
    return False


def _resolve_proxy(url: str, proxy: str | None) -> str | None:
    """The proxy URL to use for ``url``: ``proxy=`` if given, else the environment.

    As requests does for its HTTP calls: ``HTTPS_PROXY`` for ``wss://``
    (``HTTP_PROXY`` for ``ws://``), then ``ALL_PROXY``, unless ``NO_PROXY``
    exempts the host; an explicit ``proxy=`` always applies.
    """
    if proxy is not None:
        return proxy
    parts = urlsplit(url)
    secure = parts.scheme == "wss"
    host = parts.hostname or ""
    port = parts.port or (443 if secure else 80)
    found = _env("https_proxy" if secure else "http_proxy") or _env("all_proxy")
    if not found or _bypasses_proxy(host, port):
        return None
    return found if "://" in found else f"http://{found}"


def _proxy_options(proxy: str | None) -> dict[str, Any]:
    """websocket-client's options for ``proxy``, which is then the only proxy decision.

    websocket-client would otherwise read the environment its own way (and
    let ``NO_PROXY`` override an explicit proxy); `_resolve_proxy` decides
    instead, and ``http_no_proxy`` stops websocket-client from second-guessing.
    """
    if proxy is None:
        # websocket-client reads the environment whenever no proxy host is
        # given; a placeholder host that "*" exempts makes it connect directly.
        return {
            "http_proxy_host": "no-proxy.invalid",
            "http_proxy_port": 1,
            "http_no_proxy": ["*"],
        }
    parts = urlsplit(proxy)
    options: dict[str, Any] = {
        "http_proxy_host": parts.hostname,
        "http_proxy_port": parts.port or (443 if parts.scheme == "https" else 80),
        "proxy_type": parts.scheme if parts.scheme in ("socks4", "socks5", "socks5h") else "http",
        # Matches no host name or address, and is not empty (which would make
        # websocket-client read NO_PROXY itself).
        "http_no_proxy": ["\x00"],
    }
    if parts.username:
        options["http_proxy_auth"] = (unquote(parts.username), unquote(parts.password or ""))
    return options


def _shown_proxy(proxy: str) -> str:
    """The proxy as error messages show it: scheme, host and port, never credentials."""
    parts = urlsplit(proxy)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}"


def _timed_out(exc: BaseException) -> bool:
    """Whether ``exc`` or an exception it wraps is a time-out.

    websocket-client reports a proxy that never answers CONNECT as a
    ``WebSocketProxyException`` raised while handling the socket's time-out.
    """
    import websocket

    seen: BaseException | None = exc
    for _ in range(10):  # a chain, not a cycle, but bounded all the same
        if seen is None:
            return False
        if isinstance(seen, (TimeoutError, websocket.WebSocketTimeoutException)):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class _Watchdog:
    """Shuts the connecting socket down once ``timeout`` has passed in all.

    Thread safety: `watch` and `finish` are called by the connecting thread;
    the timer thread only shuts the socket down, under ``_lock``, if `finish`
    has not run yet.
    """

    def __init__(self, ws: websocket.WebSocket, timeout: float | None) -> None:
        self._ws = ws
        # Orders the timer's shutdown against watch() and finish(): after
        # finish() the socket belongs to the transport and is never touched
        # here. Guards _sock, _finished and expired.
        self._lock = threading.Lock()
        # The socket being connected, before websocket-client has it (TCP,
        # the proxy's CONNECT and TLS are done on it first).
        self._sock: socket.socket | None = None
        self._finished = False
        self.expired = False
        self._timer: threading.Timer | None = None
        if timeout is not None:
            self._timer = threading.Timer(timeout, self._fire)
            self._timer.name = "dashscope_sync-connect-watchdog"
            self._timer.daemon = True
            self._timer.start()

    def _fire(self) -> None:
        with self._lock:
            if self._finished:
                return
            self.expired = True
            self._shutdown(self._ws.sock if self._sock is None else self._sock)

    @staticmethod
    def _shutdown(sock: socket.socket | None) -> None:
        if sock is not None:
            # The plain socket's shutdown, also under TLS: it wakes a handshake
            # blocked in another thread, where SSLSocket.shutdown would not.
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)

    def watch(self, sock: socket.socket) -> None:
        """Shut ``sock`` down when the time is up (at once if it already is)."""
        with self._lock:
            self._sock = sock
            if self.expired:
                self._shutdown(sock)

    def finish(self) -> bool:
        """Stop the timer and wait for it; return whether it fired."""
        with self._lock:
            self._finished = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer.join()
        return self.expired


def _open_socket(
    url: str,
    proxy: str | None,
    ssl_context: ssl.SSLContext | None,
    deadline: Deadline,
    watchdog: _Watchdog,
) -> socket.socket:
    """TCP, an HTTP proxy's ``CONNECT`` and TLS, on a socket the watchdog holds from the start.

    websocket-client would do these steps itself, on a socket nobody else can
    reach until they are over, each of its reads bounded but not their sum;
    here every step is bounded by what is left of the one ``deadline``, and
    the watchdog can cut any of them short.

    Raises what websocket-client raises for the same failures (`OSError`,
    `ssl.SSLError`, ``WebSocketAddressException``, ``WebSocketProxyException``),
    for `connect` to translate.
    """
    import websocket

    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "wss" else 80)
    where = (host, port)
    auth: tuple[str, str] | None = None
    if proxy is not None:
        options = _proxy_options(proxy)
        where = (options["http_proxy_host"], options["http_proxy_port"])
        auth = options.get("http_proxy_auth")
    try:
        addresses = socket.getaddrinfo(*where, 0, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise websocket.WebSocketAddressException(exc) from exc
    sock = None
    for n, (family, kind, proto, _, address) in enumerate(addresses, 1):
        sock = socket.socket(family, kind, proto)
        watchdog.watch(sock)
        try:
            for option in websocket.DEFAULT_SOCKET_OPTION:
                sock.setsockopt(*option)
            sock.settimeout(_time_left(deadline))
            sock.connect(address)
            break
        except OSError as exc:
            sock.close()
            # As websocket-client: a refused or unreachable address moves on to the next.
            if exc.errno not in (errno.ECONNREFUSED, errno.ENETUNREACH) or n == len(addresses):
                raise
    assert sock is not None
    try:
        if proxy is not None:
            sock.settimeout(_time_left(deadline))
            _tunnel(sock, host, port, auth)
        if parts.scheme == "wss":
            context = ssl_context or _default_ssl_context()
            sock.settimeout(_time_left(deadline))
            # No handshake in wrap_socket: the watchdog must hold the TLS
            # socket (which takes over the descriptor) before it starts.
            sock = context.wrap_socket(sock, server_hostname=host, do_handshake_on_connect=False)
            watchdog.watch(sock)
            sock.do_handshake()
    except BaseException:
        sock.close()
        raise
    return sock


def _time_left(deadline: Deadline) -> float | None:
    """The socket timeout for the next connect step: what is left, never 0 (non-blocking)."""
    left = deadline.remaining()
    if left is not None and left <= 0:
        raise TimeoutError("the connect deadline passed")
    return left


#: The longest proxy answer to CONNECT read before giving up on it.
_MAX_PROXY_HEAD: Final = 64 * 1024


def _tunnel(sock: socket.socket, host: str, port: int, auth: tuple[str, str] | None) -> None:
    """Ask the HTTP proxy on ``sock`` for a tunnel to ``host:port``, as websocket-client does."""
    import base64

    import websocket

    request = f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n"
    if auth is not None:
        user, password = auth
        credentials = f"{user}:{password}" if password else user
        token = base64.b64encode(credentials.encode()).decode()
        request += f"Proxy-Authorization: Basic {token}\r\n"
    sock.sendall((request + "\r\n").encode())
    # A byte at a time: whatever follows the answer belongs to TLS or the upgrade.
    head = bytearray()
    while not head.endswith(b"\r\n\r\n"):
        byte = sock.recv(1)
        if not byte:
            raise websocket.WebSocketProxyException("Connection to remote host was lost.")
        head += byte
        if len(head) > _MAX_PROXY_HEAD:
            raise websocket.WebSocketProxyException("the proxy's answer to CONNECT is too long")
    status_line = bytes(head).split(b"\r\n", 1)[0].split()
    status = int(status_line[1]) if len(status_line) > 1 and status_line[1].isdigit() else None
    if status != 200:
        raise websocket.WebSocketProxyException(f"failed CONNECT via proxy status: {status}")


def _default_ssl_context() -> ssl.SSLContext:
    """The context websocket-client builds when given none: the system's CAs, host names checked."""
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    keylog = os.environ.get("SSLKEYLOGFILE")
    if keylog is not None:
        context.keylog_filename = keylog
    bundle = os.environ.get("WEBSOCKET_CLIENT_CA_BUNDLE")
    if bundle and os.path.isfile(bundle):
        context.load_verify_locations(cafile=bundle)
    elif bundle and os.path.isdir(bundle):
        context.load_verify_locations(capath=bundle)
    else:
        context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    return context


def _connect_error(exc: BaseException, host: str | None, port: int, via: str) -> TransportError:
    """The `TransportError` of a failed connect, saying what failed and where."""
    import ssl

    import websocket

    where = f"{host}:{port}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return TransportError(
            f"the TLS certificate of {where} could not be verified "
            f"({exc.verify_message or exc.reason}); if a private or corporate CA signs it, "
            "trust that CA with Client(ssl_context=ssl.create_default_context(cafile=...))"
        )
    if isinstance(exc, ssl.SSLError):
        return TransportError(f"TLS failure connecting to {where}{via}: {exc}")
    if isinstance(exc, websocket.WebSocketAddressException):
        return TransportError(f"cannot resolve host {host!r}{via}: {exc}")
    if "Redirect" in str(exc) and not isinstance(exc, OSError):
        return TransportError(
            f"{where}{via} answered the upgrade with a redirect, which is not followed: "
            "it would carry the API key to another address; connect to the final URL"
        )
    if isinstance(exc, websocket.WebSocketProxyException):
        hint = ""
        if "407" in str(exc):
            hint = " (407: the proxy wants credentials, http://user:password@host:port)"
        return TransportError(f"the proxy refused the tunnel to {where}{via}: {exc}{hint}")
    if isinstance(exc, ConnectionRefusedError) and via:
        return TransportError(f"cannot connect to {where}{via}: the proxy refused the connection")
    if isinstance(exc, ConnectionRefusedError):
        return TransportError(f"cannot connect to {where}: connection refused")
    return TransportError(f"cannot connect to {where}{via}: {str(exc) or type(exc).__name__}")


def _lost(exc: OSError | None) -> TransportError:
    """The error of a read that found the connection gone (``exc``: the socket's
    error; None: the peer closed the socket without a close frame)."""
    if exc is None:
        return TransportError(
            "connection lost: the peer closed the socket without a close frame",
            code=CLOSE_ABNORMAL,
            reason="",
        )
    return TransportError(f"connection lost: {exc}", code=CLOSE_ABNORMAL, reason=str(exc))


class WebSocketTransport:
    """One WebSocket connection, with websocket-client's errors translated.

    Thread safety: `recv` must be called from one thread only (the session's
    reader). The send methods are not locked here: the session serialises
    them with its own send lock, which also orders them against closing.
    """

    __slots__ = (
        "_errors",
        "_failed",
        "_half_sent",
        "_nonblocking",
        "_parser",
        "_poll",
        "_read",
        "_send_timeout",
        "_timeout_error",
        "_write_lock",
        "_ws",
    )

    def __init__(
        self, ws: websocket.WebSocket, max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE
    ) -> None:
        import websocket

        self._ws = ws
        # Serializes frames on the socket, so that the reader's close frame on
        # a protocol error never lands inside a frame another thread is
        # writing. The session's own send lock orders everything else.
        self._write_lock = threading.Lock()
        # Set (under _write_lock) once the reader failed the connection: no
        # frame may follow its close frame.
        self._failed: TransportError | None = None
        # Whether a frame is on the wire in part (`write_some` wrote some of
        # it; its rest waits in a reactor's outbox). Under _write_lock: a
        # close frame must not land inside it.
        self._half_sent = False
        # What a failed send may raise, translated in _send.
        self._errors = (websocket.WebSocketException, OSError, ValueError)
        self._timeout_error = (websocket.WebSocketTimeoutException, TimeoutError)
        # Frames out of the bytes read (reader thread only): the framing
        # shared with the reactor, strict as RFC 6455 says a client must be.
        self._parser = FrameParser(max_message_size)
        # Set once a reactor reads the socket: it is non-blocking, and sends
        # bound themselves by _send_timeout (seconds, None: no bound).
        self._nonblocking = False
        self._send_timeout: float | None = None
        # Where the socket reads land, reused from read to read (a fresh
        # object per read costs an allocation and page faults, more than the
        # read itself). Small while idle, large while a burst lasts (_fill).
        self._read = memoryview(bytearray(_READ_SMALL))
        # Waits for readability, so that the reader can run the keepalive
        # without a socket timeout (which belongs to sends).
        self._poll: Any = None

    @classmethod
    def connect(
        cls,
        url: str,
        headers: Mapping[str, str],
        *,
        timeout: float | None,
        proxy: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE,
        limit: float | None = None,
    ) -> WebSocketTransport:
        """Open the connection and complete the upgrade within ``timeout`` seconds.

        ``proxy`` (an ``http://``, ``https://`` or ``socks*://`` URL) is used
        when given; otherwise ``HTTPS_PROXY``/``HTTP_PROXY``/``ALL_PROXY`` and
        ``NO_PROXY`` decide, read as requests reads them. Error messages name
        the host and port, and the proxy without its credentials. ``limit``
        is the caller's whole time limit, of which ``timeout`` is what is
        left: a time-out states it (default: ``timeout``).

        Raises:
            APIError: The server refused the upgrade (`AuthenticationError` for
                401/403, `RateLimitError` for 429).
            DashScopeTimeout: The connection or upgrade did not finish in time.
            TransportError: DNS, TCP, TLS or proxy failure.
        """
        import websocket

        parts = urlsplit(url)
        host = parts.hostname
        port = parts.port or (443 if parts.scheme == "wss" else 80)
        proxy = _resolve_proxy(url, proxy)
        options: dict[str, Any] = _proxy_options(proxy)
        if ssl_context is not None:
            options["sslopt"] = {"context": ssl_context}
        via = f" through the proxy {_shown_proxy(proxy)}" if proxy else ""
        if limit is None:
            limit = timeout
        ws = websocket.WebSocket(
            sslopt=options.pop("sslopt", {}),
            # One thread reads and the session locks sends itself, so the
            # library's own locks would only add cost.
            enable_multithread=False,
            # websocket-client's pure-Python UTF-8 check is most of its
            # receive cost; decoding the text in C validates it anyway.
            skip_utf8_validation=True,
        )
        # websocket-client applies the timeout to each socket operation; the
        # watchdog makes it one bound on TCP, the proxy, TLS and the upgrade
        # together, so a peer that trickles (or endlessly streams) its answer
        # at any step cannot hold connect().
        deadline = Deadline(timeout)
        watchdog = _Watchdog(ws, timeout)
        try:
            ws.settimeout(timeout)
            if options.get("proxy_type", "http") == "http":
                # A SOCKS proxy is left to websocket-client (and python-socks):
                # bounded from the upgrade on only.
                options = {"socket": _open_socket(url, proxy, ssl_context, deadline, watchdog)}
            ws.connect(  # type: ignore[no-untyped-call]
                url,
                header=[f"{k}: {v}" for k, v in headers.items()],
                # A redirect would carry the Authorization header to whatever
                # host the Location names: refuse it instead.
                redirect_limit=0,
                **options,
            )
            watchdog.finish()
        except websocket.WebSocketBadStatusException as exc:
            watchdog.finish()
            raise _handshake_error(exc) from None
        except (websocket.WebSocketException, OSError) as exc:
            expired = watchdog.finish()
            if expired or _timed_out(exc):
                # What websocket-client raised on the way (its time-out, or the
                # reset the watchdog's shutdown causes) adds nothing to this.
                raise DashScopeTimeout(
                    f"connecting to {host}:{port}{via} timed out after {seconds(limit)}",
                    timeout=limit,
                ) from None
            raise _connect_error(exc, host, port, via) from exc
        except BaseException:
            watchdog.finish()
            raise
        if watchdog.expired:  # it fired just as the upgrade completed
            ws.shutdown()  # type: ignore[no-untyped-call]
            raise DashScopeTimeout(
                f"connecting to {host}:{port}{via} timed out after {seconds(limit)}",
                timeout=limit,
            )
        return cls(ws, max_message_size)

    def settimeout(self, timeout: float | None) -> None:
        """Set how long a send may block before it fails with `DashScopeTimeout`."""
        self._send_timeout = timeout
        if not self._nonblocking:
            self._ws.settimeout(timeout)

    # Non-blocking mode: a reactor reads the socket ----------------------------------

    def set_nonblocking(self) -> None:
        """Hand reading to a reactor: the socket never blocks a read again.

        Reads then go through `read_available` and `next_frame` on the
        reactor's thread; sends wait for room themselves (see `_send_all`).
        """
        self._nonblocking = True
        self._read = _NO_READ  # the reactor's thread reads into its own buffer
        sock = self._ws.sock
        if sock is not None:
            sock.setblocking(False)

    def fileno(self) -> int:
        """The socket's descriptor, for a selector (-1 once it is closed)."""
        sock = self._ws.sock
        return -1 if sock is None else sock.fileno()

    def read_available(self) -> int:
        """One read of what the socket holds into the parser, never blocking; the
        bytes read (0: nothing yet).

        One read per call, so that the frames are parsed (and a message over
        ``max_message_size`` refused) before more is read. Under TLS, call
        again while `pending` says OpenSSL holds decrypted bytes, which no
        selector sees.

        Raises:
            TransportError: The connection was lost (``code`` 1006).
        """
        sock = self._ws.sock
        try:
            read: memoryview = _REACTOR_READS.buffer
        except AttributeError:
            read = _REACTOR_READS.buffer = memoryview(bytearray(_READ_LARGE))
        try:
            if sock is None:
                raise OSError("socket is closed")
            count = sock.recv_into(read)
        except OSError as exc:
            if isinstance(exc, BlockingIOError) or _tls_wants(exc):
                return 0  # nothing (or only part of a TLS record) yet
            raise _lost(exc) from exc
        if not count:
            raise _lost(None)
        self._parser.feed(read[:count])
        return count

    def pending(self) -> bool:
        """Whether TLS holds decrypted bytes not yet read (a selector cannot see them)."""
        pending = getattr(self._ws.sock, "pending", None)
        return pending is not None and pending() > 0

    def next_frame(self) -> tuple[int, bytes] | None:
        """The next frame of what `read_available` read, or None (as `recv`)."""
        try:
            return self._parser.next_frame()
        except TransportError as exc:
            self._fail(exc)
            raise

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
        try:
            return self._recv(timeout)
        except TransportError as exc:
            if exc.code in (CLOSE_PROTOCOL_ERROR, CLOSE_MESSAGE_TOO_BIG):
                self._fail(exc)
            raise

    def _recv(self, timeout: float | None) -> tuple[int, bytes] | None:
        parser = self._parser
        while True:
            frame = parser.next_frame()
            if frame is not None:
                return frame
            if not self._wait_readable(timeout):
                return None
            self._fill()

    def _fail(self, error: TransportError) -> None:
        """Fail the connection (RFC 6455, 7.1.7): send a close frame with the error's code.

        Best effort, and never waits: if another thread is writing a frame
        the close frame is skipped, and the session drops the socket anyway.
        """
        if not self._write_lock.acquire(blocking=False):
            return
        try:
            if self._failed is not None:
                return
            self._failed = error
            if self._half_sent:
                # Its bytes would land inside the half-sent frame: the peer
                # would read garbage. The session drops the socket anyway.
                logger.debug("a frame is half-sent: no close frame for the protocol error")
                return
            code = error.code or CLOSE_PROTOCOL_ERROR
            reason = (error.reason or "").encode("utf-8", "replace")[: MAX_CONTROL_PAYLOAD - 2]
            with contextlib.suppress(*self._errors):
                frame = encode_frame(OP_CLOSE, struct.pack("!H", code) + reason)
                (self._send_once if self._nonblocking else self._send_all)(frame)
        finally:
            self._write_lock.release()

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

    def _fill(self) -> None:
        """Read more bytes into the parser."""
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
            raise _lost(exc) from exc
        if not count:
            raise _lost(None)
        self._parser.feed(read[:count])
        size = len(read)
        if count == size and size < _READ_LARGE:
            self._read = memoryview(bytearray(_READ_LARGE))  # a burst: read more at once
        elif size > _READ_SMALL and count < _READ_SMALL // 2:
            self._read = memoryview(bytearray(_READ_SMALL))  # the burst is over

    def _send(self, payload: bytes | str, opcode: int) -> None:
        data = payload.encode("utf-8") if isinstance(payload, str) else payload
        self._write(self._send_all, encode_frame(opcode, data))

    def _write(self, send: Callable[..., object], *args: object) -> None:
        """Call ``send`` under the write lock, mapping its failures to ours."""
        try:
            with self._write_lock:
                failed = self._failed
                if failed is not None:
                    raise TransportError(
                        f"the connection failed: {failed}", code=failed.code, reason=failed.reason
                    )
                send(*args)
        except self._timeout_error as exc:
            raise DashScopeTimeout(
                "sending timed out: the server is not reading",
                timeout=self._send_timeout if self._nonblocking else self._ws.gettimeout(),
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

    def send_texts(self, texts: Sequence[str]) -> None:
        """Send several text frames, in order, with one write of their joined bytes.

        Each is its own frame, masked and framed as `send_text` would; only
        the system calls are shared.
        """
        self._write(
            self._send_all, b"".join(encode_frame(OP_TEXT, t.encode("utf-8")) for t in texts)
        )

    def _send_all(self, data: bytes) -> None:
        ws = self._ws
        # websocket-client's frame lock, then the socket's own writes, each
        # bounded by the send timeout as websocket-client bounds them (not
        # sendall, whose timeout bounds the whole: a long append to a peer
        # that reads slowly but steadily must not fail). No private
        # websocket-client call.
        with ws.lock:
            sock = ws.sock
            if sock is None:
                raise TransportError("sending failed: the socket is closed", code=CLOSE_ABNORMAL)
            if self._nonblocking:
                self._send_nonblocking(sock, data)
            else:
                view = memoryview(data)
                while view:
                    view = view[sock.send(view) :]
            # Whole frames, or the rest of a half-sent one then whole ones.
            self._half_sent = False

    def _send_nonblocking(self, sock: socket.socket, data: bytes) -> None:
        """``sendall`` on a non-blocking socket (a reactor's), each wait for room
        bounded by the send timeout.

        Waits for room with poll on the sending thread: the reactor's reader
        never waits for a send.
        """
        import ssl

        deadline = Deadline(self._send_timeout)
        view = memoryview(data)
        poller: Any = None
        while view:
            try:
                sent = sock.send(view)
            except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                sent = 0
            if sent:
                view = view[sent:]
                # The bound is on each wait for room, as for a blocking socket.
                deadline = Deadline(self._send_timeout)
                continue
            left = deadline.remaining()
            if left is not None and left <= 0:
                raise TimeoutError("the send timeout passed")
            if poller is None:
                poller = select.poll()
                poller.register(sock, select.POLLOUT)
            poller.poll(None if left is None else int(left * 1000) + 1)

    def _send_once(self, data: bytes) -> None:
        """One non-blocking write of the close frame a protocol error sends (`_fail`)
        on a reactor's thread, which must never wait for a peer: a frame that finds
        no room is skipped (the connection is failing anyway), one that fits in
        part fails the send, as the rest cannot wait."""
        import ssl

        with self._ws.lock:
            sock = self._ws.sock
            if sock is None:
                raise TransportError("sending failed: the socket is closed", code=CLOSE_ABNORMAL)
            try:
                sent = sock.send(data)
            except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                sent = 0
            if not sent:
                logger.debug("no room for a control frame: skipped")
            elif sent < len(data):
                raise TimeoutError("no room for the rest of a control frame")

    # Frames written later: a reactor's outbox (see `Connection`) ---------------------

    @staticmethod
    def frame(opcode: int, payload: bytes | str) -> bytes:
        """One masked frame's bytes, built now and written later (`write`, `write_some`)."""
        data = payload.encode("utf-8") if isinstance(payload, str) else payload
        return encode_frame(opcode, data)

    def write(self, data: bytes | memoryview) -> None:
        """Write frames' bytes as `send_text` writes one: each wait for room bounded
        by the send timeout (`DashScopeTimeout`), a failure a `TransportError`."""
        self._write(self._send_all, data)

    def write_some(self, data: memoryview) -> int:
        """Write what fits of ``data`` now, never waiting: the bytes written (0: no
        room, or a writer holds the socket). For a reactor's thread; non-blocking
        mode only.

        Raises:
            TransportError: The connection failed, or the socket did.
        """
        import ssl

        if not self._write_lock.acquire(blocking=False):
            return 0
        try:
            failed = self._failed
            if failed is not None:
                raise TransportError(
                    f"the connection failed: {failed}", code=failed.code, reason=failed.reason
                )
            # websocket-client's frame lock (a no-op without its multithread
            # mode): ours, _write_lock, is the one that orders the writers.
            with self._ws.lock:
                sock = self._ws.sock
                if sock is None:
                    raise TransportError(
                        "sending failed: the socket is closed", code=CLOSE_ABNORMAL
                    )
                # A TLS write that wanted room is retried with the same bytes
                # (the rest of ``data``), as OpenSSL requires.
                sent = sock.send(data)
                # ``data`` is one frame or its rest (the outbox's): in part means
                # half-sent; whole means a frame boundary; nothing changes nothing.
                if sent:
                    self._half_sent = sent < len(data)
                return sent
        except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
            return 0
        except OSError as exc:
            raise TransportError(
                f"sending failed: {str(exc) or type(exc).__name__}",
                code=CLOSE_ABNORMAL,
                reason=str(exc),
            ) from exc
        finally:
            self._write_lock.release()

    def send_control(self, opcode: int, payload: bytes) -> None:
        """Send a control frame (ping, pong, close) whole, as `send_text` sends."""
        self._send(payload, opcode)

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


def parse_close(payload: bytes) -> tuple[int, str]:
    """Return ``(code, reason)`` of a close frame's payload."""
    if len(payload) < 2:
        return CLOSE_NO_STATUS, ""
    (code,) = struct.unpack("!H", payload[:2])
    return code, payload[2:].decode("utf-8", "replace")
