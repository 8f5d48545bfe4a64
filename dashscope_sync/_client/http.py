"""The only module that uses requests: temporary keys over HTTP.

``requests`` is imported on first use, not with the package, so programs
that never call the HTTP API do not pay for it at start-up. Its errors are
translated here, at this one boundary, and chained as ``__cause__``.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

import attrs

from .._deadline import check_timeout
from .._errors import (
    APIError,
    ConfigError,
    DashScopeError,
    DashScopeTimeout,
    TransportError,
    api_error_class,
    body_summary,
)
from .._fmt import seconds
from .._wire.config import NOT_GIVEN, NotGiven

if TYPE_CHECKING:
    import requests

    from .client import Client

__all__ = ["TemporaryKey", "TokenService"]

#: The documented range of ``expire_in_seconds``.
MIN_EXPIRE, MAX_EXPIRE = 1, 1800
#: The longest reply body read from the HTTP API: a token reply is a few
#: hundred bytes, and a broken or hostile server must not fill memory.
MAX_REPLY_BYTES: Final = 1024 * 1024


@attrs.frozen
class TemporaryKey:
    """A short-lived API key, made by ``client.tokens.create()``.

    Use ``token`` as the ``api_key`` of a `Client`, e.g. in a process you do
    not want to hold your long-lived key. Its ``repr`` hides the token.

    Attributes:
        token: The temporary key (``st-...``).
        expires_at: When it expires, in seconds since the epoch.
    """

    token: str = attrs.field(repr=False)
    expires_at: float

    @property
    def expires_in(self) -> float:
        """Seconds until it expires (negative once expired)."""
        return self.expires_at - time.time()

    def __repr__(self) -> str:
        return f"TemporaryKey(token='{self.token[:3]}***', expires_at={self.expires_at})"


class TokenService:
    """``client.tokens``: temporary API keys.

    Thread safety: usable from any thread; it shares the client's
    ``requests.Session``.
    """

    def __init__(self, client: Client) -> None:
        self._client = client
        # Guards the lazy creation of the default requests.Session.
        self._lock = threading.Lock()
        self._own_session: requests.Session | None = None

    def _session(self) -> requests.Session:
        if self._client.http_session is not None:
            return self._client.http_session
        with self._lock:
            if self._own_session is None:
                import requests

                self._own_session = requests.Session()
            return self._own_session

    def close(self) -> None:
        """Close the requests.Session this service made (never a user's); idempotent."""
        with self._lock:
            session, self._own_session = self._own_session, None
        if session is not None:
            session.close()

    def create(
        self, expire_in_seconds: int = 60, *, timeout: float | NotGiven | None = NOT_GIVEN
    ) -> TemporaryKey:
        """Make a temporary key (``POST /api/v1/tokens``).

        Args:
            expire_in_seconds: Its lifetime, 1 to 1800 seconds.
            timeout: Seconds the request may take; None for no limit; default
                the client's ``http_timeout``.

        Raises:
            ConfigError: ``expire_in_seconds`` out of range (nothing is sent).
            AuthenticationError, RateLimitError, APIError: The service refused.
            DashScopeTimeout: No answer in time.
            TransportError: The request failed (DNS, TCP, TLS, proxy...).
        """
        if (
            isinstance(expire_in_seconds, bool)
            or not isinstance(expire_in_seconds, int)
            or not MIN_EXPIRE <= expire_in_seconds <= MAX_EXPIRE
        ):
            raise ConfigError(
                f"expire_in_seconds must be a whole number from {MIN_EXPIRE} to {MAX_EXPIRE}, "
                f"got {expire_in_seconds!r}"
            )
        client = self._client
        limit = client.http_timeout if timeout is NOT_GIVEN else check_timeout(timeout)
        data = _post_json(
            self._session(),
            f"{client.http_base_url}/tokens",
            params={"expire_in_seconds": str(expire_in_seconds)},
            headers=client.request_headers(),
            timeout=limit,
            proxy=client.proxy,
        )
        token, expires_at = data.get("token"), data.get("expires_at")
        if not isinstance(token, str) or not token or not isinstance(expires_at, (int, float)):
            raise APIError("the service's reply has no token and expiry", code="UnexpectedResponse")
        return TemporaryKey(token=token, expires_at=float(expires_at))


def _reasons(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and the exceptions it wraps, outermost first (urllib3 nests them)."""
    pending: list[BaseException] = [exc]
    seen: set[int] = set()
    while pending and len(seen) < 20:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        pending += [e for e in (current.__cause__, current.__context__) if e is not None]
        pending += [a for a in current.args if isinstance(a, BaseException)]
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException):
            pending.append(reason)


def _timed_out(exc: BaseException) -> bool:
    """Whether a time-out is somewhere in ``exc``'s wrapped reasons."""
    import requests
    from urllib3.exceptions import NewConnectionError
    from urllib3.exceptions import TimeoutError as Urllib3Timeout

    # NewConnectionError subclasses urllib3's ConnectTimeoutError for
    # history's sake, but is a refusal, not a time-out.
    return any(
        isinstance(reason, (TimeoutError, requests.Timeout, Urllib3Timeout))
        and not isinstance(reason, NewConnectionError)
        for reason in _reasons(exc)
    )


def _socket_failure(exc: BaseException, url: str) -> str | None:
    """What the socket said, in words, for a request that never reached the server.

    urllib3's own text ("HTTPConnectionPool(...): Max retries exceeded...
    NewConnectionError(...)") names its internals; the operating system's
    reason ("Connection refused") is what a person can act on.
    """
    import socket

    from urllib3.exceptions import NameResolutionError, NewConnectionError

    reasons = list(_reasons(exc))
    if not any(isinstance(r, (NewConnectionError, NameResolutionError)) for r in reasons):
        return None
    parts = urlsplit(url)
    for reason in reasons:
        if isinstance(reason, socket.gaierror):
            return f"cannot resolve host {parts.hostname!r}: {reason.strerror or reason}"
        if isinstance(reason, OSError) and reason.strerror:
            port = parts.port or (443 if parts.scheme == "https" else 80)
            return f"cannot connect to {parts.hostname}:{port}: {reason.strerror}"
    return None


def _redacted(text: str) -> str:
    """``text`` with any ``user:password@`` of a URL in it replaced by ``***@``."""
    return re.sub(r"(?<=://)[^/@\s:]+(:[^/@\s]*)?@", "***@", text)


def _read_capped(
    reply: requests.Response, url: str, started: float, timeout: float | None
) -> bytes:
    """The reply's body, refused past `MAX_REPLY_BYTES` or once ``timeout`` has passed in all."""
    body = bytearray()
    for chunk in reply.iter_content(chunk_size=16384):
        body += chunk
        if len(body) > MAX_REPLY_BYTES:
            raise APIError(
                f"the reply to POST {url} is longer than {MAX_REPLY_BYTES} bytes",
                code="UnexpectedResponse",
                http_status=reply.status_code,
            )
        if timeout is not None and time.monotonic() - started > timeout:
            raise DashScopeTimeout(
                f"POST {url} timed out after {seconds(timeout)}", timeout=timeout
            )
    return bytes(body)


def _translated(exc: requests.RequestException, url: str, timeout: float | None) -> DashScopeError:
    """Our error for one of requests' (the one boundary where they are translated)."""
    import requests

    # A proxy that never answers CONNECT is a ProxyError wrapping a time-out:
    # time-outs are DashScopeTimeout whichever layer saw them.
    if isinstance(exc, requests.Timeout) or _timed_out(exc):
        return DashScopeTimeout(f"POST {url} timed out after {seconds(timeout)}", timeout=timeout)
    if isinstance(exc, requests.exceptions.SSLError) and "CERTIFICATE_VERIFY_FAILED" in str(exc):
        return TransportError(
            f"POST {url} failed: the TLS certificate could not be verified; if a private "
            "or corporate CA signs it, pass http_session with verify='ca-bundle.pem' "
            f"({_redacted(str(exc))})"
        )
    failure = _socket_failure(exc, url)
    if failure is not None:
        return TransportError(f"POST {url} failed: {failure}")
    return TransportError(f"POST {url} failed: {_redacted(str(exc))}")


def _post_json(
    session: requests.Session,
    url: str,
    *,
    params: dict[str, str],
    headers: dict[str, str],
    timeout: float | None,
    proxy: str | None = None,
) -> dict[str, Any]:
    """POST with an empty body and return the JSON object, translating every failure.

    ``proxy`` (the client's ``proxy=``) overrides the session's proxies and the
    environment's, as it does for the WebSocket.
    """
    import requests

    proxies = {"http": proxy, "https": proxy} if proxy is not None else None
    started = time.monotonic()
    try:
        # stream=True: the body is read below, within a size cap and the
        # timeout as a whole, not just per read.
        reply = session.post(
            url,
            params=params,
            headers=headers,
            data=b"",
            timeout=timeout,
            proxies=proxies,
            stream=True,
        )
        try:
            body = _read_capped(reply, url, started, timeout)
        finally:
            reply.close()
    except requests.RequestException as exc:
        raise _translated(exc, url, timeout) from exc
    try:
        data: Any = json.loads(body) if body else None
    except (ValueError, RecursionError):  # not JSON, or nested too deeply to parse
        data = None
    if reply.status_code != 200:
        code = message = request_id = None
        if isinstance(data, dict):
            code = data.get("code") if isinstance(data.get("code"), str) else None
            message = data.get("message") if isinstance(data.get("message"), str) else None
            rid = data.get("request_id")
            request_id = rid if isinstance(rid, str) else None
        if not message:
            message = body_summary(body, reply.status_code, reply.reason)
        cls = api_error_class(reply.status_code, code)
        raise cls(message, code=code, request_id=request_id, http_status=reply.status_code)
    if not isinstance(data, dict):
        raise APIError(
            f"the service's reply is not a JSON object (HTTP {reply.status_code})",
            code="UnexpectedResponse",
            http_status=reply.status_code,
        )
    return data
