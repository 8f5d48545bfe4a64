"""The session state machine on recorded frame sequences: no sockets, threads or clocks."""

from __future__ import annotations

import gc
import json
from typing import Any

import pytest

import dashscope_sync as ds
from dashscope_sync._core.state import DROP, Phase, RequestKind, SessionState
from dashscope_sync._wire.codec import decode

CREATED = {
    "type": "session.created",
    "session": {
        "id": "sess_1",
        "voice": "Cherry",
        "turn_detection": {"type": "server_vad", "create_response": True},
    },
}
MANUAL_CREATED = {"type": "session.created", "session": {"id": "sess_1", "turn_detection": None}}


def feed(state: SessionState, *frames: dict[str, Any], at: float = 1.0) -> list[Any]:
    """Decode each frame as the reader does and give it to the state; the effects."""
    return [state.receive(decode(json.dumps(frame).encode()), at) for frame in frames]


def error(event_id: str | None = None, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"type": "invalid_request_error", "message": "no", **fields}
    if event_id is not None:
        body["event_id"] = event_id
    return {"type": "error", "error": body}


def updated(voice: str) -> dict[str, Any]:
    return {"type": "session.updated", "session": {"id": "sess_1", "voice": voice}}


def response_created(rid: str) -> dict[str, Any]:
    return {"type": "response.created", "response": {"id": rid, "status": "in_progress"}}


def response_done(rid: str, status: str = "completed") -> dict[str, Any]:
    return {"type": "response.done", "response": {"id": rid, "status": status}}


def text_delta(rid: str, delta: str) -> dict[str, Any]:
    return {"type": "response.text.delta", "response_id": rid, "delta": delta}


@pytest.fixture
def state() -> SessionState:
    machine = SessionState()
    feed(machine, CREATED)
    return machine


class TestLifecycle:
    def test_created_opens(self) -> None:
        """session.created moves CONNECTING to OPEN and records the session."""
        machine = SessionState()
        assert machine.phase is Phase.CONNECTING
        feed(machine, CREATED)
        assert machine.phase is Phase.OPEN
        assert machine.session_id == "sess_1"
        assert machine.info is not None and machine.info.voice == "Cherry"

    def test_error_before_created_is_kept_for_connect(self) -> None:
        """An error before session.created is what connect() raises."""
        machine = SessionState()
        feed(machine, error(code="InvalidApiKey"))
        assert machine.early_error is not None
        assert machine.early_error.error.code == "InvalidApiKey"

    def test_end_fails_everything_waiting(self, state: SessionState) -> None:
        """An abnormal end fails waiting requests and responses with a TransportError."""
        update = state.request(RequestKind.UPDATE, "e1", {"voice": "Ethan"})
        track, _ = state.track_response("e2", 0.0)
        follower = state.follow_next_response(0.0)
        end = state.ended(1011, "boom", None)
        assert state.phase is Phase.CLOSED
        assert end.error is not None and end.error.code == 1011
        for failure in (update.error, track.error, follower.error):
            assert isinstance(failure, ds.TransportError)
        assert state.pending == ()

    def test_end_after_close_is_clean(self, state: SessionState) -> None:
        """An end after closing() is clean whatever the code, and requests fail as closed."""
        update = state.request(RequestKind.UPDATE, "e1")
        state.closing()
        end = state.ended(1006, "lost", None)
        assert end.error is None
        assert isinstance(update.error, ds.SessionClosedError)

    def test_server_1000_is_clean(self, state: SessionState) -> None:
        """A 1000 close from the server is a clean end."""
        assert state.ended(1000, "", None).error is None

    def test_requests_after_the_end_fail_at_once(self, state: SessionState) -> None:
        """A request registered after the end fails at once rather than waiting forever."""
        state.ended(1000, "", None)
        request = state.request(RequestKind.FINISH, "e9")
        assert isinstance(request.error, ds.SessionClosedError)


class TestPairing:
    def test_updates_answer_in_order_and_accepted_is_merged(self, state: SessionState) -> None:
        """session.updated answers the oldest update; accepted fields are merged."""
        first = state.request(RequestKind.UPDATE, "e1", {"voice": "Ethan"})
        second = state.request(RequestKind.UPDATE, "e2", {"instructions": "hi"})
        feed(state, updated("Ethan"), updated("Ethan"))
        assert first.answer is not None and second.answer is not None
        assert state.accepted == {"voice": "Ethan", "instructions": "hi"}

    def test_accepted_nested_fields_merge_deeply(self, state: SessionState) -> None:
        """A nested voice accepted in one update survives a later nested format update; a
        None or a list replaces what was there (issue 14, behaviour 6)."""
        updates = [
            {"audio": {"output": {"voice": "Serena"}}, "tools": [{"name": "a"}]},
            {"audio": {"output": {"format": {"type": "pcm"}}}, "turn_detection": None},
            {"audio": {"output": {"format": {"sample_rate": 24000}}}, "tools": []},
        ]
        for n, payload in enumerate(updates):
            state.request(RequestKind.UPDATE, f"e{n}", payload)
            feed(state, updated("Serena"))
        assert state.accepted == {
            "audio": {
                "output": {"voice": "Serena", "format": {"type": "pcm", "sample_rate": 24000}}
            },
            "tools": [],
            "turn_detection": None,
        }
        replay = state.accepted_config()
        replay["audio"]["output"]["voice"] = "Tina"
        assert state.accepted["audio"]["output"]["voice"] == "Serena"  # a copy, deeply
        assert updates[0]["audio"] == {"output": {"voice": "Serena"}}  # the request's own

    def test_refused_update_is_not_accepted(self, state: SessionState) -> None:
        """An error naming an update fails it, and its fields are not replayed (5)."""
        ok = state.request(RequestKind.UPDATE, "e1", {"voice": "Ethan"})
        bad = state.request(RequestKind.UPDATE, "e2", {"modalities": ["audio"]})
        feed(state, updated("Ethan"), error("e2", code="invalid_value", param="session.modalities"))
        assert ok.answer is not None
        assert isinstance(bad.error, ds.APIError) and bad.error.code == "invalid_value"
        assert state.accepted == {"voice": "Ethan"}

    def test_unrelated_error_fails_nothing_and_answers_stay_paired(
        self, state: SessionState
    ) -> None:
        """An error naming neither request nor kind fails nothing; A's answer goes to A (10)."""
        a = state.request(RequestKind.UPDATE, "eA", {"voice": "A"})
        b = state.request(RequestKind.UPDATE, "eB", {"voice": "B"})
        feed(state, error(code="Throttling"))
        assert a.error is None and b.error is None
        feed(state, updated("A"))
        assert a.answer is not None and a.answer.session.voice == "A"  # type: ignore[attr-defined]
        assert b.answer is None

    def test_error_naming_another_event_fails_nothing(self, state: SessionState) -> None:
        """An error naming a client event that waits for nothing (an append) fails nothing."""
        a = state.request(RequestKind.UPDATE, "eA")
        feed(state, error("e_append", code="invalid_value", param="session.voice"))
        assert a.error is None

    @pytest.mark.parametrize(
        ("fields", "failed"),
        [
            ({"param": "session.voice"}, RequestKind.UPDATE),
            ({"param": "response.instructions"}, RequestKind.RESPONSE),
            ({"code": "conversation_already_has_active_response"}, RequestKind.RESPONSE),
        ],
    )
    def test_error_naming_a_kind_fails_the_oldest_of_it(
        self, state: SessionState, fields: dict[str, Any], failed: RequestKind
    ) -> None:
        """An error naming no request fails the oldest request of the kind it names (10)."""
        update = state.request(RequestKind.UPDATE, "eU")
        track, create = state.track_response("eR", 0.0)
        feed(state, error(**fields))
        expected, other = (update, create) if failed is RequestKind.UPDATE else (create, update)
        assert expected.error is not None and other.error is None
        if failed is RequestKind.RESPONSE:
            assert track.error is expected.error

    def test_late_answer_goes_to_the_abandoned_request(self, state: SessionState) -> None:
        """A request whose caller gave up still takes its own late answer."""
        abandoned = state.request(RequestKind.UPDATE, "e1", {"voice": "Ethan"})
        later = state.request(RequestKind.UPDATE, "e2", {"voice": "Serena"})
        feed(state, updated("Ethan"))
        assert abandoned.answer is not None and later.answer is None

    def test_finish(self, state: SessionState) -> None:
        """session.finished answers the finish request."""
        finish = state.request(RequestKind.FINISH, "e1")
        feed(state, {"type": "session.finished"})
        assert finish.answer is not None

    def test_forget(self, state: SessionState) -> None:
        """A request whose send failed is forgotten: the next answer goes to the next one."""
        failed = state.request(RequestKind.UPDATE, "e1")
        state.forget(failed)
        kept = state.request(RequestKind.UPDATE, "e2")
        feed(state, updated("x"))
        assert kept.answer is not None and failed.answer is None


class TestResponses:
    def test_track_collects_and_finishes(self, state: SessionState) -> None:
        """A created response's deltas and done reach its track, with the times given."""
        track, _ = state.track_response("e1", 0.5)
        feed(state, response_created("r1"), at=1.0)
        feed(state, text_delta("r1", "Hel"), text_delta("other", "x"), at=2.0)
        feed(state, text_delta("r1", "lo"), response_done("r1"), at=3.0)
        assert track.id == "r1" and track.status == "completed"
        assert track.text == ["Hel", "lo"]
        assert track.first_text_at == 2.0 and track.done_at == 3.0
        assert state.running == 0

    def test_dropped_handle_keeps_nothing(self, state: SessionState) -> None:
        """A track whose handle was dropped keeps its pairing but collects no text or audio."""
        track, request = state.track_response("e1", 0.0)
        track.unwatched = True  # what the Response handle's finalizer signals
        feed(state, response_created("r1"), text_delta("r1", "x"), audio_delta("r1"))
        assert request.answer is not None and track.id == "r1"
        assert track.text == [] and track.audio == [] and state.running == 0
        feed(state, response_done("r1"))
        assert track.status == "completed"

    def test_pairing_does_not_depend_on_garbage_collection(self, state: SessionState) -> None:
        """A follower whose handle is gone still takes the response it was due; the next goes
        to the next follower, whatever the collector did."""
        state.follow_next_response(0.0)  # dropped at once
        gc.collect()
        second = state.follow_next_response(0.0)
        created, _ = state.track_response("e1", 0.0)
        feed(
            state,
            {"type": "input_audio_buffer.speech_stopped", "audio_end_ms": 900},
            response_created("r1"),
            response_done("r1"),
            {"type": "input_audio_buffer.speech_stopped", "audio_end_ms": 1900},
            response_created("r2"),
        )
        assert second.id == "r2"
        assert created.id is None

    def test_server_error_fails_running_responses(self, state: SessionState) -> None:
        """A server_error naming nothing fails running responses (they may never finish)."""
        track, _ = state.track_response("e1", 0.0)
        feed(state, response_created("r1"))
        feed(state, {"type": "error", "error": {"type": "server_error", "code": "COMMON_ERROR"}})
        assert isinstance(track.error, ds.APIError)

    def test_vad_response_goes_to_the_follower(self) -> None:
        """After a server-VAD turn ends, the next response.created is the server's own (11)."""
        state = SessionState()
        feed(state, CREATED)
        follower = state.follow_next_response(0.0)
        explicit, request = state.track_response("eX", 0.0)
        feed(
            state,
            {"type": "input_audio_buffer.speech_stopped", "audio_end_ms": 900},
            response_created("r_vad"),
            error("eX", code="conversation_already_has_active_response"),
            text_delta("r_vad", "hi"),
            response_done("r_vad"),
        )
        assert follower.id == "r_vad" and follower.text == ["hi"] and follower.done is not None
        assert isinstance(explicit.error, ds.ActiveResponseError)
        assert explicit.id is None and request.answer is None

    def test_crossing_without_vad_is_taken_back(self, state: SessionState) -> None:
        """A refused request first paired with someone else's response gives it up (rule 1)."""
        follower = state.follow_next_response(0.0)
        explicit, _ = state.track_response("eX", 0.0)
        feed(
            state,
            response_created("r_other"),
            text_delta("r_other", "a"),
            error("eX", code="conversation_already_has_active_response"),
            text_delta("r_other", "b"),
            response_done("r_other"),
        )
        assert isinstance(explicit.error, ds.ActiveResponseError)
        assert explicit.text == [] and explicit.id is None
        assert follower.id == "r_other" and follower.text == ["a", "b"]

    def test_taken_back_response_goes_to_the_request_that_asked(self) -> None:
        """A response taken back from a refused request goes to the next waiting
        response.create, with what it had collected, not to nobody (5)."""
        state = SessionState()
        feed(state, MANUAL_CREATED)
        follower = state.follow_next_response(0.0)
        refused, first = state.track_response("e1", 0.0)
        asker, second = state.track_response("e2", 0.0)
        feed(
            state,
            response_created("r2"),
            text_delta("r2", "a"),
            error("e1", code="conversation_already_has_active_response"),
            text_delta("r2", "b"),
            response_done("r2"),
        )
        assert isinstance(first.error, ds.ActiveResponseError) and refused.text == []
        assert second.answer is not None and second.error is None
        assert asker.id == "r2" and asker.text == ["a", "b"] and asker.status == "completed"
        assert follower.id is None and state.pending == ()

    def test_taken_back_response_keeps_a_deferred_cancel(self) -> None:
        """A cancel asked for on the request that really owns a taken-back response is sent."""
        state = SessionState()
        feed(state, MANUAL_CREATED)
        state.track_response("e1", 0.0)
        asker, _ = state.track_response("e2", 0.0)
        assert state.cancel(asker) is None  # not started yet: deferred
        feed(state, response_created("r2"))
        (effects,) = feed(state, error("e1", code="conversation_already_has_active_response"))
        assert effects is not None and effects.cancel == [asker]

    def test_manual_mode_never_treats_speech_as_a_vad_turn(self) -> None:
        """With turn detection off, a response.created answers the request."""
        state = SessionState()
        feed(state, MANUAL_CREATED)
        track, request = state.track_response("e1", 0.0)
        feed(state, {"type": "input_audio_buffer.speech_stopped"}, response_created("r1"))
        assert request.answer is not None and track.id == "r1"

    def test_unclaimed_responses_go_to_followers_in_order(self, state: SessionState) -> None:
        """Responses answering no request go to followers, oldest first."""
        first = state.follow_next_response(0.0)
        second = state.follow_next_response(0.0)
        feed(state, response_created("r1"), response_created("r2"))
        assert (first.id, second.id) == ("r1", "r2")


class TestFunctionOutputRefused:
    """A function output the server refuses leaves no answer due (issue 14, behaviour 4)."""

    @pytest.mark.parametrize(
        "refusal",
        [
            error("e_out", code="invalid_value", param="item.call_id"),
            error(code="invalid_value", param="item.call_id"),  # naming no event, of that kind
        ],
    )
    def test_refusal_ends_the_wait_and_the_next_request_is_paired(
        self, state: SessionState, refusal: dict[str, Any]
    ) -> None:
        """After the refusal no answer is due, its follower fails, and the next
        response.create is answered by the next response.created."""
        assert state.function_output_sent("e_out") is True
        follower = state.follow_function_answer(0.0)
        assert follower is not None
        feed(state, refusal)
        assert not state.answer_due
        assert isinstance(follower.error, ds.APIError) and follower.error.code == "invalid_value"
        track, request = state.track_response("e_next", 0.0)
        feed(state, response_created("r1"), text_delta("r1", "hi"), response_done("r1"))
        assert request.answer is not None and track.text == ["hi"] and track.done is not None

    def test_unrelated_errors_leave_the_answer_due(self, state: SessionState) -> None:
        """An error naming another event, or naming none about something else, changes nothing."""
        state.function_output_sent("e_out")
        feed(state, error("e_other", param="item.call_id"), error(code="Throttling"))
        assert state.answer_due

    def test_one_refused_of_two_still_waits_for_the_other(self, state: SessionState) -> None:
        """With two outputs sent, refusing one leaves the server's answer to the other due."""
        state.function_output_sent("e1")
        state.function_output_sent("e2")
        feed(state, error("e1", param="item.call_id"))
        assert state.answer_due
        follower = state.follow_function_answer(0.0)
        feed(state, response_created("r1"))
        assert follower is not None and follower.id == "r1"


class TestCancel:
    def test_cancel_before_created_is_deferred(self, state: SessionState) -> None:
        """A cancel before response.created is remembered and sent when it starts (12)."""
        track, _ = state.track_response("e1", 0.0)
        assert state.cancel(track) is None
        assert state.cancel(track) is False  # already asked for
        (effects,) = feed(state, response_created("r1"))
        assert effects is not None and effects.cancel == [track]
        feed(state, response_done("r1", "cancelled"))
        assert track.status == "cancelled"

    def test_cancel_while_running_is_immediate(self, state: SessionState) -> None:
        """A cancel while running is sent at once; after the end there is nothing to cancel."""
        track, _ = state.track_response("e1", 0.0)
        (effects,) = feed(state, response_created("r1"))
        assert effects is None
        assert state.cancel(track) is True
        feed(state, response_done("r1", "cancelled"))
        other, _ = state.track_response("e2", 0.0)
        feed(state, response_created("r2"), response_done("r2"))
        assert state.cancel(other) is False

    def test_cancel_after_the_end(self, state: SessionState) -> None:
        """Nothing can be cancelled once the session ended."""
        track, _ = state.track_response("e1", 0.0)
        state.ended(1000, "", None)
        assert state.cancel(track) is False

    def test_livetranslate_never_cancels(self) -> None:
        """On LiveTranslate, whose docs list no response.cancel, neither a handle's cancel,
        interrupt() nor barge-in decides to send one; interrupt() still drops the audio."""
        machine = SessionState()
        machine.family = ds.ModelFamily.LIVETRANSLATE_V38
        machine.barge_in = True
        feed(machine, CREATED)
        track = machine.follow_next_response(0.0)
        feed(machine, response_created("r1"))
        assert machine.cancel(track) is False
        assert machine.interrupt() == ("r1", False)
        assert machine.interrupted("r1")
        feed(machine, response_done("r1"), response_created("r2"))
        (effects,) = feed(machine, {"type": "input_audio_buffer.speech_started"})
        assert effects is not None and effects.interrupted == "r2"
        assert not effects.cancel_interrupted


def audio_delta(rid: str, pcm: bytes = b"\x01\x00" * 4) -> dict[str, Any]:
    import base64

    return {
        "type": "response.audio.delta",
        "response_id": rid,
        "item_id": "item_1",
        "output_index": 0,
        "content_index": 0,
        "delta": base64.b64encode(pcm).decode(),
    }


def transcript_delta(rid: str, delta: str) -> dict[str, Any]:
    return {"type": "response.audio_transcript.delta", "response_id": rid, "delta": delta}


class TestInterrupt:
    """Barge-in: the late audio of an interrupted response is dropped until its response.done."""

    def test_nothing_running_cancels_nothing(self, state: SessionState) -> None:
        """interrupt() with no response running names none and sends no cancel."""
        assert state.interrupt() == (None, False)
        feed(state, response_created("resp_1"), response_done("resp_1"))
        assert state.interrupt() == (None, False)

    def test_late_audio_is_dropped_until_done(self, state: SessionState) -> None:
        """Audio deltas after the interrupt are DROP and counted; the id stays interrupted."""
        feed(state, response_created("resp_1"), audio_delta("resp_1"))
        assert state.interrupt() == ("resp_1", True)
        effects = feed(state, audio_delta("resp_1"), audio_delta("resp_1"))
        assert effects == [DROP, DROP]
        assert state.dropped_audio == 2 and state.dropped_for("resp_1") == 2
        # Text is not stale sound: the transcript of what was said still arrives.
        assert feed(state, transcript_delta("resp_1", "hi")) == [None]
        feed(state, response_done("resp_1", "cancelled"))
        # Handlers may still hold its audio after its response.done: it stays
        # interrupted (ids are never reused).
        assert state.interrupted("resp_1") and state.dropped_for("resp_1") == 2
        assert state.dropped_audio == 2

    def test_other_responses_audio_passes(self, state: SessionState) -> None:
        """Only the interrupted response's audio is dropped; the next response plays."""
        feed(state, response_created("resp_1"))
        state.interrupt()
        feed(state, response_done("resp_1", "cancelled"), response_created("resp_2"))
        assert feed(state, audio_delta("resp_2")) == [None]
        assert state.active_response_id == "resp_2"

    def test_followed_response_gets_no_late_audio(self, state: SessionState) -> None:
        """A handle's track keeps the audio from before the interrupt and none after it."""
        track, _ = state.track_response("e1", 0.0)
        feed(state, response_created("resp_1"), audio_delta("resp_1", b"\x01\x00"))
        assert state.interrupt() == ("resp_1", True)
        feed(state, audio_delta("resp_1", b"\x02\x00"), response_done("resp_1", "cancelled"))
        assert track.audio == [b"\x01\x00"]
        assert track.cancel_sent and state.cancel(track) is False  # nothing left to cancel
        assert track.status == "cancelled"

    def test_second_interrupt_sends_no_second_cancel(self, state: SessionState) -> None:
        """Interrupting the same response twice asks for one cancel only."""
        feed(state, response_created("resp_1"))
        assert state.interrupt() == ("resp_1", True)
        assert state.interrupt() == ("resp_1", False)

    def test_cancel_already_sent_is_not_repeated(self, state: SessionState) -> None:
        """After Response.cancel() was sent, interrupt() drops audio but sends no second cancel."""
        track, _ = state.track_response("e1", 0.0)
        feed(state, response_created("resp_1"))
        assert state.cancel(track) is True
        assert state.interrupt() == ("resp_1", False)
        assert feed(state, audio_delta("resp_1")) == [DROP]

    def test_end_keeps_interruptions(self, state: SessionState) -> None:
        """The end clears the running response but not the interrupted ids, which
        handlers still draining their backlog consult."""
        feed(state, response_created("resp_1"))
        state.interrupt()
        state.ended(1000, "", None)
        assert state.interrupted("resp_1") and state.active_response_id is None

    def test_recorded_barge_in_sequence(self, state: SessionState) -> None:
        """A recorded server-VAD barge-in: speech_started mid-response, late audio, done cancelled."""
        frames = [
            response_created("resp_9"),
            audio_delta("resp_9"),
            transcript_delta("resp_9", "The weather"),
            {
                "type": "input_audio_buffer.speech_started",
                "audio_start_ms": 3647,
                "item_id": "item_2",
            },
        ]
        effects = feed(state, *frames)
        assert DROP not in effects
        assert state.interrupt() == ("resp_9", True)
        late = feed(
            state,
            audio_delta("resp_9"),
            audio_delta("resp_9"),
            audio_delta("resp_9"),
            {
                "type": "response.audio.done",
                "response_id": "resp_9",
                "item_id": "item_1",
                "output_index": 0,
                "content_index": 0,
            },
            response_done("resp_9", "cancelled"),
        )
        assert late[:3] == [DROP, DROP, DROP] and DROP not in late[3:]
        assert state.dropped_audio == 3
