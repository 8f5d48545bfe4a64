"""The local server's Qwen-ASR-Realtime simulation (SPEECH_FAMILIES.md §B), frame by frame.

Driven with websocket-client's low-level ``WebSocket`` and raw JSON frames, so
these tests depend on nothing of the library's client. Recognition and VAD
depend on the audio alone, so every transcript and ``audio_*_ms`` is exact.
"Nothing else arrived" is checked with a marker: an unknown event type, which
the server answers with an ``error`` echoing its ``event_id`` after
everything it had to say about the earlier events.
"""

from __future__ import annotations

import base64
import wave
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import websocket

from dashscope_sync.testing import (
    LocalRealtimeServer,
    speech_like_pcm16,
    spoken_pcm16,
)
from dashscope_sync.testing._asr import (
    ASR_MODELS,
    AsrState,
    CloseConnection,
    is_asr_model,
    spoken_text,
)

from .test_local_server_vad import append, recv, recv_until, send, until_marker

pytestmark = pytest.mark.timeout(30)

KEY = "sk-local-test"
MODEL = "qwen3-asr-flash-realtime"
RATE = 16_000
HELLO = "Hello! What is the weather like in Hangzhou today?"
TEXT = "conversation.item.input_audio_transcription.text"
COMPLETED = "conversation.item.input_audio_transcription.completed"

Frame = dict[str, Any]


def demo_clip() -> bytes:
    """The bundled demo clip's PCM16 (16 kHz mono)."""
    import dashscope_sync as ds

    with wave.open(str(ds.sample_wav_path())) as wav:
        return bytes(wav.readframes(wav.getnframes()))


def silence(seconds: float, rate: int = RATE) -> bytes:
    """Digital silence."""
    return bytes(2 * round(seconds * rate))


def types(frames: list[Frame]) -> list[str]:
    """The types of frames, interim .text events left out."""
    return [f["type"] for f in frames if f["type"] != TEXT]


def completed(frames: list[Frame]) -> list[str]:
    """The final transcripts among frames, in order."""
    return [f["transcript"] for f in frames if f["type"] == COMPLETED]


@pytest.fixture
def server() -> Iterator[LocalRealtimeServer]:
    """A started local server, closed at teardown."""
    with LocalRealtimeServer() as started:
        yield started


Connect = Callable[..., websocket.WebSocket]


@pytest.fixture
def connect(server: LocalRealtimeServer) -> Iterator[Connect]:
    """Factory of ASR clients past session.created (and a session.update if given)."""
    clients: list[websocket.WebSocket] = []

    def factory(model: str = MODEL, session: Frame | None = None) -> websocket.WebSocket:
        ws = websocket.create_connection(
            server.model_url(model), header=[f"Authorization: Bearer {KEY}"], timeout=10
        )
        clients.append(ws)
        assert recv(ws)["type"] == "session.created"
        if session is not None:
            send(ws, type="session.update", session=session)
            assert recv(ws)["type"] == "session.updated"
        return ws

    yield factory
    for ws in clients:
        ws.shutdown()  # type: ignore[no-untyped-call]


VAD_400 = {"turn_detection": {"type": "server_vad", "threshold": 0.0, "silence_duration_ms": 400}}
MANUAL: Frame = {"turn_detection": None}


# ---------------------------------------------------------------------------
# Recognition, without sockets


def test_spoken_audio_carries_its_text() -> None:
    """spoken_pcm16 hides its text where spoken_text finds it; other audio has none."""
    pcm = spoken_pcm16("The quick brown fox")
    assert spoken_text(pcm) == "The quick brown fox"
    assert spoken_text(pcm[3200:]) == "The quick brown fox"  # any intact copy will do
    assert spoken_text(speech_like_pcm16(1.0)) is None
    assert spoken_text(silence(1.0)) is None
    # The voice is the server's synthetic one: 60 ms a character, at least 0.5 s.
    assert len(pcm) == 2 * round(19 * 0.06 * RATE)
    with pytest.raises(ValueError, match="sample_rate"):
        spoken_pcm16("hi", sample_rate=44_100)


def test_asr_models_are_recognised_by_name() -> None:
    """Every documented ASR model (and snapshot) gets the ASR simulation, Omni models do not."""
    assert all(is_asr_model(model) for model in ASR_MODELS)
    assert not is_asr_model("qwen3-omni-flash-realtime")
    assert not is_asr_model("qwen3-livetranslate-flash-realtime")


def test_a_second_update_is_refused_with_close_code_1007() -> None:
    """The state machine answers a second session.update with the error, then a 1007 close."""
    state = AsrState(MODEL)
    (updated,) = state.session_update({"type": "session.update", "session": {}})
    assert isinstance(updated, dict) and updated["type"] == "session.updated"
    error, close = state.session_update({"type": "session.update", "event_id": "e2", "session": {}})
    assert isinstance(error, dict) and isinstance(close, CloseConnection)
    assert error["error"]["message"] == (
        "Session update error: session already started or finished or failed."
    )
    assert error["error"]["event_id"] == "e2"
    assert (close.code, close.reason) == (1007, "session already started")


def state_types(steps: Any) -> list[str]:
    """The event types among a state machine's steps (interim .text left out)."""
    return [step["type"] for step in steps if isinstance(step, dict) and step["type"] != TEXT]


def appended(pcm: bytes) -> Frame:
    """An input_audio_buffer.append event carrying ``pcm``."""
    return {"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm).decode()}


def test_state_machine_turns_speech_into_a_vad_turn() -> None:
    """Without sockets: speech then silence gives the documented VAD turn, in order."""
    state = AsrState(MODEL)
    state.session_update({"type": "session.update", "session": VAD_400})
    steps = state.audio_append(appended(spoken_pcm16("hello again") + silence(1.0)))
    assert state_types(steps) == [
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "conversation.item.created",
        COMPLETED,
    ]
    assert steps[-1]["transcript"] == "hello again"  # type: ignore[index]
    assert state.session_finish({"type": "session.finish"})[0]["type"] == "session.finished"  # type: ignore[index]


def test_state_machine_finish_with_no_speech_is_immediate() -> None:
    """Without sockets: session.finish with only silence seen answers session.finished alone."""
    state = AsrState(MODEL)
    state.audio_append(appended(silence(0.5)))
    assert state_types(state.session_finish({"type": "session.finish"})) == ["session.finished"]


# ---------------------------------------------------------------------------
# Session


def test_session_created_and_updated_shapes(server: LocalRealtimeServer) -> None:
    """session.created/updated carry the ASR session; the update echoes what was set."""
    ws = websocket.create_connection(
        server.model_url(MODEL), header=[f"Authorization: Bearer {KEY}"], timeout=10
    )
    try:
        session = recv(ws)["session"]
        assert session["model"] == MODEL
        assert session["modalities"] == ["text"]
        assert (session["input_audio_format"], session["sample_rate"]) == ("pcm16", 16000)
        assert session["turn_detection"] == {
            "type": "server_vad",
            "threshold": 0.2,
            "silence_duration_ms": 800,
        }
        assert "voice" not in session and "tools" not in session
        update = {
            "input_audio_format": "pcm",
            "sample_rate": 8000,
            "input_audio_transcription": {"language": "zh", "corpus": {"text": "DashScope, Qwen"}},
            "turn_detection": {"type": "server_vad", "threshold": 0.0, "silence_duration_ms": 400},
        }
        send(ws, type="session.update", session=update)
        updated = recv(ws)
        assert updated["type"] == "session.updated"
        assert updated["session"]["id"] == session["id"]
        assert updated["session"]["input_audio_format"] == "pcm16"  # pcm echoed as pcm16
        assert updated["session"]["sample_rate"] == 8000
        assert (
            updated["session"]["input_audio_transcription"] == update["input_audio_transcription"]
        )
        assert updated["session"]["turn_detection"] == update["turn_detection"]
        assert server.wait_for_connection().session == updated["session"]
    finally:
        ws.shutdown()  # type: ignore[no-untyped-call]


# ---------------------------------------------------------------------------
# VAD mode


def test_vad_turns_of_the_demo_clip_have_its_known_words(connect: Connect) -> None:
    """With 400 ms of silence the clip's pause cuts two turns, each with its own words."""
    ws = connect(session={**VAD_400, "input_audio_transcription": {"language": "en"}})
    append(ws, demo_clip() + silence(1.0))
    frames = until_marker(ws)
    assert (
        types(frames)
        == [
            "input_audio_buffer.speech_started",
            "input_audio_buffer.speech_stopped",
            "input_audio_buffer.committed",
            "conversation.item.created",
            COMPLETED,
        ]
        * 2
    )
    assert completed(frames) == ["Hello!", "What is the weather like in Hangzhou today?"]
    starts = [f for f in frames if f["type"] == "input_audio_buffer.speech_started"]
    stops = [f for f in frames if f["type"] == "input_audio_buffer.speech_stopped"]
    assert [f["audio_start_ms"] for f in starts] == [20, 970]
    assert [f["audio_end_ms"] for f in stops] == [930, 3800]
    first, second = (f["item_id"] for f in starts)
    committed = [f for f in frames if f["type"] == "input_audio_buffer.committed"]
    assert [(f["previous_item_id"], f["item_id"]) for f in committed] == [
        (None, first),
        (first, second),
    ]
    created = [f for f in frames if f["type"] == "conversation.item.created"][1]
    assert created["previous_item_id"] == first
    assert created["item"] == {
        "id": second,
        "object": "realtime.item",
        "type": "message",
        "status": "completed",
        "role": "user",
        "content": [{"type": "input_audio", "transcript": None}],
    }
    final = [f for f in frames if f["type"] == COMPLETED][1]
    assert (final["item_id"], final["content_index"]) == (second, 0)
    assert (final["language"], final["emotion"]) == ("en", "neutral")


def test_interim_text_and_stash_grow_during_speech(connect: Connect) -> None:
    """Interim .text events come between speech_started and speech_stopped, each a prefix."""
    ws = connect(session=VAD_400)
    append(ws, demo_clip() + silence(1.0))
    frames = until_marker(ws)
    second_turn = frames[frames.index(next(f for f in frames if f["type"] == COMPLETED)) + 1 :]
    kinds = [f["type"] for f in second_turn]
    started, stopped = (
        kinds.index("input_audio_buffer.speech_started"),
        kinds.index("input_audio_buffer.speech_stopped"),
    )
    interims = [f for f in second_turn if f["type"] == TEXT]
    assert len(interims) >= 5
    assert all(started < kinds.index(TEXT) and second_turn.index(f) < stopped for f in interims)
    final = completed(second_turn)[0]
    shown = [f["text"] + f["stash"] for f in interims]
    assert all(final.startswith(piece) for piece in shown)
    assert [len(piece) for piece in shown] == sorted(len(piece) for piece in shown)
    assert len(set(shown)) == len(shown)  # an unchanged interim is not sent again
    # The confirmed text is what the stash leaves behind; the last two words stay provisional.
    last = interims[-1]
    assert (last["text"], last["stash"]) == ("What is the weather like in", " Hangzhou today?")
    assert {(f["item_id"], f["content_index"], f["emotion"]) for f in interims} == {
        (second_turn[started]["item_id"], 0, "neutral")
    }
    # No language configured: the clip's language is detected.
    assert {f["language"] for f in interims} == {"en"}


def test_default_vad_keeps_the_clip_in_one_turn(connect: Connect) -> None:
    """With the default 800 ms of silence the clip's pause does not end the turn."""
    ws = connect(session={})
    append(ws, silence(0.5) + demo_clip() + silence(1.0))
    frames = until_marker(ws)
    assert completed(frames) == [HELLO]
    assert frames[0]["audio_start_ms"] == 530  # the clip's first loud frame, after 0.5 s
    assert types(frames).count("input_audio_buffer.speech_stopped") == 1


def test_spoken_audio_is_transcribed_as_its_text_at_8_khz(connect: Connect) -> None:
    """8 kHz audio is heard on the 16 kHz timeline and spoken_pcm16's text comes back."""
    ws = connect(session={"sample_rate": 8000, **VAD_400})
    pcm = spoken_pcm16("今天天气怎么样", sample_rate=8000)
    append(ws, pcm + silence(1.0, rate=8000), chunk=1600)
    frames = until_marker(ws)
    assert completed(frames) == ["今天天气怎么样"]
    final = next(f for f in frames if f["type"] == COMPLETED)
    assert final["language"] == "zh"
    stop = next(f for f in frames if f["type"] == "input_audio_buffer.speech_stopped")
    # 7 characters at 60 ms: 0.5 s of voice (the minimum), then 400 ms of silence.
    assert 700 <= stop["audio_end_ms"] <= 900


def test_other_audio_gets_a_deterministic_placeholder(connect: Connect) -> None:
    """Audio the server cannot know is described, not recognised, the same way every time."""
    ws = connect(session=VAD_400)
    append(ws, speech_like_pcm16(1.0) + silence(1.0))
    (transcript,) = completed(until_marker(ws))
    assert transcript.startswith("[simulated transcript: 1.")
    assert transcript.endswith("dBFS]")
    again = connect(session=VAD_400)
    append(again, speech_like_pcm16(1.0) + silence(1.0))
    assert completed(until_marker(again)) == [transcript]


def test_commit_under_vad_is_refused(connect: Connect) -> None:
    """input_audio_buffer.commit is disabled in VAD mode: an error naming the event."""
    ws = connect(session=VAD_400)
    append(ws, silence(0.3))
    send(ws, type="input_audio_buffer.commit", event_id="event_commit")
    error = recv(ws)
    assert error["type"] == "error"
    assert error["error"]["type"] == "invalid_request_error"
    assert error["error"]["event_id"] == "event_commit"
    assert "disabled in server_vad mode" in error["error"]["message"]


# ---------------------------------------------------------------------------
# Manual mode


def test_manual_commit_transcribes_the_buffer(
    connect: Connect, server: LocalRealtimeServer
) -> None:
    """In manual mode commit gives committed, the item, interims and the final transcript."""
    ws = connect(session={**MANUAL, "input_audio_transcription": {"language": "en"}})
    pcm = spoken_pcm16("The quick brown fox jumps over the lazy dog")
    append(ws, pcm)
    assert until_marker(ws) == []  # no VAD events in manual mode, and no acknowledgements
    send(ws, type="input_audio_buffer.commit")
    frames = recv_until(ws, COMPLETED)
    assert types(frames) == ["input_audio_buffer.committed", "conversation.item.created", COMPLETED]
    interims = [f for f in frames if f["type"] == TEXT]
    assert 1 <= len(interims) <= 5
    assert (interims[-1]["text"], interims[-1]["stash"]) == (
        "The quick brown fox jumps over the lazy dog",
        "",
    )
    assert frames[-1]["transcript"] == "The quick brown fox jumps over the lazy dog"
    assert frames[0]["item_id"] == frames[-1]["item_id"] == frames[1]["item"]["id"]
    assert server.wait_for_connection().last_committed_audio == pcm
    send(ws, type="input_audio_buffer.commit", event_id="event_again")
    error = recv(ws)["error"]
    assert (error["code"], error["event_id"]) == ("input_audio_buffer_commit_empty", "event_again")
    assert error["message"].startswith("Error committing input audio buffer")


def test_manual_commit_of_silence_has_an_empty_transcript(connect: Connect) -> None:
    """Digital silence is transcribed as nothing, with no interim events."""
    ws = connect(session=MANUAL)
    append(ws, silence(0.5))
    send(ws, type="input_audio_buffer.commit")
    frames = recv_until(ws, COMPLETED)
    assert [f["type"] for f in frames] == [
        "input_audio_buffer.committed",
        "conversation.item.created",
        COMPLETED,
    ]
    assert frames[-1]["transcript"] == ""


# ---------------------------------------------------------------------------
# session.finish


def test_finish_with_no_speech_answers_at_once(
    connect: Connect, server: LocalRealtimeServer
) -> None:
    """session.finish before any speech_started gets session.finished at once; the client closes."""
    ws = connect(session=VAD_400)
    append(ws, silence(1.0))
    send(ws, type="session.finish")
    assert recv(ws)["type"] == "session.finished"
    connection = server.wait_for_connection()
    assert connection.is_open  # the client closes, not the server
    send(ws, type="input_audio_buffer.append", audio="", event_id="event_late")
    error = recv(ws)["error"]
    assert error["event_id"] == "event_late"
    assert "after session.finish" in error["message"]
    ws.close()
    assert connection.wait_closed(10)
    assert connection.close_code == 1000


def test_finish_during_speech_ends_the_turn_first(connect: Connect) -> None:
    """Speech still going on at session.finish is stopped, committed and transcribed first."""
    ws = connect(session=VAD_400)
    append(ws, spoken_pcm16("hello there"))
    send(ws, type="session.finish")
    frames = recv_until(ws, "session.finished")
    assert types(frames) == [
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "conversation.item.created",
        COMPLETED,
        "session.finished",
    ]
    assert completed(frames) == ["hello there"]
    stop = frames[[f["type"] for f in frames].index("input_audio_buffer.speech_stopped")]
    assert stop["audio_end_ms"] == 660  # the end of the audio: 11 characters at 60 ms


def test_finish_in_manual_mode_transcribes_what_was_not_committed(connect: Connect) -> None:
    """In manual mode the audio appended since the last commit is the last turn."""
    ws = connect(session=MANUAL)
    append(ws, spoken_pcm16("one last thing"))
    send(ws, type="session.finish")
    frames = recv_until(ws, "session.finished")
    assert completed(frames) == ["one last thing"]
    assert types(frames)[-1] == "session.finished"


# ---------------------------------------------------------------------------
# Errors


def test_a_second_update_is_refused_and_the_server_closes_1007(
    connect: Connect, server: LocalRealtimeServer
) -> None:
    """A second session.update gets the documented error, then the server closes with 1007."""
    ws = connect(session=VAD_400)
    send(ws, type="session.update", event_id="event_second", session=MANUAL)
    error = recv(ws)
    assert error["error"] == {
        "type": "invalid_request_error",
        "code": "invalid_value",
        "message": "Session update error: session already started or finished or failed.",
        "param": "session",
        "event_id": "event_second",
    }
    opcode, data = ws.recv_data(control_frame=True)
    assert opcode == websocket.ABNF.OPCODE_CLOSE
    assert int.from_bytes(data[:2], "big") == 1007
    assert data[2:] == b"session already started"
    ws.send_close()
    # As a client does after the handshake; left open, the server would wait out its
    # close_timeout (5 s) for it.
    ws.shutdown()  # type: ignore[no-untyped-call]
    assert server.wait_for_connection().wait_closed(10)


def test_an_update_after_audio_is_refused(connect: Connect) -> None:
    """session.update comes first: after audio the session has started."""
    ws = connect()
    append(ws, silence(0.1))
    send(ws, type="session.update", session=MANUAL)
    assert "session already started" in recv(ws)["error"]["message"]


@pytest.mark.parametrize(
    ("session", "param"),
    [
        ({"sample_rate": 24000}, "session.sample_rate"),
        ({"sample_rate": True}, "session.sample_rate"),
        ({"input_audio_format": "mp3"}, "session.input_audio_format"),
        (
            {"input_audio_transcription": {"language": "xx"}},
            "session.input_audio_transcription.language",
        ),
        (
            {"input_audio_transcription": {"corpus": "words"}},
            "session.input_audio_transcription.corpus",
        ),
        (
            {"input_audio_transcription": {"corpus": {"text": "word " * 50_000}}},
            "session.input_audio_transcription.corpus.text",
        ),
        ({"turn_detection": {"type": "semantic_vad"}}, "session.turn_detection.type"),
        ({"turn_detection": {"threshold": 0.1}}, "session.turn_detection.type"),
        (
            {"turn_detection": {"type": "server_vad", "threshold": 1.5}},
            "session.turn_detection.threshold",
        ),
        (
            {"turn_detection": {"type": "server_vad", "silence_duration_ms": 100}},
            "session.turn_detection.silence_duration_ms",
        ),
        (
            {"turn_detection": {"type": "server_vad", "silence_duration_ms": 6001}},
            "session.turn_detection.silence_duration_ms",
        ),
        ({"turn_detection": "server_vad"}, "session.turn_detection"),
        ({"modalities": ["text", "audio"]}, "session.modalities"),
        ({"tools": []}, "session.tools"),
        ({"instructions": "be brief"}, "session.instructions"),
    ],
)
def test_out_of_range_and_unknown_fields_are_refused(
    connect: Connect, session: Frame, param: str
) -> None:
    """A bad session.update gets an invalid_value error naming the field, and can be retried."""
    ws = connect()
    send(ws, type="session.update", event_id="event_bad", session=session)
    error = recv(ws)["error"]
    assert (error["code"], error["param"], error["event_id"]) == (
        "invalid_value",
        param,
        "event_bad",
    )
    send(ws, type="session.update", session=MANUAL)
    assert recv(ws)["type"] == "session.updated"


def test_the_official_sdk_fields_are_accepted(connect: Connect) -> None:
    """The Omni fields the official SDK sends with every update are taken and not echoed."""
    ws = connect()
    sdk_frame = {
        "modalities": ["text"],
        "voice": None,
        "input_audio_format": "pcm",
        "output_audio_format": "pcm16",
        "input_audio_transcription": {"language": "zh", "corpus": {"text": "DashScope"}},
        "turn_detection": {
            "type": "server_vad",
            "threshold": 0.0,
            "prefix_padding_ms": 300,
            "silence_duration_ms": 400,
        },
        "sample_rate": 16000,
    }
    send(ws, type="session.update", session=sdk_frame)
    session = recv(ws)["session"]
    assert "voice" not in session and "output_audio_format" not in session
    assert session["turn_detection"] == VAD_400["turn_detection"]


@pytest.mark.parametrize(
    ("audio", "message"),
    [
        ("not base64!", "not valid base64"),
        (base64.b64encode(b"\x00").decode(), "even number of bytes"),
        (42, "a base64 string"),
    ],
)
def test_bad_audio_is_refused(connect: Connect, audio: Any, message: str) -> None:
    """Audio that is not base64 PCM16 gets an invalid_value error on param audio."""
    ws = connect()
    send(ws, type="input_audio_buffer.append", audio=audio)
    error = recv(ws)["error"]
    assert (error["code"], error["param"]) == ("invalid_value", "audio")
    assert message in error["message"]


@pytest.mark.parametrize(
    "event_type",
    ["input_audio_buffer.clear", "response.create", "response.cancel", "conversation.item.create"],
)
def test_events_of_other_families_are_invalid_event_types(
    connect: Connect, event_type: str
) -> None:
    """The ASR family takes four client events; the others are an invalid event type."""
    ws = connect()
    send(ws, type=event_type, event_id="event_other")
    error = recv(ws)["error"]
    assert (error["code"], error["event_id"]) == ("invalid_event_type", "event_other")


def test_opus_audio_is_buffered_for_a_manual_commit(connect: Connect) -> None:
    """Opus cannot be decoded here: never heard by the VAD, described when committed."""
    ws = connect(session={"input_audio_format": "opus", **MANUAL})
    send(ws, type="input_audio_buffer.append", audio=base64.b64encode(b"\x4f\x70\x75").decode())
    send(ws, type="input_audio_buffer.commit")
    (transcript,) = completed(recv_until(ws, COMPLETED))
    assert transcript == "[simulated transcript: 3 bytes of Opus audio, not decoded]"


def test_server_vad_false_never_hears_speech() -> None:
    """With server_vad=False an ASR session in VAD mode sends no VAD events and no turns."""
    with LocalRealtimeServer(server_vad=False) as quiet:
        ws = websocket.create_connection(
            quiet.model_url(MODEL), header=[f"Authorization: Bearer {KEY}"], timeout=10
        )
        try:
            assert recv(ws)["type"] == "session.created"
            append(ws, spoken_pcm16("nobody hears this") + silence(1.0))
            assert until_marker(ws) == []
            send(ws, type="session.finish")
            assert recv(ws)["type"] == "session.finished"
        finally:
            ws.shutdown()  # type: ignore[no-untyped-call]


def test_fail_next_transcription_ends_the_turn_with_failed(
    connect: Connect, server: LocalRealtimeServer
) -> None:
    """The knob makes the next turn end in .failed with the error; the one after completes."""
    ws = connect(session=MANUAL)
    error = {"code": "InternalError", "message": "boom", "param": "audio"}
    server.wait_for_connection().fail_next_transcription(error)
    append(ws, spoken_pcm16("lost words"))
    send(ws, type="input_audio_buffer.commit")
    frames = recv_until(ws, "conversation.item.input_audio_transcription.failed")
    failed = frames[-1]
    assert (failed["item_id"], failed["content_index"], failed["error"]) == (
        frames[0]["item_id"],
        0,
        error,
    )
    assert COMPLETED not in types(frames)
    append(ws, spoken_pcm16("found words"))
    send(ws, type="input_audio_buffer.commit")
    assert completed(recv_until(ws, COMPLETED)) == ["found words"]


def test_fail_next_transcription_needs_an_asr_model(server: LocalRealtimeServer) -> None:
    """The knob refuses a connection of another family, where no transcription turn exists."""
    ws = websocket.create_connection(
        server.model_url("qwen3-omni-flash-realtime"),
        header=[f"Authorization: Bearer {KEY}"],
        timeout=10,
    )
    try:
        with pytest.raises(RuntimeError, match="not a Qwen-ASR-Realtime model"):
            server.wait_for_connection().fail_next_transcription()
    finally:
        ws.shutdown()  # type: ignore[no-untyped-call]
