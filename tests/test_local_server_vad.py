"""Server VAD, barge-in, echo replies and scripted responses of the local server.

Driven with websocket-client's low-level ``WebSocket``, like
test_local_server.py. VAD decisions depend on the audio alone (sample counts,
not wall-clock time), so every ``audio_*_ms`` below is exact. "Nothing else
arrived" is checked with a marker: an unknown event type, which the server
answers with an ``error`` echoing its ``event_id``, after everything it had to
say about the earlier events.
"""

from __future__ import annotations

import base64
import json
import math
import struct
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import websocket

from dashscope_sync.testing import LocalRealtimeServer, speech_like_pcm16

pytestmark = pytest.mark.timeout(30)

KEY = "sk-local-test"
MODEL = "qwen3-omni-flash-realtime"
RATE = 16_000

Frame = dict[str, Any]


def tone(seconds: float, amplitude: float = 0.3) -> bytes:
    """A 440 Hz sine: "speech" to an energy VAD (RMS -13.5 dBFS at 0.3)."""
    count = round(seconds * RATE)
    peak = amplitude * 32767
    samples = (int(peak * math.sin(2 * math.pi * 440 * i / RATE)) for i in range(count))
    return struct.pack(f"<{count}h", *samples)


def silence(seconds: float) -> bytes:
    """Digital silence."""
    return bytes(2 * round(seconds * RATE))


def ms(milliseconds: int) -> int:
    """Byte offset of a time in 16 kHz PCM16."""
    return milliseconds * RATE // 1000 * 2


def send(ws: websocket.WebSocket, **frame: Any) -> None:
    """Send one client event."""
    ws.send(json.dumps(frame))


def recv(ws: websocket.WebSocket) -> Frame:
    """Receive one JSON frame."""
    frame = json.loads(ws.recv())
    assert isinstance(frame, dict)
    return frame


def recv_until(ws: websocket.WebSocket, event_type: str) -> list[Frame]:
    """Receive frames up to and including the first one of ``event_type``."""
    frames = [recv(ws)]
    while frames[-1]["type"] != event_type:
        frames.append(recv(ws))
    return frames


def until_marker(ws: websocket.WebSocket) -> list[Frame]:
    """Send a marker event and return every frame that arrives before its error."""
    send(ws, type="test.marker", event_id="event_marker")
    frames: list[Frame] = []
    while True:
        frame = recv(ws)
        if frame["type"] == "error" and frame["error"].get("event_id") == "event_marker":
            return frames
        frames.append(frame)


def append(ws: websocket.WebSocket, pcm: bytes, chunk: int = 3200) -> None:
    """Append PCM16 in 100 ms packets."""
    for start in range(0, len(pcm), chunk):
        audio = base64.b64encode(pcm[start : start + chunk]).decode()
        send(ws, type="input_audio_buffer.append", audio=audio)


def types(frames: list[Frame]) -> list[str]:
    """The types of frames, deltas left out."""
    return [f["type"] for f in frames if not f["type"].endswith(".delta")]


@pytest.fixture
def make_server() -> Iterator[Callable[..., LocalRealtimeServer]]:
    """Factory of started servers, all closed at teardown."""
    servers: list[LocalRealtimeServer] = []

    def factory(**kwargs: Any) -> LocalRealtimeServer:
        server = LocalRealtimeServer(**kwargs).start()
        servers.append(server)
        return server

    yield factory
    for server in servers:
        server.close()


Connect = Callable[..., websocket.WebSocket]


@pytest.fixture
def connect() -> Iterator[Connect]:
    """Factory of clients past session.created (and an optional session.update)."""
    clients: list[websocket.WebSocket] = []

    def factory(server: LocalRealtimeServer, **session: Any) -> websocket.WebSocket:
        ws = websocket.create_connection(
            server.model_url(), header=[f"Authorization: Bearer {KEY}"], timeout=10
        )
        clients.append(ws)
        assert recv(ws)["type"] == "session.created"
        if session:
            send(ws, type="session.update", session=session)
            assert recv(ws)["type"] == "session.updated"
        return ws

    yield factory
    for ws in clients:
        ws.shutdown()  # type: ignore[no-untyped-call]


# ---------------------------------------------------------------------------
# Server VAD


def test_vad_turn_events_commit_and_auto_response(
    make_server: Callable[..., LocalRealtimeServer], connect: Connect
) -> None:
    """Speech then silence gives exact speech_started/stopped, the commit and a response."""
    server = make_server(server_vad=True)
    ws = connect(server)
    pcm = silence(0.5) + tone(1.0) + silence(1.0)
    append(ws, pcm)
    frames = recv_until(ws, "response.done")
    assert types(frames)[:6] == [
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "conversation.item.created",
        "conversation.item.input_audio_transcription.completed",
        "response.created",
    ]
    started, stopped, committed, item, transcription = frames[:5]
    # Onset at 500 ms minus the default 300 ms prefix; stop = 1500 ms + 800 ms silence.
    assert started["audio_start_ms"] == 200
    assert stopped["audio_end_ms"] == 2300
    item_id = started["item_id"]
    assert item_id.startswith("item_")
    assert stopped["item_id"] == committed["item_id"] == item["item"]["id"] == item_id
    assert (item["item"]["role"], item["item"]["content"]) == ("user", [{"type": "input_audio"}])
    assert transcription["item_id"] == item_id
    assert "2.10 s of audio" in transcription["transcript"]
    assert server.wait_for_connection().last_committed_audio == pcm[ms(200) : ms(2300)]
    done = frames[-1]["response"]
    assert done["status"] == "completed"
    assert "I heard 2.10 seconds of audio." in done["output"][0]["content"][0]["transcript"]
    assert until_marker(ws) == []


def test_vad_threshold_padding_and_silence_settings(
    make_server: Callable[..., LocalRealtimeServer], connect: Connect
) -> None:
    """threshold, prefix_padding_ms and silence_duration_ms shape the detection."""
    server = make_server(server_vad=True)
    turn_detection = {"threshold": 0.9, "prefix_padding_ms": 0, "silence_duration_ms": 200}
    ws = connect(server, modalities=["text"], turn_detection=turn_detection)
    # 0.9 maps to -22.5 dBFS: a 0.05 sine (-29 dBFS) is not speech, a 0.3 one (-13.5) is.
    append(ws, tone(0.5, amplitude=0.05) + tone(0.5) + silence(0.5))
    frames = recv_until(ws, "response.done")
    started, stopped = frames[0], frames[1]
    assert (started["type"], started["audio_start_ms"]) == (
        "input_audio_buffer.speech_started",
        500,
    )
    assert (stopped["type"], stopped["audio_end_ms"]) == ("input_audio_buffer.speech_stopped", 1200)
    assert len(server.wait_for_connection().last_committed_audio) == ms(700)


def test_create_response_false_commits_without_responding(
    make_server: Callable[..., LocalRealtimeServer], connect: Connect
) -> None:
    """With create_response false a VAD turn is committed but no response starts."""
    server = make_server(server_vad=True)
    ws = connect(server, turn_detection={"type": "server_vad", "create_response": False})
    append(ws, tone(0.6) + silence(1.0))
    assert types(until_marker(ws)) == [
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "conversation.item.created",
        "conversation.item.input_audio_transcription.completed",
    ]
    send(ws, type="response.create", response={"modalities": ["text"]})
    done = recv_until(ws, "response.done")[-1]["response"]
    assert "I heard 1.40 seconds of audio." in done["output"][0]["content"][0]["text"]


def test_second_turn_starts_at_the_buffer_start(
    make_server: Callable[..., LocalRealtimeServer], connect: Connect
) -> None:
    """Timeline positions count from the first append; padding never reaches into a past turn."""
    server = make_server(server_vad=True)
    ws = connect(server, turn_detection={"create_response": False})
    append(ws, tone(1.0) + silence(1.0) + tone(0.5) + silence(1.0))
    frames = until_marker(ws)
    starts = [f["audio_start_ms"] for f in frames if f["type"].endswith("speech_started")]
    ends = [f["audio_end_ms"] for f in frames if f["type"].endswith("speech_stopped")]
    # Turn 1 commits up to 1800 ms; turn 2's onset at 2000 ms minus 300 ms is clamped there.
    assert (starts, ends) == ([0, 1800], [1800, 3300])
    assert len(server.wait_for_connection().last_committed_audio) == ms(1500)


def test_manual_mode_and_default_server_send_no_vad_events(
    make_server: Callable[..., LocalRealtimeServer], connect: Connect
) -> None:
    """turn_detection null, or a server with server_vad=False, never sends VAD events."""
    vad_server = make_server(server_vad=True)
    ws = connect(vad_server, turn_detection=None)
    append(ws, tone(1.0) + silence(1.0))
    assert until_marker(ws) == []
    send(ws, type="input_audio_buffer.commit")
    assert types(until_marker(ws)) == [
        "input_audio_buffer.committed",
        "conversation.item.created",
        "conversation.item.input_audio_transcription.completed",
    ]
    without = connect(make_server(server_vad=False))
    append(without, tone(1.0) + silence(1.0))
    assert until_marker(without) == []


def test_forced_commit_in_vad_mode_ends_the_turn(
    make_server: Callable[..., LocalRealtimeServer], connect: Connect
) -> None:
    """An explicit commit during speech sends speech_stopped, commits and responds."""
    server = make_server(server_vad=True)
    ws = connect(server, modalities=["text"])
    append(ws, tone(0.5))
    started = recv(ws)
    assert (started["type"], started["audio_start_ms"]) == ("input_audio_buffer.speech_started", 0)
    send(ws, type="input_audio_buffer.commit")
    frames = recv_until(ws, "response.done")
    assert types(frames)[:5] == [
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "conversation.item.created",
        "conversation.item.input_audio_transcription.completed",
        "response.created",
    ]
    assert frames[0]["audio_end_ms"] == 500
    assert frames[1]["item_id"] == started["item_id"]
    assert frames[-1]["response"]["status"] == "completed"
    # Silence afterwards ends no speech: the turn is over.
    append(ws, silence(1.0))
    assert until_marker(ws) == []


def test_clear_during_speech_forgets_it(
    make_server: Callable[..., LocalRealtimeServer], connect: Connect
) -> None:
    """input_audio_buffer.clear drops the speech in progress: no speech_stopped follows."""
    server = make_server(server_vad=True)
    ws = connect(server)
    append(ws, tone(0.3))
    assert recv(ws)["type"] == "input_audio_buffer.speech_started"
    send(ws, type="input_audio_buffer.clear")
    assert recv(ws)["type"] == "input_audio_buffer.cleared"
    append(ws, silence(1.0))
    assert until_marker(ws) == []


def test_barge_in_cancels_the_streaming_response(
    make_server: Callable[..., LocalRealtimeServer], connect: Connect
) -> None:
    """Speech starting while a response streams cancels it with reason turn_detected."""
    # About 80 deltas at 0.1 s: the response streams for 8 s unless interrupted.
    server = make_server(server_vad=True, delta_delay=0.1)
    ws = connect(server)
    append(ws, tone(1.0) + silence(1.0))
    first = recv_until(ws, "response.audio.delta")
    response_id = next(f for f in first if f["type"] == "response.created")["response"]["id"]
    append(ws, tone(0.1))
    frames = recv_until(ws, "response.done")
    started = [f for f in frames if f["type"] == "input_audio_buffer.speech_started"]
    assert len(started) == 1
    assert frames.index(started[0]) < len(frames) - 1
    owed = types(frames[frames.index(started[0]) :])
    assert owed[-3:] == ["response.audio_transcript.done", "response.audio.done", "response.done"]
    done = frames[-1]["response"]
    assert (done["id"], done["status"]) == (response_id, "cancelled")
    assert done["status_details"] == {"type": "cancelled", "reason": "turn_detected"}
    assert done["output"][0]["status"] == "incomplete"


def test_interrupt_response_false_keeps_the_response(
    make_server: Callable[..., LocalRealtimeServer], connect: Connect
) -> None:
    """With interrupt_response false speech does not cancel; the next turn's response queues."""
    server = make_server(server_vad=True)
    ws = connect(server, modalities=["text"], turn_detection={"interrupt_response": False})
    # The first response fails mid-stream and hangs: it is active for as long as the test needs.
    server.fail_next_response({"code": "COMMON_ERROR", "message": "stuck"}, after_deltas=1)
    append(ws, tone(0.5) + silence(1.0))
    recv_until(ws, "error")
    append(ws, tone(0.5) + silence(1.0))
    assert types(until_marker(ws)) == [
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "conversation.item.created",
        "conversation.item.input_audio_transcription.completed",
    ]
    send(ws, type="response.cancel")
    first_done = recv_until(ws, "response.done")[-1]["response"]
    assert first_done["status_details"] == {"type": "cancelled", "reason": "client_cancelled"}
    second = recv_until(ws, "response.done")
    assert second[0]["type"] == "response.created"
    assert second[-1]["response"]["status"] == "completed"


# ---------------------------------------------------------------------------
# Echo replies


def reference_resample(pcm: bytes) -> list[int]:
    """Independent 16 -> 24 kHz linear interpolation, in floats."""
    source = struct.unpack(f"<{len(pcm) // 2}h", pcm)
    out = []
    for j in range(len(source) * 3 // 2):
        position = j * 2 / 3
        index = int(position)
        nxt = source[min(index + 1, len(source) - 1)]
        out.append(source[index] + (nxt - source[index]) * (position - index))
    return [round(value) for value in out]


def test_echo_reply_is_the_resampled_user_audio(
    make_server: Callable[..., LocalRealtimeServer], connect: Connect
) -> None:
    """reply_audio="echo" streams the committed audio at 24 kHz and says it is an echo."""
    server = make_server(reply_audio="echo")
    ws = connect(server, turn_detection=None)
    pcm = speech_like_pcm16(1.2)
    append(ws, pcm)
    send(ws, type="input_audio_buffer.commit")
    send(ws, type="response.create")
    frames = recv_until(ws, "response.done")
    audio = b"".join(
        base64.b64decode(f["delta"]) for f in frames if f["type"] == "response.audio.delta"
    )
    assert len(audio) == 2 * 28_800  # 1.2 s at 24 kHz
    echoed = struct.unpack(f"<{len(audio) // 2}h", audio)
    assert echoed[::3] == struct.unpack(f"<{len(pcm) // 2}h", pcm)[::2]
    assert all(abs(a - b) <= 1 for a, b in zip(echoed, reference_resample(pcm), strict=True))
    transcript = frames[-1]["response"]["output"][0]["content"][0]["transcript"]
    assert "I heard 1.20 seconds of audio." in transcript
    assert "echo of your audio" in transcript
    # A turn without audio falls back to the synthetic voice.
    send(ws, type="response.create")
    done = recv_until(ws, "response.done")[-1]["response"]
    assert "echo" not in done["output"][0]["content"][0]["transcript"]
    assert done["usage"]["output_tokens_details"]["audio_tokens"] > 0


# ---------------------------------------------------------------------------
# Scripted, failing and cut-short responses


def test_script_response_sends_exactly_the_frames(
    make_server: Callable[..., LocalRealtimeServer], connect: Connect
) -> None:
    """script_response answers the next response with the frames, missing ids filled in."""
    server = make_server()
    ws = connect(server)
    server.script_response(
        [
            {"type": "response.created"},
            {"type": "response.output_item.added", "item": {"type": "message"}},
            {"type": "response.text.delta", "delta": "Scripted"},
            {"type": "response.text.done", "text": "Scripted", "item_id": "item_mine"},
            {"type": "rate_limits.updated", "rate_limits": []},
            {"type": "response.done", "response": {"status": "completed", "output": []}},
        ]
    )
    send(ws, type="response.create")
    frames = recv_until(ws, "response.done")
    assert types(frames) == [
        "response.created",
        "response.output_item.added",
        "response.text.done",
        "rate_limits.updated",
        "response.done",
    ]
    response_id = frames[0]["response"]["id"]
    assert response_id.startswith("resp_")
    assert frames[0]["response"]["conversation_id"].startswith("conv_")
    item_id = frames[1]["item"]["id"]
    assert frames[1]["response_id"] == frames[2]["response_id"] == response_id
    assert frames[2]["item_id"] == item_id
    assert frames[3]["item_id"] == "item_mine"
    assert "response_id" not in frames[4]
    assert frames[-1]["response"]["id"] == response_id
    assert all(f["event_id"].startswith("event_") for f in frames)
    # The plan was used up: the next response is simulated again.
    send(ws, type="response.create", response={"modalities": ["text"]})
    done = recv_until(ws, "response.done")[-1]["response"]
    assert "simulated reply" in done["output"][0]["content"][0]["text"]


def test_fail_next_response_errors_mid_stream_and_hangs(
    make_server: Callable[..., LocalRealtimeServer], connect: Connect
) -> None:
    """fail_next_response sends a server_error after N deltas and never finishes the response."""
    server = make_server()
    ws = connect(server, modalities=["text"])
    server.fail_next_response({"code": "COMMON_ERROR", "message": "model failed"}, after_deltas=3)
    send(ws, type="response.create")
    frames = recv_until(ws, "error")
    assert [f["type"] for f in frames].count("response.text.delta") == 3
    assert frames[-1]["error"] == {
        "code": "COMMON_ERROR",
        "message": "model failed",
        "type": "server_error",
    }
    send(ws, type="response.create", event_id="event_again")
    assert recv(ws)["error"]["code"] == "conversation_already_has_active_response"
    assert server.wait_for_connection().response_in_progress
    send(ws, type="response.cancel")
    closing = recv_until(ws, "response.done")
    assert types(closing) == ["response.text.done", "response.done"]
    partial = "".join(f["delta"] for f in frames if f["type"] == "response.text.delta")
    assert closing[0]["text"] == partial
    assert closing[-1]["response"]["status"] == "cancelled"


def test_finish_next_response_statuses(
    make_server: Callable[..., LocalRealtimeServer], connect: Connect
) -> None:
    """finish_next_response ends responses as incomplete (cut short) or failed (whole body)."""
    server = make_server()
    ws = connect(server, modalities=["text"])
    server.finish_next_response("incomplete", after_deltas=2)
    details = {"type": "failed", "error": {"code": "DataInspectionFailed", "message": "no"}}
    server.finish_next_response("failed", details)
    send(ws, type="response.create")
    frames = recv_until(ws, "response.done")
    assert [f["type"] for f in frames].count("response.text.delta") == 2
    assert types(frames)[-2:] == ["response.text.done", "response.done"]
    done = frames[-1]["response"]
    assert done["status"] == "incomplete"
    assert done["status_details"] == {"type": "incomplete", "reason": "max_output_tokens"}
    assert done["output"][0]["status"] == "incomplete"
    assert done["output"][0]["content"][0]["text"] == frames[-2]["text"]
    send(ws, type="response.create")
    frames = recv_until(ws, "response.done")
    assert "response.output_item.done" in types(frames)
    done = frames[-1]["response"]
    assert (done["status"], done["status_details"]) == ("failed", details)
    assert done["output"][0]["status"] == "completed"
    server.finish_next_response()
    server.clear_overrides()
    send(ws, type="response.create")
    assert recv_until(ws, "response.done")[-1]["response"]["status"] == "completed"
    with pytest.raises(ValueError, match="status"):
        server.finish_next_response("cancelled")  # type: ignore[arg-type]
