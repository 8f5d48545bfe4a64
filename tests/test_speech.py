"""Qwen-TTS-Realtime: the configuration, the speech rules (no sockets) and the wire against a
scripted raw server on loopback (SPEECH_FAMILIES.md §A), both sides of each contradiction."""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import time
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import dashscope_sync as ds
from dashscope_sync._core.speech_state import SpeechBook, SpeechTrack
from tests._net import OP_TEXT, RawPeer, close_frame, text

# Both modes (issue 18): each test runs with threads and again on a ds.Reactor.
pytestmark = pytest.mark.both_modes

MODEL = ds.MODEL_QWEN3_TTS_FLASH_REALTIME


# Configuration (no sockets) ------------------------------------------------------------


@pytest.mark.parametrize("model", ds.TTS_MODELS)
def test_every_documented_tts_model_is_the_tts_family(model: str) -> None:
    """Every documented TTS name and snapshot is recognised as QWEN_TTS."""
    assert ds.ModelFamily.QWEN_TTS.value == "qwen_tts"
    from dashscope_sync._wire.families import family_of

    assert family_of(model) is ds.ModelFamily.QWEN_TTS


def test_realtime_connect_refuses_a_tts_model_naming_speech_connect() -> None:
    """client.realtime.connect() with a TTS model raises ConfigError naming client.speech.connect."""
    client = ds.Client("k", base_url="ws://127.0.0.1:9/")
    with pytest.raises(ds.ConfigError, match=r"client\.speech\.connect"):
        client.realtime.connect(model=MODEL, timeout=1)


def test_default_config_sends_the_four_fields_the_sdk_always_sends() -> None:
    """The default session.update carries voice, mode, response_format and sample_rate only."""
    assert ds.SpeechConfig().session() == {
        "voice": "Cherry",
        "mode": "server_commit",
        "response_format": "pcm",
        "sample_rate": 24000,
    }


def test_every_documented_field_is_sent_by_its_wire_name() -> None:
    """Each documented session.update field is sent under its documented name, extra last."""
    config = ds.SpeechConfig(
        model=ds.MODEL_QWEN3_TTS_INSTRUCT_FLASH_REALTIME,
        voice="Ethan",
        mode="commit",
        language_type="English",
        response_format="opus",
        sample_rate=48000,
        speech_rate=1.2,
        volume=60,
        pitch_rate=0.9,
        bit_rate=128,
        instructions="warm",
        optimize_instructions=True,
        extra={"enable_tn": True},
    )
    assert config.session() == {
        "voice": "Ethan",
        "mode": "commit",
        "response_format": "opus",
        "sample_rate": 48000,
        "language_type": "English",
        "speech_rate": 1.2,
        "volume": 60,
        "pitch_rate": 0.9,
        "bit_rate": 128,
        "instructions": "warm",
        "optimize_instructions": True,
        "enable_tn": True,
    }


@pytest.mark.parametrize(
    ("options", "error", "words"),
    [
        ({"model": "qwen3-omni-flash-realtime"}, ds.ConfigError, "not a Qwen-TTS"),
        ({"voice": "Cherry Blossom"}, ds.ConfigError, "voice must be"),
        ({"voice": 7}, ds.ConfigTypeError, "voice must be a string"),
        ({"mode": "auto"}, ds.ConfigError, "mode must be"),
        ({"response_format": "flac"}, ds.ConfigError, "response_format"),
        ({"sample_rate": 22050}, ds.ConfigError, "sample_rate"),
        ({"speech_rate": 2.5}, ds.ConfigError, r"speech_rate must be in \[0.5, 2\]"),
        ({"speech_rate": float("nan")}, ds.ConfigError, "speech_rate"),
        ({"volume": 101}, ds.ConfigError, "volume"),
        ({"volume": 50.5}, ds.ConfigTypeError, "volume must be an integer"),
        ({"pitch_rate": 0.1}, ds.ConfigError, "pitch_rate"),
        ({"bit_rate": 5, "response_format": "opus"}, ds.ConfigError, "bit_rate"),
        ({"bit_rate": 64}, ds.ConfigError, "bit_rate applies"),
        ({"language_type": "Klingon"}, ds.ConfigError, "language_type"),
        ({"instructions": "warm"}, ds.ConfigError, "Instruct model"),
        ({"model": "qwen-tts-realtime", "sample_rate": 16000}, ds.ConfigError, "24000 Hz only"),
        ({"model": "qwen-tts-realtime", "speech_rate": 1.1}, ds.ConfigError, "takes none of"),
        ({"model": "qwen3-tts-vc-realtime-2026-01-15"}, ds.ConfigError, "custom voices only"),
        ({"extra": ["x"]}, ds.ConfigError, "extra must be"),
    ],
)
def test_bad_config_is_refused_with_a_clear_error(
    options: dict[str, Any], error: type[Exception], words: str
) -> None:
    """A field out of its documented range, or not taken by the model, is refused at once."""
    with pytest.raises(error, match=words):
        ds.SpeechConfig(**options)


def test_usage_repr_shows_the_billed_characters() -> None:
    """A TTS response.done's usage.characters is decoded and shown."""
    from dashscope_sync._wire.codec import decode

    event = decode(json.dumps(_done("resp_1", 25)))
    assert isinstance(event, ds.ResponseDone)
    assert event.response.usage is not None
    assert event.response.usage.characters == 25
    assert "characters=25" in repr(event.response.usage)


def test_tts_server_events_are_typed() -> None:
    """input_text_buffer.committed/.cleared decode to their classes, not UnknownEvent."""
    from dashscope_sync._wire.codec import decode

    committed = decode('{"type":"input_text_buffer.committed","item_id":""}')
    cleared = decode('{"event_id":"event_1122","type":"input_text_buffer.cleared"}')
    assert isinstance(committed, ds.InputTextBufferCommitted)
    assert isinstance(cleared, ds.InputTextBufferCleared)


# The speech rules (no sockets) ------------------------------------------------------------


def _events(*frames: dict[str, Any]) -> list[ds.ServerEvent]:
    from dashscope_sync._wire.codec import decode

    return [decode(json.dumps(f)) for f in frames]


def _created(rid: str) -> dict[str, Any]:
    return {"type": "response.created", "response": {"id": rid, "status": "in_progress"}}


def _delta(rid: str, pcm: bytes) -> dict[str, Any]:
    return {
        "type": "response.audio.delta",
        "response_id": rid,
        "item_id": "item_1",
        "output_index": 0,
        "content_index": 0,
        "delta": base64.b64encode(pcm).decode(),
    }


def _done(rid: str, characters: int = 0) -> dict[str, Any]:
    return {
        "type": "response.done",
        "response": {"id": rid, "status": "completed", "usage": {"characters": characters}},
    }


COMMITTED: dict[str, Any] = {"type": "input_text_buffer.committed", "item_id": ""}


def _book_with_commit() -> tuple[SpeechBook, SpeechTrack]:
    book = SpeechBook()
    track = SpeechTrack(0.0)
    book.open(track)
    book.sent(track, "a1", 0.0, "Hello")
    book.commit_sent(track, "c1")
    return book, track


def _feed(book: SpeechBook, frames: list[dict[str, Any]]) -> None:
    for event in _events(*frames):
        book.receive(event, 1.0)


def test_commit_then_response_ends_the_speech_at_response_done() -> None:
    """Side B of §E2: committed, then the response it created: the speech ends at response.done."""
    book, track = _book_with_commit()
    _feed(book, [COMMITTED, _created("r1"), _delta("r1", b"\x01\x00")])
    assert not track.finished
    _feed(book, [_done("r1", 5)])
    assert track.finished and track.error is None
    assert track.audio == [b"\x01\x00"] and track.characters == 5


def test_responses_before_committed_are_not_the_end_of_the_speech() -> None:
    """server_commit: the server's own cut of the text runs before the committed; the speech
    ends at the response of the committed tail, not at that earlier one."""
    book, track = _book_with_commit()
    _feed(book, [_created("r1"), _delta("r1", b"\x02\x00"), COMMITTED, _done("r1", 3)])
    assert not track.finished
    _feed(book, [_created("r2"), _delta("r2", b"\x03\x00"), _done("r2", 2)])
    assert track.finished and track.audio == [b"\x02\x00", b"\x03\x00"]
    assert track.characters == 5


def test_a_commit_that_creates_no_response_created_still_ends_the_speech() -> None:
    """Side A of §E2 (a commit "does not create a response"): audio arriving without a
    response.created starts that response, and its response.done ends the speech."""
    book, track = _book_with_commit()
    _feed(book, [COMMITTED, _delta("r1", b"\x04\x00")])
    assert not track.finished and track.audio == [b"\x04\x00"]
    _feed(book, [_done("r1", 5)])
    assert track.finished and track.error is None


def test_an_empty_buffer_error_answering_the_commit_is_not_a_failure() -> None:
    """The server synthesised everything before the commit: its empty-buffer error ends the speech cleanly."""
    book, track = _book_with_commit()
    _feed(
        book,
        [
            _created("r1"),
            _delta("r1", b"\x03\x00"),
            _done("r1"),
            {
                "type": "error",
                "error": {"code": "invalid_value", "message": "Text buffer is empty"},
            },
        ],
    )
    assert track.finished and track.error is None and track.audio == [b"\x03\x00"]


def test_an_empty_commit_before_the_queued_responses_waits_for_their_characters() -> None:
    """The empty-buffer error can come before the server's queued cuts start: the speech
    goes on until the characters billed reach the characters sent."""
    book = SpeechBook()
    track = SpeechTrack(0.0)
    book.open(track)
    book.sent(track, "a1", 0.0, "Hello!")
    book.commit_sent(track, "c1")
    empty = {"type": "error", "error": {"code": "invalid_value", "message": "buffer is empty"}}
    _feed(book, [_created("r1"), empty, _delta("r1", b"A"), _done("r1", 3), _created("r2")])
    _feed(book, [_delta("r2", b"B")])
    assert not track.finished
    _feed(book, [_done("r2", 3)])
    assert track.finished and track.audio == [b"A", b"B"]


def test_an_error_naming_an_append_fails_that_speech_only() -> None:
    """An error naming one of a speech's frames fails it; the next speech is untouched."""
    book, first = _book_with_commit()
    second = SpeechTrack(0.0)
    book.open(second)
    book.sent(second, "a2", 0.0, "Hey")
    error = {"type": "error", "error": {"code": "bad", "message": "no", "event_id": "a1"}}
    _feed(book, [error])
    assert first.finished and isinstance(first.error, ds.APIError)
    assert not second.finished


def test_responses_go_to_speeches_in_order() -> None:
    """The second speech's response goes to it once the first speech ended."""
    book, first = _book_with_commit()
    second = SpeechTrack(0.0)
    book.open(second)
    book.sent(second, "a2", 0.0, "Hey")
    book.commit_sent(second, "c2")
    _feed(book, [COMMITTED, _created("r1"), _delta("r1", b"A"), _done("r1")])
    _feed(book, [COMMITTED, _created("r2"), _delta("r2", b"B"), _done("r2")])
    assert first.audio == [b"A"] and second.audio == [b"B"]
    assert first.finished and second.finished


def test_session_finished_ends_every_committed_speech() -> None:
    """session.finished says every response is done: committed speeches finish."""
    book, track = _book_with_commit()
    _feed(book, [_created("r1"), _done("r1"), {"type": "session.finished"}])
    assert track.finished and track.error is None


def test_a_cancelled_speech_drops_its_late_audio() -> None:
    """After cancel, the speech's late audio deltas are to be dropped."""
    book, track = _book_with_commit()
    _feed(book, [COMMITTED, _created("r1"), _delta("r1", b"A")])
    assert book.cancel(track, 1.0)
    (late,) = _events(_delta("r1", b"B"))
    assert book.receive(late, 1.0) is True
    assert track.audio == [b"A"] and track.cancelled


def _track(book: SpeechBook, text: str, commit: str | None) -> SpeechTrack:
    """A speech that sent ``text`` in one append and, unless ``commit`` is None, committed."""
    track = SpeechTrack(0.0)
    book.open(track)
    book.sent(track, f"a-{commit}", 0.0, text)
    if commit is not None:
        book.commit_sent(track, commit)
    return track


def test_server_commit_cuts_announced_after_the_committed_stay_the_speechs() -> None:
    """server_commit announces each queued cut only when the one before ends, so cuts
    starting after the committed are still the speech's until its characters are billed."""
    book = SpeechBook()
    first = _track(book, "One two. Three four. Tail", "c1")
    second = _track(book, "Bee.", "c2")
    _feed(book, [_created("r1"), _delta("r1", b"1"), COMMITTED, _done("r1", 8)])
    _feed(book, [_created("r2"), _delta("r2", b"2"), _done("r2", 12)])
    assert not first.finished  # its tail is still to come
    _feed(book, [_created("r3"), _delta("r3", b"3"), _done("r3", 5)])
    assert first.finished and first.audio == [b"1", b"2", b"3"] and first.characters == 25
    _feed(book, [COMMITTED, _created("r4"), _delta("r4", b"B"), _done("r4", 4)])
    assert second.finished and second.audio == [b"B"] and second.characters == 4


def test_a_speech_cancelled_before_its_response_keeps_it_so_the_next_gets_its_own() -> None:
    """commit mode: a speech cancelled before its committed keeps its commit's place and its
    response (audio dropped); the next speech gets only the response of its own commit."""
    book = SpeechBook("commit")
    first = _track(book, "A long text.", "c1")
    second = _track(book, "Short.", "c2")
    assert book.cancel(first, 1.0)
    _feed(book, [COMMITTED, _created("r1")])
    (late,) = _events(_delta("r1", b"LONG"))
    assert book.receive(late, 1.0) is True
    _feed(book, [_done("r1", 12), COMMITTED, _created("r2"), _delta("r2", b"S"), _done("r2", 6)])
    assert second.finished and second.error is None
    assert second.audio == [b"S"] and second.characters == 6
    assert first.cancelled and first.audio == [] and first.characters == 0


def test_a_cancelled_speechs_later_cuts_stay_its_own_and_are_dropped() -> None:
    """server_commit: cuts of a cancelled speech starting after its running response ended are
    still its own (dropped), not nobody's (played) nor the next speech's."""
    book = SpeechBook()
    first = _track(book, "One. Two. Three.", "c1")
    second = _track(book, "Bee.", "c2")
    _feed(book, [_created("r1"), _delta("r1", b"1"), COMMITTED])
    assert book.cancel(first, 1.0)
    _feed(book, [_done("r1", 4), _created("r2")])
    (late,) = _events(_delta("r2", b"2"))
    assert book.receive(late, 1.0) is True
    _feed(book, [_done("r2", 5), _created("r3")])
    (late,) = _events(_delta("r3", b"3"))
    assert book.receive(late, 1.0) is True
    _feed(book, [_done("r3", 7), COMMITTED, _created("r4"), _delta("r4", b"B"), _done("r4", 4)])
    assert first.audio == [b"1"] and second.audio == [b"B"] and second.finished


@pytest.mark.parametrize("mode", ["commit", "server_commit"])
def test_a_refused_speech_keeps_its_running_response_so_the_next_gets_its_own(mode: str) -> None:
    """An error naming a speech's append fails it at once, but its running response stays its
    own (late audio dropped, not billed to anyone else); the next speech gets only its own."""
    book = SpeechBook(mode)
    first = _track(book, "A long text.", "c1")
    _feed(book, [COMMITTED, _created("r1"), _delta("r1", b"A")])
    refused = {"type": "error", "error": {"code": "bad", "message": "no", "event_id": "a-c1"}}
    _feed(book, [refused])
    assert first.finished and isinstance(first.error, ds.APIError)
    second = _track(book, "Bee.", "c2")
    (late,) = _events(_delta("r1", b"LATE"))
    assert book.receive(late, 1.0) is True
    _feed(book, [_done("r1", 12)])
    assert not second.finished and second.audio == [] and second.characters == 0
    _feed(book, [COMMITTED, _created("r2"), _delta("r2", b"B"), _done("r2", 4)])
    assert second.finished and second.error is None
    assert second.audio == [b"B"] and second.characters == 4
    assert first.audio == [b"A"]


@pytest.mark.parametrize("named", [True, False])
def test_an_error_of_other_wording_answering_a_server_cut_commit_is_not_a_failure(
    named: bool,
) -> None:
    """server_commit: whatever its wording, an error answering the commit of a speech the
    server already cut into responses says its buffer was empty; the speech ends cleanly."""
    book = SpeechBook()
    track = _track(book, "One. Two.", "c1")
    error: dict[str, Any] = {"code": "invalid_value", "message": "Nothing to commit"}
    if named:
        error["event_id"] = "c1"
    _feed(book, [_created("r1"), _delta("r1", b"1"), _done("r1", 4)])
    _feed(book, [{"type": "error", "error": error}])
    assert not track.finished
    _feed(book, [_created("r2"), _delta("r2", b"2"), _done("r2", 5)])
    assert track.finished and track.error is None and track.audio == [b"1", b"2"]


def test_a_later_commit_answer_does_not_end_a_speech_still_short_of_its_characters() -> None:
    """A later speech's committed can come between two cuts of an earlier one: the earlier
    speech keeps its next cut, and the later speech gets only its own."""
    book = SpeechBook()
    first = _track(book, "One. Two.", "c1")
    second = _track(book, "Bee.", "c2")
    _feed(book, [_created("r1"), COMMITTED, _delta("r1", b"1"), _done("r1", 4), COMMITTED])
    assert not first.finished and not second.finished
    _feed(book, [_created("r2"), _delta("r2", b"2"), _done("r2", 5)])
    assert first.finished and first.audio == [b"1", b"2"]
    _feed(book, [_created("r3"), _delta("r3", b"B"), _done("r3", 4)])
    assert second.finished and second.audio == [b"B"]


def test_a_speech_billed_less_than_sent_ends_at_session_finished() -> None:
    """A service billing fewer characters than the text has: the speech ends cleanly at
    session.finished, its audio its own."""
    book = SpeechBook()
    track = _track(book, "Hello world.", "c1")
    empty = {"type": "error", "error": {"code": "invalid_value", "message": "buffer is empty"}}
    _feed(book, [_created("r1"), empty, _delta("r1", b"1"), _done("r1", 10)])
    assert not track.finished
    _feed(book, [{"type": "session.finished"}])
    assert track.finished and track.error is None and track.audio == [b"1"]


def test_the_billing_estimate_leaves_out_only_the_trailing_whitespace() -> None:
    """The book counts what the service bills: every character sent but the whitespace at the
    end, across pieces."""
    book = SpeechBook()
    track = SpeechTrack(0.0)
    book.open(track)
    for piece in ("Hi there. ", "Hi ", "there.", " \n", "\n"):
        book.sent(track, "a", 0.0, piece)
    assert track.chars_sent == len("Hi there. Hi there.")


# The wire, against a scripted raw server ---------------------------------------------------


class TtsPeer(RawPeer):
    """A raw peer that reads the client's JSON events one by one."""

    def __init__(self) -> None:
        super().__init__()
        self._read = 0

    def next_event(self, timeout: float = 10.0) -> dict[str, Any]:
        """The next text event the client sent, waiting for it."""
        deadline = time.monotonic() + timeout
        while True:
            texts = [p for op, p in self.client_frames() if op == OP_TEXT]
            if len(texts) > self._read:
                self._read += 1
                event: dict[str, Any] = json.loads(texts[self._read - 1])
                return event
            left = deadline - time.monotonic()
            assert left > 0, "the client sent nothing more"
            with self.arrived:
                self.arrived.wait(min(left, 0.5))

    def sent_types(self) -> list[str]:
        return [json.loads(p)["type"] for op, p in self.client_frames() if op == OP_TEXT]

    def reply(self, obj: dict[str, Any]) -> None:
        self.send(text(obj))


def _serve_update(peer: TtsPeer, echo: dict[str, Any] | None = None) -> dict[str, Any]:
    update = peer.next_event()
    assert update["type"] == "session.update"
    session = {"id": "sess_raw", "object": "realtime.session", "model": MODEL}
    session.update(echo if echo is not None else update["session"])
    peer.reply({"event_id": "event_u", "type": "session.updated", "session": session})
    return update


@contextlib.contextmanager
def tts_session(**options: Any) -> Iterator[tuple[ds.SpeechSession, TtsPeer, dict[str, Any]]]:
    """A speech session connected to a scripted peer that accepts its update."""
    peer = TtsPeer()
    seen: dict[str, Any] = {}
    server = threading.Thread(target=lambda: seen.update(_serve_update(peer)), daemon=True)
    server.start()
    client = ds.Client("k", base_url=peer.url)
    try:
        options.setdefault("model", MODEL)
        with client.speech.connect(timeout=10, close_timeout=1.0, **options) as session:
            server.join(10)
            yield session, peer, seen
    finally:
        peer.close()


def _respond(peer: TtsPeer, rid: str, chunks: list[bytes], characters: int) -> None:
    peer.reply(_created(rid))
    for pcm in chunks:
        peer.reply(_delta(rid, pcm))
    peer.reply(
        {"type": "response.audio.done", "response_id": rid, "output_index": 0, "content_index": 0}
    )
    peer.reply(_done(rid, characters))


def test_connect_sends_the_documented_update_and_returns_after_session_updated() -> None:
    """connect() sends session.update field for field and returns with the accepted config."""
    with tts_session(voice="Serena", mode="commit", language_type="English") as (
        session,
        _,
        update,
    ):
        assert set(update) == {"event_id", "type", "session"}
        assert update["event_id"].startswith("event_")
        assert update["session"] == {
            "voice": "Serena",
            "mode": "commit",
            "response_format": "pcm",
            "sample_rate": 24000,
            "language_type": "English",
        }
        assert session.info.voice == "Serena" and session.info.mode == "commit"


def test_connect_raises_the_error_that_refused_the_update() -> None:
    """An error answering the update (current docs' shape: no event id) fails connect()."""
    peer = TtsPeer()

    def refuse() -> None:
        peer.next_event()
        peer.reply(
            {
                "event_id": "event_e",
                "type": "error",
                "error": {"code": "invalid_value", "message": "Voice not found"},
            }
        )

    threading.Thread(target=refuse, daemon=True).start()
    client = ds.Client("k", base_url=peer.url)
    try:
        with pytest.raises(ds.APIError, match="Voice not found"):
            client.speech.connect(model=MODEL, timeout=10)
    finally:
        peer.close()


def test_speak_sends_append_then_commit_and_collects_the_audio() -> None:
    """speak(text): append then commit, each as documented; wait() gives the audio and characters."""
    with tts_session(mode="commit") as (session, peer, _):
        speech = session.speak("Hello, I am Qwen.")
        append = peer.next_event()
        commit = peer.next_event()
        assert set(append) == {"event_id", "type", "text"}
        assert append["type"] == "input_text_buffer.append"
        assert append["text"] == "Hello, I am Qwen."
        assert set(commit) == {"event_id", "type"} and commit["type"] == "input_text_buffer.commit"
        assert append["event_id"] != commit["event_id"]
        peer.reply(COMMITTED)
        _respond(peer, "r1", [b"\x01\x00" * 10, b"\x02\x00" * 10], 17)
        result = speech.wait(10)
        assert result.audio == b"\x01\x00" * 10 + b"\x02\x00" * 10
        assert result.characters == 17 and result.sample_rate == 24000
        assert result.response_format == "pcm" and result.text == "Hello, I am Qwen."
        assert result.first_audio_delay is not None and result.total_time is not None


def test_speak_ends_when_the_commit_creates_no_response_created() -> None:
    """Side A of §E2 on the wire: committed, then audio and response.done with no response.created."""
    with tts_session() as (session, peer, _):
        speech = session.speak("Hi")
        peer.next_event()
        peer.next_event()
        peer.reply(COMMITTED)
        peer.reply(_delta("r1", b"\x05\x00"))
        peer.reply(_done("r1", 2))
        assert speech.wait(10).audio == b"\x05\x00"


def test_an_empty_commit_error_after_server_commit_synthesis_is_not_a_failure() -> None:
    """server_commit synthesised everything first: the commit's empty-buffer error ends the speech."""
    with tts_session() as (session, peer, _):
        speech = session.speak("Hi")
        peer.next_event()
        peer.next_event()
        _respond(peer, "r1", [b"\x06\x00"], 2)
        peer.reply(
            {
                "type": "error",
                "error": {"code": "invalid_value", "message": "Error: input text buffer is empty"},
            }
        )
        assert speech.wait(10).audio == b"\x06\x00"


def test_an_error_naming_a_speech_frame_fails_the_speech_not_the_session() -> None:
    """An error naming the speech's append fails wait() with APIError; the session goes on."""
    with tts_session() as (session, peer, _):
        speech = session.speak("Hi")
        append = peer.next_event()
        peer.next_event()
        peer.reply(
            {
                "type": "error",
                "error": {
                    "type": "invalid_request_error",
                    "code": "invalid_value",
                    "message": "bad text",
                    "event_id": append["event_id"],
                },
            }
        )
        with pytest.raises(ds.APIError, match="bad text"):
            speech.wait(10)
        second = session.speak("Again")
        peer.next_event()
        peer.next_event()
        peer.reply(COMMITTED)
        _respond(peer, "r2", [b"\x07\x00"], 5)
        assert second.wait(10).audio == b"\x07\x00"


@pytest.mark.parametrize("mode", ["commit", "server_commit"])
def test_a_refused_speechs_late_audio_reaches_nobody_and_the_next_speech_gets_its_own(
    mode: str,
) -> None:
    """An error naming speech A's append while its response runs fails A.wait() at once; the
    rest of that response is A's, dropped: speech B spoken next gets only its own audio and
    characters, and handlers see none of A's late audio (its other events still reach them)."""
    with tts_session(mode=mode) as (session, peer, _):
        audio_seen: list[bytes] = []
        done_seen: list[str] = []
        all_done = threading.Event()

        def on_done(event: ds.ResponseDone) -> None:
            done_seen.append(event.response.id)
            if event.response.id == "r2":
                all_done.set()

        session.on(ds.ResponseAudioDelta, lambda event: audio_seen.append(event.delta))
        session.on(ds.ResponseDone, on_done)
        first = session.speak("A long text.")
        append = peer.next_event()
        assert peer.next_event()["type"] == "input_text_buffer.commit"
        peer.reply(COMMITTED)
        peer.reply(_created("r1"))
        peer.reply(_delta("r1", b"\x01\x00"))
        error = {"code": "invalid_value", "message": "bad text", "event_id": append["event_id"]}
        peer.reply({"type": "error", "error": error})
        with pytest.raises(ds.APIError, match="bad text"):
            first.wait(10)
        second = session.speak("Bee.")
        assert peer.next_event()["text"] == "Bee."
        assert peer.next_event()["type"] == "input_text_buffer.commit"
        peer.reply(_delta("r1", b"\x0a\x00"))
        peer.reply(_done("r1", 12))
        peer.reply(COMMITTED)
        _respond(peer, "r2", [b"\x02\x00"], 4)
        result = second.wait(10)
        assert result.audio == b"\x02\x00" and result.characters == 4
        assert all_done.wait(10)
        assert b"\x0a\x00" not in audio_seen and b"\x02\x00" in audio_seen
        assert done_seen == ["r1", "r2"]


def test_speak_streams_pieces_and_audio_starts_before_the_last_piece() -> None:
    """speak(iterable): each piece is appended as it arrives; the first audio comes before the last."""
    with tts_session() as (session, peer, _):
        heard = threading.Event()

        def pieces() -> Iterator[str]:
            yield "Hello, "
            yield ""  # an LLM's empty delta: skipped
            assert heard.wait(10), "no audio before the last piece"
            yield "world."

        speech = session.speak(pieces())
        first = peer.next_event()
        assert first == {
            "event_id": first["event_id"],
            "type": "input_text_buffer.append",
            "text": "Hello, ",
        }
        peer.reply(_created("r1"))
        peer.reply(_delta("r1", b"\x01\x00"))
        chunks = speech.iter_audio(timeout=10)
        assert next(chunks) == b"\x01\x00"
        heard.set()
        second = peer.next_event()
        commit = peer.next_event()
        assert second["text"] == "world." and commit["type"] == "input_text_buffer.commit"
        peer.reply(_done("r1", 7))
        peer.reply(COMMITTED)
        _respond(peer, "r2", [b"\x02\x00"], 6)
        assert list(chunks) == [b"\x02\x00"]
        result = speech.wait(10)
        assert result.audio == b"\x01\x00\x02\x00" and result.characters == 13


def test_a_failing_text_source_fails_its_speech_and_clears_the_buffer() -> None:
    """A text iterable that raises fails wait() and sends input_text_buffer.clear."""
    with tts_session() as (session, peer, _):

        def pieces() -> Iterator[str]:
            yield "Hello"
            raise RuntimeError("the LLM went away")

        speech = session.speak(pieces())
        with pytest.raises(ds.UsageError, match="the LLM went away"):
            speech.wait(10)
        assert peer.next_event()["type"] == "input_text_buffer.append"
        assert peer.next_event()["type"] == "input_text_buffer.clear"


@pytest.mark.parametrize(
    ("value", "error"),
    [("", ds.ConfigError), (7, ds.ConfigTypeError), (b"bytes", ds.ConfigTypeError)],
)
def test_bad_text_is_refused_before_anything_is_sent(value: object, error: type[Exception]) -> None:
    """Empty text, or text that is not str, raises before any frame goes out."""
    with tts_session() as (session, peer, _):
        with pytest.raises(error):
            session.speak(value)  # type: ignore[arg-type]
        with pytest.raises(error):
            session.append_text(value)  # type: ignore[arg-type]
        assert peer.sent_types() == ["session.update"]


@pytest.mark.parametrize("server_closes", [True, False])
def test_finish_returns_after_session_finished_whoever_closes(server_closes: bool) -> None:
    """§E1: finish() returns after session.finished and the remaining audio, and the session ends
    cleanly whether the server closes the socket after it or leaves that to the client."""
    with tts_session() as (session, peer, _):
        speech = session.speak("Tail")
        peer.next_event()
        peer.next_event()

        def serve_finish() -> None:
            assert peer.next_event()["type"] == "session.finish"
            peer.reply(COMMITTED)
            _respond(peer, "r1", [b"\x09\x00"], 4)
            peer.reply({"event_id": "event_2239", "type": "session.finished"})
            if server_closes:
                peer.send(close_frame(1000))

        server = threading.Thread(target=serve_finish, daemon=True)
        server.start()
        finished = session.finish(timeout=10)
        server.join(10)
        assert isinstance(finished, ds.SessionFinished)
        assert speech.wait(0).audio == b"\x09\x00"
        assert session.closed and session.close_code == 1000


def test_cancel_before_the_commit_clears_the_text_and_drops_the_late_audio() -> None:
    """Speech.cancel() while its text still streams: input_text_buffer.clear goes out, no
    commit follows, and later audio of it is dropped."""
    gate = threading.Event()

    def pieces() -> Iterator[str]:
        yield "A long text. "
        gate.wait(30)
        yield "And more."

    with tts_session() as (session, peer, _):
        speech = session.speak(pieces())
        assert peer.next_event()["type"] == "input_text_buffer.append"
        peer.reply(_created("r1"))
        peer.reply(_delta("r1", b"\x01\x00"))
        assert next(speech.iter_audio(timeout=10)) == b"\x01\x00"
        assert speech.cancel()
        assert peer.next_event()["type"] == "input_text_buffer.clear"
        gate.set()
        assert speech._feeder is not None
        speech._feeder.join(10)
        peer.reply(_delta("r1", b"\x02\x00"))
        peer.reply(_done("r1"))
        peer.reply({"type": "input_text_buffer.cleared"})
        session.wait_for(ds.InputTextBufferCleared, timeout=10)
        result = speech.wait(0)
        assert result.cancelled and result.audio == b"\x01\x00"
        assert not speech.cancel()
        assert "input_text_buffer.commit" not in peer.sent_types()


def test_cancel_after_the_commit_leaves_the_next_speechs_text_buffered() -> None:
    """Speech.cancel() once its commit went out sends no clear: the buffer then holds the
    next speech's text, which a clear would erase."""
    gate = threading.Event()

    def pieces() -> Iterator[str]:
        yield "Second "
        gate.wait(30)
        yield "speech."

    with tts_session() as (session, peer, _):
        first = session.speak("First.")
        assert peer.next_event()["type"] == "input_text_buffer.append"
        assert peer.next_event()["type"] == "input_text_buffer.commit"
        peer.reply(COMMITTED)
        peer.reply(_created("r1"))
        peer.reply(_delta("r1", b"\x01\x00"))
        assert next(first.iter_audio(timeout=10)) == b"\x01\x00"
        second = session.speak(pieces())
        assert peer.next_event()["text"] == "Second "
        assert first.cancel()
        gate.set()
        assert peer.next_event()["text"] == "speech."
        assert peer.next_event()["type"] == "input_text_buffer.commit"
        assert "input_text_buffer.clear" not in peer.sent_types()
        peer.reply(_done("r1", 6))
        peer.reply(COMMITTED)
        _respond(peer, "r2", [b"\x02\x00"], 14)
        result = second.wait(10)
        assert result.audio == b"\x02\x00" and result.characters == 14
        assert first.wait(0).cancelled


def test_speech_result_saves_a_playable_wav_and_renders_a_player(tmp_path: Path) -> None:
    """SpeechResult.save writes a WAV for PCM; _repr_html_ embeds an audio player."""
    result = ds.SpeechResult(audio=b"\x01\x00" * 240, response_format="pcm", sample_rate=24000)
    path = result.save(tmp_path / "speech.wav")
    with wave.open(str(path)) as wav:
        assert wav.getframerate() == 24000 and wav.getnframes() == 240
    assert "<audio controls" in result._repr_html_()
    mp3 = ds.SpeechResult(audio=b"ID3xyz", response_format="mp3", sample_rate=24000)
    assert mp3.save(tmp_path / "speech.mp3").read_bytes() == b"ID3xyz"
    assert "audio/mpeg" in mp3._repr_html_()


def test_speech_result_joins_the_wav_files_of_several_responses(tmp_path: Path) -> None:
    """A WAV speech of several responses (one file each) saves as one playable WAV of all."""
    import io

    def wav_bytes(pcm: bytes) -> bytes:
        out = io.BytesIO()
        with wave.open(out, "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(16000)
            wav.writeframes(pcm)
        return out.getvalue()

    audio = wav_bytes(b"\x01\x00" * 100) + wav_bytes(b"\x02\x00" * 50)
    result = ds.SpeechResult(audio=audio, response_format="wav", sample_rate=16000)
    with wave.open(str(result.save(tmp_path / "joined.wav"))) as wav:
        assert wav.getnframes() == 150
        assert wav.readframes(150) == b"\x01\x00" * 100 + b"\x02\x00" * 50
    assert result.duration == 150 / 16000


def test_a_refused_streamed_speech_stops_appending_and_clears() -> None:
    """An error naming a streamed speech's append fails it; its later pieces are not sent,
    and its text still buffered is cleared."""
    with tts_session() as (session, peer, _):
        refused = threading.Event()

        def pieces() -> Iterator[str]:
            yield "First piece. "
            assert refused.wait(10)
            yield "Never sent."

        speech = session.speak(pieces())
        append = peer.next_event()
        error = {"message": "bad text", "code": "invalid_value", "event_id": append["event_id"]}
        peer.reply({"type": "error", "error": error})
        with pytest.raises(ds.APIError, match="bad text"):
            speech.wait(10)
        refused.set()
        assert peer.next_event()["type"] == "input_text_buffer.clear"


def test_a_dropped_connection_fails_the_speech() -> None:
    """The connection lost mid-speech: wait() raises TransportError, not a hang."""
    with tts_session() as (session, peer, _):
        speech = session.speak("Hi")
        peer.next_event()
        peer.next_event()
        peer.reply(_created("r1"))
        peer.reset()
        with pytest.raises(ds.TransportError):
            speech.wait(10)
        assert session.closed


def test_the_local_server_knows_every_model_voice_and_language_the_client_lists() -> None:
    """The client's TTS lists and the local server's are the same names (kept in two places:
    the package cannot import its testing server)."""
    from dashscope_sync.testing import _tts

    assert set(ds.TTS_MODELS) == set(_tts.TTS_MODELS)
    assert set(ds.TTS_VOICES) == set(_tts.TTS_VOICES)
    assert set(ds.TTS_LANGUAGES) == set(_tts.TTS_LANGUAGES)
