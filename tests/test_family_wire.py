"""Each family's wire as its docs write it (MODEL_FAMILIES.md): what the client sends and refuses."""

from __future__ import annotations

import json

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
