"""Response handles, respond() and results, over real sockets against the local server."""

from __future__ import annotations

import base64
import contextlib
import gc
import io
import signal
import sys
import threading
import wave
import weakref
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import attrs
import pytest

import dashscope_sync as ds
from dashscope_sync.testing import LocalRealtimeServer, speech_like_pcm16

from .conftest import MODEL

# Both modes (issue 18): each test runs with threads and again on a ds.Reactor.
pytestmark = [pytest.mark.timeout(30), pytest.mark.both_modes]


@pytest.fixture
def manual(session: ds.RealtimeSession) -> ds.RealtimeSession:
    session.update_session(ds.SessionUpdate(turn_detection=None))
    return session


class TestResponseHandle:
    def test_wait_returns_the_whole_result(self, manual: ds.RealtimeSession) -> None:
        """wait() returns text, audio, usage, output and timings of the paired response."""
        manual.append_audio(speech_like_pcm16(1.0))
        manual.commit_audio()
        handle = manual.create_response()
        assert handle.event_id and handle.event_id.startswith("event_")
        result = handle.wait(timeout=10)
        assert handle.id == result.response_id and handle.id.startswith("resp_")
        assert handle.done and handle.status == "completed"
        assert result.status == "completed"
        assert "simulated" in result.text
        assert result.text == result.output[0].content[0].value
        assert len(result.audio) > 0 and result.audio_seconds == len(result.audio) / 48000
        assert result.usage is not None and result.usage.total_tokens > 0
        assert result.first_text_delay is not None and result.first_audio_delay is not None
        assert result.total_time is not None
        assert 0 <= result.first_text_delay <= result.total_time
        assert handle.result == result

    def test_audio_equals_the_deltas(
        self, server: LocalRealtimeServer, manual: ds.RealtimeSession
    ) -> None:
        """The result's audio is exactly the concatenated audio deltas, in order."""
        handle = manual.create_response()
        result = handle.wait(timeout=10)
        deltas = []
        while (event := manual.recv(timeout=5)) is not None:
            if isinstance(event, ds.ResponseAudioDelta):
                deltas.append(event.delta)
            if isinstance(event, ds.ResponseDone):
                break
        assert b"".join(deltas) == result.audio

    def test_text_mode_and_streaming(self, manual: ds.RealtimeSession) -> None:
        """iter_text streams text-mode chunks that add up to the result's text."""
        manual.append_text("Tell me a joke")
        handle = manual.create_response(modalities=["text"])
        chunks = list(handle.iter_text(timeout=10))
        result = handle.wait(timeout=10)
        assert len(chunks) > 1 and "".join(chunks) == result.text
        assert result.audio == b""
        assert list(handle.iter_text()) == chunks  # a second stream replays everything

    def test_iter_audio_from_another_thread(self, manual: ds.RealtimeSession) -> None:
        """Two threads streaming the same response each get all of its audio."""
        handle = manual.create_response()
        other: list[bytes] = []
        thread = threading.Thread(target=lambda: other.extend(handle.iter_audio(timeout=10)))
        thread.start()
        mine = b"".join(handle.iter_audio(timeout=10))
        thread.join(10)
        assert mine == b"".join(other) == handle.wait(5).audio

    def test_pairing_in_wire_order(self, manual: ds.RealtimeSession) -> None:
        """Consecutive requests pair with consecutive responses."""
        first = manual.create_response(modalities=["text"])
        first.wait(10)
        second = manual.create_response(instructions="again", modalities=["text"])
        second.wait(10)
        assert first.id != second.id
        assert first.wait().response_id == first.id

    def test_active_response_error(self) -> None:
        """A create while one runs fails its own handle with ActiveResponseError."""
        # Paced deltas keep the first response running for seconds.
        with LocalRealtimeServer(delta_delay=0.05) as slow:
            client = ds.Client(slow.api_key, base_url=slow.url)
            with client.realtime.connect(model=MODEL) as session:
                running = session.create_response()
                session.wait_for(ds.ResponseCreated, timeout=10)
                refused = session.create_response()
                with pytest.raises(ds.ActiveResponseError) as info:
                    refused.wait(10)
                assert isinstance(info.value, ds.APIError)
                assert info.value.code == "conversation_already_has_active_response"
                assert "Response.cancel()" in str(info.value)  # it says how to go on
                assert info.value.event_id == refused.event_id
                assert running.id and not running.done
                assert refused.done and refused.id is None
                session.cancel_response()
                with pytest.raises(ds.ResponseCancelledError):
                    running.wait(10)

    def test_cancelled(self) -> None:
        """A cancelled response raises ResponseCancelledError carrying the partial result."""
        # Paced deltas keep the response running, so the cancel cannot come too late.
        with LocalRealtimeServer(delta_delay=0.05) as slow:
            client = ds.Client(slow.api_key, base_url=slow.url)
            with client.realtime.connect(model=MODEL) as session:
                session.update_session(ds.SessionUpdate(turn_detection=None))
                handle = session.create_response()
                session.cancel_response()
                self._check_cancelled(handle)

    @staticmethod
    def _check_cancelled(handle: ds.Response) -> None:
        with pytest.raises(ds.ResponseCancelledError) as info:
            handle.wait(10)
        assert isinstance(info.value, ds.ResponseError)
        assert info.value.status == "cancelled"
        assert info.value.response_id == handle.id
        assert info.value.result.status == "cancelled"
        assert handle.result is None
        with pytest.raises(ds.ResponseCancelledError):
            list(handle.iter_audio())

    @pytest.mark.parametrize(
        ("status", "cls"),
        [("failed", ds.ResponseFailedError), ("incomplete", ds.ResponseIncompleteError)],
    )
    def test_failed_and_incomplete_statuses(
        self, server: LocalRealtimeServer, manual: ds.RealtimeSession, status: str, cls: type
    ) -> None:
        """response.done with failed or incomplete raises the matching ResponseError."""
        details = {"type": status, "reason": "max_output_tokens"}
        server.on_client_event(
            "response.create",
            [
                {"type": "response.created", "response": {"id": "resp_s", "status": "in_progress"}},
                {"type": "response.text.delta", "response_id": "resp_s", "delta": "par"},
                {
                    "type": "response.done",
                    "response": {"id": "resp_s", "status": status, "status_details": details},
                },
            ],
        )
        handle = manual.create_response()
        with pytest.raises(cls) as info:
            handle.wait(10)
        assert info.value.status == status
        assert info.value.status_details == details
        assert info.value.result.text == "par"
        assert "max_output_tokens" in str(info.value)

    def test_session_end_fails_waiting_handles(self, server: LocalRealtimeServer) -> None:
        """A connection lost mid-response fails its handle with TransportError."""
        with LocalRealtimeServer(delta_delay=0.02) as slow:
            client = ds.Client(slow.api_key, base_url=slow.url)
            with client.realtime.connect(model=MODEL) as session:
                handle = session.create_response()
                next(handle.iter_audio(timeout=10))
                slow.drop_connections()
                with pytest.raises(ds.TransportError) as info:
                    handle.wait(10)
                assert info.value.code == 1006

    def test_close_fails_waiting_handles(
        self, server: LocalRealtimeServer, manual: ds.RealtimeSession
    ) -> None:
        """A handle still waiting when the session closes raises SessionClosedError."""
        server.on_client_event(
            "response.create",
            [{"type": "response.created", "response": {"id": "resp_x", "status": "in_progress"}}],
        )
        handle = manual.create_response()
        manual.wait_for(ds.ResponseCreated, timeout=10)
        manual.close()
        with pytest.raises(ds.SessionClosedError):
            handle.wait(5)

    def test_timeout(self, server: LocalRealtimeServer, manual: ds.RealtimeSession) -> None:
        """wait() raises DashScopeTimeout when the response is not done in time."""
        server.on_client_event("response.create", None)
        handle = manual.create_response()
        with pytest.raises(ds.DashScopeTimeout):
            handle.wait(0.1)
        with pytest.raises(ds.DashScopeTimeout):
            next(handle.iter_text(timeout=0.1))

    def test_wait_inside_a_handler_is_a_usage_error(
        self, server: LocalRealtimeServer, manual: ds.RealtimeSession
    ) -> None:
        """Waiting on a response from a handler raises UsageError."""
        handles: list[ds.Response] = []
        handle_ready = threading.Event()  # the handle is in `handles`
        errors: list[BaseException] = []
        done = threading.Event()  # the handler has tried to wait

        def in_handler(event: ds.ServerEvent) -> None:
            # The reply may be done before create_response() has returned its handle.
            assert handle_ready.wait(10)
            try:
                handles[0].wait(1)
            except BaseException as exc:
                errors.append(exc)
            done.set()

        # Registered before the request goes out, so its response.done cannot be missed.
        manual.on(ds.ResponseDone, in_handler)
        handles.append(manual.create_response(modalities=["text"]))
        handle_ready.set()
        handles[0].wait(10)
        assert done.wait(10)
        assert len(errors) == 1
        assert isinstance(errors[0], ds.UsageError)

    def test_dropped_handle_keeps_nothing(self, manual: ds.RealtimeSession) -> None:
        """A handle the caller drops is not kept alive by the session, nor the reply it collected."""
        response = manual.create_response()
        # The handle, and what it collects the reply's text and audio into.
        kept = [weakref.ref(response), weakref.ref(response._track)]
        del response
        done = manual.wait_for(ds.ResponseDone, timeout=10)
        assert done.response.status == "completed"
        gc.collect()
        assert [ref() for ref in kept] == [None, None]


class TestRespond:
    def test_manual_voice_turn(
        self, server: LocalRealtimeServer, manual: ds.RealtimeSession
    ) -> None:
        """respond() appends 100 ms chunks, commits, creates and returns the result."""
        audio = speech_like_pcm16(0.55)
        result = manual.respond(audio, timeout=10)
        assert "0.55 seconds" in result.text
        appends = [f for f in server.received if f["type"] == "input_audio_buffer.append"]
        sizes = [len(base64.b64decode(f["audio"])) for f in appends]
        assert sizes == [3200] * 5 + [len(audio) - 16000]
        types = [f["type"] for f in server.received][-3:]
        assert types == [
            "input_audio_buffer.append",
            "input_audio_buffer.commit",
            "response.create",
        ]

    def test_order_audio_image_text(
        self, server: LocalRealtimeServer, manual: ds.RealtimeSession
    ) -> None:
        """respond() sends audio, then the image, then the text, then commits."""
        manual.respond(
            speech_like_pcm16(0.2), image=b"\xff\xd8" + bytes(64), text="what is this?", timeout=10
        )
        types = [f["type"] for f in server.received if f["type"] != "session.update"]
        assert types[-5:] == [
            "input_audio_buffer.append",
            "input_image_buffer.append",
            "conversation.item.create",
            "input_audio_buffer.commit",
            "response.create",
        ]

    def test_text_only(self, server: LocalRealtimeServer, manual: ds.RealtimeSession) -> None:
        """respond(text=...) needs no commit."""
        result = manual.respond(text="Hello there", instructions="be brief", timeout=10)
        assert "Hello there" in result.text or "simulated" in result.text
        assert "input_audio_buffer.commit" not in [f["type"] for f in server.received]

    def test_timeout_names_respond(
        self, server: LocalRealtimeServer, manual: ds.RealtimeSession
    ) -> None:
        """respond()'s time-out names respond() and the timeout it was given, not Response.wait()."""
        server.on_client_event("response.create", None)
        with pytest.raises(
            ds.DashScopeTimeout, match=r"^respond\(\) timed out after 0\.3 s "
        ) as info:
            manual.respond(text="Hello there", timeout=0.1 + 0.2)
        assert info.value.timeout == 0.1 + 0.2
        assert "Response.wait" not in str(info.value)

    def test_nothing_to_send(self, manual: ds.RealtimeSession) -> None:
        """respond() with no input is a ConfigError."""
        with pytest.raises(ds.ConfigError):
            manual.respond()

    def test_instructions_under_server_vad(self, session: ds.RealtimeSession) -> None:
        """instructions= under automatic server VAD is a UsageError, before sending."""
        assert session.info.turn_detection is not None
        with pytest.raises(ds.UsageError, match="manual mode"):
            session.respond(speech_like_pcm16(0.2), instructions="x")

    def test_next_response_adopts_a_server_started_response(
        self, server: LocalRealtimeServer, manual: ds.RealtimeSession
    ) -> None:
        """next_response() follows a response.created that answers no request."""
        handle = manual.next_response()
        assert handle.event_id is None
        server.send(
            {
                "type": "response.created",
                "response": {"id": "resp_server1", "status": "in_progress", "output": []},
            }
        )
        server.send({"type": "response.text.delta", "response_id": "resp_server1", "delta": "hi"})
        server.send(
            {"type": "response.done", "response": {"id": "resp_server1", "status": "completed"}}
        )
        result = handle.wait(10)
        assert (result.response_id, result.text) == ("resp_server1", "hi")

    def test_server_error_fails_a_running_response(
        self, server: LocalRealtimeServer, manual: ds.RealtimeSession
    ) -> None:
        """A server_error naming no request fails the running response, which may never end."""
        server.on_client_event(
            "response.create",
            [{"type": "response.created", "response": {"id": "resp_x", "status": "in_progress"}}],
        )
        handle = manual.create_response()
        manual.wait_for(ds.ResponseCreated, timeout=10)
        server.send(
            {
                "type": "error",
                "error": {"type": "server_error", "code": "COMMON_ERROR", "message": "boom"},
            }
        )
        with pytest.raises(ds.APIError) as info:
            handle.wait(10)
        assert info.value.code == "COMMON_ERROR"


class TestResult:
    def make(self) -> ds.ResponseResult:
        return ds.ResponseResult(
            response_id="resp_1", status="completed", text="<hi> & bye", audio=b"\x01\x00" * 2400
        )

    def test_wav(self, tmp_path: Path) -> None:
        """to_wav_bytes and save_wav write 24 kHz mono PCM16 WAV of the audio."""
        result = self.make()
        with wave.open(io.BytesIO(result.to_wav_bytes())) as wav:
            assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (24000, 1, 2)
            assert wav.readframes(wav.getnframes()) == result.audio
        result.save_wav(tmp_path / "r.wav")
        assert (tmp_path / "r.wav").read_bytes() == result.to_wav_bytes()

    def test_repr_html(self) -> None:
        """The notebook view escapes the text and embeds a WAV data URI player."""
        page = self.make()._repr_html_()
        assert "&lt;hi&gt; &amp; bye" in page
        assert '<audio controls src="data:audio/wav;base64,' in page
        start = page.index("base64,") + len("base64,")
        data = base64.b64decode(page[start : page.index('"', start)])
        assert data == self.make().to_wav_bytes()

    def test_repr_is_short(self) -> None:
        """repr() shows how long the audio plays, not its bytes."""
        assert "0.1 s of audio" in repr(self.make())
        assert "\\x01" not in repr(self.make())

    def test_repr_fits_a_line(self) -> None:
        """A full result prints as one line: no None fields, no raw floats, the text once and cut short."""
        text = "This is a simulated reply from the local DashScope server, long enough."
        item = ds.ConversationItem(
            type="message",
            role="assistant",
            content=[ds.ContentPart(type="audio", transcript=text)],
        )
        usage = ds.Usage(
            total_tokens=98,
            input_tokens=3,
            output_tokens=95,
            output_tokens_details=ds.TokenDetails(text_tokens=24, audio_tokens=71),
        )
        result = ds.ResponseResult(
            response_id="resp_8NaJ7eAHUtK78wWfTRr4i",
            status="completed",
            text=text,
            audio=bytes(270720),
            usage=usage,
            output=[item],
            first_text_delay=0.045331445999977404,
            first_audio_delay=0.049185243000010814,
            total_time=0.05588149400000475,
        )
        shown = repr(result)
        assert shown == (
            "<ResponseResult completed 'This is a simulated rep…', 5.64 s of audio, 98 tokens, "
            "first audio 0.049 s, total 0.056 s>"
        )
        assert str(result) == shown and "\n" not in shown and len(shown) <= 120
        failed = attrs.evolve(
            result,
            status="failed",
            status_details={"reason": "bad"},
            text="",
            audio=b"",
            first_audio_delay=None,
        )
        assert repr(failed) == (
            "<ResponseResult failed (bad), 98 tokens, first text 0.045 s, total 0.056 s>"
        )

    def test_interruption_repr_rounds_what_was_heard(self) -> None:
        """An Interruption's repr rounds the seconds played, as every duration shown."""
        stopped = ds.Interruption(response_id="resp_1", played_seconds=1.23456789, cancelled=True)
        assert repr(stopped) == (
            "Interruption(response_id='resp_1', played_seconds=1.235 s, cancelled=True)"
        )
        assert stopped.played_seconds == 1.23456789

    def test_html_timings_use_the_one_rule(self) -> None:
        """The notebook view's timings are rounded as every other duration (0.008 s, 0.04 s)."""
        result = attrs.evolve(self.make(), first_text_delay=0.00758, total_time=0.04)
        assert "first text 0.008 s, total 0.04 s" in result._repr_html_()


class TestAudioHelpers:
    def test_sample_wav(self) -> None:
        """The bundled sample is 16 kHz mono PCM16 speech of a few seconds."""
        pcm = ds.load_wav(ds.sample_wav_path())
        assert 2.0 < len(pcm) / 32000 < 6.0

    @pytest.mark.parametrize(
        ("rate", "channels", "width", "problem"),
        [(22050, 1, 2, "22050 Hz"), (16000, 2, 2, "2 channels"), (16000, 1, 1, "8-bit")],
    )
    def test_wrong_format_is_explained(
        self, tmp_path: Path, rate: int, channels: int, width: int, problem: str
    ) -> None:
        """A WAV in the wrong format is a ConfigError that says what is needed."""
        path = tmp_path / "in.wav"
        with wave.open(str(path), "wb") as wav:
            wav.setnchannels(channels)
            wav.setsampwidth(width)
            wav.setframerate(rate)
            wav.writeframes(b"\x00" * 400)
        with pytest.raises(ds.ConfigError) as info:
            ds.load_wav(path)
        assert problem in str(info.value) and "16 kHz mono 16-bit" in str(info.value)

    def test_not_a_wav(self, tmp_path: Path) -> None:
        """A file that is not WAV, or missing, is a ConfigError."""
        (tmp_path / "x.wav").write_bytes(b"ID3 not a wav")
        with pytest.raises(ds.ConfigError, match="not a WAV file"):
            ds.load_wav(tmp_path / "x.wav")
        with pytest.raises(ds.ConfigError, match="no such file"):
            ds.load_wav(tmp_path / "missing.wav")


def test_respond_under_server_vad_adopts_the_servers_response(
    server: LocalRealtimeServer, session: ds.RealtimeSession
) -> None:
    """Under server VAD, respond() sends no response.create and follows the server's."""
    assert session.info.turn_detection is not None
    result = session.respond(speech_like_pcm16(1.0), timeout=20)
    assert result.status == "completed" and "simulated" in result.text
    assert "response.create" not in [f["type"] for f in server.received]
    assert session.wait_for(ds.InputAudioBufferSpeechStarted, timeout=5).audio_start_ms >= 0


def test_response_cancel() -> None:
    """Response.cancel() cancels a running response and is a no-op once it ended."""
    with LocalRealtimeServer(delta_delay=0.05) as slow:  # paced: still running when cancelled
        client = ds.Client(slow.api_key, base_url=slow.url)
        with client.realtime.connect(model=MODEL) as session:
            handle = session.create_response()
            next(handle.iter_audio(timeout=10))
            assert handle.cancel() is True
            with pytest.raises(ds.ResponseCancelledError) as info:
                handle.wait(10)
            assert info.value.result.audio  # what came before the cancel is kept
            assert handle.cancel() is False
            assert "response.cancel" in [f["type"] for f in slow.received]


# Ctrl-C --------------------------------------------------------------------------------


def _in_a_response_wait(frame: FrameType | None) -> bool:
    """Whether ``frame`` is the session's condition wait, called by a Response method."""
    if frame is None or frame.f_code is not threading.Condition.wait.__code__:
        return False
    caller: FrameType | None = frame
    while caller is not None:
        if caller.f_code.co_filename.endswith("_core/response.py"):
            return True
        caller = caller.f_back
    return False


@contextlib.contextmanager
def ctrl_c_in_a_wait(armed: threading.Event) -> Iterator[threading.Event]:
    """Once ``armed``, raise KeyboardInterrupt in this (main) thread where it blocks in a Response wait.

    A real SIGINT, sent to the main thread as a terminal's or a notebook's
    interrupt is, at a moment the main thread is known to be blocked: a
    profile hook sees it call the condition's acquire; a signal that lands
    elsewhere (the wait had just woken) is let go, and the next block tried.
    """
    assert threading.current_thread() is threading.main_thread()
    blocked = threading.Event()  # the main thread is blocking in a Response wait
    handled = threading.Event()  # the signal handler ran (signals go one at a time)
    delivered = threading.Event()  # KeyboardInterrupt was raised in a Response wait
    main = threading.main_thread().ident
    assert main is not None

    def hook(frame: FrameType, event: str, arg: object) -> None:
        if event == "c_call" and armed.is_set() and _in_a_response_wait(frame):
            blocked.set()

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        handled.set()
        if not delivered.is_set() and _in_a_response_wait(frame):
            delivered.set()
            raise KeyboardInterrupt

    def trigger() -> None:
        while not delivered.is_set() and blocked.wait(20):
            blocked.clear()
            handled.clear()
            signal.pthread_kill(main, signal.SIGINT)
            handled.wait(20)

    previous = signal.signal(signal.SIGINT, on_sigint)
    thread = threading.Thread(target=trigger)
    thread.start()
    sys.setprofile(hook)
    try:
        yield delivered
    finally:
        sys.setprofile(None)
        delivered.set()
        blocked.set()  # let the trigger end
        thread.join(30)
        signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("call", ["respond", "wait", "iter_text"])
def test_ctrl_c_cancels_the_reply_and_the_next_turn_works(call: str) -> None:
    """Ctrl-C during respond(), wait() or iter_text() on a slow reply cancels it, and the next respond() works."""
    with LocalRealtimeServer(delta_delay=0.05, chunk_ms=400) as server:
        client = ds.Client(server.api_key, base_url=server.url)
        with client.realtime.connect(model=MODEL) as session:
            session.update_session(ds.SessionUpdate(turn_detection=None))
            armed = threading.Event()  # the reply streams
            session.on(ds.ResponseAudioDelta, lambda event: armed.set())
            handle: ds.Response | None = None
            with ctrl_c_in_a_wait(armed), pytest.raises(KeyboardInterrupt):
                if call == "respond":
                    session.respond(text="Tell me a long story.", timeout=30)
                else:
                    session.append_text("Tell me a long story.")
                    handle = session.create_response()
                    if call == "wait":
                        handle.wait(timeout=30)
                    else:
                        for _ in handle.iter_text(timeout=30):
                            pass
            assert server.wait_for_received("response.cancel", timeout=10)
            if handle is not None:
                with pytest.raises(ds.ResponseCancelledError):
                    handle.wait(timeout=10)
            result = session.respond(text="And now a short one.", timeout=30)
            assert result.status == "completed" and "simulated" in result.text
