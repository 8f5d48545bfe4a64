"""The HTTP side of the local server: request records, auth and handshake replies.

DashScope refuses a bad WebSocket upgrade with a plain HTTP error and a JSON
body (``{"code": ..., "message": ..., "request_id": ...}``); this module builds
those responses for websockets' ``process_request`` hook, checks the
``Authorization`` header (permanent or temporary key) for the upgrade and the
tokens endpoint alike, and keeps what the client sent, for tests to inspect.
"""

from __future__ import annotations

import email.utils
import hmac
import http
import json
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from websockets.datastructures import Headers
from websockets.http11 import Request, Response

__all__ = [
    "API_PATH",
    "HandshakeRecord",
    "REALTIME_PATH",
    "RequestHeaders",
    "TOKENS_PATH",
    "authorize",
    "check_request",
    "error_body",
    "http_response",
    "parse_target",
    "peer_text",
]

REALTIME_PATH = "/api-ws/v1/realtime"
API_PATH = "/api/v1"
TOKENS_PATH = API_PATH + "/tokens"


class RequestHeaders(Mapping[str, str]):
    """Read-only HTTP headers with case-insensitive lookup.

    Iteration yields the names as the client spelled them; repeated headers
    are joined with ``", "``.

    Thread safety: immutable, so safe to share between threads.

    Example:
        >>> headers = RequestHeaders([("Authorization", "Bearer k")])
        >>> headers["authorization"]
        'Bearer k'
    """

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: dict[str, tuple[str, str]] = {}
        for name, value in items:
            key = name.lower()
            if key in self._items:
                first_name, first_value = self._items[key]
                self._items[key] = (first_name, f"{first_value}, {value}")
            else:
                self._items[key] = (name, value)

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()][1]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        # Never show credentials in a repr that may end up in a test log.
        shown = {
            name: ("<redacted>" if name.lower() == "authorization" else value)
            for name, value in self._items.values()
        }
        return f"RequestHeaders({shown!r})"


@dataclass(frozen=True)
class HandshakeRecord:
    """One HTTP request the server received on its listening socket.

    Thread safety: immutable, so safe to share between threads.

    Attributes:
        path: The URL path, without the query string.
        query: Query parameters (the first value of each name).
        headers: Request headers (case-insensitive lookup).
        status: The HTTP status the server chose: 101 for an accepted
            upgrade (the handshake may still fail afterwards), else the
            status of its reply.
        method: The request method (``GET`` for WebSocket upgrades).
        body: The request body (always empty for upgrades).
        response_body: The body of the server's reply (empty for an
            accepted upgrade).
    """

    path: str
    query: dict[str, str]
    headers: RequestHeaders
    status: int
    method: str = "GET"
    body: bytes = field(default=b"", repr=False)
    response_body: bytes = field(default=b"", repr=False)


def peer_text(address: Any) -> str:
    """A socket address as ``HOST:PORT`` (IPv6 hosts in brackets)."""
    if isinstance(address, tuple) and len(address) >= 2:
        host = f"[{address[0]}]" if ":" in str(address[0]) else str(address[0])
        return f"{host}:{address[1]}"
    return str(address)


def parse_target(target: str) -> tuple[str, dict[str, str]]:
    """Split a request target into its path and a query dict (first value wins)."""
    parts = urlsplit(target)
    query: dict[str, str] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        query.setdefault(name, value)
    return parts.path, query


def error_body(code: str, message: str) -> dict[str, str]:
    """Return a DashScope-style error body with a fresh ``request_id``."""
    return {"code": code, "message": message, "request_id": str(uuid.uuid4())}


def http_response(
    status: int,
    body: Mapping[str, Any] | bytes | str,
    content_type: str | None = None,
) -> Response:
    """Build a complete HTTP response for ``process_request`` to return.

    ``connection.respond()`` would force ``text/plain``; DashScope answers
    with ``application/json``, so the headers are written here.

    Args:
        status: Any HTTP status code, including non-standard ones.
        body: A mapping (sent as JSON), text (``text/plain``) or bytes
            (``application/octet-stream``).
        content_type: Overrides the Content-Type chosen from ``body``.
    """
    if isinstance(body, Mapping):
        payload = json.dumps(dict(body), ensure_ascii=False).encode("utf-8")
        default_type = "application/json"
    elif isinstance(body, str):
        payload = body.encode("utf-8")
        default_type = "text/plain; charset=utf-8"
    else:
        payload = bytes(body)
        default_type = "application/octet-stream"
    try:
        reason = http.HTTPStatus(status).phrase
    except ValueError:
        reason = "Unknown"
    headers = Headers(
        [
            ("Date", email.utils.formatdate(usegmt=True)),
            ("Connection", "close"),
            ("Content-Length", str(len(payload))),
            ("Content-Type", content_type or default_type),
        ]
    )
    return Response(status, reason, headers, payload)


def _bearer_token(headers: list[str]) -> str | None:
    # More than one Authorization header is ambiguous: refuse it like a bad key.
    if len(headers) != 1:
        return None
    scheme, _, token = headers[0].strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def authorize(
    headers: list[str],
    api_key: str | None,
    token_status: Callable[[str], str | None] | None = None,
    *,
    temporary_ok: bool = True,
) -> Response | None:
    """Check the ``Authorization`` header values of a request.

    A temporary key (``token_status`` gives ``"valid"`` or ``"expired"`` for
    the keys the server minted) is accepted while valid, unless
    ``temporary_ok`` is false (403 ``AccessDenied``: a temporary key cannot
    mint keys); an expired one gets 401 ``InvalidApiKey`` saying it expired.
    Otherwise the key must be ``api_key`` (None accepts any key, or none).

    Returns:
        The rejection to send, or None if the request may proceed.
    """
    token = _bearer_token(headers)
    status = token_status(token) if token is not None and token_status is not None else None
    if status == "expired":
        return http_response(
            401, error_body("InvalidApiKey", "Invalid API-key provided: the temporary key expired.")
        )
    if status == "valid":
        if temporary_ok:
            return None
        return http_response(
            403,
            error_body("AccessDenied", "A temporary API key cannot create temporary API keys."),
        )
    if api_key is None:
        return None
    # Constant-time comparison: the habit costs nothing, even in a test server.
    if token is not None and hmac.compare_digest(token.encode(), api_key.encode()):
        return None
    return http_response(401, error_body("InvalidApiKey", "Invalid API-key provided."))


def check_request(
    request: Request,
    api_key: str | None,
    token_status: Callable[[str], str | None] | None = None,
) -> Response | None:
    """Apply the endpoint's own rules to an upgrade (``GET``) request.

    Order: the tokens path (405 ``MethodNotAllowed``: it takes ``POST``),
    other unknown paths (404 ``NotFound``), bad key (401 ``InvalidApiKey``,
    see :func:`authorize`), missing model (400 ``InvalidParameter``).

    Returns:
        The rejection to send, or None to go on with the upgrade.
    """
    path, query = parse_target(request.path)
    if path == TOKENS_PATH:
        return http_response(
            405, error_body("MethodNotAllowed", f"Use POST for {TOKENS_PATH}, not GET.")
        )
    if path != REALTIME_PATH:
        return http_response(
            404, error_body("NotFound", f"The requested path {path!r} was not found.")
        )
    rejection = authorize(request.headers.get_all("Authorization"), api_key, token_status)
    if rejection is not None:
        return rejection
    if not query.get("model", "").strip():
        return http_response(
            400,
            error_body("InvalidParameter", "Missing required query parameter: model."),
        )
    return None
