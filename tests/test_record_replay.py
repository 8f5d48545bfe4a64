"""End to end through the public API: a session recorded with ``session.record()``, then replayed by the local server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dashscope_sync as ds
from dashscope_sync.testing import LocalRealtimeServer, spoken_pcm16

MODEL = ds.MODEL_QWEN3_OMNI_FLASH_REALTIME


def program(
    url: str, api_key: str, record: Path | None = None
) -> tuple[list[ds.ServerEvent], list[ds.ResponseResult], ds.Transcript]:
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
        transcript = session.transcript
    return events, results, transcript


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
        live, live_results, live_transcript = program(
            live_server.url, live_server.api_key, record=folder
        )
    with LocalRealtimeServer() as server:
        replay = server.replay(folder, speed=None)
        replayed, results, transcript = program(server.url, server.api_key)
        assert replay.wait(10) is None
    # The recording began after connect: the replay opens with a session.created of its own.
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
        _, results, transcript = program(server.url, server.api_key, record=folder)
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
