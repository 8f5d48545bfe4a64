"""What reconnect() carries to the new session and what stays with the old one, over loopback."""

from __future__ import annotations

import base64
import json
import threading
from pathlib import Path

import pytest

import dashscope_sync as ds
from dashscope_sync.testing import LocalRealtimeServer

from .audio_fakes import VirtualOutput

# Both modes (issue 18): each test runs with threads and again on a ds.Reactor.
pytestmark = pytest.mark.both_modes

MODEL = ds.MODEL_QWEN3_OMNI_FLASH_REALTIME
#: A bound for waits that only a broken library reaches.
LONG = 20.0


def manual(client: ds.Client) -> ds.RealtimeSession:
    """A connected session in manual mode (the caller closes it)."""
    session = client.realtime.connect(model=MODEL)
    session.update_session(ds.SessionUpdate(turn_detection=None), timeout=LONG)
    return session


def frame_types(folder: Path) -> list[str]:
    """The wire types of a recording's frame lines, in order."""
    lines = (folder / "frames.jsonl").read_text(encoding="utf-8").splitlines()[1:]
    return [json.loads(line)["frame"]["type"] for line in lines]


def test_reconnect_completes_the_recording_and_does_not_record_the_new_session(
    client: ds.Client, tmp_path: Path
) -> None:
    """The old session's recording ends with it; the new session records only when asked."""
    session = manual(client)
    recorder = session.record(tmp_path / "old")
    session.respond(text="hi", timeout=LONG)
    fresh = session.reconnect(timeout=LONG)
    with fresh:
        assert recorder.closed
        before = frame_types(tmp_path / "old")
        fresh.respond(text="again", timeout=LONG)
        # Nothing of the new session reaches the old files.
        assert frame_types(tmp_path / "old") == before
        assert before.count("response.create") == 1
        with fresh.record(tmp_path / "new"):
            fresh.respond(text="recorded", timeout=LONG)
    header = json.loads((tmp_path / "new" / "frames.jsonl").read_text().splitlines()[0])
    assert header["session_id"] == fresh.id != session.id
    assert frame_types(tmp_path / "new").count("response.create") == 1


def test_reconnect_starts_an_empty_transcript_and_metrics(client: ds.Client) -> None:
    """The new session's transcript and metrics start empty; the old session keeps its own."""
    session = manual(client)
    session.respond(text="hi", timeout=LONG)
    with session.reconnect(timeout=LONG) as fresh:
        assert len(fresh.transcript) == 0 and fresh.metrics.responses == 0
        fresh.respond(text="again", timeout=LONG)
        assert [t.role for t in fresh.transcript] == ["user", "assistant"]
        assert fresh.metrics.responses == 1
    assert [t.text for t in session.transcript if t.role == "user"] == ["hi"]
    assert session.metrics.responses == 1


def test_reconnect_detaches_the_speaker_for_the_new_session_to_attach(
    server: LocalRealtimeServer, client: ds.Client
) -> None:
    """An attached speaker is detached with the old session; attached again, it plays the new one."""
    device = VirtualOutput(latency=0.05)
    with ds.Speaker(stream=device, jitter_ms=0) as speaker:
        session = manual(client)
        session.attach(speaker=speaker)
        fresh = session.reconnect(timeout=LONG)
        with fresh:
            fresh.attach(speaker=speaker)  # free again: no UsageError
            # A 0.3 s scripted reply: drain() waits for the device to play it in real time,
            # and the simulated reply to "hi" lasts 5 s.
            pcm = b"\x10\x20" * 7200
            server.script_response(
                [
                    {"type": "response.created"},
                    {"type": "response.audio.delta", "delta": base64.b64encode(pcm).decode()},
                    {"type": "response.audio.done"},
                    {"type": "response.done", "response": {"status": "completed"}},
                ]
            )
            handled = threading.Event()  # set once the handlers gave the speaker every chunk
            fresh.on(ds.ResponseDone, lambda event: handled.set())
            result = fresh.respond(text="hi", timeout=LONG)
            assert result.audio
            # respond() returns on response.done, maybe before the handler thread has written
            # the audio to the speaker: drain() then would have nothing to wait for yet.
            assert handled.wait(LONG)
            assert speaker.drain(timeout=LONG)
            assert bytes(device.data).endswith(result.audio)
