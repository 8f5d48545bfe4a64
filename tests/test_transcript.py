"""The transcript's books and records on recorded frame sequences: no sockets, threads or clocks."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

import dashscope_sync as ds
from dashscope_sync._conversation.book import TranscriptBook, Truncation, heard_text
from dashscope_sync._core.state import RequestKind, SessionState
from dashscope_sync._wire.codec import decode

#: 24 kHz PCM16: bytes per second of reply audio.
SECOND = 48_000


def feed(book: TranscriptBook, *frames: dict[str, Any], at: float = 1.0) -> list[Any]:
    """Decode each frame as the reader does and give it to the book; what it returned."""
    return [book.receive(decode(json.dumps(frame).encode()), at) for frame in frames]


def created(rid: str) -> dict[str, Any]:
    return {"type": "response.created", "response": {"id": rid, "status": "in_progress"}}


def done(
    rid: str, status: str = "completed", usage: dict[str, Any] | None = None
) -> dict[str, Any]:
    response: dict[str, Any] = {"id": rid, "status": status}
    if usage is not None:
        response["usage"] = usage
    return {"type": "response.done", "response": response}


def said(rid: str, delta: str, item: str = "item_a") -> dict[str, Any]:
    return {
        "type": "response.audio_transcript.delta",
        "response_id": rid,
        "item_id": item,
        "delta": delta,
    }


def audio(rid: str, seconds: float, item: str = "item_a") -> dict[str, Any]:
    data = base64.b64encode(b"\0" * int(seconds * SECOND)).decode()
    return {"type": "response.audio.delta", "response_id": rid, "item_id": item, "delta": data}


def user_audio(item: str) -> list[dict[str, Any]]:
    return [
        {"type": "input_audio_buffer.speech_started", "item_id": item, "audio_start_ms": 0},
        {"type": "input_audio_buffer.speech_stopped", "item_id": item, "audio_end_ms": 900},
        {"type": "input_audio_buffer.committed", "item_id": item},
        {
            "type": "conversation.item.created",
            "item": {"id": item, "type": "message", "role": "user", "content": []},
        },
    ]


def transcribed(item: str, text: str) -> dict[str, Any]:
    return {
        "type": "conversation.item.input_audio_transcription.completed",
        "item_id": item,
        "transcript": text,
    }


def assistant_item(item: str, rid: str) -> dict[str, Any]:
    return {
        "type": "response.output_item.added",
        "response_id": rid,
        "item": {"id": item, "type": "message", "role": "assistant"},
    }


def reply(rid: str, item: str, words: list[str], seconds_each: float) -> list[dict[str, Any]]:
    """A spoken reply as the service streams it: each word's text just before its audio."""
    frames = [created(rid), assistant_item(item, rid)]
    for word in words:
        frames += [said(rid, word, item), audio(rid, seconds_each, item)]
    return frames


class TestTurns:
    def test_a_spoken_reply_and_its_usage_make_an_assistant_turn(self) -> None:
        """The transcript deltas of a response become one assistant turn, with its usage and times."""
        book = TranscriptBook(origin=10.0)
        feed(book, *reply("r1", "item_a", ["Hello", " there"], 0.5), at=11.0)
        feed(book, done("r1", usage={"total_tokens": 7, "output_tokens": 5}), at=12.5)
        (turn,) = book.snapshot()
        assert (turn.role, turn.text, turn.heard_text, turn.interrupted) == (
            "assistant",
            "Hello there",
            "Hello there",
            False,
        )
        assert (turn.started_at, turn.ended_at) == (1.0, 2.5)
        assert (turn.response_id, turn.item_id) == ("r1", "item_a")
        assert turn.usage is not None and turn.usage.total_tokens == 7

    def test_a_transcription_arriving_mid_reply_goes_before_the_reply(self) -> None:
        """The user's transcription that comes during the reply answering it is placed before it."""
        book = TranscriptBook(origin=0.0)
        feed(book, *user_audio("item_u"), *reply("r1", "item_a", ["Fine"], 0.2))
        feed(book, transcribed("item_u", "How are you?"), done("r1"))
        assert [(t.role, t.text) for t in book.snapshot()] == [
            ("user", "How are you?"),
            ("assistant", "Fine"),
        ]

    def test_an_unannounced_transcription_goes_before_the_running_reply(self) -> None:
        """A transcription for an item never announced still lands before the reply that runs."""
        book = TranscriptBook(origin=0.0)
        feed(book, *reply("r1", "item_a", ["Fine"], 0.2), transcribed("item_x", "Hi"))
        assert [t.role for t in book.snapshot()] == ["user", "assistant"]

    def test_sent_text_is_a_user_turn_and_untranscribed_audio_is_left_out(self) -> None:
        """A user's input_text echo is a turn; an audio turn with no transcription is not shown."""
        book = TranscriptBook(origin=0.0)
        text_item = {
            "id": "item_t",
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "typed"}],
        }
        feed(book, *user_audio("item_u"), {"type": "conversation.item.created", "item": text_item})
        assert [(t.role, t.text) for t in book.snapshot()] == [("user", "typed")]

    def test_livetranslate_confirmed_text_makes_the_source_and_translation_turns(self) -> None:
        """LiveTranslate's text/stash events build the source turn and the translation turn."""
        book = TranscriptBook(origin=0.0)
        source = {
            "type": "conversation.item.input_audio_transcription.text",
            "item_id": "item_u",
            "text": "你好",
            "stash": "世界",
        }
        feed(book, *user_audio("item_u"), source, created("r1"))
        for text, stash in (("Hello", " world"), ("Hello world", "")):
            frame = {
                "type": "response.text.text",
                "response_id": "r1",
                "text": text,
                "stash": stash,
            }
            feed(book, frame)
        feed(book, {"type": "response.text.done", "response_id": "r1", "text": "Hello world"})
        assert [(t.role, t.text) for t in book.snapshot()] == [
            ("user", "你好世界"),
            ("assistant", "Hello world"),
        ]

    def test_a_tool_call_attaches_to_its_responses_turn(self) -> None:
        """add_tool_call puts a finished call on the turn of the response that made it."""
        book = TranscriptBook(origin=0.0)
        feed(book, created("r1"), done("r1"))
        call = ds.ToolCall(
            name="f", call_id="c1", arguments={}, raw_arguments="{}", response_id="r1"
        )
        book.add_tool_call(call)
        (turn,) = book.snapshot()
        assert turn.tool_calls == (call,) and turn.text == ""


class TestHeard:
    def test_played_seconds_map_onto_the_words_whose_audio_played(self) -> None:
        """A speaker that played 1.5 s of four 1 s words heard the first word and half the second."""
        book = TranscriptBook(origin=0.0)
        feed(book, *reply("r1", "item_a", ["one", " two", " three", " four"], 1.0))
        feed(book, done("r1"))
        # Half of " two" (4 chars -> 2) falls inside the word: cut back to the boundary.
        book.heard("r1", 1.5)
        (turn,) = book.snapshot()
        assert (turn.heard_text, turn.interrupted) == ("one", True)
        book.heard("r1", 1.0)
        assert book.snapshot()[0].heard_text == "one"

    def test_cjk_text_is_cut_per_character(self) -> None:
        """Within a CJK piece, each character is a word: the played share keeps whole characters."""
        assert heard_text("你好世界", [(0, 0)], 4 * SECOND, 2 * SECOND) == "你好"
        assert heard_text("ab cd ef", [(0, 0)], 8, 7) == "ab cd"

    def test_a_reply_played_to_its_end_was_not_cut(self) -> None:
        """Played seconds covering all the audio leave heard_text equal to text, not interrupted."""
        book = TranscriptBook(origin=0.0)
        feed(book, *reply("r1", "item_a", ["all", " of", " it"], 0.5), done("r1"))
        book.heard("r1", 5.0)
        (turn,) = book.snapshot()
        assert (turn.heard_text, turn.interrupted) == ("all of it", False)

    def test_played_seconds_that_round_below_the_total_are_the_whole_reply(self) -> None:
        """5.1 s played of a 5.1 s reply (5.1 * 24000 floats just under 122400 samples) was heard whole."""
        book = TranscriptBook(origin=0.0)
        feed(book, *reply("r1", "item_a", ["It", " said", ' "hi".'], 1.7), done("r1"))
        assert book.heard("r1", 5.1, truncate=True) is None
        (turn,) = book.snapshot()
        assert (turn.heard_text, turn.interrupted) == ('It said "hi".', False)

    def test_a_few_samples_short_of_the_end_is_the_whole_reply(self) -> None:
        """A speaker a few ms short of the end (resampling moves it) heard it all; 0.1 s short did not."""
        book = TranscriptBook(origin=0.0)
        feed(book, *reply("r1", "item_a", ["one", " two", " three"], 1.0), done("r1"))
        book.heard("r1", 3.0 - 0.004)
        assert not book.snapshot()[0].interrupted
        book.heard("r1", 2.9)
        (turn,) = book.snapshot()
        assert (turn.heard_text, turn.interrupted) == ("one two", True)

    def test_a_running_reply_played_up_to_its_cut_heard_all_that_had_arrived(self) -> None:
        """A cut reply whose arrived audio the speaker played to within rounding heard every arrived word."""
        state = SessionState()
        state.transcript = book = TranscriptBook(origin=0.0)
        for frame in reply("r1", "item_a", ["It", " said", ' "hi".'], 1.7):
            state.receive(decode(json.dumps(frame).encode()), 1.0)
        rid, _ = state.interrupt()
        book.heard(rid, 5.1)
        (turn,) = book.snapshot()
        assert (turn.text, turn.heard_text) == ('It said "hi".', 'It said "hi".')

    def test_without_a_speaker_the_text_whose_audio_had_arrived_was_heard(self) -> None:
        """interrupt() with no speaker: heard_text is the text whose audio had arrived at the cut."""
        state = SessionState()
        state.transcript = book = TranscriptBook(origin=0.0)
        frames = [*reply("r1", "item_a", ["kept", " too"], 0.5), said("r1", " late")]
        for frame in frames:
            state.receive(decode(json.dumps(frame).encode()), 1.0)
        rid, _ = state.interrupt()
        book.heard(rid, None)
        state.receive(decode(json.dumps(said("r1", " after")).encode()), 1.0)
        (turn,) = book.snapshot()
        assert (turn.text, turn.heard_text, turn.interrupted) == (
            "kept too late after",
            "kept too",
            True,
        )

    def test_a_text_only_reply_cut_keeps_what_had_arrived(self) -> None:
        """A reply without audio cut by interrupt() heard the text that had arrived by then."""
        book = TranscriptBook(origin=0.0)
        text = {"type": "response.text.delta", "response_id": "r1", "delta": "early"}
        feed(book, created("r1"), text)
        book.cut("r1")
        feed(book, {**text, "delta": " later"}, done("r1", "cancelled"))
        (turn,) = book.snapshot()
        assert (turn.text, turn.heard_text, turn.interrupted) == ("early later", "early", True)


class TestTruncation:
    def test_a_cut_reply_is_replaced_at_its_place_once_it_is_done(self) -> None:
        """With truncate, the reply's response.done yields the replacement after the item before it."""
        book = TranscriptBook(origin=0.0)
        feed(book, *user_audio("item_u"), *reply("r1", "item_a", ["one", " two"], 1.0))
        feed(
            book,
            {
                "type": "conversation.item.created",
                "item": {"id": "item_a", "type": "message", "role": "assistant", "content": []},
            },
        )
        book.cut("r1")
        assert book.heard("r1", 1.2, truncate=True) is None  # not done yet
        (cut,) = feed(book, done("r1", "cancelled"))
        assert cut == Truncation("item_a", "item_u", "one")
        other = {"id": "item_other", "type": "message", "role": "assistant", "content": []}
        recreated = {**other, "id": "item_new", "content": [{"type": "text", "text": "one"}]}
        feed(book, {"type": "conversation.item.created", "item": other})
        assert book.snapshot()[-1].item_id == "item_a"  # not the echo of the re-created item
        feed(book, {"type": "conversation.item.created", "item": recreated})
        assert book.snapshot()[-1].item_id == "item_new"

    def test_a_reply_that_ended_is_replaced_at_once(self) -> None:
        """A reply whose response.done came before the interrupt is replaced by heard() itself."""
        book = TranscriptBook(origin=0.0)
        feed(book, *reply("r1", "item_a", ["one", " two"], 1.0), done("r1"))
        assert book.heard("r1", 0.5, truncate=True) == Truncation("item_a", None, "")

    def test_a_reply_heard_whole_is_not_replaced(self) -> None:
        """Nothing was cut: no truncation, even when asked for."""
        book = TranscriptBook(origin=0.0)
        feed(book, *reply("r1", "item_a", ["one"], 1.0), done("r1"))
        assert book.heard("r1", 2.0, truncate=True) is None

    def test_a_cut_first_item_is_left_whole(self) -> None:
        """A cut reply that is the conversation's first item cannot be re-created at its place: skipped."""
        book = TranscriptBook(origin=0.0)
        feed(book, *reply("r1", "item_a", ["Hello", " there"], 1.0), done("r1"))
        user = {"id": "item_u", "type": "message", "role": "user", "content": []}
        feed(book, {"type": "conversation.item.created", "item": user})
        cut = book.heard("r1", 1.2, truncate=True)
        assert cut is not None and (cut.item_id, cut.text) == ("item_a", "Hello")
        assert "first item" in cut.skip
        assert book.snapshot()[0].item_id == "item_a"
        # Nothing heard: only a delete, which needs no place.
        assert book.heard("r1", 0.0, truncate=True) == Truncation("item_a", None, "")


class TestReplacement:
    """interrupt(truncate=True)'s two steps in the state: no sockets, threads or clocks."""

    def cut_reply(self) -> tuple[SessionState, Any]:
        """A state whose running second item was cut with truncate; the response.done's effects."""
        state = SessionState()
        state.transcript = book = TranscriptBook(origin=0.0)
        frames = [*user_audio("item_u"), *reply("r1", "item_a", ["one", " two"], 1.0)]
        item = {"id": "item_a", "type": "message", "role": "assistant", "content": []}
        frames.append({"type": "conversation.item.created", "item": item})
        for frame in frames:
            state.receive(decode(json.dumps(frame).encode()), 1.0)
        rid, _ = state.interrupt()
        assert book.heard(rid, 1.2, truncate=True) is None
        assert state.truncating  # owed from the interrupt on
        effects = state.receive(decode(json.dumps(done("r1", "cancelled")).encode()), 1.0)
        return state, effects

    def test_the_re_create_waits_for_the_servers_deleted(self) -> None:
        """The state asks for the re-create only once conversation.item.deleted answered the delete."""
        state, effects = self.cut_reply()
        replacement = effects.truncate
        assert replacement.cut == Truncation("item_a", "item_u", "one") and state.truncating
        request = state.request(RequestKind.DELETE, "ev_del", {"item_id": "item_a"})
        state.replacements.deleting(replacement, request, "the re-create")
        other = {"type": "conversation.item.deleted", "item_id": "item_other"}
        assert state.receive(decode(json.dumps(other).encode()), 1.0) is None
        deleted = {"type": "conversation.item.deleted", "item_id": "item_a"}
        effects = state.receive(decode(json.dumps(deleted).encode()), 1.0)
        assert effects.recreate == (replacement,) and replacement.refused is None
        assert state.truncating  # until the core sent the re-create
        state.replacements.close(replacement)
        assert not state.truncating

    def test_abandoning_frees_what_waited(self) -> None:
        """Truncations given up (their answer never came) hold nothing back, owed or under way."""
        state, _ = self.cut_reply()
        assert state.truncating
        state.abandon_truncations()
        assert not state.truncating
        fresh = SessionState()
        fresh.transcript = book = TranscriptBook(origin=0.0)
        for frame in reply("r1", "item_a", ["one", " two"], 1.0):
            fresh.receive(decode(json.dumps(frame).encode()), 1.0)
        rid, _ = fresh.interrupt()
        book.heard(rid, 0.5, truncate=True)
        assert fresh.truncating
        fresh.abandon_truncations()
        assert not fresh.truncating

    def test_a_given_up_replacement_still_re_creates_on_a_late_deleted(self) -> None:
        """After the hold gave a replacement up, a late deleted still asks for its re-create."""
        state, effects = self.cut_reply()
        replacement = effects.truncate
        request = state.request(RequestKind.DELETE, "ev_del", {"item_id": "item_a"})
        state.replacements.deleting(replacement, request, "the re-create")
        state.abandon_truncations()
        assert not state.truncating  # nothing waits for it any more
        deleted = {"type": "conversation.item.deleted", "item_id": "item_a"}
        effects = state.receive(decode(json.dumps(deleted).encode()), 1.0)
        assert effects is not None and effects.recreate == (replacement,)
        assert replacement.refused is None

    def test_a_refused_delete_is_not_followed_by_the_re_create(self) -> None:
        """An error naming the delete ends the replacement as refused: the cut item is never doubled."""
        state, effects = self.cut_reply()
        replacement = effects.truncate
        request = state.request(RequestKind.DELETE, "ev_del", {"item_id": "item_a"})
        state.replacements.deleting(replacement, request, "the re-create")
        error = {
            "type": "error",
            "error": {"type": "invalid_request_error", "message": "no item", "event_id": "ev_del"},
        }
        effects = state.receive(decode(json.dumps(error).encode()), 1.0)
        assert effects.recreate == (replacement,)
        assert isinstance(replacement.refused, ds.APIError)


class TestRecords:
    def sample(self) -> ds.Transcript:
        call = ds.ToolCall(
            name="weather",
            call_id="c1",
            arguments={"city": "Hangzhou"},
            raw_arguments='{"city": "Hangzhou"}',
            result={"temp": 21},
            duration=0.25,
            response_id="r1",
        )
        usage = ds.Usage(
            total_tokens=9,
            output_tokens_details=ds.TokenDetails(text_tokens=2, audio_tokens=3),
        )
        return ds.Transcript(
            (
                ds.Turn(role="user", text="Hi *there*", heard_text="Hi *there*", started_at=0.5),
                ds.Turn(
                    role="assistant",
                    text="Hello, how are you",
                    heard_text="Hello,",
                    interrupted=True,
                    started_at=1.0,
                    ended_at=2.25,
                    item_id="item_a",
                    response_id="r1",
                    usage=usage,
                    tool_calls=(call,),
                ),
            )
        )

    def test_json_round_trips_exactly(self) -> None:
        """from_json(to_json()) gives back an equal transcript, usage and tool calls included."""
        transcript = self.sample()
        assert ds.Transcript.from_json(transcript.to_json()) == transcript

    def test_markdown_shows_what_was_heard_and_strikes_the_rest(self) -> None:
        """to_markdown writes each turn, escapes formatting and strikes the unheard rest."""
        text = self.sample().to_markdown()
        assert "**User:** Hi \\*there\\*" in text
        assert "**Assistant:** Hello, ~~how are you~~ *(interrupted)*" in text
        assert "tool `weather`" in text

    def test_sequence_protocol_and_notebook_forms(self) -> None:
        """A transcript iterates, indexes and sizes like its turns, and renders as HTML."""
        transcript = self.sample()
        assert len(transcript) == 2 and transcript[0].role == "user"
        assert list(transcript) == list(transcript.turns)
        assert "<del>" in transcript._repr_html_() and transcript._repr_markdown_()

    @pytest.mark.parametrize("text", ["nope", "{}", '{"version": 1, "turns": [{"role": "x"}]}'])
    def test_from_json_refuses_what_is_not_a_transcript(self, text: str) -> None:
        """Bad JSON, a missing version or a bad turn raise ConfigError."""
        with pytest.raises(ds.ConfigError):
            ds.Transcript.from_json(text)
