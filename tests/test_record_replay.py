"""End to end through the public API: a session recorded with ``session.record()``, then replayed by the local server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import dashscope_sync as ds
from dashscope_sync.testing import LocalRealtimeServer, spoken_pcm16

# Both modes (issue 18): each test runs with threads and again on a ds.Reactor.
pytestmark = pytest.mark.both_modes

MODEL = ds.MODEL_QWEN3_OMNI_FLASH_REALTIME


def program(
    url: str, api_key: str, record: Path | None = None
) -> tuple[ds.SessionInfo, list[ds.ServerEvent], list[ds.ResponseResult], ds.Transcript]:
    """A program under test: a text turn and a voice turn in manual mode, perhaps recorded."""
    events: list[ds.ServerEvent] = []
    client = ds.Client(api_key, base_url=url)
    with client.realtime.connect(model=MODEL) as session:
        session.on("*", events.append)
        recorder = None if record is None else session.record(record, audio=False)
        session.update_session(
            ds.SessionUpdate(
                turn_detection=None, input_audio_transcription=ds.InputAudioTranscription()
            ),
            timeout=10,
        )
        results = [
            session.respond(text="What is on the menu?", timeout=30),
            session.respond(spoken_pcm16("Two coffees, please."), timeout=30),
        ]
        if recorder is not None:
            recorder.close()
        transcript, info = session.transcript, session.info
    return info, events, results, transcript


def shape(events: list[ds.ServerEvent]) -> list[object]:
    """The events as a program sees them, audio by its length (recorded with audio=False)."""
    return [
        (event.type, len(event.delta)) if isinstance(event, ds.ResponseAudioDelta) else event
        for event in events
        if event.type != "session.created"
    ]


def test_a_recorded_session_replays_to_the_same_events(tmp_path: Path) -> None:
    """What session.record() wrote, replayed by LocalRealtimeServer.replay, gives the program the same events."""
    folder = tmp_path / "call"
    with LocalRealtimeServer() as live_server:
        live_info, live, live_results, live_transcript = program(
            live_server.url, live_server.api_key, record=folder
        )
    with LocalRealtimeServer() as server:
        replay = server.replay(folder, speed=None)
        info, replayed, results, transcript = program(server.url, server.api_key)
        assert replay.wait(10) is None
    # The recording holds the session's opening: the replay announces the recorded session.
    assert info == live_info
    assert shape(replayed) == shape(live)
    assert len(replayed) == len(live)
    assert [(r.text, len(r.audio)) for r in results] == [
        (r.text, len(r.audio)) for r in live_results
    ]
    # The transcript the replayed program keeps is the recorded one's, turn for turn.
    assert [(t.role, t.text) for t in transcript] == [(t.role, t.text) for t in live_transcript]


def test_the_recording_keeps_the_transcript(tmp_path: Path) -> None:
    """A conversation's recording holds transcript.json: the session's transcript at its end."""
    folder = tmp_path / "call"
    with LocalRealtimeServer() as server:
        _, _, results, transcript = program(server.url, server.api_key, record=folder)
    saved = ds.Transcript.from_json((folder / "transcript.json").read_text(encoding="utf-8"))
    assert saved == transcript
    assert [turn.role for turn in saved] == ["user", "assistant", "user", "assistant"]
    assert saved[-1].text == results[-1].text


def test_a_recording_without_audio_holds_no_audio(tmp_path: Path) -> None:
    """With audio=False no frame in frames.jsonl carries a payload, only its length."""
    folder = tmp_path / "call"
    with LocalRealtimeServer() as server:
        program(server.url, server.api_key, record=folder)
    lines = [json.loads(text) for text in (folder / "frames.jsonl").read_text().splitlines()]
    omitted: list[dict[str, Any]] = [line for line in lines[1:] if "omitted" in line]
    assert omitted and all(
        line["frame"].get(field) == "" for line in omitted for field in line["omitted"]
    )
    assert not (folder / "conversation.wav").exists()


def speaking(url: str, api_key: str, record: Path | None = None) -> tuple[list[object], bytes]:
    """A program under test that configures at connect: a speech session's session.update."""
    events: list[ds.ServerEvent] = []
    client = ds.Client(api_key, base_url=url)
    with client.speech.connect(
        model=ds.MODEL_QWEN3_TTS_FLASH_REALTIME, voice="Cherry", timeout=10
    ) as session:
        info = session.info
        session.on("*", events.append)
        recorder = None if record is None else session.record(record, audio=False)
        speech = session.speak("Hello there.").wait(timeout=10)
        if recorder is not None:
            recorder.close()
    return [info, *shape(events)], speech.audio


def test_a_session_configured_at_connect_replays_from_its_recording(tmp_path: Path) -> None:
    """A recording started right after connect holds the connect's session.update: it replays."""
    folder = tmp_path / "speech"
    with LocalRealtimeServer() as live_server:
        live, live_audio = speaking(live_server.url, live_server.api_key, record=folder)
    lines = [json.loads(text) for text in (folder / "frames.jsonl").read_text().splitlines()]
    opening = [(line["dir"], line["frame"]["type"]) for line in lines[1:4]]
    assert opening == [
        ("in", "session.created"),
        ("out", "session.update"),
        ("in", "session.updated"),
    ]
    assert all(line["t"] == 0 for line in lines[1:4])
    with LocalRealtimeServer() as server:
        replay = server.replay(folder, speed=None)
        replayed, audio = speaking(server.url, server.api_key)
        assert replay.wait(10) is None
    assert replayed == live
    assert len(audio) == len(live_audio) > 0


def test_every_request_is_recorded_before_its_answer(tmp_path: Path) -> None:
    """frames.jsonl never holds a server answer before the client frame it answers."""
    folder = tmp_path / "call"
    with LocalRealtimeServer() as server:
        client = ds.Client(server.api_key, base_url=server.url)
        with client.realtime.connect(model=MODEL) as session, session.record(folder, audio=False):
            for turn in range(60):
                session.update_session(ds.SessionUpdate(instructions=f"Turn {turn}."), timeout=10)
    lines = [json.loads(text) for text in (folder / "frames.jsonl").read_text().splitlines()[1:]]
    sent = 0
    for line in lines:
        kind = line["frame"]["type"]
        if kind == "session.update":
            sent += 1
        elif kind == "session.updated":
            assert sent > 0, "an answer was recorded before the update it answers"
            sent -= 1
    assert sent == 0
