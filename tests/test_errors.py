"""Pure tests of the exception tree, APIError construction, handshake-error mapping,
close-frame parsing, URL building and Client construction (no I/O)."""

from __future__ import annotations

import builtins
import json
import pickle
import re
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlsplit

import pytest
import websocket

import dashscope_sync as ds
from dashscope_sync import _errors
from dashscope_sync._client.client import _check_token, _with_model
from dashscope_sync._core.transport import _handshake_error, parse_close
from dashscope_sync._wire.codec import decode

# The doc's error frame (PROTOCOL.md section 3), verbatim.
FRAME_ERROR = r"""{"event_id":"event_RoUu4T8yExPMI37GKwaOC","type":"error","error":{"type":"invalid_request_error","code":"invalid_value","message":"Invalid modalities: ['audio']. Supported combinations are: ['text'] and ['audio', 'text'].","param":"session.modalities"}}"""
DOC_ERROR_MESSAGE = (
    "Invalid modalities: ['audio']. Supported combinations are: ['text'] and ['audio', 'text']."
)
INVALID_API_KEY_BODY = (
    b'{"code":"InvalidApiKey","message":"Invalid API-key provided.","request_id":"r1"}'
)


def _error_event(**error: Any) -> ds.ErrorEvent:
    event = decode(json.dumps({"event_id": "event_srv1", "type": "error", "error": error}))
    assert isinstance(event, ds.ErrorEvent)
    return event


def _bad_status(status: int, body: bytes | None, status_message: str | None = "Whatever") -> Any:
    return websocket.WebSocketBadStatusException("msg", status, status_message, {}, body)


def sample_handler(event: object) -> None:
    """A module-level handler, so HandlerError pickles by reference."""


# --------------------------------------------------------------------------------------


class TestErrorTree:
    """The exception hierarchy."""

    @pytest.mark.parametrize(
        ("cls", "base"),
        [
            (ds.ConfigError, ValueError),
            (ds.UsageError, RuntimeError),
            (ds.SessionClosedError, RuntimeError),
            (ds.DashScopeTimeout, TimeoutError),
            (ds.DashScopeTimeout, OSError),
            (ds.AuthenticationError, ds.APIError),
            (ds.RateLimitError, ds.APIError),
        ],
    )
    def test_builtin_and_api_bases(self, cls: type, base: type) -> None:
        """Each error also derives from the builtin or library base it is documented with."""
        assert issubclass(cls, base)

    @pytest.mark.parametrize("name", _errors.__all__)
    def test_all_derive_from_dashscope_error(self, name: str) -> None:
        """Every exception class derives from DashScopeError and is exported."""
        cls = getattr(_errors, name)
        assert issubclass(cls, ds.DashScopeError)
        assert issubclass(cls, Exception)
        assert getattr(ds, name) is cls

    def test_authentication_not_rate_limit(self) -> None:
        """AuthenticationError and RateLimitError are siblings, not subclasses of each other."""
        assert not issubclass(ds.AuthenticationError, ds.RateLimitError)
        assert not issubclass(ds.RateLimitError, ds.AuthenticationError)

    def test_timeout_caught_as_builtin(self) -> None:
        """A DashScopeTimeout is caught by ``except TimeoutError``."""
        with pytest.raises(TimeoutError):
            raise ds.DashScopeTimeout("late", timeout=1.0)

    @pytest.mark.parametrize("name", _errors.__all__)
    def test_docstring_draws_every_class(self, name: str) -> None:
        """The _errors module docstring names every class of ``_errors.__all__``."""
        assert _errors.__doc__ is not None
        assert re.search(rf"\b{re.escape(name)}\b", _errors.__doc__)

    def test_docstring_tree_matches_hierarchy(self) -> None:
        """Every class drawn in the docstring tree derives from its drawn parent and builtin."""
        doc = _errors.__doc__ or ""
        drawn: list[tuple[int, str, str | None]] = []
        for line in doc.splitlines():
            if line.strip() == "DashScopeError":
                drawn.append((-1, "DashScopeError", None))
                continue
            match = re.search(r"[├└]── (\w+)(?: \((\w+)\))?", line)
            if match:
                drawn.append((match.start(), match.group(1), match.group(2)))
        names = [name for _, name, _ in drawn]
        assert sorted(names) == sorted(_errors.__all__)
        for index, (column, name, builtin_base) in enumerate(drawn):
            cls = getattr(_errors, name)
            parents = [n for c, n, _ in drawn[:index] if c < column]
            if parents:
                assert issubclass(cls, getattr(_errors, parents[-1])), name
            if builtin_base:
                assert issubclass(cls, getattr(builtins, builtin_base)), name


def _samples() -> list[ds.DashScopeError]:
    event = _error_event(
        type="invalid_request_error", code="invalid_value", message="bad", param="p"
    )
    api_kwargs: dict[str, Any] = {
        "code": "InvalidApiKey",
        "request_id": "req_1",
        "http_status": 401,
        "type": "invalid_request_error",
        "param": "session.voice",
        "event_id": "event_client_1",
        "event": event,
    }
    return [
        ds.DashScopeError("base"),
        ds.ConfigError("bad config"),
        ds.UsageError("bad usage"),
        ds.SessionClosedError("closed", code=1000, reason="bye"),
        ds.DashScopeTimeout("late", timeout=2.5),
        ds.TransportError("lost", code=1006, reason="reset"),
        ds.APIError("refused", **api_kwargs),
        ds.AuthenticationError("no key", **api_kwargs),
        ds.RateLimitError(
            "slow down", **{**api_kwargs, "code": "Throttling.RateQuota", "http_status": 429}
        ),
        ds.HandlerError("handler failed", handler=sample_handler, event=event),
    ]


class TestPickle:
    """Exceptions survive pickling with their attributes."""

    @pytest.mark.parametrize("exc", _samples(), ids=lambda e: type(e).__name__)
    def test_round_trip(self, exc: ds.DashScopeError) -> None:
        """The exception unpickles to the same class with the same attributes, args and str."""
        for protocol in (2, pickle.HIGHEST_PROTOCOL):
            copy = pickle.loads(pickle.dumps(exc, protocol=protocol))
            assert type(copy) is type(exc)
            assert copy.args == exc.args
            assert vars(copy) == vars(exc)
            assert copy.message == exc.message
            assert str(copy) == str(exc)

    def test_api_error_attributes_after_pickle(self) -> None:
        """An unpickled APIError has code, reason-like fields and http_status intact."""
        exc = ds.APIError("refused", code="InvalidApiKey", request_id="r1", http_status=401)
        copy = pickle.loads(pickle.dumps(exc))
        assert (copy.code, copy.request_id, copy.http_status) == ("InvalidApiKey", "r1", 401)
        assert copy.type is None and copy.param is None and copy.event is None

    def test_closed_error_attributes_after_pickle(self) -> None:
        """An unpickled SessionClosedError and TransportError keep code and reason."""
        for cls in (ds.SessionClosedError, ds.TransportError):
            copy = pickle.loads(pickle.dumps(cls("x", code=4000, reason="server said no")))
            assert (copy.code, copy.reason) == (4000, "server said no")

    def test_timeout_after_pickle(self) -> None:
        """An unpickled DashScopeTimeout keeps its timeout and is still a TimeoutError."""
        copy = pickle.loads(pickle.dumps(ds.DashScopeTimeout("late", timeout=3.0)))
        assert copy.timeout == 3.0
        assert isinstance(copy, TimeoutError)

    def test_handler_error_after_pickle(self) -> None:
        """An unpickled HandlerError keeps its handler and event."""
        event = decode('{"type":"response.text.delta","delta":"hi"}')
        copy = pickle.loads(pickle.dumps(ds.HandlerError("x", handler=sample_handler, event=event)))
        assert copy.handler is sample_handler
        assert copy.event == event


class TestAPIErrorFromEvent:
    """APIError.from_event maps error events to typed exceptions."""

    def test_doc_error_frame(self) -> None:
        """The doc's error frame gives an APIError with its code, message, param, type and no event_id."""
        event = decode(FRAME_ERROR)
        assert isinstance(event, ds.ErrorEvent)
        exc = ds.APIError.from_event(event)
        assert type(exc) is ds.APIError
        assert exc.code == "invalid_value"
        assert exc.message == DOC_ERROR_MESSAGE
        assert exc.param == "session.modalities"
        assert exc.type == "invalid_request_error"
        assert exc.event_id is None
        assert exc.http_status is None
        assert exc.request_id is None
        assert exc.event is event

    def test_client_event_id(self) -> None:
        """error.event_id (the client event that failed) becomes the exception's event_id."""
        exc = ds.APIError.from_event(
            _error_event(
                type="invalid_request_error",
                code="invalid_value",
                message="m",
                event_id="event_c_9",
            )
        )
        assert exc.event_id == "event_c_9"

    @pytest.mark.parametrize(
        ("code", "cls"),
        [
            ("InvalidApiKey", ds.AuthenticationError),
            ("AccessDenied", ds.AuthenticationError),
            ("AccessDenied.Unpurchased", ds.AuthenticationError),
            ("Throttling.RateQuota", ds.RateLimitError),
            ("Throttling", ds.RateLimitError),
            ("Throttling.AllocationQuota", ds.RateLimitError),
            ("invalid_value", ds.APIError),
            ("COMMON_ERROR", ds.APIError),
            ("Model.NotExist", ds.APIError),
        ],
    )
    def test_code_picks_class(self, code: str, cls: type[ds.APIError]) -> None:
        """The error code picks AuthenticationError, RateLimitError or plain APIError."""
        exc = ds.APIError.from_event(_error_event(code=code, message="m"))
        assert type(exc) is cls
        assert exc.code == code

    def test_missing_message_and_code(self) -> None:
        """An error event without message or code still gives a readable APIError."""
        exc = ds.APIError.from_event(_error_event())
        assert type(exc) is ds.APIError
        assert exc.code is None
        assert exc.message
        assert str(exc)

    def test_str_includes_code_and_message(self) -> None:
        """str() of an APIError includes the code and the message."""
        exc = ds.APIError.from_event(decode(FRAME_ERROR))  # type: ignore[arg-type]
        text = str(exc)
        assert "invalid_value" in text
        assert DOC_ERROR_MESSAGE in text

    def test_str_of_constructed_error(self) -> None:
        """str() of a constructed APIError shows code, message and the known extras."""
        exc = ds.APIError(
            "Invalid API-key provided.", code="InvalidApiKey", http_status=401, request_id="r1"
        )
        text = str(exc)
        assert "InvalidApiKey" in text
        assert "Invalid API-key provided." in text
        assert "401" in text
        assert "r1" in text
        assert str(ds.APIError("plain")) == "plain"

    def test_repr_keeps_code_and_param(self) -> None:
        """repr() of an error (a notebook cell's value) shows its code, param and ids, not the message alone."""
        exc = ds.APIError.from_event(decode(FRAME_ERROR))  # type: ignore[arg-type]
        assert repr(exc) == (
            f"APIError({DOC_ERROR_MESSAGE!r}, code='invalid_value', param='session.modalities')"
        )
        refused = ds.AuthenticationError("refused", code="InvalidApiKey", http_status=401)
        assert (
            repr(refused) == "AuthenticationError('refused', code='InvalidApiKey', http_status=401)"
        )
        assert repr(pickle.loads(pickle.dumps(exc))) == repr(exc)
        closed = ds.TransportError("connection lost", code=1006, reason="")
        assert repr(closed) == "TransportError('connection lost', code=1006, reason='')"
        assert repr(ds.ConfigError("bad")) == "ConfigError('bad')"


class TestHandshakeError:
    """_transport._handshake_error maps a refused upgrade to a typed APIError."""

    def test_invalid_api_key_401(self) -> None:
        """401 with DashScope's JSON body gives AuthenticationError with code, message, request_id, status."""
        exc = _handshake_error(_bad_status(401, INVALID_API_KEY_BODY, "Unauthorized"))
        assert type(exc) is ds.AuthenticationError
        assert exc.code == "InvalidApiKey"
        assert "Invalid API-key provided." in exc.message
        assert exc.request_id == "r1"
        assert exc.http_status == 401
        assert "InvalidApiKey" in str(exc)

    def test_403_is_authentication_error(self) -> None:
        """403 gives AuthenticationError even with an unrelated code."""
        body = b'{"code":"AccessDenied","message":"Access denied.","request_id":"r2"}'
        exc = _handshake_error(_bad_status(403, body, "Forbidden"))
        assert type(exc) is ds.AuthenticationError
        assert exc.http_status == 403
        assert exc.code == "AccessDenied"

    def test_429_is_rate_limit_error(self) -> None:
        """429 gives RateLimitError."""
        body = b'{"code":"Throttling.RateQuota","message":"Requests rate limit exceeded.","request_id":"r3"}'
        exc = _handshake_error(_bad_status(429, body, "Too Many Requests"))
        assert type(exc) is ds.RateLimitError
        assert exc.code == "Throttling.RateQuota"
        assert exc.http_status == 429
        assert "Requests rate limit exceeded." in exc.message

    def test_500_is_plain_api_error(self) -> None:
        """500 gives a plain APIError."""
        body = b'{"code":"InternalError","message":"Internal server error.","request_id":"r4"}'
        exc = _handshake_error(_bad_status(500, body, "Internal Server Error"))
        assert type(exc) is ds.APIError
        assert exc.code == "InternalError"
        assert exc.http_status == 500
        assert exc.request_id == "r4"

    def test_code_overrides_unremarkable_status(self) -> None:
        """An auth or throttling code in a 400 body still picks the specific class."""
        assert (
            type(_handshake_error(_bad_status(400, INVALID_API_KEY_BODY))) is ds.AuthenticationError
        )
        body = b'{"code":"Throttling","message":"slow"}'
        assert type(_handshake_error(_bad_status(400, body))) is ds.RateLimitError

    def test_nested_error_body(self) -> None:
        """A body nested as {"error": {"code", "message"}} is understood."""
        body = b'{"error":{"code":"Model.NotExist","message":"Model not exist."},"request_id":"r5"}'
        exc = _handshake_error(_bad_status(404, body, "Not Found"))
        assert type(exc) is ds.APIError
        assert exc.code == "Model.NotExist"
        assert "Model not exist." in exc.message
        assert exc.request_id == "r5"
        assert exc.http_status == 404

    def test_nested_auth_error_body(self) -> None:
        """A nested auth code picks AuthenticationError."""
        body = b'{"error":{"code":"InvalidApiKey","message":"Invalid API-key provided."}}'
        exc = _handshake_error(_bad_status(401, body))
        assert type(exc) is ds.AuthenticationError
        assert exc.code == "InvalidApiKey"

    def test_html_body(self) -> None:
        """A non-JSON (HTML) body puts its text in the message and no code."""
        body = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
        exc = _handshake_error(_bad_status(502, body, "Bad Gateway"))
        assert type(exc) is ds.APIError
        assert exc.code is None
        assert "502 Bad Gateway" in exc.message
        assert exc.http_status == 502

    def test_html_page_is_one_line_in_the_library_message(self) -> None:
        """A gateway's multi-line HTML page becomes one line with its status and title, no markup."""
        body = (
            b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
            b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
            b"</body>\r\n</html>\r\n"
        )
        exc = _handshake_error(_bad_status(502, body, "Bad Gateway"))
        assert "\n" not in str(exc) and "<" not in str(exc)
        assert "HTTP 502 Bad Gateway" in exc.message and "'502 Bad Gateway'" in exc.message

    def test_long_html_body_shortened(self) -> None:
        """A long non-JSON body is shortened in the message."""
        body = b"<html>" + b"x" * 10_000 + b"</html>"
        exc = _handshake_error(_bad_status(503, body, "Service Unavailable"))
        assert len(exc.message) < 400

    @pytest.mark.parametrize("body", [b"", None])
    def test_empty_body_mentions_status(self, body: bytes | None) -> None:
        """An empty body gives a message mentioning the HTTP status."""
        exc = _handshake_error(_bad_status(500, body, None))
        assert type(exc) is ds.APIError
        assert "500" in exc.message
        assert exc.http_status == 500
        assert exc.code is None

    def test_empty_body_uses_status_message(self) -> None:
        """An empty body with a reason phrase shows the phrase, and str() shows the status."""
        exc = _handshake_error(_bad_status(503, b"", "Service Unavailable"))
        assert "Service Unavailable" in exc.message
        assert "503" in str(exc)

    @pytest.mark.parametrize("body", [b'"just a string"', b"[1, 2]", b'{"code": 5, "message": 7}'])
    def test_odd_json_body(self, body: bytes) -> None:
        """A JSON body of an unexpected shape gives an APIError without a code."""
        exc = _handshake_error(_bad_status(400, body, "Bad Request"))
        assert type(exc) is ds.APIError
        assert exc.code is None
        assert exc.http_status == 400
        assert exc.message


class TestParseClose:
    """_transport.parse_close reads a close frame's payload."""

    def test_code_and_reason(self) -> None:
        """A payload with a code and reason gives both."""
        assert parse_close(b"\x03\xe8bye") == (1000, "bye")

    def test_code_only(self) -> None:
        """A payload with only a code gives an empty reason."""
        assert parse_close(b"\x03\xf3") == (1011, "")

    def test_utf8_reason(self) -> None:
        """A UTF-8 reason is decoded."""
        assert parse_close(b"\x0f\xa0" + "再见".encode()) == (4000, "再见")

    def test_bad_utf8_reason_replaced(self) -> None:
        """A reason that is not UTF-8 is decoded with replacement characters, not an error."""
        code, reason = parse_close(b"\x03\xe8\xff")
        assert code == 1000
        assert reason == "\ufffd"

    @pytest.mark.parametrize("payload", [b"", b"\x03"])
    def test_no_code(self, payload: bytes) -> None:
        """An empty (or one-byte) payload gives 1005, no status received."""
        assert parse_close(payload) == (1005, "")


class TestWithModel:
    """_client._with_model merges the model into the URL's query."""

    def test_adds_model(self) -> None:
        """A URL without a query gets ``?model=``."""
        assert (
            _with_model(ds.DEFAULT_REALTIME_URL, "qwen-omni-turbo-realtime-latest")
            == "wss://dashscope.aliyuncs.com/api-ws/v1/realtime?model=qwen-omni-turbo-realtime-latest"
        )

    @pytest.mark.parametrize("model", ["my model", "a&b=c", "m?x#y", "模型"])
    def test_model_url_encoded(self, model: str) -> None:
        """A model with spaces, ``&``, ``?`` or non-ASCII is URL-encoded and round-trips."""
        url = _with_model(ds.DEFAULT_REALTIME_URL, model)
        parts = urlsplit(url)
        assert (parts.scheme, parts.netloc, parts.path) == (
            "wss",
            "dashscope.aliyuncs.com",
            "/api-ws/v1/realtime",
        )
        assert parts.fragment == ""
        assert parse_qs(parts.query) == {"model": [model]}
        assert " " not in url
        assert "&" not in parts.query

    def test_keeps_other_params(self) -> None:
        """Other query parameters are kept, in order, before the model."""
        url = _with_model(
            "wss://example.com/api-ws/v1/realtime?foo=1&bar=x%20y", "qwen3-omni-flash-realtime"
        )
        parts = urlsplit(url)
        assert parse_qsl(parts.query) == [
            ("foo", "1"),
            ("bar", "x y"),
            ("model", "qwen3-omni-flash-realtime"),
        ]

    def test_same_model_kept_once(self) -> None:
        """A model parameter naming the session's model is kept, exactly once."""
        url = _with_model("wss://example.com/realtime?model=new&foo=1&model=new", "new")
        assert parse_qs(urlsplit(url).query) == {"foo": ["1"], "model": ["new"]}


class TestClientConstruction:
    """Client() validates credentials and endpoints without I/O."""

    def test_missing_env_key(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """No api_key and no DASHSCOPE_API_KEY raises ConfigError naming the variable."""
        monkeypatch.delenv("DASHSCOPE_API_KEY", raising=False)
        with pytest.raises(ds.ConfigError, match="DASHSCOPE_API_KEY"):
            ds.Client()
        assert ds.API_KEY_ENV == "DASHSCOPE_API_KEY"

    def test_empty_env_key(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """An empty DASHSCOPE_API_KEY counts as missing."""
        monkeypatch.setenv("DASHSCOPE_API_KEY", "")
        with pytest.raises(ds.ConfigError, match="DASHSCOPE_API_KEY"):
            ds.Client()

    def test_env_key_used(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """The key comes from DASHSCOPE_API_KEY when none is given."""
        monkeypatch.setenv("DASHSCOPE_API_KEY", "sk-env-0123456789")
        assert ds.Client().api_key == "sk-env-0123456789"

    def test_env_key_stripped(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Whitespace around the environment's key (a trailing newline) is removed."""
        monkeypatch.setenv("DASHSCOPE_API_KEY", "  sk-env-0123456789\n")
        assert ds.Client().api_key == "sk-env-0123456789"

    def test_explicit_key_wins(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """An explicit api_key is used over the environment's."""
        monkeypatch.setenv("DASHSCOPE_API_KEY", "sk-env")
        assert ds.Client("sk-explicit").api_key == "sk-explicit"

    @pytest.mark.parametrize("key", ["", "sk bad", "sk\nx", "sk\tx", "sk-\x00", "sk-é"])
    def test_bad_key(self, key: str) -> None:
        """An empty key or one with spaces or control characters raises ConfigError without echoing it."""
        with pytest.raises(ds.ConfigError) as info:
            ds.Client(key)
        if key:
            assert key not in str(info.value)

    def test_non_string_key(self) -> None:
        """A non-string key raises ConfigError."""
        with pytest.raises(ds.ConfigError):
            ds.Client(12345)  # type: ignore[arg-type]

    def test_check_token_message_hides_value(self) -> None:
        """_check_token names the argument but not its value."""
        with pytest.raises(ds.ConfigError, match="api_key") as info:
            _check_token("sk secret", "api_key")
        assert "secret" not in str(info.value)
        assert _check_token("sk-ok", "api_key") == "sk-ok"

    def test_repr_hides_key(self) -> None:
        """repr(client) does not contain the key."""
        client = ds.Client("sk-supersecret-123", workspace="ws-1")
        assert "sk-supersecret-123" not in repr(client)
        assert "supersecret" not in str(client)
        assert "ws-1" in repr(client)

    @pytest.mark.parametrize(
        "url", ["http://x", "https://dashscope.aliyuncs.com", "wss://", "not a url"]
    )
    def test_bad_base_url(self, url: str) -> None:
        """A base_url that is not a ws/wss URL with a host raises ConfigError."""
        with pytest.raises(ds.ConfigError, match="base_url"):
            ds.Client("k", base_url=url)

    def test_bad_workspace(self) -> None:
        """A workspace with spaces raises ConfigError."""
        with pytest.raises(ds.ConfigError, match="workspace"):
            ds.Client("k", workspace="my ws")

    def test_http_base_url_default(self) -> None:
        """http_base_url defaults to the Beijing HTTP host."""
        client = ds.Client("k")
        assert client.base_url == ds.DEFAULT_REALTIME_URL
        assert client.http_base_url == ds.DEFAULT_HTTP_BASE_URL

    def test_http_base_url_intl(self) -> None:
        """With the international realtime URL, http_base_url defaults to the international host."""
        client = ds.Client("k", base_url=ds.DEFAULT_REALTIME_URL_INTL)
        assert client.http_base_url == ds.DEFAULT_HTTP_BASE_URL_INTL

    def test_http_base_url_explicit_wins(self) -> None:
        """An explicit http_base_url is used, without a trailing slash and with the API path."""
        client = ds.Client(
            "k", base_url=ds.DEFAULT_REALTIME_URL_INTL, http_base_url="https://proxy.example.com/"
        )
        assert client.http_base_url == "https://proxy.example.com/api/v1"

    def test_bad_http_base_url(self) -> None:
        """An http_base_url that is not http(s) raises ConfigError."""
        with pytest.raises(ds.ConfigError, match="http_base_url"):
            ds.Client("k", http_base_url="wss://dashscope.aliyuncs.com")

    def test_authorization_header(self) -> None:
        """The client's handshake headers carry the key as a Bearer token and the workspace."""
        headers = ds.Client("sk-abc", workspace="ws-1").request_headers()
        assert headers["Authorization"] == "Bearer sk-abc"
        assert headers["X-DashScope-WorkSpace"] == "ws-1"
        assert "X-DashScope-WorkSpace" not in ds.Client("sk-abc").request_headers()
