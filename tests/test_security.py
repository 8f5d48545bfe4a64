"""Security over real sockets: TLS verification, CONNECT proxies, header
injection, and a canary key that must never show in logs, reprs or errors.
"""

from __future__ import annotations

import io
import logging
import socket
import ssl
import threading
import time
import traceback
from collections.abc import Iterator

import pytest
import requests
import trustme

import dashscope_sync as ds
from dashscope_sync.testing import LocalRealtimeServer

from ._net import ConnectProxy, TLSRelay

# Both modes: TLS and CONNECT proxies carry shared-mode (non-blocking) sockets too.
pytestmark = [pytest.mark.timeout(60), pytest.mark.both_modes]

MODEL = ds.MODEL_QWEN3_OMNI_FLASH_REALTIME
PATH = "/api-ws/v1/realtime"
PROXY_PASSWORD = "pr0xy-S3CRET-pw"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path) -> str:  # type: ignore[no-untyped-def]
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


def server_context(ca: trustme.CA, *names: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names).configure_cert(context)
    return context


def trusting(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


@pytest.fixture
def wss(ca: trustme.CA, server: LocalRealtimeServer) -> Iterator[TLSRelay]:
    """The local server behind TLS, with a certificate for 127.0.0.1 and localhost."""
    with TLSRelay(server_context(ca, "127.0.0.1", "localhost"), ("127.0.0.1", server.port)) as r:
        yield r


def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Proxy variables of the machine running the tests must not leak into them."""
    no_proxy_env(monkeypatch)
    monkeypatch.delenv("WEBSOCKET_CLIENT_CA_BUNDLE", raising=False)
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)


def talk(session: ds.RealtimeSession) -> None:
    """One text turn, to show the connection really works."""
    session.update_session(ds.SessionUpdate(modalities=["text"], turn_detection=None))
    session.append_text("hello")
    result = session.create_response().wait(timeout=10)
    assert result.text


# TLS ------------------------------------------------------------------------------------


def test_untrusted_certificate_is_refused_until_the_ca_is_trusted(
    ca: trustme.CA, server: LocalRealtimeServer, wss: TLSRelay
) -> None:
    """Verification is on by default: a throwaway CA is refused, saying so, until trusted through ssl_context=."""
    url = f"wss://127.0.0.1:{wss.port}{PATH}"
    with pytest.raises(ds.TransportError, match="could not be verified") as info:
        ds.Client(server.api_key, base_url=url).realtime.connect(model=MODEL, timeout=10)
    assert "ssl_context" in str(info.value)  # says how to trust a private CA
    client = ds.Client(server.api_key, base_url=url, ssl_context=trusting(ca))
    with client.realtime.connect(model=MODEL, timeout=10) as session:
        talk(session)


def test_hostname_mismatch_is_refused(ca: trustme.CA, server: LocalRealtimeServer) -> None:
    """A certificate from a trusted CA but for another host name is refused."""
    context = server_context(ca, "other.example")
    with TLSRelay(context, ("127.0.0.1", server.port)) as relay:
        client = ds.Client(
            server.api_key,
            base_url=f"wss://localhost:{relay.port}{PATH}",
            ssl_context=trusting(ca),
        )
        with pytest.raises(ds.TransportError, match="could not be verified") as info:
            client.realtime.connect(model=MODEL, timeout=10)
        assert "localhost" in str(info.value)


def test_token_call_verifies_tls_too(
    ca_file: str, server: LocalRealtimeServer, wss: TLSRelay
) -> None:
    """The HTTP token call refuses the untrusted certificate, and works once the CA bundle is given to the session."""
    base = f"https://127.0.0.1:{wss.port}"
    with pytest.raises(ds.TransportError, match="could not be verified"):
        ds.Client(server.api_key, http_base_url=base).tokens.create()
    with requests.Session() as http:
        http.verify = ca_file
        client = ds.Client(server.api_key, http_base_url=base, http_session=http)
        assert client.tokens.create().token


# Proxies --------------------------------------------------------------------------------


def heads(proxy: ConnectProxy) -> str:
    return "\n".join(h.decode("latin-1") for h in proxy.requests)


def test_proxy_tunnels_websocket_and_token_call(
    ca: trustme.CA, ca_file: str, server: LocalRealtimeServer, wss: TLSRelay
) -> None:
    """proxy= carries the wss:// session and the https:// token call through CONNECT; the key never reaches the proxy."""
    with ConnectProxy() as proxy, requests.Session() as http:
        http.verify = ca_file
        client = ds.Client(
            server.api_key,
            base_url=f"wss://127.0.0.1:{wss.port}{PATH}",
            http_base_url=f"https://127.0.0.1:{wss.port}",
            http_session=http,
            ssl_context=trusting(ca),
            proxy=proxy.url(),
        )
        with client.realtime.connect(model=MODEL, timeout=10) as session:
            talk(session)
        assert client.tokens.create().token
        # websocket-client says HTTP/1.1, urllib3 on Python 3.11 HTTP/1.0.
        assert [h.split(b"\r\n")[0][:-9] for h in proxy.requests] == [
            f"CONNECT 127.0.0.1:{wss.port}".encode(),
        ] * 2
        assert server.api_key not in heads(proxy)
        assert "Authorization: Bearer" not in heads(proxy)


def test_proxy_with_credentials(
    ca: trustme.CA, ca_file: str, server: LocalRealtimeServer, wss: TLSRelay
) -> None:
    """A proxy that wants credentials gets them from the proxy URL, for both calls."""
    with ConnectProxy(credentials=("alice", PROXY_PASSWORD)) as proxy, requests.Session() as http:
        http.verify = ca_file
        client = ds.Client(
            server.api_key,
            base_url=f"wss://127.0.0.1:{wss.port}{PATH}",
            http_base_url=f"https://127.0.0.1:{wss.port}",
            http_session=http,
            ssl_context=trusting(ca),
            proxy=proxy.url("alice", PROXY_PASSWORD),
        )
        with client.realtime.connect(model=MODEL, timeout=10) as session:
            talk(session)
        assert client.tokens.create().token
        assert len(proxy.requests) == 2
        assert all(b"Proxy-Authorization: Basic" in h for h in proxy.requests)
        assert server.api_key not in heads(proxy)


def rendered(exc: BaseException) -> str:
    """Everything a user could see of an exception: str, repr and the chained traceback."""
    return f"{exc}\n{exc!r}\n" + "".join(traceback.format_exception(exc))


def test_proxy_refusing_credentials_is_a_quick_typed_error(
    ca: trustme.CA, server: LocalRealtimeServer, wss: TLSRelay
) -> None:
    """A 407 (wrong password) is a TransportError at once, for both calls, and never shows the password."""
    with ConnectProxy(credentials=("alice", "the-right-one")) as proxy:
        client = ds.Client(
            server.api_key,
            base_url=f"wss://127.0.0.1:{wss.port}{PATH}",
            http_base_url=f"https://127.0.0.1:{wss.port}",
            ssl_context=trusting(ca),
            proxy=proxy.url("alice", PROXY_PASSWORD),
        )
        started = time.monotonic()
        with pytest.raises(ds.TransportError, match="407") as ws_info:
            client.realtime.connect(model=MODEL, timeout=10)
        with pytest.raises(ds.TransportError, match="407") as http_info:
            client.tokens.create(timeout=10)
        assert time.monotonic() - started < 5
        for info in (ws_info, http_info):
            assert PROXY_PASSWORD not in rendered(info.value)
            assert "127.0.0.1" in str(info.value)


def test_dead_proxy_is_a_quick_typed_error(server: LocalRealtimeServer) -> None:
    """A proxy that refuses connections is a TransportError naming it, without its password, for both calls."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = ds.Client(
        server.api_key,
        base_url=server.url,
        http_base_url=server.http_base_url,
        proxy=f"http://alice:{PROXY_PASSWORD}@127.0.0.1:{port}",
    )
    started = time.monotonic()
    with pytest.raises(ds.TransportError) as ws_info:
        client.realtime.connect(model=MODEL, timeout=10)
    with pytest.raises(ds.TransportError) as http_info:
        client.tokens.create(timeout=10)
    assert time.monotonic() - started < 5
    assert f"proxy http://127.0.0.1:{port}" in str(ws_info.value)
    for info in (ws_info, http_info):
        assert PROXY_PASSWORD not in rendered(info.value)


def test_proxy_that_never_answers_is_a_timeout(server: LocalRealtimeServer, wss: TLSRelay) -> None:
    """A proxy that accepts but never answers CONNECT is a DashScopeTimeout, for both calls."""
    with ConnectProxy(silent=True) as proxy:
        client = ds.Client(
            server.api_key,
            base_url=f"wss://127.0.0.1:{wss.port}{PATH}",
            http_base_url=f"https://127.0.0.1:{wss.port}",
            proxy=proxy.url(),
        )
        started = time.monotonic()
        with pytest.raises(ds.DashScopeTimeout):
            client.realtime.connect(model=MODEL, timeout=0.5)
        with pytest.raises(ds.DashScopeTimeout):
            client.tokens.create(timeout=0.5)
        assert time.monotonic() - started < 5


def test_https_proxy_and_no_proxy_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
    ca: trustme.CA,
    ca_file: str,
    server: LocalRealtimeServer,
    wss: TLSRelay,
) -> None:
    """HTTPS_PROXY routes both calls through the proxy; NO_PROXY (host, or host:port) exempts them, as requests reads it."""
    with ConnectProxy() as proxy, requests.Session() as http:
        http.verify = ca_file

        def both(host: str) -> None:
            client = ds.Client(
                server.api_key,
                base_url=f"wss://{host}:{wss.port}{PATH}",
                http_base_url=f"https://{host}:{wss.port}",
                http_session=http,
                ssl_context=trusting(ca),
            )
            with client.realtime.connect(model=MODEL, timeout=10):
                pass
            assert client.tokens.create().token

        monkeypatch.setenv("HTTPS_PROXY", proxy.url())
        both("127.0.0.1")
        assert len(proxy.requests) == 2
        for exempt in ("127.0.0.1", "127.0.0.0/8", "localhost", f"localhost:{wss.port}", "*"):
            monkeypatch.setenv("NO_PROXY", exempt if exempt == "*" else f"example.com, {exempt}")
            both("localhost" if "localhost" in exempt else "127.0.0.1")
            assert len(proxy.requests) == 2, exempt  # nothing more went through it
        monkeypatch.setenv("NO_PROXY", "example.com,localhost:1")
        both("localhost")  # another port of the same host is not exempt
        assert len(proxy.requests) == 4


def test_explicit_proxy_wins_over_no_proxy(
    monkeypatch: pytest.MonkeyPatch, server: LocalRealtimeServer
) -> None:
    """proxy= always applies (as it does for requests), even to a host NO_PROXY lists."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    with ConnectProxy() as proxy:
        client = ds.Client(server.api_key, base_url=server.url, proxy=proxy.url())
        with client.realtime.connect(model=MODEL, timeout=10):
            pass
        assert len(proxy.requests) == 1


def test_refused_connection_names_host_and_port() -> None:
    """A refused connection's message names the host and the port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = ds.Client("k", base_url=f"ws://127.0.0.1:{port}/")
    with pytest.raises(ds.TransportError, match=f"127.0.0.1:{port}.*refused"):
        client.realtime.connect(model=MODEL, timeout=10)


# Header injection --------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Trace": "a\r\nX-Injected: 1"},
        {"X-Trace": "a\nb"},
        {"X-Trace": "a\rb"},
        {"X-Trace": "a\x00b"},
        {"X-Trace": "a\x7fb"},
        {"X-Trace": "a\u2028b"},
        {"X-Trace\r\nX-Injected": "1"},
        {"X Trace": "1"},
        {"X-Trace:": "1"},
        {"": "1"},
        {"X-Tracé": "1"},
    ],
)
def test_header_injection_is_refused(headers: dict[str, str]) -> None:
    """A header name that is not an RFC 7230 token, or a value with a control character, is a ConfigError before anything is sent."""
    with pytest.raises(ds.ConfigError, match="extra_headers") as info:
        ds.RealtimeConfig(extra_headers=headers)
    assert "X-Injected" not in str(info.value) or "\r" not in str(info.value)


@pytest.mark.parametrize("model", ["m\r\nX-Injected: 1", "m\n", "m\x00", "m\u2029x"])
def test_model_with_control_characters_is_refused(model: str) -> None:
    """A model name with a control character (it reaches the request line) is a ConfigError."""
    with pytest.raises(ds.ConfigError, match="model"):
        ds.RealtimeConfig(model=model)


def test_valid_extra_headers_reach_the_server(server: LocalRealtimeServer) -> None:
    """Token names and tab/space/non-ASCII values pass and arrive as given; the repr hides values."""
    headers = {"X-Trace-Id": "abc def\tghi", "X_Odd!#$%&'*+.^`|~": "1"}
    config = ds.RealtimeConfig(model=MODEL, extra_headers=headers)
    assert "abc def" not in repr(config)
    client = ds.Client(server.api_key, base_url=server.url)
    with client.realtime.connect(config, timeout=10):
        pass
    assert server.handshakes[-1].headers["X-Trace-Id"] == "abc def\tghi"


# The canary key -----------------------------------------------------------------------

CANARY = "sk-CANARY-4f1c9e77d2b04a6f8e3c1b5a9d7e2f60"


def test_canary_key_never_shows(ca: trustme.CA, server: LocalRealtimeServer, wss: TLSRelay) -> None:
    """Over a full session with errors, neither the API key nor a temporary key appears in DEBUG logs (library and root), reprs, messages or tracebacks."""
    captured = io.StringIO()
    handler = logging.StreamHandler(captured)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    handler.setLevel(logging.DEBUG)

    class NotTheServer(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            # The local server stands for DashScope: what it logs is the
            # server's business, not the client library's.
            return not record.name.startswith("dashscope_sync.testing")

    handler.addFilter(NotTheServer())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    logging.getLogger("dashscope_sync").setLevel(logging.DEBUG)
    seen: list[str] = []  # reprs and messages
    errors: list[BaseException] = []

    def expect(kind: type[BaseException], call) -> None:  # type: ignore[no-untyped-def]
        try:
            call()
        except kind as exc:
            errors.append(exc)
        else:
            raise AssertionError(f"{call} did not raise {kind.__name__}")

    try:
        with LocalRealtimeServer(api_key=CANARY) as canary_server:
            client = ds.Client(
                CANARY,
                base_url=canary_server.url,
                http_base_url=canary_server.http_base_url,
                workspace="ws-1",
            )
            seen += [repr(client), str(client), repr(client.realtime), repr(client.tokens)]
            with client.realtime.connect(model=MODEL, timeout=10) as session:
                seen += [repr(session), repr(session.info)]
                session.on("*", lambda event: seen.append(repr(event)))
                failed_once: list[bool] = []

                def fail_once(event: ds.ServerEvent) -> None:
                    if not failed_once:
                        failed_once.append(True)
                        raise ZeroDivisionError(f"handler failed on {event!r}")

                failing = session.on("response.text.delta", fail_once)
                expect(ds.APIError, lambda: session.update_session(ds.SessionUpdate(temperature=1.9, modalities=["text"], extra={"voice": 5}), timeout=10))  # fmt: skip
                canary_server.send_text("{not json")
                canary_server.send_binary(b"\x00")
                session.update_session(ds.SessionUpdate(modalities=["text"], turn_detection=None))
                session.append_text("hello")
                response = session.create_response()
                seen += [repr(response)]
                try:
                    seen += [repr(response.wait(timeout=10))]
                except ds.DashScopeError as exc:
                    errors.append(exc)
                # The handler runs on its own thread: once it has failed, the
                # failure surfaces at the next call into the session.
                deadline = time.monotonic() + 10
                while not any(isinstance(e, ds.HandlerError) for e in errors):
                    assert time.monotonic() < deadline, "the handler error never surfaced"
                    try:
                        session.recv(timeout=0.2)
                    except ds.DashScopeTimeout:
                        pass
                    except ds.DashScopeError as exc:
                        errors.append(exc)
                failing.remove()
                canary_server.drop_connections()
                expect(ds.TransportError, lambda: [None for _ in session.events(timeout=10)])
                try:
                    again = session.reconnect(timeout=10)
                except ds.APIError as exc:
                    # reconnect() replays the refused update too; still an error to inspect.
                    errors.append(exc)
                else:
                    seen += [repr(again)]
                    again.close()
            temporary = client.tokens.create(expire_in_seconds=60)
            seen += [repr(temporary), str(temporary)]
            temp_client = ds.Client(temporary.token, base_url=canary_server.url)
            seen += [repr(temp_client)]
            with temp_client.realtime.connect(model=MODEL, timeout=10) as temp_session:
                seen += [repr(temp_session)]
            # Refusals that carry the key to the server and back.
            canary_server.reject_next_handshakes(401, {"code": "InvalidApiKey", "message": "no"})
            expect(ds.AuthenticationError, lambda: client.realtime.connect(model=MODEL, timeout=10))
            canary_server.reject_next_http(403, {"code": "AccessDenied", "message": "no"})
            expect(ds.AuthenticationError, lambda: client.tokens.create())
            expect(ds.AuthenticationError, lambda: ds.Client("sk-wrong", base_url=canary_server.url).realtime.connect(model=MODEL, timeout=10))  # fmt: skip
        # Transport failures with the key configured: TLS, proxy 407, refused port.
        tls_client = ds.Client(CANARY, base_url=f"wss://127.0.0.1:{wss.port}{PATH}")
        expect(ds.TransportError, lambda: tls_client.realtime.connect(model=MODEL, timeout=10))
        with ConnectProxy(credentials=("a", "b")) as proxy:
            proxied = ds.Client(CANARY, base_url=server.url, proxy=proxy.url(), http_base_url=f"https://127.0.0.1:{wss.port}")  # fmt: skip
            expect(ds.TransportError, lambda: proxied.realtime.connect(model=MODEL, timeout=10))
            expect(ds.TransportError, lambda: proxied.tokens.create(timeout=10))
        expect(ds.TransportError, lambda: ds.Client(CANARY, base_url="ws://127.0.0.1:1/").realtime.connect(model=MODEL, timeout=10))  # fmt: skip
        expect(ds.ConfigError, lambda: ds.Client(CANARY + "\n"))
        expect(ds.ConfigError, lambda: ds.RealtimeConfig(extra_headers={"X-Key": CANARY + "\r\n"}))
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)

    everything = "\n".join([captured.getvalue(), *seen, *(rendered(e) for e in errors)])
    assert len(errors) >= 12
    assert "received session.created" in everything  # DEBUG logs were captured
    for secret in (CANARY, CANARY[3:], temporary.token, temporary.token[3:]):
        assert secret not in everything, f"{secret[:6]}... leaked"


@pytest.mark.parametrize("bad", ["sk-abc\n", "sk-abc\r\n", "sk-abc\r\nX-Injected: 1", "\nsk-abc"])
def test_key_and_workspace_with_a_newline_are_refused(bad: str) -> None:
    """An API key or workspace with a newline, even a trailing one, is a ConfigError that does not echo it."""
    with pytest.raises(ds.ConfigError) as info:
        ds.Client(bad)
    assert "sk-abc" not in str(info.value)
    with pytest.raises(ds.ConfigError):
        ds.Client("sk-ok", workspace=bad)


def test_redirect_is_refused_and_the_key_stays_home() -> None:
    """An upgrade answered with a redirect is a TransportError; the key is never sent to the Location."""
    elsewhere = socket.create_server(("127.0.0.1", 0))
    redirector = socket.create_server(("127.0.0.1", 0))
    location = f"ws://127.0.0.1:{elsewhere.getsockname()[1]}/steal"
    elsewhere.settimeout(0.5)

    def redirect() -> None:
        conn, _ = redirector.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(
                f"HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n".encode()
            )

    thread = threading.Thread(target=redirect)
    thread.start()
    try:
        client = ds.Client(CANARY, base_url=f"ws://127.0.0.1:{redirector.getsockname()[1]}/")
        with pytest.raises(ds.TransportError, match="redirect"):
            client.realtime.connect(model=MODEL, timeout=10)
        with pytest.raises(TimeoutError):
            elsewhere.accept()  # nobody came
    finally:
        thread.join(10)
        elsewhere.close()
        redirector.close()
