"""session.transcript over a real socket: replies, user transcriptions, cut replies, truncation."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import dashscope_sync as ds
from dashscope_sync._core import core as core_module
from dashscope_sync.testing import LocalRealtimeServer

from .audio_fakes import VirtualOutput, wait_until

# Both modes (issue 18): each test runs with threads and again on a ds.Reactor.
pytestmark = pytest.mark.both_modes

MODEL = ds.MODEL_QWEN3_OMNI_FLASH_REALTIME
#: The family whose docs list the item operations a truncation needs.
AUDIO_MODEL = ds.MODEL_QWEN_AUDIO_3_0_REALTIME_PLUS
SPEECH = ds.load_wav(ds.sample_wav_path())
LONG = "Tell me a long story, please, with very many words in it, one after another."


def _client(server: LocalRealtimeServer) -> ds.Client:
    return ds.Client(server.api_key, base_url=server.url)


def _audio_reply(pcm: bytes, text: str) -> list[dict[str, Any]]:
    """A whole scripted audio message (one item, one audio part), much shorter than a
    simulated reply, for tests that would otherwise wait for seconds of speech."""
    at = {"output_index": 0, "content_index": 0}
    return [
        {"type": "response.created"},
        {
            "type": "response.output_item.added",
            "output_index": 0,
            "item": {
                "type": "message",
                "role": "assistant",
                "status": "in_progress",
                "content": [],
            },
        },
        {"type": "response.content_part.added", **at, "part": {"type": "audio", "transcript": ""}},
        {"type": "response.audio_transcript.delta", **at, "delta": text},
        {"type": "response.audio.delta", **at, "delta": base64.b64encode(pcm).decode()},
        {"type": "response.audio.done", **at},
        {"type": "response.audio_transcript.done", **at, "transcript": text},
        {"type": "response.content_part.done", **at, "part": {"type": "audio", "transcript": text}},
        {
            "type": "response.output_item.done",
            "output_index": 0,
            "item": {
                "type": "message",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "audio", "transcript": text}],
            },
        },
        {"type": "response.done", "response": {"status": "completed"}},
    ]


@pytest.fixture
def slow_server() -> Iterator[LocalRealtimeServer]:
    """A server whose replies stream slowly enough to be cut mid-way."""
    with LocalRealtimeServer(delta_delay=0.02) as srv:
        yield srv


def first_audio(session: ds.RealtimeSession) -> threading.Event:
    """An event set by the first reply audio a handler sees."""
    seen = threading.Event()
    session.on(ds.ResponseAudioDelta, lambda event: seen.set())
    return seen


class TestTranscript:
    def test_a_text_turn_and_its_reply(self, session: ds.RealtimeSession) -> None:
        """The user's text and the model's reply are two turns, with the reply's id and usage."""
        session.update_session(ds.SessionUpdate(turn_detection=None), timeout=10)
        session.append_text("What is the weather like?")
        result = session.create_response().wait(timeout=30)
        user, reply = session.transcript
        assert (user.role, user.text) == ("user", "What is the weather like?")
        assert (reply.role, reply.text, reply.heard_text) == ("assistant", result.text, result.text)
        assert reply.response_id == result.response_id and not reply.interrupted
        assert reply.usage == result.usage
        assert reply.started_at is not None and reply.ended_at is not None
        assert 0 <= user.ended_at <= reply.started_at <= reply.ended_at  # type: ignore[operator]

    def test_the_users_transcription_comes_before_the_reply(
        self, session: ds.RealtimeSession
    ) -> None:
        """An audio turn shows the input transcription, in front of the reply answering it."""
        session.update_session(ds.SessionUpdate(turn_detection=None), timeout=10)
        result = session.respond(audio=SPEECH, timeout=30)
        transcribed = session.wait_for(
            ds.ConversationItemInputAudioTranscriptionCompleted, timeout=10
        )
        user, reply = session.transcript
        assert (user.role, user.text) == ("user", transcribed.transcript)
        assert (reply.role, reply.text) == ("assistant", result.text)

    def test_livetranslate_keeps_source_and_translation(self, server: LocalRealtimeServer) -> None:
        """On LiveTranslate the transcript holds the source speech and its translation."""
        model = ds.MODEL_QWEN3_5_LIVETRANSLATE_FLASH_REALTIME
        with _client(server).realtime.connect(model=model) as session:
            response = session.next_response()
            session.append_audio(SPEECH + b"\x00\x00" * 16000)
            result = response.wait(timeout=30)
            source, translation = session.transcript
        assert source.role == "user" and source.text
        assert (translation.role, translation.text) == ("assistant", result.text)

    def test_a_reply_cut_without_a_speaker_heard_what_had_arrived(
        self, slow_server: LocalRealtimeServer
    ) -> None:
        """interrupt() without a speaker: text whose audio never came is in text, not heard_text."""
        with _client(slow_server).realtime.connect(model=MODEL) as session:
            session.update_session(ds.SessionUpdate(turn_detection=None), timeout=10)
            audio_came = first_audio(session)
            session.append_text(LONG)
            response = session.create_response()
            assert audio_came.wait(10)
            connection = slow_server.connections[0]
            connection.stall()  # the reply cannot end before the late text is in
            try:
                stopped = session.interrupt()
                late = {
                    "type": "response.audio_transcript.delta",
                    "response_id": stopped.response_id,
                    "delta": " UNHEARD",
                }
                connection.send(late)
            finally:
                connection.resume()
            with pytest.raises(ds.ResponseCancelledError):
                response.wait(timeout=10)
            reply = session.transcript[-1]
        assert reply.interrupted and reply.response_id == response.id
        assert "UNHEARD" in reply.text and "UNHEARD" not in reply.heard_text
        assert reply.heard_text and reply.text.startswith(reply.heard_text)

    def test_a_reply_cut_on_a_speaker_heard_what_was_played(self) -> None:
        """With a speaker, heard_text is the part played: a non-empty proper prefix of the text."""
        device = VirtualOutput(24000, latency=0.1)
        with (
            LocalRealtimeServer(delta_delay=0.005) as server,
            _client(server).realtime.connect(model=MODEL) as session,
            ds.Speaker(stream=device) as speaker,
        ):
            session.update_session(ds.SessionUpdate(turn_detection=None), timeout=10)
            session.attach(speaker=speaker)
            session.append_text(LONG)
            response = session.create_response()
            assert wait_until(lambda: device.heard() > 0.6, timeout=10)
            stopped = session.interrupt()
            with pytest.raises(ds.ResponseCancelledError):
                response.wait(timeout=10)
            reply = session.transcript[-1]
        assert stopped.played_seconds is not None and reply.interrupted
        assert reply.heard_text and reply.text.startswith(reply.heard_text)
        assert len(reply.heard_text) < len(reply.text)

    def test_an_interrupt_after_the_reply_played_out_cuts_nothing(self) -> None:
        """interrupt(truncate=True) once a reply has played to its end: not interrupted, no item operation."""
        device = VirtualOutput(24000, latency=0.05)
        with (
            LocalRealtimeServer() as server,
            _client(server).realtime.connect(model=AUDIO_MODEL) as session,
            ds.Speaker(stream=device) as speaker,
        ):
            session.update_session(ds.SessionUpdate(turn_detection=None), timeout=10)
            session.attach(speaker=speaker)
            # A scripted 12010-sample reply rather than the simulated 5.1 s one the speaker
            # would play in real time; like 5.1 s, 12010 / 24000 * 24000 floats just under
            # its sample count.
            server.script_response(_audio_reply(b"\x10\x20" * 12010, "Hello there."))
            result = session.respond(text="hi", timeout=30)
            assert result.audio_seconds == 12010 / 24000
            assert wait_until(lambda: speaker.written_seconds >= result.audio_seconds, timeout=10)
            assert speaker.drain(timeout=30)
            session.interrupt(truncate=True)
            session.respond(text="And then?", timeout=30)  # what interrupt() sent came before it
            reply = session.transcript[1]
        assert (reply.response_id, reply.interrupted) == (result.response_id, False)
        assert reply.heard_text == reply.text == result.text
        sent = [frame["type"] for frame in server.received]
        assert "conversation.item.delete" not in sent
        assert sent.count("conversation.item.create") == 2  # the two questions only

    def test_a_barge_in_under_server_vad_keeps_conversation_order(self) -> None:
        """Under server VAD, a reply cut by the user's speech is interrupted, between the two user turns."""
        from dashscope_sync.testing import speech_like_pcm16

        with (
            LocalRealtimeServer(server_vad=True, delta_delay=0.05) as server,
            _client(server).realtime.connect(model=MODEL) as session,
        ):
            session.attach(barge_in=True)
            first = session.next_response()
            session.append_audio(speech_like_pcm16(1.0) + bytes(16000 * 2))
            for _ in first.iter_audio(timeout=10):
                break
            # The second reply is short: a simulated one streams for 2.5 s at this pace.
            server.script_response(_audio_reply(bytes(4800), "Yes?"))
            second = session.next_response()
            session.append_audio(speech_like_pcm16(0.5) + bytes(16000 * 2))
            with pytest.raises(ds.ResponseCancelledError):
                first.wait(timeout=10)
            second.wait(timeout=30)
            session.detach()
            turns = session.transcript
        assert [turn.role for turn in turns] == ["user", "assistant", "user", "assistant"]
        assert turns[1].response_id == first.id and turns[1].interrupted
        assert turns[3].response_id == second.id and not turns[3].interrupted
        assert turns[0].text and turns[2].text  # the input transcriptions
        assert turns[0].started_at <= turns[1].started_at <= turns[2].started_at  # type: ignore[operator]


class TestTruncate:
    def test_the_servers_history_holds_what_was_heard(
        self, slow_server: LocalRealtimeServer
    ) -> None:
        """interrupt(truncate=True) replaces the cut item by heard_text at its place, on the server."""
        with _client(slow_server).realtime.connect(model=AUDIO_MODEL) as session:
            session.update_session(ds.SessionUpdate(turn_detection=None), timeout=10)
            audio_came = first_audio(session)
            session.append_text(LONG)
            response = session.create_response()
            assert audio_came.wait(10)
            session.interrupt(truncate=True)
            with pytest.raises(ds.ResponseCancelledError):
                response.wait(timeout=10)
            created = slow_server.wait_for_received("conversation.item.create", count=2, timeout=10)
            session.append_text("And then?")
            session.create_response().wait(timeout=30)
            history = slow_server.connections[0].conversation
            cut = session.transcript[1]
        assert cut.interrupted and cut.heard_text and cut.item_id is not None
        assert created["item"]["content"] == [{"type": "text", "text": cut.heard_text}]
        roles = [(item["role"], item["content"][0].get("text")) for item in history[:3]]
        assert roles == [("user", LONG), ("assistant", cut.heard_text), ("user", "And then?")]
        assert history[1]["id"] == cut.item_id  # the re-created item, at the cut one's place

    def test_the_next_turn_reaches_the_server_after_the_replacement(
        self, slow_server: LocalRealtimeServer
    ) -> None:
        """A turn asked for while the cut reply has not ended goes after the delete and re-create."""
        with _client(slow_server).realtime.connect(model=AUDIO_MODEL) as session:
            session.update_session(ds.SessionUpdate(turn_detection=None), timeout=10)
            audio_came = first_audio(session)
            session.append_text(LONG)
            response = session.create_response()
            assert audio_came.wait(10)
            connection = slow_server.connections[0]
            connection.stall()  # the cancel waits unread: the cut reply cannot end yet
            results: list[object] = []

            def next_turn() -> None:
                try:
                    results.append(session.respond(text="And then?", timeout=30))
                except BaseException as exc:  # handed to the test's thread
                    results.append(exc)

            try:
                session.interrupt(truncate=True)
                asking = threading.Thread(target=next_turn, name="next-turn")
                asking.start()
            finally:
                connection.resume()
            asking.join(30)
            with pytest.raises(ds.ResponseCancelledError):
                response.wait(timeout=10)
            cut = session.transcript[1]
        assert not asking.is_alive() and isinstance(results[0], ds.ResponseResult)
        sent = [
            (frame["type"], frame.get("item", {}).get("role"))
            for frame in slow_server.received
            if frame["type"].startswith(("conversation.item.", "response."))
        ]
        assert sent[-5:] == [
            ("response.cancel", None),
            ("conversation.item.delete", None),
            ("conversation.item.create", "assistant"),
            ("conversation.item.create", "user"),
            ("response.create", None),
        ]
        history = slow_server.connections[0].conversation
        roles = [(item["role"], item["content"][0].get("text")) for item in history[:3]]
        assert roles == [("user", LONG), ("assistant", cut.heard_text), ("user", "And then?")]

    def test_a_delete_never_answered_holds_the_next_turn_only_once(
        self, slow_server: LocalRealtimeServer, caplog: pytest.LogCaptureFixture
    ) -> None:
        """With no conversation.item.deleted, a send waits request_timeout once, then nothing waits."""
        config = ds.RealtimeConfig(model=AUDIO_MODEL, request_timeout=0.5)
        with _client(slow_server).realtime.connect(config) as session:
            session.update_session(ds.SessionUpdate(turn_detection=None), timeout=10)
            audio_came = first_audio(session)
            session.append_text(LONG)
            response = session.create_response()
            assert audio_came.wait(10)
            connection = slow_server.connections[0]
            connection.stall()  # nothing sent from now on is read, so nothing is answered
            try:
                stopped = session.interrupt(truncate=True)
                ended = {"type": "response.done", "response": {"id": stopped.response_id}}
                connection.send({**ended, "response": {**ended["response"], "status": "cancelled"}})
                with pytest.raises(ds.ResponseCancelledError):
                    response.wait(timeout=10)
                with caplog.at_level("WARNING", logger="dashscope_sync"):
                    session.append_text("Are you there?")
                    session.append_text("Hello?")
            finally:
                connection.resume()
        given_up = [r for r in caplog.records if "given up" in r.getMessage()]
        assert len(given_up) == 1

    def test_a_late_deleted_still_recreates_what_was_heard(
        self, slow_server: LocalRealtimeServer, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A delete answered after the hold gave up still re-creates the heard part at its place."""
        config = ds.RealtimeConfig(model=AUDIO_MODEL, request_timeout=0.5)
        with _client(slow_server).realtime.connect(config) as session:
            session.update_session(ds.SessionUpdate(turn_detection=None), timeout=10)
            audio_came = first_audio(session)
            session.append_text(LONG)
            response = session.create_response()
            assert audio_came.wait(10)
            connection = slow_server.connections[0]
            connection.stall()  # the delete waits unread until the hold has given up
            try:
                stopped = session.interrupt(truncate=True)
                ended = {"type": "response.done", "response": {"id": stopped.response_id}}
                connection.send({**ended, "response": {**ended["response"], "status": "cancelled"}})
                with pytest.raises(ds.ResponseCancelledError):
                    response.wait(timeout=10)
                with caplog.at_level("WARNING", logger="dashscope_sync"):
                    session.append_text("And then?")  # held 0.5 s, then it goes
            finally:
                connection.resume()
            with caplog.at_level("WARNING", logger="dashscope_sync"):
                created = slow_server.wait_for_received(
                    "conversation.item.create", count=3, timeout=10
                )
            # The response.done above was this test's: the server's own stream of the cut
            # reply ends when its thread sees the cancel, later on a loaded machine, and a
            # response.create before that is refused as one too many.
            assert connection.wait_streams(10)
            session.create_response().wait(timeout=30)
            history = slow_server.connections[0].conversation
            cut = session.transcript[1]
        assert cut.interrupted and cut.heard_text
        assert created["item"]["role"] == "assistant"  # the late re-create
        roles = [(item["role"], item["content"][0].get("text")) for item in history[:3]]
        assert roles == [("user", LONG), ("assistant", cut.heard_text), ("user", "And then?")]
        assert history[1]["id"] == cut.item_id  # the transcript follows the late re-create
        assert "re-created if the server's answer still comes" in caplog.text
        assert "after the hold gave it up" in caplog.text

    @staticmethod
    def cut_with_the_delete_unanswered(
        server: LocalRealtimeServer, session: ds.RealtimeSession
    ) -> None:
        """Cut a long reply with truncate while the server swallows every delete."""
        session.update_session(ds.SessionUpdate(turn_detection=None), timeout=10)
        audio_came = first_audio(session)
        session.append_text(LONG)
        response = session.create_response()
        assert audio_came.wait(10)
        server.on_client_event("conversation.item.delete", None)
        session.interrupt(truncate=True)
        with pytest.raises(ds.ResponseCancelledError):
            response.wait(timeout=10)
        server.wait_for_received("conversation.item.delete", timeout=10)

    def test_respond_keeps_its_own_timeout_while_a_replacement_holds(
        self, slow_server: LocalRealtimeServer
    ) -> None:
        """respond(timeout=1.0) raises DashScopeTimeout at its deadline, sending nothing held."""
        config = ds.RealtimeConfig(model=AUDIO_MODEL, request_timeout=None)
        with _client(slow_server).realtime.connect(config) as session:
            self.cut_with_the_delete_unanswered(slow_server, session)
            outcome: list[BaseException | ds.ResponseResult] = []
            took: list[float] = []

            def next_turn() -> None:
                began = time.monotonic()
                try:
                    outcome.append(session.respond(text="And then?", timeout=1.0))
                except BaseException as exc:  # handed to the test's thread
                    outcome.append(exc)
                took.append(time.monotonic() - began)

            asking = threading.Thread(target=next_turn, name="next-turn")
            asking.start()
            asking.join(20)
            hung = asking.is_alive()
        asking.join(10)  # close() releases a hold that never ended
        assert not hung
        assert isinstance(outcome[0], ds.DashScopeTimeout) and outcome[0].timeout == 1.0
        assert "respond() timed out after 1 s" in str(outcome[0])
        assert took[0] < 5.0  # its 1 s, not request_timeout's (or no) limit
        sent = [frame["type"] for frame in slow_server.received]
        assert sent.count("conversation.item.create") == 1  # only LONG: "And then?" never went
        assert sent.count("response.create") == 1

    def test_the_hold_is_bounded_with_no_timeout_anywhere(
        self, slow_server: LocalRealtimeServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """With request_timeout=None and no caller timeout, the hold still ends at its own bound."""
        monkeypatch.setattr(core_module, "TRUNCATION_HOLD_LIMIT", 0.5, raising=False)  # not 10 s
        config = ds.RealtimeConfig(model=AUDIO_MODEL, request_timeout=None)
        with _client(slow_server).realtime.connect(config) as session:
            self.cut_with_the_delete_unanswered(slow_server, session)
            results: list[object] = []

            def next_turn() -> None:
                try:
                    session.append_text("And then?")
                    results.append(session.create_response().wait(timeout=30))
                except BaseException as exc:  # handed to the test's thread
                    results.append(exc)

            asking = threading.Thread(target=next_turn, name="next-turn")
            asking.start()
            asking.join(40)
            hung = asking.is_alive()
        asking.join(10)
        assert not hung and isinstance(results[0], ds.ResponseResult)
        assert "And then?" in results[0].text

    def test_short_timeouts_do_not_renew_the_hold(self, slow_server: LocalRealtimeServer) -> None:
        """The hold's bound counts from the first frame it held: calls that time out do not renew it."""
        config = ds.RealtimeConfig(model=AUDIO_MODEL, request_timeout=2.0)
        with _client(slow_server).realtime.connect(config) as session:
            self.cut_with_the_delete_unanswered(slow_server, session)
            timed_out: list[float] = []
            for attempt in range(40):  # 40 x 0.2 s: far past the 2 s bound
                began = time.monotonic()
                with pytest.raises(ds.DashScopeTimeout) as raised:  # the hold's, or the reply's
                    session.respond(text=f"Try {attempt}", timeout=0.2)
                timed_out.append(time.monotonic() - began)
                if "still under way" not in str(raised.value):
                    break  # the hold let this one go: its reply was what timed out
            went = slow_server.wait_for_received("conversation.item.create", count=2, timeout=10)
        assert went["item"]["content"][0]["text"] == f"Try {attempt}"
        assert attempt > 0  # the first attempts were held, then one went
        assert max(timed_out) < 1.5  # each kept its own 0.2 s, none waited out the 2 s hold

    def test_a_cut_first_item_is_left_whole(self, caplog: pytest.LogCaptureFixture) -> None:
        """A cut greeting (the first item) is not re-created after the items that follow it."""
        device = VirtualOutput(24000, latency=0.1)
        with (
            LocalRealtimeServer() as server,
            _client(server).realtime.connect(model=AUDIO_MODEL) as session,
            ds.Speaker(stream=device) as speaker,
        ):
            session.update_session(ds.SessionUpdate(turn_detection=None), timeout=10)
            session.attach(speaker=speaker)
            greeting = session.create_response().wait(timeout=30)  # the assistant speaks first
            assert wait_until(lambda: device.heard() > 0.5, timeout=10)
            session.append_text("Stop, I have a question.")
            with caplog.at_level("WARNING", logger="dashscope_sync"):
                session.interrupt(truncate=True)
            session.respond(text="Go on.", timeout=30)  # after anything interrupt() sent
            history = server.connections[0].conversation
            cut = session.transcript[0]
        assert cut.interrupted and cut.item_id == greeting.output[0].id
        assert [item["role"] for item in history[:3]] == ["assistant", "user", "user"]
        assert history[0]["id"] == cut.item_id
        assert "conversation.item.delete" not in [frame["type"] for frame in server.received]
        assert "first item" in caplog.text

    def test_a_family_without_item_operations_refuses_before_anything(
        self, slow_server: LocalRealtimeServer
    ) -> None:
        """On Omni, interrupt(truncate=True) raises UsageError and cancels nothing."""
        with _client(slow_server).realtime.connect(model=MODEL) as session:
            session.update_session(ds.SessionUpdate(turn_detection=None), timeout=10)
            session.append_text("Hello")
            response = session.create_response()
            with pytest.raises(ds.UsageError, match=r"truncate=True"):
                session.interrupt(truncate=True)
            assert response.wait(timeout=30).status == "completed"
        assert not [f for f in slow_server.received if f["type"] == "response.cancel"]
