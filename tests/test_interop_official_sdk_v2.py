"""Every family against the local server with the official SDK 2.0.2's v2 realtime client.

``dashscope.Client().audio.realtime.connect(model=..., ws_url=...)`` picks
its dialect from the model name (MODEL_FAMILIES.md §3) and sends that
dialect's own shapes (its ``update_session`` helpers, ``create_response``,
``end_session``). Each test completes a turn (or a translation) the way the
SDK's own examples do. Skipped when the SDK is not installed.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import pytest

import dashscope_sync as ds
from dashscope_sync.testing import LocalRealtimeServer, speech_like_pcm16

from .conftest import need

dashscope = need("dashscope", reason="the official dashscope SDK is not installed")
need("dashscope.v2.resources.audio.realtime", reason="dashscope 2.x is needed")

pytestmark = pytest.mark.timeout(60)

Event = dict[str, Any]
PCM = speech_like_pcm16(1.0, sample_rate=16000)


@pytest.fixture
def sdk(server: LocalRealtimeServer) -> Any:
    """The official SDK's v2 client, its key set to the local server's."""
    client = dashscope.Client(api_key=server.api_key, workspace="ws-local", region="cn-beijing")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # "the 2.0 audio API is a preview"
        return client.audio


@pytest.fixture
def connect(sdk: Any, server: LocalRealtimeServer) -> Iterator[Any]:
    """Opens v2 realtime sessions on the local server and closes them after the test."""
    opened: list[Any] = []

    def open_session(model: str) -> Any:
        rt = sdk.realtime.connect(model=model, ws_url=server.url, timeout=10)
        rt.connect()
        opened.append(rt)
        return rt

    yield open_session
    for rt in opened:
        rt.close()


def read_until(rt: Any, event_type: str) -> list[Event]:
    """The SDK's events up to and including the first of ``event_type``."""
    events: list[Event] = []
    while True:
        event = rt.recv_event()
        assert event is not None, f"closed before {event_type}: {[e['type'] for e in events]}"
        events.append(event)
        if event["type"] == event_type:
            return events


def stream(rt: Any) -> None:
    """Append the audio in 100 ms chunks, as the SDK's examples do."""
    for start in range(0, len(PCM), 3200):
        rt.append_audio(PCM[start : start + 3200])


def response_text(events: list[Event]) -> str:
    """The text of a response, from the final event its family sends."""
    for event in reversed(events):
        if event["type"] == "response.audio_transcript.done":
            return str(event["transcript"])
        if event["type"] == "response.text.done":
            return str(event["text"])
    raise AssertionError("no final text")


def test_omni_legacy(connect: Any, server: LocalRealtimeServer) -> None:
    """Legacy Omni: the SDK's full flat update, commit, response.create with instructions null."""
    rt = connect(ds.MODEL_QWEN3_OMNI_FLASH_REALTIME)
    read_until(rt, "session.created")
    rt.update_session(["text", "audio"], voice="Cherry", enable_turn_detection=False)
    updated = read_until(rt, "session.updated")[-1]
    assert updated["session"]["voice"] == "Cherry"
    stream(rt)
    rt.commit()
    rt.create_response()
    events = read_until(rt, "response.done")
    assert "simulated" in response_text(events)
    assert server.wait_for_received("response.create")["response"] == {"instructions": None}


def test_omni_35(connect: Any, server: LocalRealtimeServer) -> None:
    """Omni 3.5 (the SDK's legacy dialect) answers a text turn; its finish is refused."""
    rt = connect(ds.MODEL_QWEN3_5_OMNI_FLASH_REALTIME)
    read_until(rt, "session.created")
    rt.update_session(["text"], voice="Tina", enable_turn_detection=False)
    read_until(rt, "session.updated")
    rt.create_item(
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}
    )
    rt.create_response()
    assert "simulated" in response_text(read_until(rt, "response.done"))
    rt.end_session()
    with pytest.raises(Exception, match="invalid event type"):
        read_until(rt, "session.finished")


def test_omni_38(connect: Any, server: LocalRealtimeServer) -> None:
    """Omni 3.8: the nested voice and formats, a bare response.create, finish without an answer."""
    rt = connect(ds.MODEL_QWEN3_8_OMNI_FLASH_REALTIME)
    created = read_until(rt, "session.created")[-1]
    assert created["session"]["voice"] == "Tina"
    rt.update_session(
        ["text", "audio"],
        voice="longanlingxin",
        enable_turn_detection=False,
        enable_input_audio_transcription=False,
        input_audio_config={"type": "pcm", "sample_rate": 16000},
        output_audio_config={"type": "pcm", "sample_rate": 24000},
    )
    updated = read_until(rt, "session.updated")[-1]
    assert updated["session"]["voice"] == "longanlingxin"  # nested in, both shapes echoed
    sent = server.wait_for_received("session.update")["session"]
    assert sent["audio"]["output"]["voice"] == "longanlingxin"
    stream(rt)
    rt.commit()
    rt.create_response()
    assert "simulated" in response_text(read_until(rt, "response.done"))
    assert "response" not in server.wait_for_received("response.create")
    rt.end_session()
    server.wait_for_received("session.finish")
    rt.close()  # no session.finished comes: the SDK allows that for 3.8 only


@pytest.mark.parametrize(
    "model",
    [ds.MODEL_QWEN3_LIVETRANSLATE_FLASH_REALTIME, ds.MODEL_QWEN3_5_LIVETRANSLATE_FLASH_REALTIME],
)
def test_livetranslate(connect: Any, server: LocalRealtimeServer, model: str) -> None:
    """LiveTranslate: the translation streams as text/stash with no response.create; finish answers."""
    rt = connect(model)
    read_until(rt, "session.created")
    rt.update_session(
        ["text", "audio"],
        voice="Cherry",
        translation_params={"language": "ja"},
        enable_turn_detection=False,
    )
    read_until(rt, "session.updated")
    stream(rt)
    rt.end_session()  # the docs list no commit: finish ends the turn
    events = read_until(rt, "session.finished")
    assert [e for e in events if e["type"] == "response.audio_transcript.text"]
    assert "into ja" in response_text(events)
    assert not [f for f in server.received if f.get("type") == "response.create"]


def test_livetranslate_38(connect: Any, server: LocalRealtimeServer) -> None:
    """LiveTranslate 3.8 as the SDK's example: stream, end_session, read to session.finished."""
    rt = connect(ds.MODEL_QWEN3_8_LIVETRANSLATE_FLASH_REALTIME)
    read_until(rt, "session.created")
    rt.update_session(
        ["text", "audio"],
        voice="default",
        translation_params={"language": "en"},
        enable_turn_detection=False,
        enable_voice_clone=True,
        voice_clone_options={"frequency": "once"},
    )
    read_until(rt, "session.updated")
    sent = server.wait_for_received("session.update")["session"]
    assert sent["output_modalities"] == ["text", "audio"]
    assert sent["audio"]["input"]["turn_detection"] is None
    stream(rt)
    rt.end_session()
    events = read_until(rt, "session.finished")
    assert [e for e in events if e["type"] == "response.done"]
    assert "simulated translation into en" in response_text(events)


def test_qwen_audio(connect: Any, server: LocalRealtimeServer) -> None:
    """Qwen-Audio: smart turn accepted, a manual turn answered; the SDK has no end_session."""
    rt = connect(ds.MODEL_QWEN_AUDIO_3_0_REALTIME_PLUS)
    created = read_until(rt, "session.created")[-1]
    assert created["session"]["voice"] == "longanqian"
    rt.update_session(["text", "audio"], voice="longanqian", turn_detection_type="smart_turn")
    updated = read_until(rt, "session.updated")[-1]
    assert updated["session"]["turn_detection"]["type"] == "smart_turn"
    rt.update_session(enable_turn_detection=False)
    read_until(rt, "session.updated")
    stream(rt)
    rt.commit()
    rt.create_response(modalities=["audio", "text"])
    assert "simulated" in response_text(read_until(rt, "response.done"))
    with pytest.raises(NotImplementedError):
        rt.end_session()
