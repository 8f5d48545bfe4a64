"""The plain-HTTP side of the local server: temporary API keys and a front door.

DashScope mints temporary API keys with ``POST /api/v1/tokens`` on the same
host as the realtime endpoint. The local server serves it on its WebSocket
port, which takes a detour: websockets only parses ``GET`` requests without a
body (versions before 17 close any other request before ``process_request``
runs, and every version refuses a request body). So the server's socket
wrapper looks at the first bytes of each connection; a request whose method is
not ``GET`` never reaches websockets and is answered here, by
:func:`serve_http` (see ``_transport.GatedSocket``). ``GET`` requests,
upgrades included, go to websockets as before.
"""

from __future__ import annotations

import logging
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from websockets.datastructures import Headers
from websockets.http11 import Response

from ._handshake import (
    REALTIME_PATH,
    TOKENS_PATH,
    RequestHeaders,
    authorize,
    error_body,
    http_response,
)

__all__ = [
    "DEFAULT_EXPIRE_SECONDS",
    "MAX_EXPIRE_SECONDS",
    "TOKENS_PATH",
    "HttpRequest",
    "TemporaryToken",
    "TokenStatus",
    "TokenStore",
    "parse_expire_in_seconds",
    "route_http",
    "serve_http",
]

logger = logging.getLogger("dashscope_sync.testing")

DEFAULT_EXPIRE_SECONDS = 60
MAX_EXPIRE_SECONDS = 1800
# Limits of the front door; a real client of the tokens endpoint sends a few
# hundred bytes and no body.
_MAX_HEAD_BYTES = 64 * 1024
_MAX_BODY_BYTES = 1024 * 1024

TokenStatus = Literal["valid", "expired"]


@dataclass(frozen=True)
class TemporaryToken:
    """A temporary API key minted by ``POST /api/v1/tokens``.

    Thread safety: immutable, so safe to share between threads.

    Attributes:
        token: The key, ``st-`` and 32 hex digits.
        expires_at: Expiry as whole epoch seconds (of the server's clock),
            as returned to the client; the key works while ``clock() <
            expires_at``.
        expire_in_seconds: The lifetime that was asked for (or the default).
        issued_at: The server clock's reading when it was minted.
    """

    token: str
    expires_at: int
    expire_in_seconds: int
    issued_at: float


class TokenStore:
    """Temporary API keys and their expiry, read on an injectable clock.

    Thread safety: every method may be called from any thread.
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens: dict[str, TemporaryToken] = {}

    def issue(self, expire_in_seconds: int) -> TemporaryToken:
        """Mint a key valid for ``expire_in_seconds`` from now."""
        now = self._clock()
        token = TemporaryToken(
            token=f"st-{uuid.uuid4().hex}",
            expires_at=int(now) + expire_in_seconds,
            expire_in_seconds=expire_in_seconds,
            issued_at=now,
        )
        with self._lock:
            self._tokens[token.token] = token
        return token

    def status(self, key: str) -> TokenStatus | None:
        """``"valid"`` or ``"expired"`` for a key this store minted, else None."""
        with self._lock:
            token = self._tokens.get(key)
        if token is None:
            return None
        return "valid" if self._clock() < token.expires_at else "expired"

    @property
    def issued(self) -> list[TemporaryToken]:
        """Every key minted so far, in order (a copy)."""
        with self._lock:
            return list(self._tokens.values())


def parse_expire_in_seconds(raw: str | None) -> int | Response:
    """Validate the ``expire_in_seconds`` query parameter (absent: 60).

    Returns:
        The lifetime in seconds, or the 400 ``InvalidParameter`` response.
    """
    if raw is None:
        return DEFAULT_EXPIRE_SECONDS
    text = raw.strip()
    if text.isascii() and text.isdigit() and 1 <= int(text) <= MAX_EXPIRE_SECONDS:
        return int(text)
    return http_response(
        400,
        error_body(
            "InvalidParameter",
            f"expire_in_seconds must be an integer between 1 and {MAX_EXPIRE_SECONDS}, "
            f"got {raw!r}.",
        ),
    )


@dataclass(frozen=True)
class HttpRequest:
    """A plain HTTP request read by the front door.

    Attributes:
        method: The request method, e.g. ``POST``.
        target: The request target (path and query string).
        headers: The request headers.
        body: The request body (``Content-Length`` bytes).
    """

    method: str
    target: str
    headers: RequestHeaders
    body: bytes


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _read_request(sock: socket.socket, first: bytes) -> HttpRequest:
    data = bytearray(first)
    while b"\r\n\r\n" not in data:
        if len(data) > _MAX_HEAD_BYTES:
            raise _BadRequest(431, "The request headers are too large.")
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed before the end of the request headers")
        data.extend(chunk)
    head, _, rest = bytes(data).partition(b"\r\n\r\n")
    try:
        lines = head.decode("iso-8859-1").split("\r\n")
        method, target, version = lines[0].split(" ", 2)
        items = [tuple(part.strip() for part in line.split(":", 1)) for line in lines[1:]]
        if not version.startswith("HTTP/1.") or any(len(item) != 2 for item in items):
            raise ValueError(lines[0])
    except ValueError:
        raise _BadRequest(400, "Malformed HTTP request.") from None
    headers = RequestHeaders((name, value) for name, value in items)
    if "Transfer-Encoding" in headers:
        raise _BadRequest(411, "Chunked request bodies are not supported: send Content-Length.")
    length_text = headers.get("Content-Length", "0").strip()
    if not length_text.isdigit():
        raise _BadRequest(400, "Invalid Content-Length.")
    length = int(length_text)
    if length > _MAX_BODY_BYTES:
        raise _BadRequest(413, "The request body is too large.")
    body = bytearray(rest)
    while len(body) < length:
        chunk = sock.recv(min(65536, length - len(body)))
        if not chunk:
            raise EOFError("connection closed before the end of the request body")
        body.extend(chunk)
    return HttpRequest(method, target, headers, bytes(body[:length]))


def serve_http(
    sock: socket.socket, first: bytes, handle: Callable[[HttpRequest], Response]
) -> None:
    """Read one plain HTTP request from ``sock``, answer it with ``handle``, and return.

    ``first`` holds the bytes already read from the socket. Every reply has a
    ``Content-Length`` and ``Connection: close``; the caller closes the socket.
    Malformed or oversized requests get a 4xx JSON error without reaching
    ``handle``.
    """
    try:
        request = _read_request(sock, first)
    except _BadRequest as exc:
        response = http_response(exc.status, error_body("InvalidParameter", exc.message))
        method = ""
    except (OSError, EOFError) as exc:
        logger.debug("plain HTTP request abandoned: %s", exc)
        return
    else:
        method = request.method
        response = handle(request)
    if method == "HEAD":
        # Same headers, Content-Length included, but no body.
        response = Response(
            response.status_code, response.reason_phrase, Headers(response.headers), b""
        )
    try:
        sock.sendall(response.serialize())
    except OSError as exc:
        logger.debug("could not send the HTTP response: %s", exc)


def route_http(
    request: HttpRequest,
    path: str,
    query: dict[str, str],
    *,
    api_key: str | None,
    tokens: TokenStore,
) -> Response:
    """Answer a plain HTTP request: the tokens endpoint, else 404 / 405.

    ``POST /api/v1/tokens?expire_in_seconds=N`` needs a permanent key (a
    temporary one gets 403 ``AccessDenied``, an expired one 401), takes N in
    1..1800 (default 60; else 400 ``InvalidParameter``), ignores any body and
    replies 200 ``{"token": "st-...", "expires_at": <epoch seconds>}``.
    """
    if path not in (TOKENS_PATH, REALTIME_PATH):
        return http_response(
            404, error_body("NotFound", f"The requested path {path!r} was not found.")
        )
    if path == REALTIME_PATH or request.method != "POST":
        allowed = "GET (a WebSocket upgrade)" if path == REALTIME_PATH else "POST"
        return http_response(405, error_body("MethodNotAllowed", f"Use {allowed} for {path}."))
    auth = [request.headers["Authorization"]] if "Authorization" in request.headers else []
    rejection = authorize(auth, api_key, tokens.status, temporary_ok=False)
    if rejection is not None:
        return rejection
    seconds = parse_expire_in_seconds(query.get("expire_in_seconds"))
    if isinstance(seconds, Response):
        return seconds
    token = tokens.issue(seconds)
    return http_response(200, {"token": token.token, "expires_at": token.expires_at})
