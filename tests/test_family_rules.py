"""Per-family session rules: Qwen-Audio's fatal server_error, finish and response.create per family."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

import dashscope_sync as ds
from dashscope_sync._core.state import Phase, RequestKind, SessionState
from dashscope_sync._wire.codec import decode
from dashscope_sync.testing import LocalRealtimeServer

# Both modes (issue 18): each test runs with threads and again on a ds.Reactor.
pytestmark = pytest.mark.both_modes

CREATED = {"type": "session.created", "session": {"id": "sess_1", "turn_detection": None}}
SERVER_ERROR = {
    "type": "error",
    "error": {"type": "server_error", "code": "internal_error", "message": "model crashed"},
}


def feed(state: SessionState, *frames: dict[str, Any]) -> None:
    """Decode each frame as the reader does and give it to the state."""
    for frame in frames:
        state.receive(decode(json.dumps(frame)), 1.0)


class TestServerErrorEndsQwenAudio:
    """The state machine's rule "a server_error ends the session", socket-free."""

    def test_ends_and_fails_everything(self) -> None:
        """Under the rule a server_error ends the session and fails every request and response."""
        state = SessionState()
        state.server_error_ends = True
        feed(state, CREATED)
        update = state.request(RequestKind.UPDATE, "e1", {"voice": "x"})
        track, create = state.track_response("e2", 1.0)
        follower = state.follow_next_response(1.0)
        feed(state, SERVER_ERROR)
        assert state.phase is Phase.CLOSED
        assert state.end is not None and isinstance(state.end.error, ds.APIError)
        assert state.end.code == 1011
        for failed in (update.error, create.error, track.error, follower.error):
            assert isinstance(failed, ds.APIError)
            assert failed.type == "server_error"
            assert "model crashed" in str(failed)
        assert not state.can_send
        assert state.pending == ()

    def test_later_socket_end_changes_nothing(self) -> None:
        """The connection's own end after the fatal error keeps the APIError as the end."""
        state = SessionState()
        state.server_error_ends = True
        feed(state, CREATED, SERVER_ERROR)
        end = state.ended(1000, "bye", None)
        assert isinstance(end.error, ds.APIError)
        closed = state.closed_error("recv()")
        assert isinstance(closed, ds.APIError) and "server_error" in str(closed)

    def test_invalid_request_error_keeps_the_session(self) -> None:
        """An invalid_request_error does not end a Qwen-Audio session."""
        state = SessionState()
        state.server_error_ends = True
        invalid = {"type": "error", "error": {"type": "invalid_request_error", "message": "no"}}
        feed(state, CREATED, invalid)
        assert state.phase is Phase.OPEN

    def test_second_create_is_an_active_response_error(self) -> None:
        """Qwen-Audio's refusal of a second response.create is an ActiveResponseError."""
        state = SessionState()
        feed(state, CREATED)
        _, create = state.track_response("e9", 1.0)
        refusal = {
            "type": "error",
            "error": {
                "type": "invalid_request_error",
                "code": "invalid_value",
                "message": "Cannot create response while another response is in progress.",
                "param": "response.create",
                "event_id": "e9",
            },
        }
        feed(state, refusal)
        assert isinstance(create.error, ds.ActiveResponseError)

    def test_other_families_go_on(self) -> None:
        """Without the rule (every other family) a server_error does not end the session."""
        state = SessionState()
        feed(state, CREATED, SERVER_ERROR)
        assert state.phase is Phase.OPEN and state.end is None


def _client(server: LocalRealtimeServer) -> ds.Client:
    return ds.Client(server.api_key, base_url=server.url)


class TestServerErrorOverSocket:
    """Qwen-Audio's server_error through the whole session."""

    def test_wakes_waiters_and_closes(self, server: LocalRealtimeServer) -> None:
        """A blocked recv() and a pending update are woken with the APIError; the session closes."""
        with _client(server).realtime.connect(model=ds.MODEL_QWEN_AUDIO_3_0_REALTIME_FLASH) as s:
            assert s.family is ds.ModelFamily.QWEN_AUDIO
            assert isinstance(s.recv(timeout=5), ds.SessionCreated)
            caught: list[BaseException] = []
            seen: list[ds.ServerEvent | None] = []

            def wait_forever() -> None:
                try:
                    while True:  # nothing buffered: blocks until the end
                        seen.append(s.recv(timeout=None))
                except BaseException as exc:
                    caught.append(exc)

            thread = threading.Thread(target=wait_forever)
            thread.start()
            server.send(SERVER_ERROR)
            thread.join(10)
            assert not thread.is_alive()
            assert [type(e) for e in seen] == [ds.ErrorEvent]  # the event, then the end
            assert caught and isinstance(caught[0], ds.APIError)
            assert s.closed
            with pytest.raises(ds.APIError, match="server_error"):
                s.update_session(ds.SessionUpdate(voice="longanqian"), timeout=5)

    def test_omni_session_survives(self, server: LocalRealtimeServer) -> None:
        """A legacy Omni session gets the server_error as an event and goes on."""
        with _client(server).realtime.connect(model=ds.MODEL_QWEN3_OMNI_FLASH_REALTIME) as s:
            server.send(SERVER_ERROR)
            event = s.wait_for(ds.ErrorEvent, timeout=5)
            assert event.error.type == "server_error"
            assert not s.closed
            s.update_session(ds.SessionUpdate(voice="Cherry"), timeout=5)


class TestFinishPerFamily:
    """finish_session() as each family ends a session."""

    @pytest.mark.parametrize(
        "model", [ds.MODEL_QWEN3_5_OMNI_PLUS_REALTIME, ds.MODEL_QWEN_AUDIO_3_1_REALTIME_PLUS]
    )
    def test_refused_without_sending(self, server: LocalRealtimeServer, model: str) -> None:
        """Omni 3.5 and Qwen-Audio raise UsageError naming close() and send nothing."""
        with _client(server).realtime.connect(model=model) as session:
            with pytest.raises(ds.UsageError, match=r"close\(\) ends the session"):
                session.finish_session(timeout=5)
            session.update_session(ds.SessionUpdate(instructions="still open"), timeout=5)
        assert not [f for f in server.received if f.get("type") == "session.finish"]

    def test_omni_38_returns_after_sending(self, server: LocalRealtimeServer) -> None:
        """Omni 3.8 sends session.finish and returns None without waiting for an answer."""
        server.on_client_event("session.finish", None)  # the 3.8 server answers nothing
        with _client(server).realtime.connect(model=ds.MODEL_QWEN3_8_OMNI_FLASH_REALTIME) as s:
            assert s.finish_session(timeout=0.5) is None
            server.wait_for_received("session.finish", timeout=5)

    @pytest.mark.parametrize(
        "model",
        [
            ds.MODEL_QWEN3_LIVETRANSLATE_FLASH_REALTIME,
            ds.MODEL_QWEN3_8_LIVETRANSLATE_FLASH_REALTIME,
        ],
    )
    def test_livetranslate_waits_for_finished(
        self, server: LocalRealtimeServer, model: str
    ) -> None:
        """LiveTranslate sends session.finish and returns the session.finished event."""
        with _client(server).realtime.connect(model=model) as session:
            finished = session.finish_session(timeout=5)
            assert isinstance(finished, ds.SessionFinished)


class TestResponseCreatePerFamily:
    """response.create as each family takes it."""

    @pytest.mark.parametrize(
        "model",
        [
            ds.MODEL_QWEN3_5_LIVETRANSLATE_FLASH_REALTIME,
            ds.MODEL_QWEN3_8_LIVETRANSLATE_FLASH_REALTIME,
        ],
    )
    def test_livetranslate_refuses_create(self, server: LocalRealtimeServer, model: str) -> None:
        """LiveTranslate streams without response.create: create_response() says so, sends nothing."""
        session = _client(server).realtime.connect(model=model)
        with session, pytest.raises(ds.UsageError, match="next_response"):
            session.create_response()
        assert not [f for f in server.received if f.get("type") == "response.create"]

    @pytest.mark.parametrize(
        "model",
        [
            ds.MODEL_QWEN3_8_OMNI_FLASH_REALTIME,
            ds.MODEL_QWEN3_5_OMNI_FLASH_REALTIME,
            ds.MODEL_QWEN_AUDIO_3_0_REALTIME_PLUS,
        ],
    )
    def test_bare_create(self, server: LocalRealtimeServer, model: str) -> None:
        """Omni and Qwen-Audio send a bare response.create when nothing is given."""
        with _client(server).realtime.connect(model=model) as session:
            session.append_text("hi")
            session.create_response().wait(timeout=10)
        frame = server.wait_for_received("response.create", timeout=5)
        assert "response" not in frame


class TestQwenAudioUpdateTiming:
    """Qwen-Audio takes turn detection and input format only before the first audio."""

    def test_late_turn_detection_refused(self, server: LocalRealtimeServer) -> None:
        """After audio, changing turn_detection is refused before sending, naming the family."""
        with _client(server).realtime.connect(model=ds.MODEL_QWEN_AUDIO_3_0_REALTIME_FLASH) as s:
            s.update_session(ds.SessionUpdate(turn_detection=None), timeout=10)
            s.append_audio(b"\x00\x00" * 1600)
            with pytest.raises(ds.ConfigError, match=r"Qwen-Audio.*turn_detection.*new session"):
                s.update_session(ds.SessionUpdate(turn_detection=ds.TurnDetection()))
            s.update_session(ds.SessionUpdate(instructions="still fine"), timeout=10)
        updates = [f for f in server.received if f.get("type") == "session.update"]
        assert len(updates) == 2

    def test_late_voice_warned(
        self, server: LocalRealtimeServer, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A voice in a later update is sent, with a warning that the service ignores it."""
        with _client(server).realtime.connect(model=ds.MODEL_QWEN_AUDIO_3_1_REALTIME_PLUS) as s:
            s.update_session(ds.SessionUpdate(voice="longanqian_v3.1"), timeout=10)
            assert not [r for r in caplog.records if "first session.update" in r.getMessage()]
            s.update_session(ds.SessionUpdate(voice="beth_v3.1"), timeout=10)
        assert [r for r in caplog.records if "will be ignored" in r.getMessage()]

    def test_other_families_unaffected(self, server: LocalRealtimeServer) -> None:
        """Omni may change turn detection after audio: the update is sent and takes effect."""
        with _client(server).realtime.connect(model=ds.MODEL_QWEN3_OMNI_FLASH_REALTIME) as s:
            assert s.info.turn_detection is not None
            s.append_audio(b"\x00\x00" * 1600)
            info = s.update_session(ds.SessionUpdate(turn_detection=None), timeout=10)
            assert info.turn_detection is None
            assert s.info.turn_detection is None
        sent = [(f.get("type"), f.get("session")) for f in server.received]
        assert sent == [
            ("input_audio_buffer.append", None),
            ("session.update", {"turn_detection": None}),
        ]
