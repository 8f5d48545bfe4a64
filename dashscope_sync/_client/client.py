"""`Client` and its realtime service: credentials, endpoints and `connect`."""

from __future__ import annotations

import functools
import logging
import os
import platform
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .._core.core import SessionCore
from .._core.reactor import Reactor
from .._core.transport import WebSocketTransport
from .._deadline import Deadline, check_timeout
from .._errors import ConfigError, DashScopeTimeout
from .._fmt import seconds
from .._sessions.conversation import RealtimeSession
from .._sessions.speech import SpeechService
from .._sessions.transcription import TranscriptionService
from .._version import __version__
from .._wire.config import NOT_GIVEN, NotGiven, RealtimeConfig
from .._wire.dialects import check_host, check_realtime_family
from .._wire.regions import check_workspace, resolve_endpoints
from .http import TokenService

if TYPE_CHECKING:
    import ssl

    import requests

__all__ = ["API_KEY_ENV", "Client", "RealtimeService", "open_core"]

logger = logging.getLogger("dashscope_sync")

#: The environment variable the API key is read from when none is given.
API_KEY_ENV: Final = "DASHSCOPE_API_KEY"

USER_AGENT: Final = (
    f"dashscope-sync/{__version__} python/{platform.python_version()} "
    f"({platform.system() or 'unknown'})"
)

# Header values must not be able to smuggle in more headers: fullmatch, as
# "$" would let a trailing newline through.
_SAFE_HEADER_VALUE = re.compile(r"[\x21-\x7e]+")


def _check_url(url: object, name: str, schemes: tuple[str, ...]) -> str:
    if not isinstance(url, str):
        raise ConfigError(f"{name} must be a URL string, got {url!r}")
    parts = urlsplit(url)
    if parts.scheme not in schemes or not parts.hostname:
        raise ConfigError(f"{name} must be a {' or '.join(schemes)} URL with a host, got {url!r}")
    return url


def _check_token(value: object, name: str) -> str:
    if not isinstance(value, str) or not _SAFE_HEADER_VALUE.fullmatch(value):
        shown = "an empty string" if value == "" else f"a {type(value).__name__}"
        if isinstance(value, str) and value:
            shown = "a string with spaces or control characters"
        raise ConfigError(f"{name} must be a printable string without spaces, got {shown}")
    return value


def _is_ssl_context(value: object) -> bool:
    import ssl  # only when a context is given: ssl is slow to import

    return isinstance(value, ssl.SSLContext)


def _with_model(url: str, model: str) -> str:
    """Merge ``model`` into the URL's query (URL-encoded), once.

    The model in the query chooses what the service runs, and the session's
    model chooses the wire dialect, so the two must be the same model.

    Raises:
        ConfigError: The URL already names another model.
    """
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    others = sorted({v for k, v in pairs if k == "model" and v != model})
    if others:
        raise ConfigError(
            f"base_url names model={others[0]!r} but the session's model is {model!r}: "
            "remove model= from base_url (the session adds its own) or connect with that model"
        )
    query = [(k, v) for k, v in pairs if k != "model"]
    query.append(("model", model))
    return urlunsplit(parts._replace(query=urlencode(query)))


class Client:
    """Credentials and endpoints for DashScope; opens realtime sessions.

    Constructing a client does no I/O and starts no threads.

    Example::

        client = ds.Client()  # the key from DASHSCOPE_API_KEY
        with client.realtime.connect(model=ds.MODEL_QWEN_OMNI_TURBO_REALTIME_LATEST) as session:
            ...

    Args:
        api_key: The DashScope API key (or a temporary key). Defaults to the
            ``DASHSCOPE_API_KEY`` environment variable.
        workspace: A workspace id (letters, digits, ``_``, ``-``; at most 64),
            sent as ``X-DashScope-WorkSpace`` and, without ``base_url``, the
            first label of the host. Defaults to ``DASHSCOPE_WORKSPACE``.
        region: One of `REGIONS`. Defaults to ``DASHSCOPE_REGION``, then
            ``cn-beijing``. Keys are bound to their region (and workspace).
        base_url: The realtime WebSocket endpoint, used as given (a gateway,
            the local server, `DEFAULT_REALTIME_URL_INTL`). Default: with a
            workspace ``wss://{workspace}.{region}.maas.aliyuncs.com/api-ws/v1/realtime``,
            else the region's legacy host. Read it back as ``client.realtime_url``.
        http_base_url: The HTTP API base (temporary keys), ending in
            ``/api/v1`` (appended when you give a bare host). Defaults to the
            host the realtime URL resolved to, over http(s): the workspace or
            legacy host, or the host of a ``base_url`` you gave, so the key
            only goes where you chose. Read it back as ``client.http_base_url``.
        http_session: A ``requests.Session`` for HTTP calls (proxies, retries,
            certificates); one is made when needed if not given.
        connect_timeout: Default seconds `connect` may take for the upgrade
            and the wait for ``session.created`` together (None: no limit).
        http_timeout: Seconds an HTTP call may take (None: no limit).
        proxy: An ``http://`` (HTTP CONNECT) or ``socks5://`` proxy URL, with
            ``user:password@`` if it needs them, for the WebSocket and the
            HTTP calls alike. By default ``HTTPS_PROXY`` (``HTTP_PROXY`` for
            ``ws://``), ``ALL_PROXY`` and ``NO_PROXY`` are read from the
            environment, the way requests reads them, for both.
        ssl_context: The TLS context for ``wss://``, e.g.
            ``ssl.create_default_context(cafile="corporate-ca.pem")`` to trust
            a private or corporate CA (verification stays on). For the HTTP
            calls, give ``http_session`` a ``verify="corporate-ca.pem"``.
        reactor: A `Reactor` to read this client's sessions on its one
            thread and run their handlers on its pool (shared mode, for
            hundreds of sessions in one process): every session the client
            opens (realtime, speech, transcription), with the same API. Several
            clients may share one; close it after their sessions (it ends
            those still open). None (default): each session has its own
            reader and handler threads.

    Raises:
        ConfigError: No API key, or a bad argument.

    Thread safety: a client is immutable; share it between threads and
    connect from any of them.
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        workspace: str | None = None,
        region: str | None = None,
        base_url: str | None = None,
        http_base_url: str | None = None,
        http_session: requests.Session | None = None,
        connect_timeout: float | None = 10.0,
        http_timeout: float | None = 30.0,
        proxy: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        reactor: Reactor | None = None,
    ) -> None:
        if api_key is None:
            api_key = os.environ.get(API_KEY_ENV) or None
            if api_key is None:
                raise ConfigError(
                    f"no API key: pass api_key=... or set the {API_KEY_ENV} environment variable"
                )
            api_key = api_key.strip()
        self._api_key = _check_token(api_key, "api_key")
        endpoints = resolve_endpoints(
            workspace=None if workspace is None else check_workspace(workspace),
            region=region,
            base_url=None if base_url is None else _check_url(base_url, "base_url", ("ws", "wss")),
            http_base_url=(
                None
                if http_base_url is None
                else _check_url(http_base_url, "http_base_url", ("http", "https"))
            ),
        )
        #: The workspace id in use (argument or ``DASHSCOPE_WORKSPACE``), or None.
        self.workspace = endpoints.workspace
        #: The region id in use (argument, ``DASHSCOPE_REGION`` or ``cn-beijing``).
        self.region = endpoints.region
        #: The realtime WebSocket URL sessions connect to (without ``?model=``).
        self.realtime_url = endpoints.realtime_url
        #: The same as `realtime_url` (the name before regions were resolved).
        self.base_url = endpoints.realtime_url
        #: The HTTP API base URL (``tokens.create()`` posts under it).
        self.http_base_url = endpoints.http_base_url
        self.http_session = http_session
        self.connect_timeout = check_timeout(connect_timeout)
        self.http_timeout = check_timeout(http_timeout)
        if proxy is not None:
            _check_url(proxy, "proxy", ("http", "https", "socks4", "socks5", "socks5h"))
            try:
                _ = urlsplit(proxy).port  # parsing the port checks it
            except ValueError as exc:
                raise ConfigError(f"proxy has a bad port: {exc}") from None
        self.proxy = proxy
        if ssl_context is not None and not _is_ssl_context(ssl_context):
            raise ConfigError(f"ssl_context must be an ssl.SSLContext, got {ssl_context!r}")
        self.ssl_context = ssl_context
        if reactor is not None and not isinstance(reactor, Reactor):
            raise ConfigError(f"reactor must be a dashscope_sync.Reactor, got {reactor!r}")
        #: The `Reactor` reading this client's sessions, or None (a thread each).
        self.reactor = reactor
        #: Realtime sessions: ``client.realtime.connect(...)``.
        self.realtime = RealtimeService(self)
        #: Temporary keys: ``client.tokens.create(expire_in_seconds=60)``.
        self.tokens = TokenService(self)
        #: Text to speech (Qwen-TTS-Realtime): ``client.speech.connect(...)``.
        self.speech = SpeechService(functools.partial(open_core, self))
        #: Speech recognition (Qwen-ASR-Realtime): ``client.transcription.connect(...)``.
        self.transcription = TranscriptionService(functools.partial(open_core, self))

    def close(self) -> None:
        """Release the HTTP connection pool the client made for itself; idempotent.

        Sessions it opened are independent: close them yourself. A
        ``requests.Session`` you passed as ``http_session`` stays yours to close.
        """
        self.tokens.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def api_key(self) -> str:
        """The API key in use (kept out of ``repr`` and logs)."""
        return self._api_key

    def __repr__(self) -> str:
        ws = f" workspace={self.workspace!r}" if self.workspace else ""
        return f"<Client base_url={self.base_url!r}{ws} api_key='***'>"

    def request_headers(self) -> dict[str, str]:
        """The headers every request of this client carries (the key among them)."""
        headers = {"Authorization": f"Bearer {self._api_key}", "User-Agent": USER_AGENT}
        if self.workspace:
            headers["X-DashScope-WorkSpace"] = self.workspace
        return headers


def open_core(
    client: Client,
    config: RealtimeConfig,
    timeout: float | NotGiven | None,
    prepare: Callable[[SessionCore], None] | None = None,
) -> tuple[SessionCore, Deadline, float | None]:
    """Connect a session core for ``config`` and wait for ``session.created``.

    The steps every kind of session shares, within one deadline: the host
    check, the upgrade and the wait for the first event. ``prepare`` runs
    on the core before its reader starts (a family's books). Returns the
    core and the deadline (with its limit) left for the configuration; on
    any failure the connection is dropped at once.
    """
    check_host(config, client.realtime_url)
    limit = client.connect_timeout if timeout is NOT_GIVEN else check_timeout(timeout)
    deadline = Deadline(limit)
    url = _with_model(client.realtime_url, config.model)
    headers = {**client.request_headers(), **config.extra_headers}
    logger.debug("connecting to %s", url)
    remaining = deadline.remaining()
    if remaining is not None and remaining <= 0:
        raise DashScopeTimeout(f"connecting timed out after {seconds(limit)}", timeout=limit)
    transport = WebSocketTransport.connect(
        url,
        headers,
        timeout=remaining,
        proxy=client.proxy,
        ssl_context=client.ssl_context,
        max_message_size=config.max_message_size,
        limit=limit,
    )
    core = SessionCore(transport, config, client.reactor)
    try:
        if prepare is not None:
            prepare(core)
        core.connection.start()
        core.wait_ready(deadline, limit)
    except BaseException:
        core.abort()
        raise
    return core, deadline, limit


class RealtimeService:
    """``client.realtime``: opens realtime sessions.

    Thread safety: stateless beyond its client; use from any thread.
    """

    def __init__(self, client: Client) -> None:
        self._client = client

    def connect(
        self,
        config: RealtimeConfig | None = None,
        *,
        model: str | None = None,
        timeout: float | NotGiven | None = NOT_GIVEN,
    ) -> RealtimeSession:
        """Open a session and return it once the server has sent ``session.created``.

        Sends no client event of its own: configure with `update_session`.

        Args:
            config: The session's options; or give just ``model=``.
            model: The model, when no ``config`` is given.
            timeout: Seconds for the upgrade plus the wait for
                ``session.created``, together; None for no limit; default
                the client's ``connect_timeout``.

        Returns:
            A ready `RealtimeSession` (``session.id`` and ``session.info`` set).

        Raises:
            AuthenticationError: The key was refused (HTTP 401/403).
            RateLimitError: Throttled (HTTP 429).
            APIError: Any other refusal, from the HTTP status and JSON body of
                the upgrade, or an ``error`` event before ``session.created``.
            TransportError: DNS, TCP or TLS failure, or the connection closed
                before ``session.created``.
            DashScopeTimeout: Not ready within ``timeout``.
            ConfigError: A bad argument, a model that needs the workspace
                host (Omni 3.8) on a client without a workspace, a
                ``base_url`` whose query names another model, or a
                text-to-speech model (open those with ``client.speech.connect``).
        """
        if config is None:
            config = RealtimeConfig() if model is None else RealtimeConfig(model=model)
        elif not isinstance(config, RealtimeConfig):
            raise ConfigError(f"config must be a RealtimeConfig, got {config!r}")
        elif model is not None and model != config.model:
            raise ConfigError("give the model either in config or as model=, not both")
        client = self._client
        check_realtime_family(config)
        started = time.monotonic()
        core, _, _ = open_core(client, config, timeout, lambda c: c.keep_transcript())
        core.opened()

        def reopen(again: float | NotGiven | None) -> RealtimeSession:
            return self.connect(config, timeout=timeout if again is NOT_GIVEN else again)

        session = RealtimeSession(core, reopen)
        logger.debug(
            "session %s ready in %.3f s (model %s)",
            session.id,
            time.monotonic() - started,
            config.model,
        )
        return session
