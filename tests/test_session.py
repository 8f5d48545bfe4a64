"""Session behaviour over real loopback sockets against the local server."""

from __future__ import annotations

import base64
import gc
import json
import logging
import threading
import time
import traceback
from collections.abc import Callable

import pytest
import websocket

import dashscope_sync as ds
from dashscope_sync.testing import LocalRealtimeServer

from ._net import OP_PING, OP_PONG, RawPeer, raw_session, text
from ._net import frame as ws_frame
from .conftest import MODEL

# Both modes (issue 18): each test runs with threads and again on a ds.Reactor.
pytestmark = [pytest.mark.timeout(30), pytest.mark.both_modes]


def connect(client: ds.Client, **options: object) -> ds.RealtimeSession:
    return client.realtime.connect(ds.RealtimeConfig(model=MODEL, **options))  # type: ignore[arg-type]


def connect_failure(
    server: LocalRealtimeServer, client: ds.Client, act: Callable[[], object]
) -> BaseException:
    """Connect while the server holds session.created, do ``act``, return connect()'s error."""
    server.hold_session_created()
    result: list[BaseException] = []

    def attempt() -> None:
        try:
            client.realtime.connect(model=MODEL, timeout=10)
        except BaseException as exc:
            result.append(exc)

    thread = threading.Thread(target=attempt)
    thread.start()
    server.wait_for_connection()
    act()
    thread.join(10)
    assert result, "connect() succeeded"
    return result[0]


class TestConnect:
    def test_returns_a_ready_session(self, session: ds.RealtimeSession) -> None:
        """connect() returns only after session.created, with id and info set."""
        assert session.id.startswith("sess_")
        assert session.info.id == session.id
        assert session.info.voice == "Cherry"
        assert isinstance(session.recv(timeout=0), ds.SessionCreated)

    def test_sends_no_client_event(self, server: LocalRealtimeServer, client: ds.Client) -> None:
        """connect() itself sends nothing: the first client frame is the user's."""
        with connect(client) as session:
            session.send_raw({"type": "input_audio_buffer.clear"})
            server.wait_for_received("input_audio_buffer.clear")
            assert [f["type"] for f in server.received] == ["input_audio_buffer.clear"]

    def test_url_and_headers(self) -> None:
        """The upgrade carries ?model=, Bearer auth, the workspace and a User-Agent."""
        # A made-up name shows the escaping: the server must accept any name.
        with LocalRealtimeServer(strict_names=False) as server:
            client = ds.Client(server.api_key, workspace="ws-123", base_url=server.url + "?x=1")
            with client.realtime.connect(model="qwen omni&odd"):
                pass
        record = server.handshakes[-1]
        assert record.query == {"x": "1", "model": "qwen omni&odd"}
        assert record.headers["Authorization"] == f"Bearer {server.api_key}"
        assert record.headers["X-DashScope-WorkSpace"] == "ws-123"
        assert "dashscope-sync/" in record.headers["User-Agent"]
        assert "python/" in record.headers["User-Agent"]

    def test_wrong_key_is_authentication_error(self, server: LocalRealtimeServer) -> None:
        """A refused key raises AuthenticationError with the body's data, not a timeout."""
        client = ds.Client("sk-wrong", base_url=server.url)
        started = time.monotonic()
        with pytest.raises(ds.AuthenticationError) as info:
            client.realtime.connect(model=MODEL, timeout=60)
        assert time.monotonic() - started < 30  # answered, not timed out
        error = info.value
        assert error.http_status == 401
        assert error.code == "InvalidApiKey"
        assert "Invalid API-key" in error.message
        assert error.request_id

    def test_wrong_key_traceback_is_the_error_alone(self, server: LocalRealtimeServer) -> None:
        """A refused key's traceback shows only the AuthenticationError, not websocket-client's exception with the raw headers."""
        client = ds.Client("sk-wrong", base_url=server.url)
        with pytest.raises(ds.AuthenticationError) as info:
            client.realtime.connect(model=MODEL, timeout=60)
        error = info.value
        assert error.__cause__ is None and error.__suppress_context__
        shown = "".join(traceback.format_exception(error))
        assert "Handshake status" not in shown and "content-type" not in shown.lower()
        assert "WebSocketBadStatusException" not in shown and "/websocket/" not in shown
        assert shown.count("Traceback") == 1

    @pytest.mark.parametrize(
        ("status", "cls"),
        [(429, ds.RateLimitError), (403, ds.AuthenticationError), (500, ds.APIError)],
    )
    def test_refused_statuses(
        self, server: LocalRealtimeServer, client: ds.Client, status: int, cls: type
    ) -> None:
        """Each refused status maps to its APIError subclass with code and request id."""
        body = {"code": f"Code{status}", "message": f"refused {status}", "request_id": "rid-1"}
        server.reject_next_handshakes(status, body)
        with pytest.raises(ds.APIError) as info:
            connect(client)
        assert type(info.value) is cls
        assert (info.value.http_status, info.value.code) == (status, f"Code{status}")
        assert info.value.request_id == "rid-1"
        assert f"refused {status}" in str(info.value)

    def test_non_json_refusal(self, server: LocalRealtimeServer, client: ds.Client) -> None:
        """A refusal with a non-JSON body keeps the text as the message."""
        server.reject_next_handshakes(502, "<html>Bad Gateway</html>")
        with pytest.raises(ds.APIError) as info:
            connect(client)
        assert info.value.http_status == 502
        assert "Bad Gateway" in info.value.message

    def test_unresolvable_host(self) -> None:
        """A DNS failure is a TransportError, not a websocket-client exception."""
        client = ds.Client("k", base_url="ws://no-such-host.invalid/api-ws/v1/realtime")
        with pytest.raises(ds.TransportError) as info:
            client.realtime.connect(model=MODEL, timeout=10)
        assert not isinstance(info.value, websocket.WebSocketException)

    def test_refused_port(self) -> None:
        """A closed port is a TransportError."""
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        client = ds.Client("k", base_url=f"ws://127.0.0.1:{port}/")
        with pytest.raises(ds.TransportError):
            client.realtime.connect(model=MODEL, timeout=10)

    def test_timeout_waiting_for_session_created(
        self, server: LocalRealtimeServer, client: ds.Client
    ) -> None:
        """No session.created in time raises DashScopeTimeout, a TimeoutError."""
        server.hold_session_created()
        with pytest.raises(ds.DashScopeTimeout) as info:
            client.realtime.connect(model=MODEL, timeout=0.3)
        assert isinstance(info.value, TimeoutError)
        assert info.value.timeout == 0.3

    def test_error_before_session_created(
        self, server: LocalRealtimeServer, client: ds.Client
    ) -> None:
        """An error event before session.created fails connect() with an APIError."""
        error = connect_failure(
            server,
            client,
            lambda: server.send(
                {"type": "error", "error": {"code": "Model.NotExist", "message": "no model"}}
            ),
        )
        assert isinstance(error, ds.APIError)
        assert error.code == "Model.NotExist"

    def test_close_before_session_created(
        self, server: LocalRealtimeServer, client: ds.Client
    ) -> None:
        """A close before session.created fails connect() with its code and reason."""
        error = connect_failure(server, client, lambda: server.close_connections(4003, "no access"))
        assert isinstance(error, ds.TransportError)
        assert (error.code, error.reason) == (4003, "no access")

    def test_config_and_model_conflict(self, client: ds.Client) -> None:
        """Giving two different models is a ConfigError before any I/O."""
        with pytest.raises(ds.ConfigError):
            client.realtime.connect(ds.RealtimeConfig(model="a"), model="b")


class TestUpdateSession:
    def test_returns_effective_config(
        self, server: LocalRealtimeServer, session: ds.RealtimeSession
    ) -> None:
        """update_session waits for session.updated and returns its SessionInfo."""
        info = session.update_session(
            ds.SessionUpdate(modalities=["text"], voice="Ethan", turn_detection=None)
        )
        assert info.voice == "Ethan"
        assert info.modalities == ["text"]
        assert info.turn_detection is None
        assert session.info == info
        sent = server.received[-1]
        assert sent["type"] == "session.update"
        assert sent["session"] == {"modalities": ["text"], "voice": "Ethan", "turn_detection": None}
        assert sent["event_id"].startswith("event_")

    def test_unset_fields_are_omitted(
        self, server: LocalRealtimeServer, session: ds.RealtimeSession
    ) -> None:
        """Fields left unset are not sent, so turn detection stays on."""
        info = session.update_session(ds.SessionUpdate(instructions="be brief"))
        assert server.received[-1]["session"] == {"instructions": "be brief"}
        assert info.turn_detection is not None

    def test_error_naming_the_request(
        self, server: LocalRealtimeServer, session: ds.RealtimeSession
    ) -> None:
        """The error event that names the request is raised as an APIError."""
        with pytest.raises(ds.APIError) as info:
            session.update_session({"modalities": ["audio"]})
        error = info.value
        assert error.code == "invalid_value"
        assert error.param == "session.modalities"
        assert error.type == "invalid_request_error"
        assert error.event_id == server.received[-1]["event_id"]
        assert isinstance(error.event, ds.ErrorEvent)

    def test_error_naming_no_request_but_a_session_param(
        self, server: LocalRealtimeServer, session: ds.RealtimeSession
    ) -> None:
        """An error naming no request but a session.* param fails the oldest waiting update."""
        server.inject_error(
            "session.update",
            {"code": "Throttling", "message": "slow down", "param": "session.voice"},
            echo_event_id=False,
        )
        with pytest.raises(ds.RateLimitError) as info:
            session.update_session(ds.SessionUpdate(voice="Ethan"))
        assert info.value.event_id is None

    def test_error_naming_nothing_fails_no_request(
        self, server: LocalRealtimeServer, session: ds.RealtimeSession
    ) -> None:
        """An error that says neither which request nor which kind fails no request."""
        server.inject_error(
            "session.update", {"code": "Throttling", "message": "slow down"}, echo_event_id=False
        )
        with pytest.raises(ds.DashScopeTimeout):
            session.update_session(ds.SessionUpdate(voice="Ethan"), timeout=0.5)
        error = session.wait_for(ds.ErrorEvent, timeout=5)
        assert error.error.code == "Throttling"

    def test_error_naming_another_request_is_only_an_event(
        self, server: LocalRealtimeServer, session: ds.RealtimeSession
    ) -> None:
        """An error naming some other event does not fail the waiting update."""
        session.commit_audio()  # empty buffer: the server answers with an error naming it
        info = session.update_session(ds.SessionUpdate(voice="Ethan"))
        assert info.voice == "Ethan"
        error = session.wait_for(ds.ErrorEvent, timeout=5)
        assert error.error.code == "input_audio_buffer_commit_empty"

    def test_no_wait(self, server: LocalRealtimeServer, session: ds.RealtimeSession) -> None:
        """wait=False returns None at once; the answer arrives as an event."""
        assert session.update_session(ds.SessionUpdate(voice="Ethan"), wait=False) is None
        updated = session.wait_for(ds.SessionUpdated, timeout=5)
        assert updated.session.voice == "Ethan"

    def test_timeout(self, server: LocalRealtimeServer, session: ds.RealtimeSession) -> None:
        """No answer in time raises DashScopeTimeout."""
        server.on_client_event("session.update", None)
        with pytest.raises(ds.DashScopeTimeout):
            session.update_session(ds.SessionUpdate(voice="Ethan"), timeout=0.2)

    def test_late_answer_goes_to_the_abandoned_request(
        self, server: LocalRealtimeServer, session: ds.RealtimeSession
    ) -> None:
        """An answer arriving after a timeout is not taken for the next request's."""
        server.set_reply_delay(0.5)
        with pytest.raises(ds.DashScopeTimeout):
            session.update_session(ds.SessionUpdate(voice="Ethan"), timeout=0.05)
        server.set_reply_delay(0)
        info = session.update_session(ds.SessionUpdate(voice="Jennifer"), timeout=5)
        assert info.voice == "Jennifer"

    def test_bad_argument(self, session: ds.RealtimeSession) -> None:
        """A non-update argument is a ConfigError."""
        with pytest.raises(ds.ConfigError):
            session.update_session("voice=Ethan")  # type: ignore[arg-type]


class TestSending:
    def test_append_audio(self, server: LocalRealtimeServer, session: ds.RealtimeSession) -> None:
        """append_audio sends the PCM as standard base64 and returns the event id."""
        pcm = bytes(range(256)) * 25
        event_id = session.append_audio(bytearray(pcm))
        frame = server.wait_for_received("input_audio_buffer.append")
        assert frame["event_id"] == event_id
        assert base64.b64decode(frame["audio"]) == pcm

    def test_commit_clear_cancel(
        self, server: LocalRealtimeServer, session: ds.RealtimeSession
    ) -> None:
        """commit_audio, clear_audio and cancel_response send their events."""
        session.update_session(ds.SessionUpdate(turn_detection=None))  # no automatic response
        session.append_audio(b"\x00\x01" * 1600)
        session.commit_audio()
        assert isinstance(session.wait_for(ds.InputAudioBufferCommitted, timeout=5).item_id, str)
        session.clear_audio()
        session.wait_for(ds.InputAudioBufferCleared, timeout=5)
        session.cancel_response()
        error = session.wait_for(ds.ErrorEvent, timeout=5)
        assert error.error.code == "response_cancel_not_active"
        types = [f["type"] for f in server.received]
        assert types == [
            "session.update",
            "input_audio_buffer.append",
            "input_audio_buffer.commit",
            "input_audio_buffer.clear",
            "response.cancel",
        ]

    def test_append_image(self, server: LocalRealtimeServer, session: ds.RealtimeSession) -> None:
        """append_image sends the JPEG as base64 after audio."""
        jpeg = b"\xff\xd8\xff\xe0" + b"\x00" * 100
        session.append_audio(b"\x00\x00" * 1600)
        session.append_image(jpeg)
        frame = server.wait_for_received("input_image_buffer.append")
        assert base64.b64decode(frame["image"]) == jpeg

    def test_append_text(self, server: LocalRealtimeServer, session: ds.RealtimeSession) -> None:
        """append_text sends a user message item with input_text content."""
        session.append_text("你好, hello")
        frame = server.wait_for_received("conversation.item.create")
        assert frame["item"] == {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "你好, hello"}],
        }
        created = session.wait_for(ds.ConversationItemCreated, timeout=5)
        assert created.item.role == "user"

    def test_create_response_options(
        self, server: LocalRealtimeServer, session: ds.RealtimeSession
    ) -> None:
        """create_response sends only the options given."""
        session.create_response()
        session.wait_for(ds.ResponseDone, timeout=10)
        session.create_response(instructions="short", modalities=["text"])
        session.wait_for(ds.ResponseDone, timeout=10)
        creates = [f for f in server.received if f["type"] == "response.create"]
        assert "response" not in creates[0]
        assert creates[1]["response"] == {"instructions": "short", "modalities": ["text"]}

    def test_finish_session(self, session: ds.RealtimeSession) -> None:
        """finish_session returns the SessionFinished event."""
        assert isinstance(session.finish_session(timeout=5), ds.SessionFinished)

    def test_finish_session_rejected(self) -> None:
        """finish_session returns None when the model rejects session.finish."""
        with LocalRealtimeServer(support_session_finish=False) as server:
            client = ds.Client(server.api_key, base_url=server.url)
            with connect(client) as session:
                assert session.finish_session(timeout=5) is None
                session.update_session(ds.SessionUpdate(voice="Ethan"))  # still usable

    def test_send_raw(self, server: LocalRealtimeServer, session: ds.RealtimeSession) -> None:
        """send_raw adds an event_id when missing and keeps one that is given."""
        first = session.send_raw({"type": "input_audio_buffer.clear"})
        second = session.send_raw({"type": "input_audio_buffer.clear", "event_id": "mine"})
        server.wait_for_received("input_audio_buffer.clear", count=2)
        assert [f["event_id"] for f in server.received] == [first, "mine"]
        assert second == "mine"

    @pytest.mark.parametrize(
        ("method", "args"),
        [
            ("append_audio", ("text",)),
            ("append_audio", (b"\x00",)),
            ("append_audio", (b"",)),
            ("append_image", (b"\x89PNG....",)),
            ("append_text", ("",)),
            ("append_text", (5,)),
            ("send_raw", ({"no": "type"},)),
            ("send_raw", ({"type": "x", "v": object()},)),
        ],
    )
    def test_bad_input_is_config_error(
        self, server: LocalRealtimeServer, session: ds.RealtimeSession, method: str, args: tuple
    ) -> None:
        """Bad arguments raise ConfigError and send nothing."""
        with pytest.raises(ds.ConfigError):
            getattr(session, method)(*args)
        with pytest.raises(ds.ConfigError):
            session.create_response(modalities=["audio"])
        session.send_raw({"type": "input_audio_buffer.clear"})
        server.wait_for_received("input_audio_buffer.clear")
        assert [f["type"] for f in server.received] == ["input_audio_buffer.clear"]

    def test_oversized_inputs(self, session: ds.RealtimeSession) -> None:
        """Audio over 15 MiB and images over 500 KB are refused before sending."""
        with pytest.raises(ds.ConfigError, match="smaller chunks"):
            session.append_audio(bytes(15 * 1024 * 1024 + 2))
        with pytest.raises(ds.ConfigError, match="limited"):
            session.append_image(b"\xff\xd8" + bytes(500 * 1024))

    def test_concurrent_senders(
        self, server: LocalRealtimeServer, session: ds.RealtimeSession
    ) -> None:
        """Sends from several threads arrive whole, each thread's in its own order."""
        threads, per_thread = 8, 100

        def send(tag: int) -> None:
            for n in range(per_thread):
                session.append_audio(bytes([tag, n]) * 50)

        workers = [threading.Thread(target=send, args=(t,)) for t in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        server.wait_for_received("input_audio_buffer.append", count=threads * per_thread)
        seen: dict[int, list[int]] = {}
        for frame in server.received:
            pcm = base64.b64decode(frame["audio"])
            assert pcm == pcm[:2] * 50
            seen.setdefault(pcm[0], []).append(pcm[1])
        assert seen == {t: list(range(per_thread)) for t in range(threads)}

    def test_send_after_close(self, session: ds.RealtimeSession) -> None:
        """Sending on a closed session raises SessionClosedError."""
        session.close()
        with pytest.raises(ds.SessionClosedError):
            session.append_audio(b"\x00\x00")
        with pytest.raises(ds.SessionClosedError):
            session.update_session(ds.SessionUpdate(voice="Ethan"))

    def test_send_after_server_close(
        self, server: LocalRealtimeServer, session: ds.RealtimeSession
    ) -> None:
        """After the server closed, sending raises SessionClosedError with its code."""
        server.close_connections(1000, "bye")
        assert session.wait_for("*", timeout=5) is not None  # session.created
        assert session.recv(timeout=5) is None
        with pytest.raises(ds.SessionClosedError) as info:
            session.commit_audio()
        assert (info.value.code, info.value.reason) == (1000, "bye")


class TestHandlers:
    def test_by_string_class_and_star(
        self, server: LocalRealtimeServer, session: ds.RealtimeSession
    ) -> None:
        """Handlers match by wire type, by class and by '*', in a defined order."""
        calls: list[str] = []
        done = threading.Event()
        session.on("*", lambda ev: calls.append(f"*:{ev.type}"))
        session.on("response.text.delta", lambda ev: calls.append("str"))
        session.on(ds.ResponseTextDelta, lambda ev: calls.append("cls"))
        # '*' handlers run last, in the order registered: this one runs after
        # every other handler of the text.done, so all four calls are in.
        session.on("*", lambda ev: ev.type == "response.text.done" and done.set())
        server.send({"type": "response.text.delta", "delta": "a"})
        server.send({"type": "response.text.done", "text": "a"})
        assert done.wait(5)
        assert calls[:4] == ["str", "cls", "*:response.text.delta", "*:response.text.done"]

    def test_decorator_returns_the_function(
        self, server: LocalRealtimeServer, session: ds.RealtimeSession
    ) -> None:
        """@session.on(...) registers the function and returns it unchanged."""
        got: list[str] = []
        done = threading.Event()

        @session.on(ds.ResponseTextDelta)
        def handler(event: ds.ResponseTextDelta) -> None:
            got.append(event.delta)
            done.set()

        assert callable(handler) and handler.__name__ == "handler"
        server.send({"type": "response.text.delta", "delta": "x"})
        assert done.wait(5)
        assert got == ["x"]

    def test_remove(self, server: LocalRealtimeServer, session: ds.RealtimeSession) -> None:
        """A removed handler is not called again."""
        got: list[str] = []
        first, done = threading.Event(), threading.Event()
        handle = session.on(ds.ResponseTextDelta, lambda ev: (got.append(ev.delta), first.set()))
        session.on(ds.ResponseTextDone, lambda ev: done.set())
        server.send({"type": "response.text.delta", "delta": "1"})
        assert first.wait(5)
        handle.remove()
        handle.remove()  # idempotent
        server.send({"type": "response.text.delta", "delta": "2"})
        server.send({"type": "response.text.done"})
        assert done.wait(5)
        assert got == ["1"]
        assert "removed" in repr(handle)

    def test_unknown_and_invalid_frames(
        self,
        server: LocalRealtimeServer,
        session: ds.RealtimeSession,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """Unknown types and undecodable frames reach handlers and the iterator in order."""
        unknown: list[ds.ServerEvent] = []
        invalid: list[ds.ServerEvent] = []
        session.on(ds.UnknownEvent, unknown.append)
        session.on("invalid_frame", invalid.append)
        session.on(ds.InvalidFrame, invalid.append)
        server.send({"type": "conversation.item.truncated", "item_id": "i"})
        server.send_text('{"type": "response.text.delta", "delta": ')
        server.send_binary(b"\x00\x01")
        server.send({"type": "response.text.delta", "delta": "after"})
        assert isinstance(session.recv(timeout=5), ds.SessionCreated)
        first = session.recv(timeout=5)
        assert isinstance(first, ds.UnknownEvent) and first.type == "conversation.item.truncated"
        bad = session.recv(timeout=5)
        assert isinstance(bad, ds.InvalidFrame) and bad.type == "invalid_frame"
        assert "not JSON" in bad.error
        binary = session.recv(timeout=5)
        assert isinstance(binary, ds.InvalidFrame) and binary.length == 2
        after = session.recv(timeout=5)
        assert isinstance(after, ds.ResponseTextDelta) and after.delta == "after"
        session.close()
        assert [type(e) for e in unknown] == [ds.UnknownEvent]
        assert len(invalid) == 4  # two frames, two handlers each
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert any("undecodable frame" in r.getMessage() for r in warnings)
        ours = [r for r in caplog.records if r.name == "dashscope_sync"]
        assert not any('"delta"' in r.getMessage() for r in ours)

    def test_handlers_never_run_on_the_reader(
        self, server: LocalRealtimeServer, session: ds.RealtimeSession
    ) -> None:
        """Handlers run on the handler thread, not the socket reader or the caller."""
        names: list[str] = []
        done = threading.Event()
        session.on("*", lambda ev: (names.append(threading.current_thread().name), done.set()))
        server.send({"type": "response.text.delta", "delta": "x"})
        assert done.wait(5)
        # In shared mode, a pool thread: dashscope_sync-handlers-N.
        assert [n.rstrip("0123456789-") for n in names] == ["dashscope_sync-handlers"]

    def test_slow_handler_does_not_delay_the_iterator(
        self, server: LocalRealtimeServer, session: ds.RealtimeSession
    ) -> None:
        """A blocked handler does not hold back the iterator (else this deadlocks)."""
        release = threading.Event()
        session.on(ds.ResponseTextDelta, lambda ev: release.wait(20))
        for n in range(5):
            server.send({"type": "response.text.delta", "delta": str(n)})
        server.send({"type": "response.text.done", "text": "01234"})
        done = session.wait_for(ds.ResponseTextDone, timeout=10)
        assert done.text == "01234"
        release.set()

    def test_slow_handler_does_not_stop_pongs(self) -> None:
        """While a handler sleeps, the reader still answers the server's pings."""
        peer = RawPeer()
        in_handler = threading.Event()  # the handler has started
        release = threading.Event()  # the handler may return

        def stuck(_: ds.ServerEvent) -> None:
            in_handler.set()
            release.wait(30)

        with raw_session(peer) as session:
            session.on(ds.ResponseTextDelta, stuck)
            try:
                peer.send(text({"type": "response.text.delta", "delta": "x"}))
                assert in_handler.wait(10)
                for n in range(3):
                    payload = f"ping {n}".encode()
                    peer.send(ws_frame(payload, OP_PING))
                    assert peer.wait_for_frame(OP_PONG, payload, timeout=10), "no pong"
                assert not release.is_set() and not session.closed
            finally:
                release.set()

    def test_exception_is_raised_on_the_caller(
        self,
        server: LocalRealtimeServer,
        session: ds.RealtimeSession,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """A raising handler is logged with its traceback and raised as HandlerError."""

        def broken(event: ds.ServerEvent) -> None:
            raise KeyError("boom")

        session.on(ds.ResponseTextDelta, broken)
        server.send({"type": "response.text.delta", "delta": "x"})
        with pytest.raises(ds.HandlerError) as info:
            session.wait_for(ds.SessionFinished, timeout=10)
        assert isinstance(info.value.__cause__, KeyError)
        assert info.value.handler is broken
        assert isinstance(info.value.event, ds.ResponseTextDelta)
        # Logged before it is reported: the record is there by now.
        record = next(r for r in caplog.records if "raised while handling" in r.getMessage())
        assert record.exc_info is not None and record.exc_info[0] is KeyError
        # Raised once: the next call goes on normally.
        assert session.update_session(ds.SessionUpdate(voice="Ethan")).voice == "Ethan"

    def test_exception_wakes_a_waiting_call(
        self, server: LocalRealtimeServer, session: ds.RealtimeSession
    ) -> None:
        """A handler error wakes an update_session already waiting (not a timeout)."""
        server.on_client_event("session.update", None)  # never answered
        gate = threading.Event()

        def broken(event: ds.ServerEvent) -> None:
            gate.wait(10)
            raise ValueError("late failure")

        session.on(ds.ResponseTextDelta, broken)
        server.send({"type": "response.text.delta", "delta": "x"})

        def release_soon() -> None:
            server.wait_for_received("session.update")
            gate.set()

        threading.Thread(target=release_soon).start()
        with pytest.raises(ds.HandlerError) as info:
            session.update_session(ds.SessionUpdate(voice="Ethan"), timeout=20)
        assert isinstance(info.value.__cause__, ValueError)

    def test_blocking_inside_a_handler_is_a_usage_error(
        self, server: LocalRealtimeServer, session: ds.RealtimeSession
    ) -> None:
        """Blocking calls from a handler raise UsageError instead of deadlocking."""
        errors: list[BaseException] = []
        done = threading.Event()

        def handler(event: ds.ServerEvent) -> None:
            for call in (
                lambda: session.recv(timeout=1),
                lambda: session.wait_for(ds.ResponseDone, timeout=1),
                lambda: session.update_session(ds.SessionUpdate(voice="Ethan")),
                lambda: session.finish_session(timeout=1),
                lambda: next(iter(session)),
            ):
                try:
                    call()
                except BaseException as exc:
                    errors.append(exc)
            session.update_session(ds.SessionUpdate(voice="Ethan"), wait=False)  # allowed
            done.set()

        session.on(ds.ResponseTextDelta, handler)
        server.send({"type": "response.text.delta", "delta": "x"})
        assert done.wait(10)
        assert [type(e) for e in errors] == [ds.UsageError] * 5
        assert session.wait_for(ds.SessionUpdated, timeout=5).session.voice == "Ethan"

    def test_close_from_a_handler(
        self, server: LocalRealtimeServer, session: ds.RealtimeSession
    ) -> None:
        """A handler may close the session without deadlocking on its own thread."""
        session.on(ds.ResponseTextDelta, lambda ev: session.close())
        server.send({"type": "response.text.delta", "delta": "x"})
        events = list(session.events(timeout=10))
        assert isinstance(events[-1], ds.ResponseTextDelta)
        session.close()  # joins the handler thread
        assert session.closed

    def test_bad_registration(self, session: ds.RealtimeSession) -> None:
        """A non-callable handler or a non-event type is a ConfigError; a typo warns."""
        with pytest.raises(ds.ConfigError):
            session.on(ds.ResponseTextDelta, "not callable")  # type: ignore[call-overload]
        with pytest.raises(ds.ConfigError):
            session.on(int, print)  # type: ignore[call-overload]
        with pytest.warns(UserWarning, match="not an event type"):
            session.on("response.audio.delt", print)


class TestPulling:
    def test_events_before_the_first_call_are_kept(
        self, server: LocalRealtimeServer, session: ds.RealtimeSession
    ) -> None:
        """Events that arrived before the first recv are delivered, in order."""
        for n in range(3):
            server.send({"type": "response.text.delta", "delta": str(n)})
        session.update_session(ds.SessionUpdate(voice="Ethan"))  # all arrived by now
        got = [session.recv(timeout=5) for _ in range(5)]
        assert [type(e) for e in got] == [ds.SessionCreated] + [ds.ResponseTextDelta] * 3 + [
            ds.SessionUpdated
        ]
        assert [e.delta for e in got[1:4]] == ["0", "1", "2"]  # type: ignore[union-attr]

    def test_recv_timeout(self, session: ds.RealtimeSession) -> None:
        """recv raises DashScopeTimeout when nothing comes in time; 0 polls."""
        session.recv(timeout=0)
        with pytest.raises(ds.DashScopeTimeout):
            session.recv(timeout=0)
        with pytest.raises(TimeoutError):
            session.recv(timeout=0.05)

    def test_wait_for_consumes_up_to_the_match(
        self, server: LocalRealtimeServer, session: ds.RealtimeSession
    ) -> None:
        """wait_for skips earlier events for the iterator but handlers see them all."""
        seen: list[str] = []
        session.on("*", lambda ev: seen.append(ev.type))
        session.create_response()
        done = session.wait_for(ds.ResponseDone, timeout=10)
        assert done.response.status == "completed"
        session.update_session(ds.SessionUpdate(voice="Ethan"))
        assert isinstance(session.recv(timeout=5), ds.SessionUpdated)
        session.close()
        assert "response.audio.delta" in seen and seen[-1] == "session.updated"

    def test_wait_for_by_string_and_star(
        self, server: LocalRealtimeServer, session: ds.RealtimeSession
    ) -> None:
        """wait_for accepts a wire type and '*'."""
        assert isinstance(session.wait_for("*", timeout=5), ds.SessionCreated)
        server.send({"type": "response.text.delta", "delta": "x"})
        assert session.wait_for("response.text.delta", timeout=5).type == "response.text.delta"
        with pytest.raises(ds.DashScopeTimeout):
            session.wait_for(ds.ResponseDone, timeout=0.1)

    def test_wait_for_after_clean_close(
        self, server: LocalRealtimeServer, session: ds.RealtimeSession
    ) -> None:
        """wait_for raises SessionClosedError when the session closes cleanly first."""
        server.close_connections(1000, "done")
        with pytest.raises(ds.SessionClosedError):
            session.wait_for(ds.ResponseDone, timeout=10)

    def test_buffer_overflow_drops_oldest(
        self, server: LocalRealtimeServer, client: ds.Client, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A full buffer drops the oldest events, counts them and warns once."""
        with connect(client, max_buffered_events=5) as session:
            done = threading.Event()
            session.on(ds.ResponseTextDone, lambda ev: done.set())
            for n in range(20):
                server.send({"type": "response.text.delta", "delta": str(n)})
            server.send({"type": "response.text.done", "text": "end"})
            assert done.wait(10)
            kept = [session.recv(timeout=0) for _ in range(5)]
            assert [getattr(e, "delta", None) for e in kept] == ["16", "17", "18", "19", None]
            assert session.dropped_events == 17  # session.created and deltas 0..15
        drops = [r for r in caplog.records if "event buffer full" in r.getMessage()]
        assert len(drops) == 1

    def test_buffer_off(self, server: LocalRealtimeServer, client: ds.Client) -> None:
        """With the buffer off, pulling is a UsageError while acks and handlers work."""
        with connect(client, max_buffered_events=0) as session:
            for call in (session.recv, session.events, lambda: session.wait_for("*")):
                with pytest.raises(ds.UsageError):
                    call()
            got = threading.Event()
            session.on(ds.SessionUpdated, lambda ev: got.set())
            assert session.update_session(ds.SessionUpdate(voice="Ethan")).voice == "Ethan"
            assert got.wait(5)

    def test_several_pullers_share_events(
        self, server: LocalRealtimeServer, session: ds.RealtimeSession
    ) -> None:
        """Events pulled from several threads go to exactly one of them each."""
        session.recv(timeout=5)
        got: list[str] = []
        lock = threading.Lock()

        def pull() -> None:
            for event in session.events(timeout=10):
                with lock:
                    got.append(getattr(event, "delta", None))

        pullers = [threading.Thread(target=pull) for _ in range(3)]
        for puller in pullers:
            puller.start()
        for n in range(300):
            server.send({"type": "response.text.delta", "delta": str(n)})
        session.on(ds.SessionUpdated, lambda ev: session.close())  # registered before the update
        session.update_session(ds.SessionUpdate(voice="Ethan"), wait=False)
        for puller in pullers:
            puller.join(20)
        assert sorted(g for g in got if g is not None) == sorted(str(n) for n in range(300))


class TestEnd:
    def test_clean_server_close_ends_iteration(
        self, server: LocalRealtimeServer, session: ds.RealtimeSession
    ) -> None:
        """A server close with 1000 ends iteration after the events before it."""
        server.send({"type": "response.text.delta", "delta": "last"})
        server.close_connections(1000, "goodbye")
        events = list(session.events(timeout=10))
        assert isinstance(events[-1], ds.ResponseTextDelta)
        assert session.recv(timeout=1) is None
        assert (session.close_code, session.close_reason) == (1000, "goodbye")
        assert session.closed

    def test_abnormal_close_raises_after_events(
        self, server: LocalRealtimeServer, session: ds.RealtimeSession
    ) -> None:
        """Another close code raises TransportError once the earlier events are read."""
        server.send({"type": "response.text.delta", "delta": "last"})
        server.close_connections(4001, "policy")
        got = []
        with pytest.raises(ds.TransportError) as info:
            for event in session.events(timeout=10):
                got.append(event)
        assert isinstance(got[-1], ds.ResponseTextDelta)
        assert (info.value.code, info.value.reason) == (4001, "policy")

    def test_dropped_connection_mid_response(
        self, server: LocalRealtimeServer, client: ds.Client
    ) -> None:
        """A connection cut mid-response raises TransportError 1006, chained to how it was lost."""
        with LocalRealtimeServer(delta_delay=0.01) as slow:
            client = ds.Client(slow.api_key, base_url=slow.url)
            with connect(client) as session:
                session.create_response()
                session.wait_for(ds.ResponseAudioDelta, timeout=10)
                slow.drop_connections()
                with pytest.raises(ds.TransportError) as info:
                    while session.recv(timeout=10) is not None:
                        pass
                assert info.value.code == 1006
                # Chained to the reader's own error: how the connection was lost.
                cause = info.value.__cause__
                assert isinstance(cause, ds.TransportError)
                assert cause.code == 1006
                assert "without a close frame" in str(cause)
                with pytest.raises(ds.TransportError):
                    session.append_audio(b"\x00\x00")

    def test_keepalive_detects_a_dead_peer(
        self, server: LocalRealtimeServer, client: ds.Client
    ) -> None:
        """A server that stops answering pings is reported as a TransportError."""
        with connect(client, ping_interval=0.1, ping_timeout=0.3, close_timeout=0.5) as session:
            server.stall()
            with pytest.raises(ds.TransportError) as info:
                session.wait_for(ds.ResponseDone, timeout=20)
            assert info.value.code == 1011
            assert "keepalive" in str(info.value)
            server.resume()

    def test_close_is_idempotent_and_thread_safe(self, session: ds.RealtimeSession) -> None:
        """close() may be called many times from many threads."""
        closers = [threading.Thread(target=session.close) for _ in range(4)]
        for closer in closers:
            closer.start()
        for closer in closers:
            closer.join(10)
        session.close()
        assert session.closed
        assert session.close_code == 1000

    def test_close_wakes_a_waiting_reader(self, session: ds.RealtimeSession) -> None:
        """close() from another thread ends a recv() that is waiting."""
        session.recv(timeout=5)
        threading.Timer(0.1, session.close).start()
        assert session.recv(timeout=20) is None

    def test_close_sends_a_normal_close_frame(
        self, server: LocalRealtimeServer, client: ds.Client
    ) -> None:
        """close() completes the close handshake with code 1000."""
        session = connect(client)
        connection = server.wait_for_connection()
        session.close()
        assert connection.wait_closed(5)
        assert connection.close_code == 1000

    def test_stuck_handler_is_named_and_left(
        self, server: LocalRealtimeServer, client: ds.Client, caplog: pytest.LogCaptureFixture
    ) -> None:
        """close() gives up on a stuck handler after handler_timeout and names it."""
        release = threading.Event()
        entered = threading.Event()

        def stuck_handler(event: ds.ServerEvent) -> None:
            entered.set()
            release.wait(20)

        session = connect(client, handler_timeout=0.2)
        session.on(ds.ResponseTextDelta, stuck_handler)
        server.send({"type": "response.text.delta", "delta": "x"})
        assert entered.wait(5)
        session.close()
        record = next(r for r in caplog.records if "still running" in r.getMessage())
        assert "stuck_handler" in record.getMessage()
        release.set()
        session.close()  # joins the released thread

    def test_exit_raises_pending_handler_error(
        self, server: LocalRealtimeServer, client: ds.Client
    ) -> None:
        """Leaving the with block raises a pending handler error."""
        failed = threading.Event()

        def broken(event: ds.ServerEvent) -> None:
            failed.set()
            raise RuntimeError("in handler")

        with pytest.raises(ds.HandlerError), connect(client) as session:
            session.on(ds.ResponseTextDelta, broken)
            server.send({"type": "response.text.delta", "delta": "x"})
            assert failed.wait(5)
            session.close()  # close() itself does not raise it

    def test_exit_keeps_the_propagating_exception(
        self, server: LocalRealtimeServer, client: ds.Client
    ) -> None:
        """A handler error does not replace an exception already leaving the block."""
        failed = threading.Event()

        def broken(event: ds.ServerEvent) -> None:
            try:
                raise RuntimeError("in handler")
            finally:
                failed.set()

        with pytest.raises(LookupError), connect(client) as session:
            session.on(ds.ResponseTextDelta, broken)
            server.send({"type": "response.text.delta", "delta": "x"})
            assert failed.wait(5)
            raise LookupError("user code")

    def test_unclosed_session_warns(self, client: ds.Client) -> None:
        """A session that is garbage-collected unclosed emits a ResourceWarning."""
        session = connect(client)
        core = session._core
        with pytest.warns(ResourceWarning, match="unclosed"):
            del session
            gc.collect()
        core.close()

    def test_no_threads_left(self, server: LocalRealtimeServer, client: ds.Client) -> None:
        """A closed session leaves no thread behind, handlers or not (in shared mode it
        never has one: the reactor's threads, started with its first session, stay)."""

        def lib() -> set[threading.Thread]:
            return {t for t in threading.enumerate() if t.name.startswith("dashscope_sync-")}

        before = lib()
        with connect(client) as session:
            reactor = client.reactor
            if reactor is not None:  # this session may have started them: not its own
                before |= {t for t in lib() if t is reactor.thread or reactor.pool.runs_on(t)}
            session.on("*", lambda ev: None)
            session.create_response()
            session.wait_for(ds.ResponseDone, timeout=10)
            if client.reactor is None:
                mine = {t.name for t in lib() - before}
                assert {"dashscope_sync-reader", "dashscope_sync-handlers"} <= mine
            else:
                assert lib() == before  # one session on 4 pool threads never grows the pool
        assert lib() == before


class TestLogging:
    def test_no_key_or_audio_in_logs(
        self, server: LocalRealtimeServer, client: ds.Client, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A whole turn at DEBUG logs event types but never the key or base64 audio."""
        caplog.set_level(logging.DEBUG, logger="dashscope_sync")
        pcm = bytes(range(256)) * 13
        with connect(client) as session:
            session.append_audio(pcm)
            session.commit_audio()
            session.create_response()
            delta = session.wait_for(ds.ResponseAudioDelta, timeout=10)
            session.wait_for(ds.ResponseDone, timeout=10)
        text = "\n".join(
            r.getMessage() for r in caplog.records if r.name.startswith("dashscope_sync")
        )
        assert "sent input_audio_buffer.append" in text
        assert "received response.audio.delta" in text
        assert server.api_key not in text
        assert base64.b64encode(pcm).decode()[:40] not in text
        assert base64.b64encode(delta.delta).decode()[:40] not in text
        assert "bytes>" in repr(delta) and len(repr(delta)) < 300

    def test_repr(self, session: ds.RealtimeSession) -> None:
        """The session's repr names its id, model and state."""
        assert session.id in repr(session) and "open" in repr(session)
        session.close()
        assert "closed" in repr(session)


def test_frames_are_json_objects_with_event_ids(
    server: LocalRealtimeServer, session: ds.RealtimeSession
) -> None:
    """Every frame the client sends is a JSON object with a unique event_id and a type."""
    session.update_session(ds.SessionUpdate(voice="Ethan"))
    session.append_audio(b"\x01\x00" * 160)
    session.append_text("hi")
    session.commit_audio()
    session.create_response(modalities=["text"])
    session.wait_for(ds.ResponseDone, timeout=10)
    frames = server.received
    assert all(isinstance(f.get("type"), str) for f in frames)
    ids = [f["event_id"] for f in frames]
    assert len(set(ids)) == len(ids)
    assert json.loads(json.dumps(frames)) == frames


def test_session_cap_close_surfaces_code_and_reason() -> None:
    """The server's session-length cap ends the session with its code and reason."""
    with LocalRealtimeServer(
        max_session_seconds=0.3, expire_close_code=4008, expire_close_reason="session expired"
    ) as server:
        client = ds.Client(server.api_key, base_url=server.url)
        with client.realtime.connect(model=MODEL) as session:
            with pytest.raises(ds.TransportError) as info:
                session.wait_for(ds.ResponseDone, timeout=20)
            assert (info.value.code, info.value.reason) == (4008, "session expired")
            assert (session.close_code, session.close_reason) == (4008, "session expired")


class TestReconnect:
    def test_after_a_drop_restores_the_configuration(
        self, server: LocalRealtimeServer, session: ds.RealtimeSession
    ) -> None:
        """reconnect() opens a new session and replays every field sent, merged."""
        session.update_session(ds.SessionUpdate(voice="Ethan", turn_detection=None))
        session.update_session(ds.SessionUpdate(instructions="be brief"))
        old_id = session.id
        server.drop_connections()
        with pytest.raises(ds.TransportError):
            session.wait_for(ds.ResponseDone, timeout=10)
        with session.reconnect(timeout=10) as fresh:
            assert fresh.id != old_id
            assert (fresh.info.voice, fresh.info.instructions) == ("Ethan", "be brief")
            assert fresh.info.turn_detection is None
            replayed = server.received[-1]
            assert replayed["type"] == "session.update"
            assert replayed["session"] == {
                "voice": "Ethan",
                "turn_detection": None,
                "instructions": "be brief",
            }
            assert fresh.respond(text="hello", timeout=10).status == "completed"
        assert session.closed

    def test_without_restore_and_from_an_open_session(
        self, server: LocalRealtimeServer, session: ds.RealtimeSession
    ) -> None:
        """restore=False sends nothing, and an open session is closed first."""
        session.update_session(ds.SessionUpdate(voice="Ethan"))
        count = len(server.received)
        with session.reconnect(restore=False) as fresh:
            assert session.closed and not fresh.closed
            assert fresh.info.voice == "Cherry"
            assert len(server.received) == count


def test_unprintable_handler_exception_is_still_reported(
    server: LocalRealtimeServer, session: ds.RealtimeSession
) -> None:
    """A handler exception whose str() fails is raised, and later handlers still run."""

    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no text")

    def broken(event: ds.ServerEvent) -> None:
        raise Unprintable

    later = threading.Event()
    session.on(ds.ResponseTextDelta, broken)
    session.on(ds.ResponseTextDone, lambda ev: later.set())
    server.send({"type": "response.text.delta", "delta": "x"})
    server.send({"type": "response.text.done", "text": "x"})
    assert later.wait(10)  # the handler thread survived
    with pytest.raises(ds.HandlerError, match="unprintable") as info:
        session.recv(timeout=10)
    assert isinstance(info.value.__cause__, Unprintable)


@pytest.mark.parametrize(
    "model", ["qwen3.8-omni-flash-realtime", "qwen3.8-livetranslate-flash-realtime"]
)
def test_reconnect_merges_nested_updates_deeply(server: LocalRealtimeServer, model: str) -> None:
    """On the 3.8 families a voice set in one update survives a later update of the
    output format: reconnect() replays both, merged deeply (issue 14, behaviour 6)."""
    client = ds.Client(server.api_key, base_url=server.url)
    with client.realtime.connect(model=model) as session:
        session.update_session(ds.SessionUpdate(voice="Serena"), timeout=10)
        session.update_session(ds.SessionUpdate(output_audio_format="pcm"), timeout=10)
        with session.reconnect(timeout=10) as fresh:
            replayed = server.received[-1]
            assert replayed["type"] == "session.update"
            assert replayed["session"]["audio"]["output"] == {
                "voice": "Serena",
                "format": {"type": "pcm"},
            }
            assert fresh.info.voice == "Serena"
