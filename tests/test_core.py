"""The session core's promises, each over real sockets against the local server.

Each test here failed on the core that `_core/state.py`/`_core/mailbox.py`/`_core/dispatch.py`/
`_core/connection.py` replaced; the issue that asked for the rebuild numbers them.
"""

from __future__ import annotations

import gc
import logging
import math
import re
import sys
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import dashscope_sync as ds
from dashscope_sync.testing import LocalRealtimeServer, speech_like_pcm16

from .conftest import MODEL
from .test_transport import RawServer

# Both modes (issue 18): each test runs with threads and again on a ds.Reactor.
pytestmark = [pytest.mark.timeout(60), pytest.mark.both_modes]

#: 1 MiB of audio: a few appends fill a stalled peer's socket buffers.
MIB = bytes(1 << 20)


def manual(client: ds.Client, **options: Any) -> ds.RealtimeSession:
    session = client.realtime.connect(ds.RealtimeConfig(model=MODEL, **options))
    session.update_session(ds.SessionUpdate(turn_detection=None))
    return session


def blocked_sender(session: ds.RealtimeSession) -> tuple[threading.Thread, list[BaseException]]:
    """A thread appending audio until a send fails; its exception lands in the list."""
    failures: list[BaseException] = []

    def run() -> None:
        try:
            while True:
                session.append_audio(MIB)
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, failures


def wait_blocked(thread: threading.Thread) -> None:
    """Give the sender time to fill the socket buffers and block (it never returns alone)."""
    thread.join(1.5)
    assert thread.is_alive(), "the sender should be blocked on the stalled peer"


class TestClose:
    @pytest.mark.parametrize("ping_interval", [20.0, None])
    def test_close_is_bounded_while_a_send_is_stuck(
        self, server: LocalRealtimeServer, client: ds.Client, ping_interval: float | None
    ) -> None:
        """close() returns within close_timeout while another thread is stuck sending (1)."""
        session = client.realtime.connect(
            ds.RealtimeConfig(
                model=MODEL, close_timeout=1.0, send_timeout=60.0, ping_interval=ping_interval
            )
        )
        server.stall()
        thread, failures = blocked_sender(session)
        wait_blocked(thread)
        started = time.monotonic()
        session.close()
        elapsed = time.monotonic() - started
        thread.join(5)
        assert elapsed < 1.0 + 2.0, f"close() took {elapsed:.2f} s"
        assert not thread.is_alive()
        assert len(failures) == 1
        assert isinstance(failures[0], ds.SessionClosedError)
        server.resume()

    def test_send_timeout_raises_and_ends_the_session(
        self, server: LocalRealtimeServer, client: ds.Client
    ) -> None:
        """A send stuck past send_timeout raises DashScopeTimeout and ends the session (2)."""
        session = client.realtime.connect(ds.RealtimeConfig(model=MODEL, send_timeout=0.5))
        server.stall()
        thread, failures = blocked_sender(session)
        thread.join(15)
        assert not thread.is_alive()
        assert isinstance(failures[0], ds.DashScopeTimeout)
        assert failures[0].timeout == 0.5
        with pytest.raises(ds.TransportError) as info:
            session.wait_for(ds.ResponseDone, timeout=10)
        assert "sending timed out" in (info.value.reason or "")
        assert session.closed
        session.close()
        server.resume()

    def test_send_timeout_is_checked(self) -> None:
        """send_timeout takes positive seconds or None."""
        assert ds.RealtimeConfig().send_timeout == 10.0
        assert ds.RealtimeConfig(send_timeout=None).send_timeout is None
        for bad in (0, -1, math.inf, "5"):
            with pytest.raises(ds.ConfigError, match="send_timeout"):
                ds.RealtimeConfig(send_timeout=bad)  # type: ignore[arg-type]


class TestConnect:
    def test_timeout_is_kept_cleanup_included(self) -> None:
        """connect(timeout=t) raises within t plus a small slack, cleanup included, even when
        the server answers neither session.created nor the close frame (3)."""
        server = RawServer(lambda conn: None)  # upgrades, then stays silent
        client = ds.Client("k", base_url=f"ws://127.0.0.1:{server.port}/")
        try:
            started = time.monotonic()
            with pytest.raises(ds.DashScopeTimeout, match=r"session\.created"):
                client.realtime.connect(model=MODEL, timeout=0.5)
            elapsed = time.monotonic() - started
        finally:
            server.close()
        assert elapsed < 0.5 + 1.5, f"connect() took {elapsed:.2f} s"

    def test_zero_timeout_is_a_timeout(self, client: ds.Client) -> None:
        """connect(timeout=0) is a DashScopeTimeout, never a builtin socket error (14)."""
        with pytest.raises(ds.DashScopeTimeout, match="timed out after 0 s"):
            client.realtime.connect(model=MODEL, timeout=0)


class TestRespondChecksFirst:
    def test_bad_audio_sends_nothing(self, server: LocalRealtimeServer, client: ds.Client) -> None:
        """respond() checks all of its input before the first frame goes out (4)."""
        with manual(client) as session:
            before = len(server.received)
            with pytest.raises(ds.ConfigError, match="16-bit"):
                session.respond(bytes(9601), timeout=10)
            with pytest.raises(ds.ConfigError, match="JPEG"):
                session.respond(bytes(3200), image=b"not a jpeg", timeout=10)
            with pytest.raises(ds.ConfigError, match="text"):
                session.respond(bytes(3200), text="", timeout=10)
            with pytest.raises(ds.ConfigError, match="instructions"):
                session.respond(bytes(3200), instructions=5, timeout=10)  # type: ignore[arg-type]
            session.update_session(ds.SessionUpdate(voice="Ethan"))  # a marker, answered in order
            sent = [f["type"] for f in server.received[before:]]
            assert sent == ["session.update"]


class TestReconnect:
    def test_replays_only_what_the_server_accepted(
        self, server: LocalRealtimeServer, client: ds.Client
    ) -> None:
        """reconnect() replays the configuration the server accepted, not a refused field (5)."""
        session = client.realtime.connect(model=MODEL)
        session.update_session(ds.SessionUpdate(voice="Ethan"))
        with pytest.raises(ds.APIError):
            session.update_session({"modalities": ["audio"]})  # refused by the server
        server.drop_connections()
        with pytest.raises(ds.TransportError):
            session.wait_for(ds.ResponseDone, timeout=10)
        fresh = session.reconnect(timeout=10)
        try:
            assert fresh.info.voice == "Ethan"
            replayed = [f for f in server.received if f["type"] == "session.update"][-1]
            assert replayed["session"] == {"voice": "Ethan"}
        finally:
            fresh.close()


def _raise(event: ds.ServerEvent) -> None:
    raise RuntimeError(f"handler broke on {event.type}")


class TestHandlerFailures:
    def test_wakes_a_response_wait_without_timeout(
        self, server: LocalRealtimeServer, client: ds.Client
    ) -> None:
        """A handler's exception wakes Response.wait(timeout=None) (6)."""
        server.script_response([{"type": "response.created"}])  # and then nothing
        with manual(client) as session:
            session.on(ds.ResponseCreated, _raise)
            handle = session.create_response()
            with pytest.raises(ds.HandlerError, match=r"handler broke on response\.created"):
                handle.wait(None)

    @pytest.mark.parametrize("method", ["iter_text", "iter_audio"])
    def test_wakes_a_response_iterator(
        self, server: LocalRealtimeServer, client: ds.Client, method: str
    ) -> None:
        """A handler's exception wakes iter_text() and iter_audio() (6)."""
        server.script_response([{"type": "response.created"}])
        with manual(client) as session:
            session.on(ds.ResponseCreated, _raise)
            handle = session.create_response()
            with pytest.raises(ds.HandlerError):
                list(getattr(handle, method)(None))

    def test_wakes_a_waiting_update(self, server: LocalRealtimeServer, client: ds.Client) -> None:
        """A handler's exception wakes a waiting update_session() (6)."""
        server.on_client_event("session.update", [{"type": "response.text.delta", "delta": "x"}])
        with client.realtime.connect(model=MODEL) as session:
            session.on(ds.ResponseTextDelta, _raise)
            with pytest.raises(ds.HandlerError):
                session.update_session(ds.SessionUpdate(voice="Ethan"), timeout=None)

    def test_on_after_close_starts_no_thread(self, client: ds.Client) -> None:
        """on() on a closed session raises SessionClosedError and starts no thread (7)."""
        session = client.realtime.connect(model=MODEL)
        session.close()
        before = set(threading.enumerate())  # in shared mode, the reactor's pool is there
        with pytest.raises(ds.SessionClosedError):
            session.on("*", print)
        assert set(threading.enumerate()) - before == set()

    @pytest.mark.parametrize("raised_by_str", [RuntimeError, KeyboardInterrupt])
    def test_unprintable_exceptions_never_kill_the_thread(
        self,
        server: LocalRealtimeServer,
        client: ds.Client,
        raised_by_str: type[BaseException],
    ) -> None:
        """Whatever a handler raises, even unprintable, reaches the caller; later handlers run (8)."""

        class Nasty(Exception):
            def __str__(self) -> str:
                raise raised_by_str("no str")

            def __repr__(self) -> str:
                raise raised_by_str("no repr")

        def nasty(event: ds.ServerEvent) -> None:
            raise Nasty

        seen: list[str] = []
        both = threading.Event()

        def done(event: ds.ServerEvent) -> None:
            seen.append(event.type)
            if len(seen) == 2:
                both.set()

        created = threading.Event()
        with manual(client) as session:
            session.on(ds.ResponseCreated, nasty)
            session.on(ds.ResponseCreated, lambda event: created.set())  # runs after nasty
            session.on(ds.ResponseDone, done)
            for _ in range(2):  # the handler thread survives the first
                created.clear()
                handle = session.create_response()
                assert created.wait(10)
                with pytest.raises(ds.HandlerError) as info:
                    handle.wait(10)
                assert isinstance(info.value.__cause__, Nasty)
                handle.wait(10)  # raised once; the response itself completes
            assert both.wait(10)
            assert seen == ["response.done", "response.done"]

    def test_failures_are_bounded(
        self, server: LocalRealtimeServer, client: ds.Client, caplog: pytest.LogCaptureFixture
    ) -> None:
        """One HandlerError says how many followed; the log has one traceback; the next call
        goes through (9)."""
        caplog.set_level(logging.DEBUG, logger="dashscope_sync")
        calls: list[int] = []
        finished = threading.Event()

        def broken(event: ds.ServerEvent) -> None:
            calls.append(1)
            raise RuntimeError("broken")

        with manual(client, max_buffered_events=0) as session:
            session.on(ds.ResponseAudioDelta, broken)
            # Registered after it: runs after every delta's handler has run.
            session.on(ds.ResponseDone, lambda event: finished.set())
            session.send_raw({"type": "response.create"})  # no handle: nothing waits
            assert finished.wait(20)
            with pytest.raises(ds.HandlerError) as info:
                session.commit_audio()
            session.clear_audio()  # one error for the whole batch: this call goes through
        error = info.value
        assert len(calls) > 5
        assert error.more_failures == len(calls) - 1
        assert f"and {len(calls) - 1} more" in str(error)
        assert error.event is not None and error.event.type == "response.audio.delta"
        tracebacks = [r for r in caplog.records if r.exc_info and "raised while" in r.message]
        assert len(tracebacks) == 1


class TestPairing:
    def test_unrelated_error_fails_no_update(
        self, server: LocalRealtimeServer, client: ds.Client
    ) -> None:
        """An error naming neither request nor kind fails no update; answers stay paired (10)."""
        with client.realtime.connect(model=MODEL) as session:
            server.set_reply_delay(0.5)
            results: list[Any] = []
            thread = threading.Thread(
                target=lambda: results.append(session.update_session({"voice": "Ethan"}))
            )
            thread.start()
            server.wait_for_received("session.update")
            server.send(
                {"type": "error", "error": {"type": "invalid_request_error", "message": "other"}}
            )
            thread.join(10)
            server.set_reply_delay(0)
            assert results and results[0].voice == "Ethan"
            assert session.update_session({"voice": "Jennifer"}).voice == "Jennifer"

    def test_refused_create_under_vad_is_not_given_the_servers_response(
        self, server: LocalRealtimeServer, client: ds.Client
    ) -> None:
        """Under VAD a refused create_response raises ActiveResponseError; next_response gets
        the server's response (11)."""
        with client.realtime.connect(model=MODEL) as session:
            follower = session.next_response()

            def crossing(frame: dict[str, Any]) -> list[dict[str, Any]]:
                # The server's own response was created before our request arrived.
                return [
                    {"type": "response.created", "response": {"id": "resp_vad"}},
                    {
                        "type": "error",
                        "error": {
                            "type": "invalid_request_error",
                            "code": "conversation_already_has_active_response",
                            "message": "Conversation already has an active response",
                            "event_id": frame["event_id"],
                        },
                    },
                    {"type": "response.text.delta", "response_id": "resp_vad", "delta": "hi"},
                    {
                        "type": "response.done",
                        "response": {"id": "resp_vad", "status": "completed"},
                    },
                ]

            server.on_client_event("response.create", crossing, once=True)
            server.send({"type": "input_audio_buffer.speech_stopped", "audio_end_ms": 900})
            session.wait_for(ds.InputAudioBufferSpeechStopped, timeout=5)
            explicit = session.create_response()
            with pytest.raises(ds.ActiveResponseError) as info:
                explicit.wait(10)
            assert info.value.event_id == explicit.event_id
            assert explicit.id is None
            result = follower.wait(10)
            assert result.response_id == "resp_vad"
            assert result.text == "hi"


class TestCancelEarly:
    def test_cancel_before_created_is_sent_when_created(self) -> None:
        """cancel() before response.created returns True and cancels once it starts (12)."""
        with LocalRealtimeServer(delta_delay=0.05) as server:
            client = ds.Client(server.api_key, base_url=server.url)
            with manual(client, max_buffered_events=0) as session:
                server.set_reply_delay(0.3)
                handle = session.create_response()
                assert handle.id is None
                assert handle.cancel() is True
                assert handle.cancel() is False  # already asked for
                with pytest.raises(ds.ResponseCancelledError):
                    handle.wait(10)
                types = [f["type"] for f in server.received]
                assert types.index("response.cancel") > types.index("response.create")


class TestCollection:
    def test_dropped_session_with_a_handler_is_collected(self, client: ds.Client) -> None:
        """A dropped session is collected, closed and warned about, even when a handler
        refers to it (13)."""

        def open_and_drop() -> weakref.ref[ds.RealtimeSession]:
            session = client.realtime.connect(model=MODEL)
            session.on("response.done", lambda event: print(session.id))
            return weakref.ref(session)

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ref = open_and_drop()
            for _ in range(3):
                gc.collect()
        assert ref() is None
        assert any(issubclass(w.category, ResourceWarning) for w in caught)


class TestTimeouts:
    @pytest.mark.parametrize("bad", [math.inf, math.nan, -1, "1", True])
    def test_bad_timeouts_are_config_errors(
        self, server: LocalRealtimeServer, client: ds.Client, bad: Any
    ) -> None:
        """inf, nan, negatives and non-numbers are a ConfigError wherever a timeout is taken (14)."""
        with pytest.raises(ds.ConfigError):
            client.realtime.connect(model=MODEL, timeout=bad)
        with pytest.raises(ds.ConfigError):
            client.tokens.create(timeout=bad)
        with pytest.raises(ds.ConfigError):
            ds.Client("k", connect_timeout=bad)
        with manual(client) as session:
            handle = session.create_response()
            for call in (
                lambda: handle.wait(bad),
                lambda: handle.iter_text(bad),
                lambda: handle.iter_audio(bad),
                lambda: session.recv(bad),
                lambda: session.events(bad),
                lambda: session.wait_for("*", bad),
                lambda: session.update_session({}, timeout=bad),
                lambda: session.finish_session(timeout=bad),
                lambda: session.respond(text="hi", timeout=bad),
                lambda: session.reconnect(timeout=bad),
            ):
                with pytest.raises(ds.ConfigError):
                    call()
            handle.wait(10)

    def test_proxy_with_a_bad_port(self) -> None:
        """A proxy URL with a bad port is a ConfigError (14)."""
        with pytest.raises(ds.ConfigError, match="port"):
            ds.Client("k", proxy="http://proxy:99999")


class TestNoPulling:
    def test_respond_only_gets_no_buffer_warning(
        self, server: LocalRealtimeServer, client: ds.Client, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A program that never pulls gets no buffer warning, and the buffer stays bounded (15)."""
        with manual(client, max_buffered_events=10) as session:
            for _ in range(2):
                session.respond(speech_like_pcm16(0.3), timeout=10)
            assert session.dropped_events > 0
        warned = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert not [r for r in warned if r.name == "dashscope_sync"]

    def test_pulling_program_is_warned(
        self, server: LocalRealtimeServer, client: ds.Client, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A program that pulls, but too slowly, is warned once."""
        with manual(client, max_buffered_events=10) as session:
            session.recv(0)
            session.respond(speech_like_pcm16(0.3), timeout=10)
        warned = [r for r in caplog.records if "event buffer full" in r.message]
        assert len(warned) == 1
        assert warned[0].levelno == logging.WARNING


@pytest.fixture
def fast_switching() -> Iterator[None]:
    """Switch threads every 10 us, so that races between two lines show up."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        yield
    finally:
        sys.setswitchinterval(interval)


def run_threads(count: int, target: Callable[[int], None]) -> list[BaseException]:
    """Run ``target(n)`` on ``count`` threads released together; the exceptions they raised."""
    start = threading.Barrier(count)
    failures: list[BaseException] = []

    def run(n: int) -> None:
        try:
            start.wait(10)
            target(n)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not any(thread.is_alive() for thread in threads)
    return failures


@pytest.mark.usefixtures("fast_switching")
class TestConcurrentRequests:
    """Requests are registered and put on the wire in one step (issue 14, behaviour 5)."""

    def test_concurrent_updates_each_get_their_own_answer(self, client: ds.Client) -> None:
        """update_session() from several threads at once: each returns its own session.updated."""
        with client.realtime.connect(model=MODEL) as session:
            for round_ in range(40):

                def update(n: int, round_: int = round_) -> None:
                    mine = f"thread {n} round {round_}"
                    info = session.update_session(ds.SessionUpdate(instructions=mine), timeout=10)
                    assert info.instructions == mine

                assert run_threads(4, update) == []

    def test_concurrent_responses_each_get_their_own(self, client: ds.Client) -> None:
        """create_response() from several threads at once: each handle gets the response it
        asked for, or ActiveResponseError when the server refused it."""
        with manual(client) as session:
            for round_ in range(60):
                completed: list[int] = []

                def respond(n: int, round_: int = round_, completed: list[int] = completed) -> None:
                    mine = f"thread {n} round {round_}"
                    handle = session.create_response(instructions=mine, modalities=["text"])
                    try:
                        result = handle.wait(10)
                    except ds.ActiveResponseError:
                        return
                    assert f'My instructions were: "{mine}"' in result.text
                    completed.append(n)

                assert run_threads(4, respond) == []
                assert completed  # the server took one of them at least


def test_only_the_core_reaches_the_mailbox() -> None:
    """No module but _core/core.py (and the mailbox itself) touches the mailbox's lock or state:
    the public session talks to SessionCore through its intent methods."""
    package = Path(ds.__file__).parent
    offenders = [
        path.relative_to(package).as_posix()
        for path in sorted(package.rglob("*.py"))
        if path.relative_to(package).as_posix() not in {"_core/core.py", "_core/mailbox.py"}
        and re.search(r"mailbox\.(lock|state)\b", path.read_text(encoding="utf-8"))
    ]
    assert offenders == []
