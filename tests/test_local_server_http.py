"""The local server's plain-HTTP side: POST /api/v1/tokens and temporary API keys.

Requests go through ``requests`` and raw sockets, never through the
dashscope_sync client, so these tests pin the server on their own. Expiry is
driven by a fake clock given to the server: nothing here sleeps.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
import websocket

from dashscope_sync.testing import LocalRealtimeServer, TemporaryToken

pytestmark = pytest.mark.timeout(30)

KEY = "sk-local-test"
MODEL = "qwen3-omni-flash-realtime"
START = 1_700_000_000.5


class FakeClock:
    """A settable clock in epoch seconds."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    """A fake clock at START."""
    return FakeClock()


@pytest.fixture
def make_server(clock: FakeClock) -> Iterator[Callable[..., LocalRealtimeServer]]:
    """Factory of started servers on the fake clock, all closed at teardown."""
    servers: list[LocalRealtimeServer] = []

    def factory(**kwargs: Any) -> LocalRealtimeServer:
        server = LocalRealtimeServer(clock=clock, **kwargs).start()
        servers.append(server)
        return server

    yield factory
    for server in servers:
        server.close()


@pytest.fixture
def server(make_server: Callable[..., LocalRealtimeServer]) -> LocalRealtimeServer:
    """A server with default settings on the fake clock."""
    return make_server()


def mint(
    server: LocalRealtimeServer, key: str | None = KEY, query: str = "", **kwargs: Any
) -> requests.Response:
    """POST /api/v1/tokens with ``key`` as bearer (no header for None)."""
    headers = {} if key is None else {"Authorization": f"Bearer {key}"}
    url = f"{server.http_base_url}/tokens{query}"
    return requests.post(url, headers=headers, timeout=5, **kwargs)


def upgrade(server: LocalRealtimeServer, key: str) -> websocket.WebSocket:
    """Open the realtime WebSocket with ``key``."""
    return websocket.create_connection(
        server.model_url(), header=[f"Authorization: Bearer {key}"], timeout=5
    )


def refused_upgrade(server: LocalRealtimeServer, key: str) -> websocket.WebSocketBadStatusException:
    """Attempt an upgrade that must be refused, and return the exception."""
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        upgrade(server, key)
    return info.value


def raw_request(server: LocalRealtimeServer, data: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes, read until the server closes, and split the HTTP reply."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(data)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    lines = head.decode("iso-8859-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split(" ")[1]), {k.lower(): v for k, v in headers.items()}, body


def test_tokens_endpoint_mints_a_temporary_key(server: LocalRealtimeServer) -> None:
    """A POST with the API key returns a st- token, its expiry, Content-Length and a record."""
    response = mint(server, query="?expire_in_seconds=120")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert int(response.headers["Content-Length"]) == len(response.content)
    body = response.json()
    assert set(body) == {"token", "expires_at"}
    assert body["token"].startswith("st-") and len(body["token"]) == 35
    assert body["expires_at"] == 1_700_000_120
    default = mint(server).json()
    assert default["expires_at"] == 1_700_000_060
    assert default["token"] != body["token"]
    assert server.issued_tokens == [
        TemporaryToken(body["token"], 1_700_000_120, 120, START),
        TemporaryToken(default["token"], 1_700_000_060, 60, START),
    ]
    record = server.http_requests[0]
    assert (record.method, record.path, record.query, record.status) == (
        "POST",
        "/api/v1/tokens",
        {"expire_in_seconds": "120"},
        200,
    )
    assert record.headers["authorization"] == f"Bearer {KEY}"
    assert json.loads(record.response_body) == body
    assert server.handshakes == server.http_requests


def test_tokens_endpoint_refuses_bad_keys(
    server: LocalRealtimeServer, make_server: Callable[..., LocalRealtimeServer]
) -> None:
    """A wrong or missing key gets 401 InvalidApiKey; api_key=None accepts any key."""
    for key in ("sk-wrong", None):
        response = mint(server, key)
        assert response.status_code == 401
        body = response.json()
        assert (body["code"], body["message"]) == ("InvalidApiKey", "Invalid API-key provided.")
        assert body["request_id"]
    lowercase = requests.post(
        f"{server.http_base_url}/tokens",
        headers={"authorization": f"bearer {KEY}"},
        timeout=5,
    )
    assert lowercase.status_code == 200
    assert mint(make_server(api_key=None), "anything").status_code == 200
    assert server.issued_tokens[0].token == lowercase.json()["token"]


@pytest.mark.parametrize("value", ["0", "1801", "abc", "1.5", "", "-5", "60s", "٣"])
def test_tokens_endpoint_validates_expire_in_seconds(
    server: LocalRealtimeServer, value: str
) -> None:
    """expire_in_seconds must be an integer in 1..1800, else 400 InvalidParameter."""
    response = mint(server, params={"expire_in_seconds": value})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "InvalidParameter"
    assert "expire_in_seconds" in body["message"]
    assert server.issued_tokens == []


def test_tokens_endpoint_accepts_the_bounds(server: LocalRealtimeServer) -> None:
    """1 and 1800 seconds are both accepted."""
    for seconds in (1, 1800):
        response = mint(server, params={"expire_in_seconds": str(seconds)})
        assert response.json()["expires_at"] == int(START) + seconds


def test_temporary_key_opens_the_websocket_until_it_expires(
    server: LocalRealtimeServer, clock: FakeClock
) -> None:
    """A temporary key works as an API key on the upgrade until clock() reaches expires_at."""
    token = mint(server, query="?expire_in_seconds=10").json()["token"]
    ws = upgrade(server, token)
    assert json.loads(ws.recv())["type"] == "session.created"
    ws.close()
    assert server.wait_for_connection().headers["Authorization"] == f"Bearer {token}"
    clock.now = 1_700_000_009.99
    upgrade(server, token).close()
    clock.now = 1_700_000_010.0
    error = refused_upgrade(server, token)
    assert error.status_code == 401
    assert error.resp_body is not None
    body = json.loads(error.resp_body)
    assert body["code"] == "InvalidApiKey"
    assert "expired" in body["message"]
    expired_mint = mint(server, token)
    assert expired_mint.status_code == 401
    assert "expired" in expired_mint.json()["message"]
    assert refused_upgrade(server, "st-unknown").status_code == 401
    assert [record.status for record in server.handshakes] == [200, 101, 101, 401, 401, 401]


def test_temporary_key_cannot_mint_keys(server: LocalRealtimeServer) -> None:
    """Minting with a temporary key is refused with 403 AccessDenied, like the service."""
    token = mint(server).json()["token"]
    response = mint(server, token)
    assert response.status_code == 403
    assert response.json()["code"] == "AccessDenied"
    assert len(server.issued_tokens) == 1


def test_reject_next_http(server: LocalRealtimeServer) -> None:
    """reject_next_http answers the next N plain requests, before the key is checked."""
    throttled = {"code": "Throttling.RateQuota", "message": "Requests rate limit exceeded."}
    server.reject_next_http(429, throttled, count=2)
    server.reject_next_http(502, "<html>Bad Gateway</html>", content_type="text/html")
    for key in (KEY, "sk-wrong"):
        response = mint(server, key)
        assert (response.status_code, response.json()) == (429, throttled)
    response = mint(server)
    assert (response.status_code, response.text) == (502, "<html>Bad Gateway</html>")
    assert response.headers["Content-Type"] == "text/html"
    assert mint(server).status_code == 200
    # Upgrades are not affected: they have reject_next_handshakes.
    server.reject_next_http(500, {"code": "InternalError"})
    upgrade(server, KEY).close()
    assert [record.status for record in server.http_requests] == [429, 429, 502, 200]


def test_other_methods_paths_and_bodies(server: LocalRealtimeServer) -> None:
    """Wrong methods get 405, unknown paths 404, and a request body is accepted and recorded."""
    base = f"http://127.0.0.1:{server.port}"
    get = requests.get(f"{base}/api/v1/tokens", timeout=5)
    assert (get.status_code, get.json()["code"]) == (405, "MethodNotAllowed")
    put = requests.put(f"{base}/api/v1/tokens", timeout=5)
    assert (put.status_code, put.json()["code"]) == (405, "MethodNotAllowed")
    assert requests.post(f"{base}/api-ws/v1/realtime", timeout=5).status_code == 405
    missing = requests.post(f"{base}/api/v1/other", timeout=5)
    assert (missing.status_code, missing.json()["code"]) == (404, "NotFound")
    with_body = mint(server, json={"ignored": True})
    assert with_body.status_code == 200
    assert server.http_requests[-1].body == b'{"ignored": true}'
    head = requests.head(f"{base}/api/v1/tokens", timeout=5)
    assert head.status_code == 405 and head.content == b""
    assert [(r.method, r.status) for r in server.handshakes] == [
        ("GET", 405),
        ("PUT", 405),
        ("POST", 405),
        ("POST", 404),
        ("POST", 200),
        ("HEAD", 405),
    ]


def test_raw_requests_get_complete_replies(server: LocalRealtimeServer) -> None:
    """Raw HTTP/1.0 and 1.1 requests (no Content-Length, split writes) get full JSON replies."""
    status, headers, body = raw_request(
        server,
        b"POST /api/v1/tokens?expire_in_seconds=5 HTTP/1.1\r\nHost: x\r\n"
        + f"Authorization: Bearer {KEY}\r\n\r\n".encode(),
    )
    assert status == 200
    assert int(headers["content-length"]) == len(body)
    assert headers["connection"] == "close"
    assert json.loads(body)["expires_at"] == int(START) + 5
    status, _, body = raw_request(server, b"POST /api/v1/tokens HTTP/1.0\r\n\r\n")
    assert (status, json.loads(body)["code"]) == (401, "InvalidApiKey")
    status, _, body = raw_request(server, b"POST /api/v1/tokens\r\n\r\n")
    assert (status, json.loads(body)["code"]) == (400, "InvalidParameter")
    status, _, _ = raw_request(server, b"POST /x HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n")
    assert status == 413
    # A request whose method arrives in pieces is still recognised.
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"PO")
        sock.sendall(b"ST /nowhere HTTP/1.1\r\n\r\n")
        assert b" 404 " in sock.recv(65536).split(b"\r\n")[0]


def test_http_and_websockets_share_the_port_without_leaking_threads(
    clock: FakeClock,
) -> None:
    """Plain requests and WebSocket sessions mix on one port; close() joins every thread."""
    before = set(threading.enumerate())
    server = LocalRealtimeServer(clock=clock).start()
    try:
        token = mint(server).json()["token"]
        ws = upgrade(server, token)
        assert json.loads(ws.recv())["type"] == "session.created"
        assert mint(server).status_code == 200
        ws.send(json.dumps({"type": "input_audio_buffer.clear"}))
        assert json.loads(ws.recv())["type"] == "input_audio_buffer.cleared"
        ws.close()
    finally:
        server.close()
    assert set(threading.enumerate()) - before == set()
