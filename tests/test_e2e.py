"""End to end through the public API only, against the local server."""

from __future__ import annotations

import base64
import threading
from pathlib import Path

import pytest

import dashscope_sync as ds
from dashscope_sync.testing import LocalRealtimeServer

# Both modes (issue 18): each test runs with threads and again on a ds.Reactor.
pytestmark = [pytest.mark.timeout(60), pytest.mark.both_modes]

ROOT = Path(__file__).resolve().parent.parent


def speech(seconds: float) -> bytes:
    """Loud enough 16 kHz PCM16 for the server to measure."""
    import math
    import struct

    n = int(seconds * ds.INPUT_SAMPLE_RATE)
    return struct.pack(
        f"<{n}h", *(int(8000 * math.sin(2 * math.pi * 220 * i / 16000)) for i in range(n))
    )


def test_voice_turn_with_the_iterator(server: LocalRealtimeServer) -> None:
    """A manual-mode voice turn streams transcript and audio that add up to response.done."""
    client = ds.Client(server.api_key, base_url=server.url)
    audio = speech(1.0)
    with client.realtime.connect(ds.RealtimeConfig(model=ds.MODEL_QWEN3_OMNI_FLASH_REALTIME)) as s:
        info = s.update_session(
            ds.SessionUpdate(modalities=["text", "audio"], voice="Cherry", turn_detection=None)
        )
        assert info.turn_detection is None
        for i in range(0, len(audio), 3200):
            s.append_audio(audio[i : i + 3200])
        s.commit_audio()
        s.create_response()
        transcript, pcm, heard = [], bytearray(), None
        for event in s.events(timeout=30):
            if isinstance(event, ds.ResponseAudioTranscriptDelta):
                transcript.append(event.delta)
            elif isinstance(event, ds.ResponseAudioDelta):
                pcm += event.delta
            elif isinstance(event, ds.ConversationItemInputAudioTranscriptionCompleted):
                heard = event.transcript
            elif isinstance(event, ds.ResponseAudioTranscriptDone):
                assert event.transcript == "".join(transcript)
            elif isinstance(event, ds.ResponseDone):
                done = event
                break
    assert done.response.status == "completed"
    assert done.response.usage and done.response.usage.total_tokens > 0
    assert done.response.output[0].content[0].value == "".join(transcript)
    assert "simulated" in "".join(transcript)
    assert heard is not None and "1.00 s" in heard
    assert len(pcm) > 0 and len(pcm) % 2 == 0
    appended = b"".join(
        base64.b64decode(f["audio"])
        for f in server.received
        if f["type"] == "input_audio_buffer.append"
    )
    assert appended == audio


def test_text_turn_with_callbacks_only(server: LocalRealtimeServer) -> None:
    """A callback-only program (buffer off) gets a text-only reply through handlers."""
    client = ds.Client(server.api_key, base_url=server.url)
    config = ds.RealtimeConfig(
        model=ds.MODEL_QWEN_OMNI_TURBO_REALTIME_LATEST, max_buffered_events=0
    )
    with client.realtime.connect(config) as s:
        s.update_session(ds.SessionUpdate(modalities=["text"], turn_detection=None))
        pieces: list[str] = []
        finished = threading.Event()
        result: dict[str, str] = {}
        s.on(ds.ResponseTextDelta, lambda ev: pieces.append(ev.delta))
        s.on(ds.ResponseTextDone, lambda ev: result.update(text=ev.text))
        s.on("response.done", lambda ev: finished.set())
        s.append_text("What is the capital of France?")
        s.create_response()
        assert finished.wait(30)
    assert result["text"] == "".join(pieces)
    assert "capital of France" in result["text"]


def test_image_and_audio_turn(server: LocalRealtimeServer) -> None:
    """Audio, then an image, then a commit and a response complete a multimodal turn."""
    client = ds.Client(server.api_key, base_url=server.url)
    with client.realtime.connect(model=ds.MODEL_QWEN3_OMNI_FLASH_REALTIME) as s:
        s.update_session(ds.SessionUpdate(turn_detection=None))
        s.append_audio(speech(0.5))
        s.append_image(b"\xff\xd8\xff\xe0" + bytes(2000) + b"\xff\xd9")
        s.commit_audio()
        s.create_response(instructions="Describe the picture.")
        done = s.wait_for(ds.ResponseDone, timeout=30)
    assert done.response.status == "completed"
    types = [f["type"] for f in server.received]
    assert types.index("input_image_buffer.append") < types.index("input_audio_buffer.commit")


def test_image_before_audio_is_an_error_event(server: LocalRealtimeServer) -> None:
    """The service's image-before-audio error arrives as an event and the session goes on."""
    client = ds.Client(server.api_key, base_url=server.url)
    with client.realtime.connect(model=ds.MODEL_QWEN3_OMNI_FLASH_REALTIME) as s:
        event_id = s.append_image(b"\xff\xd8" + bytes(100))
        error = s.wait_for(ds.ErrorEvent, timeout=10)
        assert "before append audio" in error.error.message
        assert error.error.event_id == event_id
        assert s.update_session(ds.SessionUpdate(voice="Ethan")).voice == "Ethan"


def test_readme_commands_are_what_ci_runs() -> None:
    """.ci/run calls exactly the README's test command."""
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    test_command = (
        "python3 -m venv .venv && .venv/bin/pip install -e '.[test]' && .venv/bin/python -m pytest"
    )
    assert test_command in readme
    assert test_command in ci.splitlines()
    assert (
        "python3 -m venv .venv && .venv/bin/pip install -e '.[testing]' && .venv/bin/dashscope-sync demo"
        in readme
    )
