"""Each family's wire as its docs write it (MODEL_FAMILIES.md): what the client sends and refuses."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

import dashscope_sync as ds
from dashscope_sync._protocol import decode
from dashscope_sync.testing import LocalRealtimeServer


class TestSpeechStoppedReason:
    """Qwen-Audio's ``speech_stopped`` says why the speech ended (MODEL_FAMILIES.md §7)."""

    def test_turn_invalid_is_typed(self) -> None:
        """A ``reason`` of ``turn_invalid`` is read into the event's typed field."""
        frame = {
            "type": "input_audio_buffer.speech_stopped",
            "audio_end_ms": 900,
            "item_id": "item_9",
            "reason": "turn_invalid",
        }
        event = decode(json.dumps(frame))
        assert isinstance(event, ds.InputAudioBufferSpeechStopped)
        assert event.reason == "turn_invalid"

    def test_absent_reason_is_none(self) -> None:
        """The Omni frame, without a reason, gives None."""
        event = decode('{"type":"input_audio_buffer.speech_stopped","audio_end_ms":5}')
        assert isinstance(event, ds.InputAudioBufferSpeechStopped)
        assert event.reason is None


class TestModelInBaseUrl:
    """A ``model`` already in ``base_url``'s query must be the session's model."""

    def test_other_model_refused(self, server: LocalRealtimeServer) -> None:
        """A base_url naming another model is a ConfigError naming both, before connecting."""
        url = f"{server.url}?model={ds.MODEL_QWEN3_8_OMNI_FLASH_REALTIME}"
        client = ds.Client(server.api_key, base_url=url)
        with pytest.raises(ds.ConfigError, match=r"qwen3\.8-omni.*qwen3-omni-flash-realtime"):
            client.realtime.connect(model=ds.MODEL_QWEN3_OMNI_FLASH_REALTIME, timeout=5)
        assert server.received == []

    def test_same_model_connects(self, server: LocalRealtimeServer) -> None:
        """A base_url naming the session's own model connects as usual."""
        url = f"{server.url}?model={ds.MODEL_QWEN3_OMNI_FLASH_REALTIME}"
        client = ds.Client(server.api_key, base_url=url)
        with client.realtime.connect(model=ds.MODEL_QWEN3_OMNI_FLASH_REALTIME, timeout=5) as s:
            assert s.model == ds.MODEL_QWEN3_OMNI_FLASH_REALTIME


class TestCreateResponseExtra:
    """``create_response(extra=...)`` carries any per-response field and keeps its handle."""

    def test_extra_fields_sent_and_handle_returned(
        self, server: LocalRealtimeServer, client: ds.Client
    ) -> None:
        """The extra fields go in the ``response`` object and the handle waits for the reply."""
        with client.realtime.connect(model=ds.MODEL_QWEN_AUDIO_3_0_REALTIME_PLUS) as session:
            session.append_text("hi")
            handle = session.create_response(
                instructions="briefly", extra={"modalities": ["text"], "temperature": 0.5}
            )
            assert isinstance(handle, ds.Response)
            result = handle.wait(timeout=10)
            assert result.text
        frame = server.wait_for_received("response.create", timeout=5)
        assert frame["response"] == {
            "instructions": "briefly",
            "modalities": ["text"],
            "temperature": 0.5,
        }

    def test_bad_extra_refused(
        self, server: LocalRealtimeServer, session: ds.RealtimeSession
    ) -> None:
        """An extra that is not a dict of string keys is a ConfigError, nothing sent."""
        with pytest.raises(ds.ConfigError, match="extra"):
            session.create_response(extra=["temperature"])  # type: ignore[arg-type]
        assert not [f for f in server.received if f.get("type") == "response.create"]


# Each documented range at its edges (PROTOCOL.md §2.1, §6): (field, value).
RANGE_EDGES: list[tuple[str, Any]] = [
    ("seed", -1),
    ("seed", 0),
    ("seed", 2**31 - 1),
    ("seed", 2**31),
    ("temperature", 0),
    ("temperature", 1.99),
    ("temperature", 2),
    ("top_p", 0),
    ("top_p", 1),
    ("top_p", 1.01),
    ("presence_penalty", -2),
    ("presence_penalty", 2.01),
    ("repetition_penalty", 0),
    ("repetition_penalty", 0.01),
]
# The same for turn detection's documented ranges.
VAD_EDGES: list[tuple[str, Any]] = [
    ("threshold", -1.0),
    ("threshold", 1.0),
    ("threshold", 1.01),
    ("silence_duration_ms", 199),
    ("silence_duration_ms", 200),
    ("silence_duration_ms", 6000),
    ("silence_duration_ms", 6001),
]


def _client_takes(record: Callable[..., object], **fields: Any) -> bool:
    try:
        record(**fields)
    except ds.ConfigError:
        return False
    return True


def _server_takes(session: ds.RealtimeSession, update: dict[str, Any]) -> bool:
    try:
        session.update_session(update, timeout=10)  # a dict is sent as is, unchecked
    except ds.APIError:
        return False
    return True


class TestRangesAgree:
    """The client refuses exactly what the local server refuses, at each documented edge."""

    def test_seed_is_the_documented_range(self) -> None:
        """A seed of -1 (the echoed default) is refused: the docs' range starts at 0."""
        with pytest.raises(ds.ConfigError, match=r"seed must be an integer in \[0, "):
            ds.SessionUpdate(seed=-1)

    def test_session_fields(self, session: ds.RealtimeSession) -> None:
        """For every session-level edge the client and the server give the same verdict."""
        verdicts = {
            (field, value): (
                _client_takes(ds.SessionUpdate, **{field: value}),
                _server_takes(session, {field: value}),
            )
            for field, value in RANGE_EDGES
        }
        assert {key: v for key, v in verdicts.items() if v[0] != v[1]} == {}

    def test_turn_detection_fields(self, session: ds.RealtimeSession) -> None:
        """For every turn-detection edge the client and the server give the same verdict."""
        verdicts = {
            (field, value): (
                _client_takes(ds.TurnDetection, **{field: value}),
                _server_takes(session, {"turn_detection": {"type": "server_vad", field: value}}),
            )
            for field, value in VAD_EDGES
        }
        assert {key: v for key, v in verdicts.items() if v[0] != v[1]} == {}
