"""Conversation items, function outputs, and responses of every family (LiveTranslate text, sample rate)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

import dashscope_sync as ds
from dashscope_sync._core.state import RequestKind, SessionState
from dashscope_sync._wire.codec import decode
from dashscope_sync.testing import LocalRealtimeServer

# Both modes (issue 18): each test runs with threads and again on a ds.Reactor.
pytestmark = pytest.mark.both_modes

MODEL = ds.MODEL_QWEN3_OMNI_FLASH_REALTIME


def _client(server: LocalRealtimeServer) -> ds.Client:
    return ds.Client(server.api_key, base_url=server.url)


def feed(state: SessionState, *frames: dict[str, Any]) -> None:
    """Decode each frame as the reader does and give it to the state."""
    for frame in frames:
        state.receive(decode(json.dumps(frame)), 1.0)


@pytest.fixture
def audio_session(server: LocalRealtimeServer) -> Iterator[ds.RealtimeSession]:
    """A Qwen-Audio session: the family whose docs list item retrieve and delete."""
    with _client(server).realtime.connect(model=ds.MODEL_QWEN_AUDIO_3_0_REALTIME_PLUS) as session:
        yield session


class TestItems:
    """create_item, retrieve_item and delete_item against the local server."""

    def test_create_retrieve_delete(self, audio_session: ds.RealtimeSession) -> None:
        """An item created with an id can be retrieved, then deleted, then is gone (Qwen-Audio)."""
        session = audio_session
        item = {
            "id": "item_mine_1",
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "hello"}],
        }
        session.create_item(item)
        got = session.retrieve_item("item_mine_1", timeout=10)
        assert isinstance(got, ds.ConversationItem)
        assert (got.id, got.role, got.content[0].value) == ("item_mine_1", "user", "hello")
        assert session.delete_item("item_mine_1", timeout=10) is None
        with pytest.raises(ds.APIError, match="not found"):
            session.retrieve_item("item_mine_1", timeout=10)

    def test_retrieve_audio_item_as_transcript(self, audio_session: ds.RealtimeSession) -> None:
        """A committed audio item comes back with its transcript only (Qwen-Audio)."""
        session = audio_session
        session.update_session(ds.SessionUpdate(turn_detection=None), timeout=10)
        session.append_audio(b"\x10\x00" * 1600)
        session.commit_audio()
        committed = session.wait_for(ds.InputAudioBufferCommitted, timeout=10)
        got = session.retrieve_item(committed.item_id, timeout=10)
        assert got.content and "simulated transcript" in got.content[0].value

    def test_previous_item_id_is_sent(
        self, session: ds.RealtimeSession, server: LocalRealtimeServer
    ) -> None:
        """previous_item_id goes with the create event."""
        item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "x"}]}
        session.create_item(item, previous_item_id="item_0")
        frame = server.wait_for_received("conversation.item.create", timeout=5)
        assert frame["previous_item_id"] == "item_0"

    @pytest.mark.parametrize("item", [{}, {"type": 1}, "message", None])
    def test_bad_item(self, session: ds.RealtimeSession, item: Any) -> None:
        """An item that is not a dict with a string type is a ConfigError."""
        with pytest.raises(ds.ConfigError, match="item"):
            session.create_item(item)

    @pytest.mark.parametrize("item_id", ["", None, 3])
    def test_bad_item_id(self, session: ds.RealtimeSession, item_id: Any) -> None:
        """An empty or non-string item id is a ConfigError, for both requests."""
        with pytest.raises(ds.ConfigError, match="item_id"):
            session.retrieve_item(item_id)
        with pytest.raises(ds.ConfigError, match="item_id"):
            session.delete_item(item_id)

    def test_answers_pair_by_item_id(self) -> None:
        """Retrieve answers pair with the request for that item, not the oldest."""
        state = SessionState()
        feed(state, {"type": "session.created", "session": {"id": "s"}})
        first = state.request(RequestKind.RETRIEVE, "e1", {"item_id": "a"})
        second = state.request(RequestKind.RETRIEVE, "e2", {"item_id": "b"})
        feed(state, {"type": "conversation.item.retrieved", "item": {"id": "b"}})
        assert first.answer is None and second.answer is not None


class TestFunctionOutput:
    """send_function_output, in manual mode and under server VAD."""

    def test_manual_mode(self, session: ds.RealtimeSession, server: LocalRealtimeServer) -> None:
        """In manual mode the output is an item and create_response() asks for the answer."""
        session.update_session(ds.SessionUpdate(turn_detection=None), timeout=10)
        session.send_function_output("call_1", {"temperature": 21, "unit": "C"})
        frame = server.wait_for_received("conversation.item.create", timeout=5)
        assert frame["item"] == {
            "type": "function_call_output",
            "call_id": "call_1",
            "output": '{"temperature":21,"unit":"C"}',
        }
        result = session.create_response().wait(timeout=10)
        assert result.text
        server.wait_for_received("response.create", timeout=5)

    def test_string_output_sent_as_is(
        self, session: ds.RealtimeSession, server: LocalRealtimeServer
    ) -> None:
        """A string output is sent unchanged."""
        session.send_function_output("call_2", "sunny")
        assert server.wait_for_received("conversation.item.create", timeout=5)["item"][
            "output"
        ] == ("sunny")

    def test_bad_output(self, session: ds.RealtimeSession) -> None:
        """An output that is not JSON-serialisable, or an empty call id, is a ConfigError."""
        with pytest.raises(ds.ConfigError, match="JSON"):
            session.send_function_output("call_3", object())
        with pytest.raises(ds.ConfigError, match="call_id"):
            session.send_function_output("", "x")

    def test_server_vad_answers_by_itself(
        self, session: ds.RealtimeSession, server: LocalRealtimeServer
    ) -> None:
        """Under server VAD create_response() follows the server's own answer and sends no request."""
        assert session.info.turn_detection is not None  # the default: server VAD
        session.send_function_output("call_4", "sunny")
        result = session.create_response().wait(timeout=10)
        assert result.text
        assert not [f for f in server.received if f.get("type") == "response.create"]

    def test_respond_without_input_follows_the_answer(
        self, session: ds.RealtimeSession, server: LocalRealtimeServer
    ) -> None:
        """respond() with no input after a function output under VAD returns the server's answer."""
        session.send_function_output("call_6", "sunny")
        result = session.respond(timeout=10)
        assert "call_6" in result.text
        assert not [f for f in server.received if f.get("type") == "response.create"]

    def test_respond_without_input_otherwise_refused(self, session: ds.RealtimeSession) -> None:
        """respond() with no input and no function answer due is a ConfigError."""
        with pytest.raises(ds.ConfigError, match="needs audio"):
            session.respond(timeout=1)

    @pytest.mark.parametrize("echo_event_id", [True, False])
    def test_refused_output_leaves_no_answer_due(
        self, session: ds.RealtimeSession, server: LocalRealtimeServer, echo_event_id: bool
    ) -> None:
        """Under server VAD, after the server refuses a function output (an error naming it,
        or one of its kind naming nothing) create_response() sends response.create and works."""
        refusal = {
            "type": "invalid_request_error",
            "code": "invalid_value",
            "message": "Invalid call_id",
            "param": "item.call_id",
        }
        server.inject_error("conversation.item.create", refusal, echo_event_id=echo_event_id)
        sent = session.send_function_output("call_7", "sunny")
        error = session.wait_for(ds.ErrorEvent, timeout=10)
        assert error.error.event_id == (sent if echo_event_id else None)
        result = session.create_response().wait(timeout=10)
        assert result.status == "completed"
        assert server.wait_for_received("response.create", timeout=5)

    def test_server_vad_next_response_after_the_answer_started(
        self, session: ds.RealtimeSession, server: LocalRealtimeServer
    ) -> None:
        """next_response() called after the server's answer started still follows it."""
        session.send_function_output("call_5", "sunny")
        session.wait_for(ds.ResponseCreated, timeout=10)
        result = session.next_response().wait(timeout=10)
        assert result.text


class TestLiveTranslateText:
    """A response's text from LiveTranslate's text/stash events (socket-free)."""

    def _track(self) -> Any:
        state = SessionState()
        feed(
            state,
            {
                "type": "session.created",
                "session": {
                    "id": "s",
                    "turn_detection": None,
                    "audio": {"output": {"format": {"type": "pcm", "sample_rate": 16000}}},
                },
            },
        )
        track, _ = state.track_response("e1", 0.0)
        feed(state, {"type": "response.created", "response": {"id": "r1"}})
        return state, track

    def test_confirmed_text_only(self) -> None:
        """Only the confirmed text is collected, each new part once; the stash is not."""
        state, track = self._track()
        feed(
            state,
            {"type": "response.text.text", "response_id": "r1", "text": "The", "stash": " wea"},
            {"type": "response.text.text", "response_id": "r1", "text": "The weather", "stash": ""},
            {
                "type": "response.text.text",
                "response_id": "r1",
                "text": "The weather",
                "stash": "!",
            },
        )
        assert track.text == ["The", " weather"]

    def test_done_completes_the_tail(self) -> None:
        """The final text of .done adds what was still provisional; deltas are not doubled."""
        state, track = self._track()
        feed(
            state,
            {
                "type": "response.audio_transcript.text",
                "response_id": "r1",
                "text": "Hi",
                "stash": " you",
            },
            {"type": "response.audio_transcript.delta", "response_id": "r1", "delta": "Hi you"},
            {"type": "response.audio_transcript.done", "response_id": "r1", "transcript": "Hi you"},
            {"type": "response.done", "response": {"id": "r1", "status": "completed"}},
        )
        assert "".join(track.text) == "Hi you"
        assert track.sample_rate == 16000

    def test_result_sample_rate(self, session: ds.RealtimeSession) -> None:
        """Without an echoed output rate the result says 24 kHz, and its WAV agrees."""
        session.update_session(ds.SessionUpdate(turn_detection=None), timeout=10)
        result = session.respond(text="hi", timeout=10)
        assert result.sample_rate == 24000
        assert result.to_wav_bytes()[24:28] == (24000).to_bytes(4, "little")


def test_answer_booked_before_the_send() -> None:
    """The state books the server's answer before the output is sent, and unbooks a failed send."""
    state = SessionState()
    feed(state, {"type": "session.created", "session": {"id": "s", "turn_detection": {}}})
    assert state.function_output_sent() is True
    assert state.answer_due
    state.function_output_unsent()
    assert not state.answer_due
    manual = SessionState()
    feed(manual, {"type": "session.created", "session": {"id": "s", "turn_detection": None}})
    assert manual.function_output_sent() is False
    assert not manual.answer_due
