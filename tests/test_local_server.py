"""Tests of dashscope_sync.testing.LocalRealtimeServer through real sockets.

The server is driven with websocket-client's low-level ``WebSocket`` directly,
never with the dashscope_sync client, so that these tests pin the server to
the protocol on their own.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import re
import struct
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import websocket

import dashscope_sync as ds
from dashscope_sync.testing import (
    LocalRealtimeServer,
    pcm16_peak_dbfs,
    speech_like_pcm16,
)

pytestmark = pytest.mark.timeout(30)

KEY = "sk-local-test"
MODEL = "qwen3-omni-flash-realtime"

Frame = dict[str, Any]


# ---------------------------------------------------------------------------
# Helpers


def recv(ws: websocket.WebSocket) -> Frame:
    """Receive one JSON text frame."""
    frame = json.loads(ws.recv())
    assert isinstance(frame, dict)
    return frame


def send(ws: websocket.WebSocket, **frame: Any) -> None:
    """Send one client event."""
    ws.send(json.dumps(frame))


def recv_until(ws: websocket.WebSocket, event_type: str) -> list[Frame]:
    """Receive frames up to and including the first one of ``event_type``."""
    frames = []
    while True:
        frame = recv(ws)
        frames.append(frame)
        if frame["type"] == event_type:
            return frames


def append_audio(ws: websocket.WebSocket, pcm: bytes) -> None:
    """Append PCM16 audio in 100 ms (3200-byte) packets, as the docs recommend."""
    for start in range(0, len(pcm), 3200):
        chunk = base64.b64encode(pcm[start : start + 3200]).decode()
        send(ws, type="input_audio_buffer.append", audio=chunk)


def close_frame(ws: websocket.WebSocket) -> tuple[int, str]:
    """Read frames until a close frame; return its code and reason."""
    while True:
        opcode, frame = ws.recv_data_frame(True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            (code,) = struct.unpack("!H", frame.data[:2])
            return code, frame.data[2:].decode()


Connect = Callable[..., websocket.WebSocket]


@pytest.fixture
def make_server() -> Iterator[Callable[..., LocalRealtimeServer]]:
    """Factory of started servers, all closed at teardown."""
    servers: list[LocalRealtimeServer] = []

    def factory(**kwargs: Any) -> LocalRealtimeServer:
        # These tests drive every turn by hand; VAD has its own tests.
        kwargs.setdefault("server_vad", False)
        server = LocalRealtimeServer(**kwargs).start()
        servers.append(server)
        return server

    yield factory
    for server in servers:
        server.close()


@pytest.fixture
def server(make_server: Callable[..., LocalRealtimeServer]) -> LocalRealtimeServer:
    """A server with default settings."""
    return make_server()


@pytest.fixture
def connect(server: LocalRealtimeServer) -> Iterator[Connect]:
    """Factory of websocket-client connections, shut down at teardown."""
    clients: list[websocket.WebSocket] = []

    def factory(
        target: LocalRealtimeServer | None = None,
        *,
        model: str = MODEL,
        key: str = KEY,
        skip_created: bool = True,
    ) -> websocket.WebSocket:
        url = f"{(target or server).url}?model={model}"
        ws = websocket.create_connection(url, header=[f"Authorization: Bearer {key}"], timeout=5)
        clients.append(ws)
        if skip_created:
            assert recv(ws)["type"] == "session.created"
        return ws

    yield factory
    for ws in clients:
        shutdown(ws)


def json_body(error: websocket.WebSocketBadStatusException) -> Any:
    """Decode the JSON body of a refused upgrade."""
    assert error.resp_body is not None
    return json.loads(error.resp_body)


def headers_of(error: websocket.WebSocketBadStatusException) -> dict[str, str]:
    """Return the (lowercased) response headers of a refused upgrade."""
    assert error.resp_headers is not None
    return error.resp_headers


def shutdown(ws: websocket.WebSocket) -> None:
    """Close the client's TCP connection without a closing handshake."""
    ws.shutdown()  # type: ignore[no-untyped-call]


def handshake_error(url: str, headers: list[str]) -> websocket.WebSocketBadStatusException:
    """Attempt an upgrade that must fail, and return the exception."""
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        websocket.create_connection(url, header=headers, timeout=5)
    return info.value


# ---------------------------------------------------------------------------
# Handshake


def test_session_created_is_first(server: LocalRealtimeServer, connect: Connect) -> None:
    """The first frame is session.created with the documented default session."""
    ws = connect(model="qwen3-omni-flash-realtime-2025-12-01", skip_created=False)
    frame = recv(ws)
    assert frame["type"] == "session.created"
    assert frame["event_id"].startswith("event_")
    session = frame["session"]
    assert session["id"].startswith("sess_")
    assert session["object"] == "realtime.session"
    assert session["model"] == "qwen3-omni-flash-realtime-2025-12-01"
    assert session["modalities"] == ["text", "audio"]
    assert session["voice"] == "Cherry"
    assert (session["input_audio_format"], session["output_audio_format"]) == ("pcm16", "pcm24")
    assert session["input_audio_transcription"] == {"model": "gummy-realtime-v1"}
    assert session["turn_detection"] == {
        "type": "server_vad",
        "threshold": 0.5,
        "prefix_padding_ms": 300,
        "silence_duration_ms": 800,
        "create_response": True,
        "interrupt_response": True,
    }
    assert (session["tools"], session["tool_choice"], session["temperature"]) == ([], "auto", 0.8)
    connection = server.wait_for_connection()
    assert connection.session_id == session["id"]
    assert connection.path == "/api-ws/v1/realtime"
    assert connection.model == "qwen3-omni-flash-realtime-2025-12-01"
    assert connection.query == {"model": "qwen3-omni-flash-realtime-2025-12-01"}
    assert connection.headers["AUTHORIZATION"] == f"Bearer {KEY}"


def test_wrong_key_gets_401_with_json_body(server: LocalRealtimeServer) -> None:
    """A wrong API key is refused with HTTP 401 and DashScope's JSON error body."""
    error = handshake_error(f"{server.url}?model={MODEL}", ["Authorization: Bearer sk-wrong"])
    assert error.status_code == 401
    assert headers_of(error)["content-type"] == "application/json"
    body = json_body(error)
    assert body["code"] == "InvalidApiKey"
    assert body["message"] == "Invalid API-key provided."
    assert body["request_id"]
    missing = handshake_error(f"{server.url}?model={MODEL}", [])
    assert missing.status_code == 401
    assert [record.status for record in server.handshakes] == [401, 401]


def test_lowercase_bearer_and_any_key_mode(
    make_server: Callable[..., LocalRealtimeServer], connect: Connect
) -> None:
    """A lowercase "bearer" scheme is accepted, and api_key=None accepts any key."""
    ws = connect(skip_created=False)
    ws.close()
    lenient = make_server(api_key=None)
    url = f"{lenient.url}?model={MODEL}"
    for headers in ([], ["Authorization: bearer whatever"]):
        ws = websocket.create_connection(url, header=headers, timeout=5)
        assert recv(ws)["type"] == "session.created"
        ws.close()
    strict = make_server(api_key="k")
    ws = websocket.create_connection(
        f"{strict.url}?model={MODEL}", header=["authorization: bearer k"], timeout=5
    )
    assert recv(ws)["type"] == "session.created"
    ws.close()


def test_missing_model_gets_400_and_unknown_path_404(server: LocalRealtimeServer) -> None:
    """A missing or empty model query is a 400 InvalidParameter; other paths are 404."""
    auth = [f"Authorization: Bearer {KEY}"]
    for url in (server.url, f"{server.url}?model="):
        error = handshake_error(url, auth)
        assert error.status_code == 400
        assert json_body(error)["code"] == "InvalidParameter"
    error = handshake_error(f"{server.http_base_url.replace('http', 'ws')}/v1/other", auth)
    assert error.status_code == 404
    assert json_body(error)["code"] == "NotFound"


def test_reject_next_handshakes(server: LocalRealtimeServer, connect: Connect) -> None:
    """Forced rejections apply to the next N upgrades only, with the given body."""
    url, auth = f"{server.url}?model={MODEL}", [f"Authorization: Bearer {KEY}"]
    throttled = {"code": "Throttling.RateQuota", "message": "Requests rate limit exceeded."}
    server.reject_next_handshakes(429, throttled, count=2)
    server.reject_next_handshakes(502, "<html>Bad Gateway</html>", content_type="text/html")
    for _ in range(2):
        error = handshake_error(url, auth)
        assert error.status_code == 429
        assert json_body(error) == throttled
    error = handshake_error(url, auth)
    assert error.status_code == 502
    assert error.resp_body == b"<html>Bad Gateway</html>"
    assert headers_of(error)["content-type"] == "text/html"
    connect()
    assert [record.status for record in server.handshakes] == [429, 429, 502, 101]


def test_hold_session_created(server: LocalRealtimeServer, connect: Connect) -> None:
    """hold_session_created delays session.created until released."""
    server.hold_session_created()
    ws = connect(skip_created=False)
    server.wait_for_connection()
    ws.settimeout(0.2)
    with pytest.raises(websocket.WebSocketTimeoutException):
        ws.recv()
    ws.settimeout(5)
    server.hold_session_created(False)
    assert recv(ws)["type"] == "session.created"


# ---------------------------------------------------------------------------
# Client events


def test_malformed_frames_get_error_events(connect: Connect) -> None:
    """Invalid JSON, non-objects, missing types, binary frames and unknown types get errors."""
    ws = connect()
    ws.send("{not json")
    assert recv(ws)["error"]["code"] == "invalid_json"
    ws.send("[1, 2]")
    assert recv(ws)["error"]["code"] == "invalid_json"
    send(ws, event_id="event_c1", session={})
    error = recv(ws)["error"]
    assert (error["code"], error["param"], error["event_id"]) == (
        "missing_type",
        "type",
        "event_c1",
    )
    ws.send_binary(b"\x00\x01")
    assert recv(ws)["error"]["code"] == "invalid_json"
    send(ws, type="conversation.item.truncate", event_id="event_c2")
    frame = recv(ws)
    assert frame["type"] == "error"
    assert frame["error"] == {
        "type": "invalid_request_error",
        "code": "invalid_event_type",
        "message": "invalid event type: conversation.item.truncate",
        "param": "type",
        "event_id": "event_c2",
    }
    send(ws, type="input_audio_buffer.clear")
    assert recv(ws)["type"] == "input_audio_buffer.cleared"


def test_session_update_validation_and_merge(server: LocalRealtimeServer, connect: Connect) -> None:
    """Invalid session.update fields get invalid_value errors; valid ones are merged and echoed."""
    ws = connect()
    send(ws, type="session.update", event_id="event_u1", session={"modalities": ["audio"]})
    frame = recv(ws)
    assert frame["type"] == "error"
    assert frame["error"] == {
        "type": "invalid_request_error",
        "code": "invalid_value",
        "message": "Invalid modalities: ['audio']. Supported combinations are: "
        "['text'] and ['audio', 'text'].",
        "param": "session.modalities",
        "event_id": "event_u1",
    }
    for session, param in (
        ({"turn_detection": {"threshold": 1.5}}, "session.turn_detection.threshold"),
        (
            {"turn_detection": {"silence_duration_ms": 100}},
            "session.turn_detection.silence_duration_ms",
        ),
        ({"turn_detection": {"type": "fancy_vad"}}, "session.turn_detection.type"),
        ({"temperature": 2.0}, "session.temperature"),
        ({"top_p": 0}, "session.top_p"),
    ):
        send(ws, type="session.update", session=session)
        error = recv(ws)["error"]
        assert (error["code"], error["param"]) == ("invalid_value", param)
    send(ws, type="session.update", session="nope")
    assert recv(ws)["error"]["param"] == "session"
    send(
        ws,
        type="session.update",
        session={
            "modalities": ["audio", "text"],
            "voice": "Ethan",
            "instructions": "Be brief.",
            "turn_detection": {"type": "server_vad", "threshold": 0.2},
            "input_audio_transcription": None,
        },
    )
    session = recv(ws)["session"]
    assert session["voice"] == "Ethan"
    assert session["instructions"] == "Be brief."
    assert session["turn_detection"]["threshold"] == 0.2
    assert session["turn_detection"]["silence_duration_ms"] == 800
    assert session["input_audio_transcription"] is None
    assert session["max_response_output_token"] == "inf"
    assert session["temperature"] == 0.8
    send(ws, type="session.update", session={"turn_detection": None})
    assert recv(ws)["session"]["turn_detection"] is None
    connection = server.wait_for_connection()
    assert connection.session["voice"] == "Ethan"


def test_commit_empty_buffer_is_an_error(connect: Connect) -> None:
    """Committing an empty input buffer gets input_audio_buffer_commit_empty."""
    ws = connect()
    send(ws, type="input_audio_buffer.commit", event_id="event_k1")
    error = recv(ws)["error"]
    assert error["code"] == "input_audio_buffer_commit_empty"
    assert error["message"] == "Error committing input audio buffer: buffer is empty."
    assert error["event_id"] == "event_k1"
    send(ws, type="input_audio_buffer.append", audio="***")
    assert recv(ws)["error"]["param"] == "audio"
    send(ws, type="input_audio_buffer.append", audio=base64.b64encode(b"abc").decode())
    assert recv(ws)["error"]["param"] == "audio"


def test_clear_drops_buffered_audio(connect: Connect) -> None:
    """input_audio_buffer.clear answers cleared and leaves nothing to commit."""
    ws = connect()
    append_audio(ws, speech_like_pcm16(0.2))
    send(ws, type="input_audio_buffer.clear")
    assert recv(ws)["type"] == "input_audio_buffer.cleared"
    send(ws, type="input_audio_buffer.commit")
    assert recv(ws)["error"]["code"] == "input_audio_buffer_commit_empty"


def test_full_audio_response(server: LocalRealtimeServer, connect: Connect) -> None:
    """Commit plus response.create streams the documented sequence with 24 kHz PCM16 audio."""
    ws = connect()
    pcm = speech_like_pcm16(1.2)
    append_audio(ws, pcm)
    send(ws, type="input_audio_buffer.commit")
    committed, user_item, transcription = recv(ws), recv(ws), recv(ws)
    assert committed["type"] == "input_audio_buffer.committed"
    assert committed["item_id"].startswith("item_")
    assert user_item["type"] == "conversation.item.created"
    assert user_item["item"]["id"] == committed["item_id"]
    assert user_item["item"]["role"] == "user"
    assert user_item["item"]["content"] == [{"type": "input_audio"}]
    assert transcription["type"] == "conversation.item.input_audio_transcription.completed"
    peak = pcm16_peak_dbfs(pcm)
    assert transcription["transcript"] == (
        f"[simulated transcript: 1.20 s of audio, peak {peak:.1f} dBFS]"
    )
    assert server.wait_for_connection().last_committed_audio == pcm

    send(ws, type="response.create")
    frames = recv_until(ws, "response.done")
    types = [frame["type"] for frame in frames]
    assert [t for t in types if not t.endswith(".delta")] == [
        "response.created",
        "response.output_item.added",
        "conversation.item.created",
        "response.content_part.added",
        "response.audio_transcript.done",
        "response.audio.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.done",
    ]
    first_delta = types.index("response.audio_transcript.delta")
    assert first_delta == 4
    assert set(types[4 : types.index("response.audio_transcript.done")]) == {
        "response.audio_transcript.delta",
        "response.audio.delta",
    }
    assert len({frame["event_id"] for frame in frames}) == len(frames)

    response_id = frames[0]["response"]["id"]
    assert response_id.startswith("resp_")
    assert frames[0]["response"]["status"] == "in_progress"
    assert frames[0]["response"]["conversation_id"].startswith("conv_")
    item_id = frames[1]["item"]["id"]
    for frame in frames[3:-2]:
        assert (frame["response_id"], frame["item_id"]) == (response_id, item_id)
        assert (frame["output_index"], frame["content_index"]) == (0, 0)

    transcript = "".join(f["delta"] for f in frames if f["type"].endswith("transcript.delta"))
    assert transcript.startswith("This is a simulated reply")
    assert "1.20 seconds of audio" in transcript
    assert frames[types.index("response.audio_transcript.done")]["transcript"] == transcript
    chunks = [base64.b64decode(f["delta"]) for f in frames if f["type"] == "response.audio.delta"]
    assert all(len(chunk) == 4800 for chunk in chunks[:-1])
    audio = b"".join(chunks)
    expected_samples = round(max(0.5, len(transcript) * 0.06) * 24000)
    assert len(audio) == 2 * expected_samples
    assert pcm16_peak_dbfs(audio) > -20.0

    done = frames[-1]["response"]
    assert done["status"] == "completed"
    assert done["output"][0]["id"] == item_id
    assert done["output"][0]["content"] == [{"type": "audio", "transcript": transcript}]
    usage = done["usage"]
    assert usage["input_tokens_details"] == {"text_tokens": 0, "audio_tokens": 15}
    assert usage["output_tokens_details"]["audio_tokens"] == math.ceil(
        expected_samples / 24000 * 12.5
    )
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert frames[types.index("response.output_item.done")]["item"]["content"] == [
        {"type": "audio", "text": transcript}
    ]


def test_text_only_mode(connect: Connect) -> None:
    """With modalities ["text"] the reply is streamed as response.text.* events only."""
    ws = connect()
    send(ws, type="session.update", session={"modalities": ["text"], "instructions": "Be brief."})
    recv(ws)
    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}
    send(ws, type="conversation.item.create", item=item)
    created = recv(ws)
    assert created["type"] == "conversation.item.created"
    assert created["item"]["id"].startswith("item_")
    assert created["item"]["status"] == "completed"
    send(ws, type="response.create")
    frames = recv_until(ws, "response.done")
    types = [frame["type"] for frame in frames]
    assert not any("audio" in t for t in types)
    assert types[3] == "response.content_part.added"
    assert frames[3]["part"] == {"type": "text", "text": ""}
    text = "".join(f["delta"] for f in frames if f["type"] == "response.text.delta")
    assert types.count("response.text.delta") > 5
    assert 'I read your message: "hi".' in text
    assert 'My instructions were: "Be brief."' in text
    assert frames[types.index("response.text.done")]["text"] == text
    assert frames[-1]["response"]["output"][0]["content"] == [{"type": "text", "text": text}]
    send(ws, type="response.create", response={"modalities": ["text", "audio"]})
    types = [frame["type"] for frame in recv_until(ws, "response.done")]
    assert "response.audio.delta" in types


def test_cancel_stops_the_response(
    make_server: Callable[..., LocalRealtimeServer], connect: Connect
) -> None:
    """response.cancel ends the stream with *.done events and a cancelled response.done."""
    ws = connect(make_server(delta_delay=0.02))
    send(ws, type="response.cancel", event_id="event_x1")
    error = recv(ws)["error"]
    assert error["code"] == "response_cancel_not_active"
    assert error["message"] == "Cancellation failed: no active response found"
    send(ws, type="response.create")
    frames = recv_until(ws, "response.audio.delta")
    send(ws, type="response.cancel")
    frames += recv_until(ws, "response.done")
    types = [frame["type"] for frame in frames]
    assert "response.audio_transcript.done" in types
    assert "response.audio.done" in types
    assert "response.content_part.done" not in types
    done = frames[-1]["response"]
    assert done["status"] == "cancelled"
    partial = "".join(f["delta"] for f in frames if f["type"].endswith("transcript.delta"))
    assert frames[types.index("response.audio_transcript.done")]["transcript"] == partial
    assert done["output"][0]["content"][0]["transcript"] == partial
    assert types.count("response.audio.delta") < 10
    send(ws, type="response.create", response={"modalities": ["text"]})
    assert recv_until(ws, "response.done")[-1]["response"]["status"] == "completed"


def test_second_response_create_while_active_is_rejected(
    make_server: Callable[..., LocalRealtimeServer], connect: Connect
) -> None:
    """A response.create during an active response gets conversation_already_has_active_response."""
    ws = connect(make_server(delta_delay=0.01))
    send(ws, type="response.create")
    send(ws, type="response.create", event_id="event_r2")
    frames = recv_until(ws, "response.done")
    errors = [frame["error"] for frame in frames if frame["type"] == "error"]
    assert errors == [
        {
            "type": "invalid_request_error",
            "code": "conversation_already_has_active_response",
            "message": "Conversation already has an active response",
            "event_id": "event_r2",
        }
    ]


def test_image_before_audio_is_rejected(connect: Connect) -> None:
    """An image before any audio is refused; after audio it is counted in the reply."""
    ws = connect()
    image = base64.b64encode(b"\xff\xd8\xff\xe0 fake jpeg").decode()
    send(ws, type="input_image_buffer.append", image=image)
    error = recv(ws)["error"]
    assert (error["type"], error["code"]) == ("invalid_request_error", "invalid_request")
    assert error["message"] == "Error append image before append audio."
    append_audio(ws, speech_like_pcm16(0.5))
    send(ws, type="input_image_buffer.append", image=image)
    send(ws, type="input_audio_buffer.commit")
    assert recv(ws)["type"] == "input_audio_buffer.committed"
    send(ws, type="response.create", response={"modalities": ["text"]})
    done = recv_until(ws, "response.done")[-1]
    assert (
        "0.50 seconds of audio and saw 1 image."
        in done["response"]["output"][0]["content"][0]["text"]
    )


def test_function_call_round_trip(connect: Connect) -> None:
    """A text turn naming a session tool yields a function call; its output gets a reply."""
    ws = connect()
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": {}}}
    send(ws, type="session.update", session={"tools": [tool], "modalities": ["text"]})
    assert recv(ws)["session"]["tools"] == [tool]
    text = 'Please get_weather {"city": "Hangzhou"}'
    content = [{"type": "input_text", "text": text}]
    send(
        ws,
        type="conversation.item.create",
        item={"type": "message", "role": "user", "content": content},
    )
    recv(ws)
    send(ws, type="response.create")
    frames = recv_until(ws, "response.done")
    types = [frame["type"] for frame in frames]
    assert types[0:2] == ["response.created", "response.output_item.added"]
    assert types[-3:] == [
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.done",
    ]
    call = frames[1]["item"]
    assert (call["type"], call["name"], call["arguments"]) == ("function_call", "get_weather", "")
    deltas = [f for f in frames if f["type"] == "response.function_call_arguments.delta"]
    assert all(f["call_id"] == call["call_id"] for f in deltas)
    arguments = "".join(f["delta"] for f in deltas)
    assert json.loads(arguments) == {"city": "Hangzhou"}
    done_args = frames[-3]
    assert (done_args["name"], done_args["arguments"]) == ("get_weather", arguments)
    assert frames[-1]["response"]["output"][0]["arguments"] == arguments
    output = {"type": "function_call_output", "call_id": call["call_id"], "output": '{"temp": 21}'}
    send(ws, type="conversation.item.create", item=output)
    assert recv(ws)["item"]["call_id"] == call["call_id"]
    send(ws, type="response.create")
    reply = recv_until(ws, "response.done")[-1]["response"]["output"][0]
    assert reply["type"] == "message"
    assert call["call_id"] in reply["content"][0]["text"]


def test_session_finish(make_server: Callable[..., LocalRealtimeServer], connect: Connect) -> None:
    """session.finished follows the active response's response.done; it can be disabled."""
    ws = connect(make_server(delta_delay=0.005))
    send(ws, type="response.create", response={"modalities": ["text"]})
    send(ws, type="session.finish")
    frames = recv_until(ws, "response.done")
    assert "session.finished" not in [frame["type"] for frame in frames]
    assert recv(ws)["type"] == "session.finished"
    send(ws, type="input_audio_buffer.clear")
    assert recv(ws)["type"] == "input_audio_buffer.cleared"
    ws = connect(make_server(support_session_finish=False))
    send(ws, type="session.finish")
    error = recv(ws)["error"]
    assert (error["code"], error["message"]) == (
        "invalid_event_type",
        "invalid event type: session.finish",
    )


# ---------------------------------------------------------------------------
# Knobs


def test_inject_error(server: LocalRealtimeServer, connect: Connect) -> None:
    """inject_error answers the next event of a type with the error, echoing its event_id."""
    ws = connect()
    server.inject_error(
        "response.create", {"type": "server_error", "code": "COMMON_ERROR", "message": "boom"}
    )
    send(ws, type="response.create", event_id="event_e1")
    assert recv(ws)["error"] == {
        "type": "server_error",
        "code": "COMMON_ERROR",
        "message": "boom",
        "event_id": "event_e1",
    }
    send(ws, type="response.create", response={"modalities": ["text"]})
    assert recv(ws)["type"] == "response.created"
    recv_until(ws, "response.done")


def test_on_client_event(server: LocalRealtimeServer, connect: Connect) -> None:
    """on_client_event replaces built-in answers with frames, a function, or nothing."""
    ws = connect()
    server.on_client_event("session.update", [{"type": "session.updated", "session": {"x": 1}}])
    send(ws, type="session.update", session={"modalities": ["audio"]})
    frame = recv(ws)
    assert frame["type"] == "session.updated"
    assert frame["session"] == {"x": 1}
    assert frame["event_id"].startswith("event_")

    server.on_client_event("ping.custom", lambda event: [{"type": "pong.custom", "n": event["n"]}])
    send(ws, type="ping.custom", n=7)
    assert recv(ws)["n"] == 7

    server.on_client_event("input_audio_buffer.commit", None, once=True)
    send(ws, type="input_audio_buffer.commit")
    send(ws, type="input_audio_buffer.commit")
    assert recv(ws)["error"]["code"] == "input_audio_buffer_commit_empty"
    server.clear_overrides()
    send(ws, type="session.update", session={"voice": "Ethan"})
    assert recv(ws)["session"]["voice"] == "Ethan"


def test_wait_for_received(server: LocalRealtimeServer, connect: Connect) -> None:
    """wait_for_received returns the n-th frame of a type and times out clearly."""
    ws = connect()
    send(ws, type="input_audio_buffer.clear", event_id="event_a")
    send(ws, type="input_audio_buffer.clear", event_id="event_b")
    assert server.wait_for_received("input_audio_buffer.clear")["event_id"] == "event_a"
    assert server.wait_for_received("input_audio_buffer.clear", count=2)["event_id"] == "event_b"
    with pytest.raises(TimeoutError, match=r"'response\.create'"):
        server.wait_for_received("response.create", timeout=0.05)
    connection = server.wait_for_connection()
    assert [frame["event_id"] for frame in connection.received] == ["event_a", "event_b"]
    assert [frame["event_id"] for frame in server.received] == ["event_a", "event_b"]
    with pytest.raises(TimeoutError):
        server.wait_for_connection(timeout=0.05)


def test_wait_timeouts_are_rounded_alike(server: LocalRealtimeServer) -> None:
    """The local server's wait messages round durations as the library does (0.05 s, never 0.1 s)."""
    with pytest.raises(TimeoutError, match=r"within 0\.05 s "):
        server.wait_for_connection(timeout=0.05)
    with pytest.raises(TimeoutError, match=r"timed out after 0\.05 s waiting"):
        server.wait_for_received("response.create", timeout=0.05)


def test_send_extra_frames(server: LocalRealtimeServer, connect: Connect) -> None:
    """send, send_text and send_binary push frames to every open connection."""
    first, second = connect(), connect()
    assert server.send({"type": "rate_limits.updated"}) == 2
    for ws in (first, second):
        frame = recv(ws)
        assert frame["type"] == "rate_limits.updated"
        assert frame["event_id"].startswith("event_")
    server.send_text("not json", connection=server.connections[0])
    assert first.recv() == "not json"
    server.send_binary(b"\x01\x02")
    for ws in (first, second):
        opcode, data = ws.recv_data()
        assert (opcode, data) == (websocket.ABNF.OPCODE_BINARY, b"\x01\x02")


def test_reply_delay(server: LocalRealtimeServer, connect: Connect) -> None:
    """set_reply_delay delays the answer to each client event."""
    ws = connect()
    server.set_reply_delay(0.2)
    started = time.monotonic()
    send(ws, type="input_audio_buffer.clear")
    assert recv(ws)["type"] == "input_audio_buffer.cleared"
    assert time.monotonic() - started >= 0.2


def test_close_connections(server: LocalRealtimeServer, connect: Connect) -> None:
    """close_connections performs a closing handshake with the given code and reason."""
    ws = connect()
    connection = server.wait_for_connection()
    server.close_connections(4001, "maintenance")
    assert close_frame(ws) == (4001, "maintenance")
    # The server waits for the client to close TCP after the handshake, as RFC 6455 asks.
    shutdown(ws)
    assert connection.wait_closed(5)
    assert connection.close_code == 1000  # websocket-client answers any close with 1000
    assert not connection.is_open


def test_drop_connections(server: LocalRealtimeServer, connect: Connect) -> None:
    """drop_connections cuts TCP without a close frame, so the client sees an abnormal close."""
    ws = connect()
    connection = server.wait_for_connection()
    server.drop_connections()
    with pytest.raises(websocket.WebSocketConnectionClosedException):
        ws.recv()
    assert connection.wait_closed(5)
    assert connection.close_code == 1006


def test_stall_stops_pongs(server: LocalRealtimeServer, connect: Connect) -> None:
    """While stalled the server answers neither events nor pings; resume answers both."""
    ws = connect()
    ws.ping(b"before")
    opcode, frame = ws.recv_data_frame(True)
    assert (opcode, frame.data) == (websocket.ABNF.OPCODE_PONG, b"before")
    server.stall()
    ws.ping(b"during")
    send(ws, type="input_audio_buffer.clear")
    ws.settimeout(0.3)
    with pytest.raises(websocket.WebSocketTimeoutException):
        ws.recv_data_frame(True)
    ws.settimeout(5)
    server.resume()
    opcode, frame = ws.recv_data_frame(True)
    assert (opcode, frame.data) == (websocket.ABNF.OPCODE_PONG, b"during")
    assert recv(ws)["type"] == "input_audio_buffer.cleared"


def test_server_pings_and_session_expiry(
    make_server: Callable[..., LocalRealtimeServer], connect: Connect
) -> None:
    """set_keepalive makes the server ping; max_session_seconds closes with the expiry code."""
    server = make_server(max_session_seconds=0.5, expire_close_code=4008)
    ws = connect(server)
    server.set_keepalive(0.05)
    opcode, _ = ws.recv_data_frame(True)
    assert opcode == websocket.ABNF.OPCODE_PING
    server.set_keepalive(None)
    assert close_frame(ws) == (4008, "session expired")


def test_close_leaves_no_threads(connect: Connect) -> None:
    """close() ends every server thread, even mid-response and with a stalled connection."""
    before = set(threading.enumerate())
    server = LocalRealtimeServer(delta_delay=0.01, close_timeout=0.5, ping_interval=0.05).start()
    try:
        streaming = connect(server)
        send(streaming, type="response.create")
        recv(streaming)
        connect(server)
        server.wait_for_connection()
        server.stall(connection=server.wait_for_connection())
        idle = connect(server)
        send(idle, type="session.update", event_id="event_t", session={})
        server.wait_for_received("session.update")
        assert len(set(threading.enumerate()) - before) >= 8
    finally:
        server.close()
        server.close()
    assert set(threading.enumerate()) - before == set()
    with pytest.raises(RuntimeError):
        server.start()


def test_client_disconnect_mid_response(server: LocalRealtimeServer, connect: Connect) -> None:
    """A client vanishing mid-response ends the connection cleanly on the server."""
    ws = connect()
    send(ws, type="response.create")
    recv(ws)
    shutdown(ws)
    connection = server.wait_for_connection()
    assert connection.wait_closed(5)
    assert connection.join(5)
    assert not connection.response_in_progress


def test_logs_hide_key_and_audio(
    server: LocalRealtimeServer, connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    """Debug logs (websockets' included) never show the API key or base64 audio."""
    with caplog.at_level(logging.DEBUG):
        ws = connect()
        append_audio(ws, speech_like_pcm16(0.3))
        send(ws, type="input_audio_buffer.commit")
        send(ws, type="response.create")
        recv_until(ws, "response.done")
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert "Authorization: <redacted>" in text
    assert "sent response.done" in text
    assert KEY not in text
    assert re.search(r"[A-Za-z0-9+/]{40,}", text) is None


def test_a_closed_server_leaves_no_descriptor_open() -> None:
    """Starting, using and closing servers leaves the process's open descriptors as they
    were (websockets < 17 left its shutdown pipe open: two per server)."""
    import gc
    import os

    fds = "/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd"

    def open_fds() -> int:
        gc.collect()
        return len(os.listdir(fds))

    def one_server() -> None:
        with LocalRealtimeServer() as srv:
            client = ds.Client(srv.api_key, base_url=srv.url)
            with client.realtime.connect(model=ds.MODEL_QWEN3_OMNI_FLASH_REALTIME) as session:
                session.respond(text="hi", timeout=10)

    one_server()  # what a first use opens for good (nothing today) is not counted
    before = open_fds()
    for _ in range(3):
        one_server()
    assert open_fds() == before
