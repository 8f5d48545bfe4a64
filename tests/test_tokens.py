"""Temporary keys over HTTP: client.tokens.create against the local server."""

from __future__ import annotations

import io
import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import requests

import dashscope_sync as ds
from dashscope_sync._cli import main as _cli
from dashscope_sync.testing import LocalRealtimeServer

from .conftest import MODEL

# Both modes (issue 18) for the tests marked both_modes one by one: those that
# open sessions; the others open none.
pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def http_client(server: LocalRealtimeServer) -> ds.Client:
    return ds.Client(server.api_key, base_url=server.url, http_base_url=server.http_base_url)


@pytest.mark.both_modes
def test_create_and_use(server: LocalRealtimeServer, http_client: ds.Client) -> None:
    """A temporary key is made with the documented request and works as an api_key."""
    before = time.time()
    key = http_client.tokens.create(expire_in_seconds=120)
    assert key.token.startswith("st-")
    assert before + 119 <= key.expires_at <= time.time() + 121
    assert 0 < key.expires_in <= 120
    assert key.token not in repr(key)
    request = server.http_requests[-1]
    assert (request.method, request.path) == ("POST", "/api/v1/tokens")
    assert request.query == {"expire_in_seconds": "120"}
    assert request.headers["Authorization"] == f"Bearer {server.api_key}"
    assert request.body == b""
    worker = ds.Client(key.token, base_url=server.url)
    with worker.realtime.connect(model=MODEL) as session:
        assert session.id


def test_workspace_header(server: LocalRealtimeServer) -> None:
    """The workspace goes with the HTTP request too."""
    client = ds.Client(
        server.api_key, workspace="ws-9", base_url=server.url, http_base_url=server.http_base_url
    )
    client.tokens.create()
    assert server.http_requests[-1].headers["X-DashScope-WorkSpace"] == "ws-9"
    assert server.http_requests[-1].query == {"expire_in_seconds": "60"}


@pytest.mark.parametrize("bad", [0, 1801, -5, 1.5, "60", True])
def test_expire_out_of_range_sends_nothing(
    server: LocalRealtimeServer, http_client: ds.Client, bad: object
) -> None:
    """expire_in_seconds outside 1..1800 is a ConfigError before any request."""
    with pytest.raises(ds.ConfigError, match="expire_in_seconds"):
        http_client.tokens.create(bad)  # type: ignore[arg-type]
    assert server.http_requests == []


def test_wrong_key(server: LocalRealtimeServer) -> None:
    """A refused key is an AuthenticationError with the body's code and request id."""
    client = ds.Client("sk-wrong", base_url=server.url, http_base_url=server.http_base_url)
    with pytest.raises(ds.AuthenticationError) as info:
        client.tokens.create()
    assert info.value.http_status == 401
    assert info.value.code == "InvalidApiKey"
    assert info.value.request_id
    assert info.value.__cause__ is None  # an answer, not a failure of requests


@pytest.mark.parametrize(
    ("status", "body", "cls"),
    [
        (
            429,
            {"code": "Throttling.RateQuota", "message": "slow", "request_id": "r"},
            ds.RateLimitError,
        ),
        (403, {"code": "AccessDenied", "message": "no", "request_id": "r"}, ds.AuthenticationError),
        (500, {"code": "InternalError", "message": "oops", "request_id": "r"}, ds.APIError),
        (502, "<html>bad gateway</html>", ds.APIError),
    ],
)
def test_http_errors(
    server: LocalRealtimeServer, http_client: ds.Client, status: int, body: object, cls: type
) -> None:
    """HTTP errors map to the same classes as handshake errors, with their data."""
    server.reject_next_http(status, body)  # type: ignore[arg-type]
    with pytest.raises(ds.APIError) as info:
        http_client.tokens.create()
    assert type(info.value) is cls
    assert info.value.http_status == status
    if isinstance(body, dict):
        assert (info.value.code, info.value.message) == (body["code"], body["message"])
    else:
        assert "bad gateway" in info.value.message


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    listener.close()


def test_timeout(silent_port: int) -> None:
    """No answer in time is a DashScopeTimeout, not a requests exception."""
    timeout = 0.1 + 0.2  # 0.30000000000000004: the message rounds it
    client = ds.Client("k", http_base_url=f"http://127.0.0.1:{silent_port}", http_timeout=timeout)
    with pytest.raises(ds.DashScopeTimeout, match=r"timed out after 0\.3 s$") as info:
        client.tokens.create()
    assert isinstance(info.value, TimeoutError)
    assert isinstance(info.value.__cause__, requests.Timeout)


def test_connection_refused() -> None:
    """A refused connection is a TransportError."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = ds.Client("k", http_base_url=f"http://127.0.0.1:{port}")
    with pytest.raises(ds.TransportError) as info:
        client.tokens.create()
    assert isinstance(info.value.__cause__, requests.ConnectionError)


def test_custom_http_session(server: LocalRealtimeServer) -> None:
    """A user's requests.Session is the one used (its headers reach the server)."""
    with requests.Session() as http:
        http.headers["X-Trace"] = "abc"
        client = ds.Client(
            server.api_key,
            base_url=server.url,
            http_base_url=server.http_base_url,
            http_session=http,
        )
        client.tokens.create()
    assert server.http_requests[-1].headers["X-Trace"] == "abc"


def test_cli_token(server: LocalRealtimeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """dashscope-sync token prints the key as JSON."""
    monkeypatch.setenv("DASHSCOPE_API_KEY", server.api_key or "")
    out, err = io.StringIO(), io.StringIO()
    code = _cli.main(
        ["token", "--expire", "30", "--http-base-url", server.http_base_url], out=out, err=err
    )
    assert code == 0, err.getvalue()
    data = json.loads(out.getvalue())
    assert data["token"].startswith("st-") and data["expires_at"] > time.time()
    assert server.http_requests[-1].query == {"expire_in_seconds": "30"}


def test_client_close_releases_only_its_own_http_session(server: LocalRealtimeServer) -> None:
    """Client.close() closes the requests.Session it made, never one it was given."""
    with ds.Client(server.api_key, http_base_url=server.http_base_url) as client:
        client.tokens.create()
        own = client.tokens._own_session
        assert own is not None
    assert client.tokens._own_session is None
    client.close()  # idempotent
    with requests.Session() as mine:
        given = ds.Client(server.api_key, http_base_url=server.http_base_url, http_session=mine)
        given.tokens.create()
        given.close()
        assert mine.adapters  # still usable: a closed Session drops its adapters
        assert given.tokens.create().token.startswith("st-")
