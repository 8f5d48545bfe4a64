"""Each family's wire as its docs write it (MODEL_FAMILIES.md): what the client sends and refuses."""

from __future__ import annotations

import json

import dashscope_sync as ds
from dashscope_sync._protocol import decode


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
