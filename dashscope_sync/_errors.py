"""The exceptions of `dashscope_sync`, all in one tree.

Everything the library raises is a `DashScopeError`; no exception of
websocket-client or requests escapes (they are translated at one boundary
each, ``_core/transport.py`` and ``_client/http.py``, and chained as ``__cause__`` only
where they say more than the message: never for a refused upgrade, whose
websocket-client exception prints the raw response headers)::

    DashScopeError
    ├── ConfigError (ValueError)         a bad argument or configuration, before anything is sent
    │   └── ConfigTypeError (TypeError)  an argument of the wrong type (a str where a list goes...)
    ├── UsageError (RuntimeError)        the library was used in a way that cannot work
    ├── SessionClosedError (RuntimeError) a send or wait on a session that is closed
    ├── DashScopeTimeout (TimeoutError)  a wait ran out of time, anywhere in the library
    ├── TransportError                   the network failed, or the socket closed abnormally
    ├── APIError                         the service refused (handshake, HTTP or `error` event)
    │   ├── AuthenticationError          401/403, or an auth error code
    │   ├── RateLimitError               429, or a throttling error code
    │   ├── ActiveResponseError          a response was requested while one was running
    │   └── TranscriptionFailedError     the ASR could not transcribe an item (``.failed``)
    ├── ResponseError                    a response ended without completing
    │   ├── ResponseFailedError          status "failed"
    │   ├── ResponseCancelledError       status "cancelled" (response.cancel, barge-in)
    │   └── ResponseIncompleteError      status "incomplete" (e.g. max_tokens reached)
    ├── HandlerError                     a callback registered with `session.on` raised
    ├── ToolError (RuntimeError)         a tool the model called failed (``on_tool_error="raise"``)
    └── AudioDeviceError (OSError)       a microphone or speaker could not be opened or failed

Exceptions carry their data as attributes, so code branches on attributes
rather than on message text; they pickle with those attributes intact.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._conversation.tools import ToolCall
    from ._core.response import ResponseResult
    from ._wire.events import ErrorEvent, ServerEvent

__all__ = [
    "APIError",
    "AudioDeviceError",
    "ActiveResponseError",
    "AuthenticationError",
    "ConfigError",
    "ConfigTypeError",
    "DashScopeError",
    "DashScopeTimeout",
    "HandlerError",
    "RateLimitError",
    "ResponseCancelledError",
    "ResponseError",
    "ResponseFailedError",
    "ResponseIncompleteError",
    "SessionClosedError",
    "ToolError",
    "TranscriptionFailedError",
    "TransportError",
    "UsageError",
]


class DashScopeError(Exception):
    """Base class of every exception raised by `dashscope_sync`."""

    #: The attributes its repr shows after the message, when set: what a
    #: notebook shows of an exception that is a cell's value.
    _repr_fields: ClassVar[tuple[str, ...]] = ()

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        shown = [repr(self.message)]
        for name in self._repr_fields:
            value = getattr(self, name, None)
            if value is not None:
                shown.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(shown)})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Subclasses take keyword data; rebuild through __new__ and restore
        # __dict__ so pickling (multiprocessing, logging handlers) keeps it.
        return (_rebuild, (type(self), self.args), self.__dict__)


def _rebuild(cls: type[DashScopeError], args: tuple[Any, ...]) -> DashScopeError:
    exc = cls.__new__(cls)
    Exception.__init__(exc, *args)
    return exc


class ConfigError(DashScopeError, ValueError):
    """A bad argument or configuration: a missing API key, a field out of range.

    Raised before anything is sent, so nothing reached the server.
    """


class ConfigTypeError(ConfigError, TypeError):
    """An argument of the wrong type: a ``str`` where a list goes, a float array as audio.

    Both a `ConfigError` (so ``except ds.ConfigError`` catches it) and a
    ``TypeError``, as Python convention has it for a value of the wrong type.
    """


class UsageError(DashScopeError, RuntimeError):
    """The library was used in a way that cannot work.

    For example a blocking wait called from inside an event handler (it would
    deadlock the dispatcher), or iterating a session whose event buffer is off.
    """


class SessionClosedError(DashScopeError, RuntimeError):
    """A send or wait on a session that is closed or closing.

    Attributes:
        code: The WebSocket close code, when the connection has closed.
        reason: The close reason, when the connection has closed.
    """

    _repr_fields = ("code", "reason")

    def __init__(self, message: str, *, code: int | None = None, reason: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason


class DashScopeTimeout(DashScopeError, TimeoutError):
    """A wait ran out of time: connecting, waiting for an event or an acknowledgement.

    Attributes:
        timeout: The time limit in seconds that ran out, when known.
    """

    def __init__(self, message: str, *, timeout: float | None = None) -> None:
        super().__init__(message)
        self.timeout = timeout


class TransportError(DashScopeError):
    """The network failed: DNS, TCP or TLS, a lost connection, or an abnormal close.

    Attributes:
        code: The WebSocket close code (1006 when the connection was lost
            without a close frame), or None for a failure before the
            connection opened.
        reason: The close reason sent by the peer, or a description.
    """

    _repr_fields = ("code", "reason")

    def __init__(self, message: str, *, code: int | None = None, reason: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason


class APIError(DashScopeError):
    """The service refused a request.

    Raised for a refused WebSocket upgrade, an HTTP error reply, or an
    ``error`` event that answers a request this library waits for.

    Attributes:
        code: The service's error code (``"InvalidApiKey"``, ``"invalid_value"``...).
        message: The service's message.
        request_id: The service's request id, when it gave one (handshake, HTTP).
        http_status: The HTTP status of a refused handshake or HTTP call; None
            for an ``error`` event.
        type: The ``error.type`` of an ``error`` event (``"invalid_request_error"``,
            ``"server_error"``); None otherwise.
        param: The ``error.param`` of an ``error`` event, naming the bad field.
        event_id: The id of the client event the error answers, when known.
        event: The `ErrorEvent` this error was built from, if any.
    """

    _repr_fields = ("code", "param", "http_status", "request_id", "event_id")

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        request_id: str | None = None,
        http_status: int | None = None,
        type: str | None = None,
        param: str | None = None,
        event_id: str | None = None,
        event: ErrorEvent | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.request_id = request_id
        self.http_status = http_status
        self.type = type
        self.param = param
        self.event_id = event_id
        self.event = event

    def __str__(self) -> str:
        parts = [f"{self.code}: {self.message}" if self.code else self.message]
        if self.param:
            parts.append(f"param={self.param}")
        if self.http_status is not None:
            parts.append(f"http_status={self.http_status}")
        if self.request_id:
            parts.append(f"request_id={self.request_id}")
        if self.event_id:
            parts.append(f"event_id={self.event_id}")
        return " ".join(parts) if len(parts) == 1 else f"{parts[0]} ({', '.join(parts[1:])})"

    @classmethod
    def from_event(cls, event: ErrorEvent) -> APIError:
        """Build the most specific `APIError` for an ``error`` event."""
        error = event.error
        exc_class = api_error_class(None, error.code)
        return exc_class(
            error.message or "the server reported an error",
            code=error.code or None,
            type=error.type or None,
            param=error.param or None,
            event_id=error.event_id or None,
            event=event,
        )


class AuthenticationError(APIError):
    """The API key was refused: HTTP 401/403 or an auth error code."""


class RateLimitError(APIError):
    """Too many requests: HTTP 429 or a throttling error code."""


class ActiveResponseError(APIError):
    """``conversation_already_has_active_response``: one response runs at a time.

    Wait for the running response (or cancel it) before asking for another.
    Under server VAD the server starts responses itself, so explicit requests
    can race it: use manual mode (``turn_detection=None``) to create them yourself.
    Its message says so, after the server's.
    """

    def __str__(self) -> str:
        return (
            f"{super().__str__()}; wait for the running response, or stop it first "
            "(Response.cancel() or session.interrupt())"
        )


class TranscriptionFailedError(APIError):
    """``conversation.item.input_audio_transcription.failed``: an item could not be transcribed.

    Raised from ``TranscriptionSession.transcripts()`` and ``transcribe()``;
    the event itself is delivered to handlers and the event buffer as usual.

    Attributes:
        item_id: The item whose transcription failed.
    """

    _repr_fields = ("code", "param", "item_id", "type", "event_id")

    def __init__(self, message: str, *, item_id: str = "", **fields: Any) -> None:
        super().__init__(message, **fields)
        self.item_id = item_id


class ResponseError(DashScopeError):
    """A response ended with a status other than ``completed``.

    Attributes:
        response_id: The response's id.
        status: ``"failed"``, ``"cancelled"`` or ``"incomplete"``.
        status_details: The server's ``status_details``, if any.
        result: What the response produced before it ended (a `ResponseResult`),
            or None when nothing is known.
    """

    _repr_fields = ("response_id", "status")

    def __init__(
        self,
        message: str,
        *,
        response_id: str | None = None,
        status: str | None = None,
        status_details: dict[str, Any] | None = None,
        result: ResponseResult | None = None,
    ) -> None:
        super().__init__(message)
        self.response_id = response_id
        self.status = status
        self.status_details = status_details
        self.result = result


class ResponseFailedError(ResponseError):
    """The response ended with status ``failed``."""


class ResponseCancelledError(ResponseError):
    """The response ended with status ``cancelled``: cancelled, or interrupted by speech."""


class ResponseIncompleteError(ResponseError):
    """The response ended with status ``incomplete`` (output cut short, e.g. by max_tokens)."""


class HandlerError(DashScopeError):
    """A callback registered with `RealtimeSession.on` raised.

    It is raised on the caller's thread at its next call into the session,
    chained (``__cause__``) to the handler's own exception.

    Attributes:
        handler: The callback that raised.
        event: The event it was handling.
        more_failures: How many more handler failures came after this one
            before it was raised (they were counted, not kept).
    """

    def __init__(
        self,
        message: str,
        *,
        handler: Callable[[Any], object] | None = None,
        event: ServerEvent | None = None,
    ) -> None:
        super().__init__(message)
        self.handler = handler
        self.event = event
        self.more_failures = 0


class ToolError(DashScopeError, RuntimeError):
    """A tool registered with `RealtimeSession.tool` failed when the model called it.

    Unknown tool, arguments that did not parse or fit, an exception, a
    timeout: the model got the error as the call's output either way. Raised
    only with ``RealtimeConfig(on_tool_error="raise")``, on the caller's
    thread at its next call into the session (as a `HandlerError` is),
    chained (``__cause__``) to the tool's own exception when it raised. The
    conversation went on meanwhile: the model's answer to the error may be
    running when this is raised (let it end before the next turn).

    Attributes:
        call: The `ToolCall` record of the failed call (``call.error`` says why).
        more_failures: How many more tool or handler failures came after this
            one before it was raised (they were counted, not kept).
    """

    _repr_fields = ("call",)

    def __init__(self, message: str, *, call: ToolCall | None = None) -> None:
        super().__init__(message)
        self.call = call
        self.more_failures = 0


class AudioDeviceError(DashScopeError, OSError):
    """A microphone or speaker (the ``[audio]`` extra) could not be opened, or failed.

    The message names the device and PortAudio's reason; ``__cause__`` is
    sounddevice's own error.
    """


def body_summary(body: bytes | str, http_status: int, reason: str | None = None) -> str:
    """A reply body that is not the service's JSON, as one line for a message.

    A gateway's HTML error page (a proxy's 502...) is ten lines of markup:
    it becomes its status and the page's title. Other text has its runs of
    white space folded and is cut to 200 characters.
    """
    import html
    import re

    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    status = f"HTTP {http_status}" + (f" {reason}" if reason else "")
    if re.search(r"<\s*(!doctype\s+html|html|head|body|title)\b", text, re.IGNORECASE):
        found = re.search(r"<title[^>]*>(.*?)</title", text, re.IGNORECASE | re.DOTALL)
        if found is None:
            found = re.search(r"<h1[^>]*>(.*?)</h1", text, re.IGNORECASE | re.DOTALL)
        if found is not None:
            title = " ".join(html.unescape(re.sub(r"<[^>]*>", "", found[1])).split())
            if title:
                return f"{status}, an HTML page titled {title[:120]!r}"
        words = " ".join(html.unescape(re.sub(r"<[^>]*>", " ", text)).split())
        return f"{status}, an HTML page" + (f": {words[:120]}" if words else "")
    folded = " ".join(text.split())
    if len(folded) > 200:
        folded = folded[:199] + "…"
    return folded or status


_AUTH_CODES = frozenset({"InvalidApiKey", "AccessDenied", "AccessDenied.Unpurchased"})


def api_error_class(http_status: int | None, code: str | None) -> type[APIError]:
    """Pick the `APIError` subclass for an HTTP status and a service error code."""
    if code == "conversation_already_has_active_response":
        return ActiveResponseError
    if http_status in (401, 403) or code in _AUTH_CODES:
        return AuthenticationError
    if http_status == 429 or (code is not None and code.startswith("Throttling")):
        return RateLimitError
    return APIError
