"""Pure tests of the wire layer: `_protocol.decode`, the event records and the encoders.

No sockets, no threads. The example frames below are copied from
``PROTOCOL.md`` sections 3 and 4; placeholders (``…``, ``{base64 audio}``,
``<item_id>``) are replaced by realistic values, as noted next to each.
"""

from __future__ import annotations

import base64
import json
import logging
import re
from typing import Any

import attrs
import pytest

import dashscope_sync as ds
from dashscope_sync._wire import codec as _protocol
from dashscope_sync._wire.codec import (
    EventIds,
    decode,
    decode_binary,
    dumps,
    encode_audio_append,
    encode_image_append,
)

# --------------------------------------------------------------------------------------
# Example frames, verbatim from PROTOCOL.md (placeholders substituted where noted)
# --------------------------------------------------------------------------------------

#: PCM16 samples 0, 1000, -1000, 32767, -32768, 12, -12, 0 (little-endian).
AUDIO_PCM = b"\x00\x00\xe8\x03\x18\xfc\xff\x7f\x00\x80\x0c\x00\xf4\xff\x00\x00"
AUDIO_B64 = "AADoAxj8/38AgAwA9P8AAA=="

FRAME_ERROR = r"""{"event_id":"event_RoUu4T8yExPMI37GKwaOC","type":"error","error":{"type":"invalid_request_error","code":"invalid_value","message":"Invalid modalities: ['audio']. Supported combinations are: ['text'] and ['audio', 'text'].","param":"session.modalities"}}"""

FRAME_SESSION_CREATED = r"""{"event_id":"event_RdvlSpbBb2ssyBjYrDHjt","type":"session.created","session":{"object":"realtime.session","model":"qwen3-omni-flash-realtime","modalities":["text","audio"],"voice":"Cherry","input_audio_format":"pcm16","output_audio_format":"pcm24","input_audio_transcription":{"model":"gummy-realtime-v1"},"turn_detection":{"type":"server_vad","threshold":0.5,"prefix_padding_ms":300,"silence_duration_ms":800,"create_response":true,"interrupt_response":true},"tools":[],"tool_choice":"auto","temperature":0.8,"id":"sess_Ov7GOXoNXhNjlxXtOGKQS"}}"""

# `"instructions":"…",…,` replaced by an instruction text and the session.created fields.
FRAME_SESSION_UPDATED = r"""{"event_id":"event_X1HsXS4b4uptp6yo1LgKd","type":"session.updated","session":{"id":"sess_Aih6vAcY5Ddt6jwFx1tCa","object":"realtime.session","model":"qwen3-omni-flash-realtime","instructions":"You are a helpful assistant.","modalities":["text","audio"],"voice":"Cherry","input_audio_format":"pcm16","output_audio_format":"pcm24","input_audio_transcription":{"model":"gummy-realtime-v1"},"tools":[],"tool_choice":"auto","turn_detection":{"type":"server_vad","threshold":0.1,"prefix_padding_ms":500,"silence_duration_ms":900,"create_response":true,"interrupt_response":true},"temperature":0.8,"max_response_output_token":"inf","max_tokens":16384,"repetition_penalty":1.05,"presence_penalty":0.0,"top_k":50,"top_p":1.0,"seed":-1}}"""

FRAME_SPEECH_STARTED = r"""{"event_id":"event_Pvp8nEhsQuGCQbFJ9x58n","type":"input_audio_buffer.speech_started","audio_start_ms":3647,"item_id":"item_YbAiGvK2H7YaS34o4R6Ba"}"""

FRAME_SPEECH_STOPPED = r"""{"event_id":"event_UhQiqNVRsgUiq4KUS5Xb5","type":"input_audio_buffer.speech_stopped","audio_end_ms":4453,"item_id":"item_YbAiGvK2H7YaS34o4R6Ba"}"""

FRAME_COMMITTED = r"""{"event_id":"event_Iy6sUzL1nmdFgshFYxJEz","type":"input_audio_buffer.committed","item_id":"item_YbAiGvK2H7YaS34o4R6Ba"}"""

FRAME_CLEARED = (
    r"""{"event_id":"event_RoUu4T8yExPMI37GKwaOC","type":"input_audio_buffer.cleared"}"""
)

FRAME_ITEM_CREATED = r"""{"event_id":"event_JEfkrr9gO3Ny7Xcv9bGVd","type":"conversation.item.created","item":{"id":"item_YbAiGvK2H7YaS34o4R6Ba","object":"realtime.item","type":"message","status":"in_progress","role":"assistant","content":[{"type":"input_audio"}]}}"""

FRAME_TRANSCRIPTION_COMPLETED = r"""{"event_id":"event_FrrZcxiDfTB9LD9p4pVng","type":"conversation.item.input_audio_transcription.completed","item_id":"item_YbAiGvK2H7YaS34o4R6Ba","content_index":0,"transcript":"喂，你好。"}"""

# `<item_id>`, `<code>`, `<message>`, `<param>` substituted; the doc's frame has no event_id.
FRAME_TRANSCRIPTION_FAILED = r"""{"type":"conversation.item.input_audio_transcription.failed","item_id":"item_YbAiGvK2H7YaS34o4R6Ba","content_index":0,"error":{"code":"InternalError","message":"transcription model failed","param":"input_audio_transcription"}}"""

# `event_…` and `item_…` substituted.
FRAME_TRANSCRIPTION_TEXT = r"""{"event_id":"event_Q8c2VbTt0bSx1fGz5nPqR","type":"conversation.item.input_audio_transcription.text","item_id":"item_YbAiGvK2H7YaS34o4R6Ba","text":"今天天气","stash":"怎么样"}"""

FRAME_RESPONSE_CREATED = r"""{"event_id":"event_XuDavMzQN3KKepqGu3KRh","type":"response.created","response":{"id":"resp_HaVOPdbmX6vifiV5pAfJY","object":"realtime.response","conversation_id":"conv_FjJaccpnvwHNo9cPVuzGc","status":"in_progress","modalities":["text","audio"],"voice":"Cherry","output_audio_format":"pcm24","output":[]}}"""

FRAME_OUTPUT_ITEM_ADDED = r"""{"event_id":"event_DsCO341DEVtiATtCB6BUY","type":"response.output_item.added","response_id":"resp_HaVOPdbmX6vifiV5pAfJY","output_index":0,"item":{"id":"item_Ls6MtCUWO7LM4E59QziNv","object":"realtime.item","type":"message","status":"in_progress","role":"assistant","content":[]}}"""

FRAME_CONTENT_PART_ADDED = r"""{"event_id":"event_AVBOmrgY3C8bjlRajfSUT","type":"response.content_part.added","response_id":"resp_HaVOPdbmX6vifiV5pAfJY","item_id":"item_Ls6MtCUWO7LM4E59QziNv","output_index":0,"content_index":0,"part":{"type":"audio","text":""}}"""

FRAME_AUDIO_TRANSCRIPT_DELTA = r"""{"event_id":"event_BksW7fOwnyavZdDxIzZYM","type":"response.audio_transcript.delta","response_id":"resp_HaVOPdbmX6vifiV5pAfJY","item_id":"item_Ls6MtCUWO7LM4E59QziNv","output_index":0,"content_index":0,"delta":"有什么"}"""

# `{base64 audio}` substituted by AUDIO_B64.
FRAME_AUDIO_DELTA = r"""{"event_id":"event_B1osWMZBtrEQbiIwW0qHQ","type":"response.audio.delta","response_id":"resp_P79OOMs8LnrXVpiIHUCKR","item_id":"item_OFaPGtzfWCPyGzxnuEX9i","output_index":0,"content_index":0,"delta":"AADoAxj8/38AgAwA9P8AAA=="}"""

FRAME_TEXT_DELTA = r"""{"delta":"喂","event_id":"event_TH49MauuPmRo1RGaMSlP7","type":"response.text.delta","response_id":"resp_PrRSvPVpnCExdUOGHHLuP","item_id":"item_L8IRm9kRXFpxoOjDqDC96","output_index":0,"content_index":0}"""

FRAME_TEXT_DONE = r"""{"event_id":"event_B1lIeE2Nac33zn5V7h2mm","type":"response.text.done","response_id":"resp_B1lIdtjF4Noqpn5NOjznj","item_id":"item_B1lIdJsAJlJiFs8ztWpJt","output_index":0,"content_index":0,"text":"How can I assist you today?"}"""

FRAME_AUDIO_TRANSCRIPT_DONE = r"""{"event_id":"event_X49tL2WerT4WjxcmH16lS","type":"response.audio_transcript.done","response_id":"resp_HaVOPdbmX6vifiV5pAfJY","item_id":"item_Ls6MtCUWO7LM4E59QziNv","output_index":0,"content_index":0,"transcript":"你好呀！有什么我可以帮你的吗？"}"""

FRAME_AUDIO_DONE = r"""{"event_id":"event_Le1TDl7VfyHQxl47DtGxI","type":"response.audio.done","response_id":"resp_HaVOPdbmX6vifiV5pAfJY","item_id":"item_Ls6MtCUWO7LM4E59QziNv","output_index":0,"content_index":0}"""

FRAME_CONTENT_PART_DONE = r"""{"event_id":"event_Il8HD19v58Qr5IBkw7LtN","type":"response.content_part.done","response_id":"resp_HaVOPdbmX6vifiV5pAfJY","item_id":"item_Ls6MtCUWO7LM4E59QziNv","output_index":0,"content_index":0,"part":{"type":"audio","text":"你好呀！有什么我可以帮你的吗？"}}"""

FRAME_OUTPUT_ITEM_DONE = r"""{"event_id":"event_MEu5nlLw1LsOguHiehIP8","type":"response.output_item.done","response_id":"resp_HaVOPdbmX6vifiV5pAfJY","output_index":0,"item":{"id":"item_Ls6MtCUWO7LM4E59QziNv","object":"realtime.item","type":"message","status":"completed","role":"assistant","content":[{"type":"audio","text":"你好呀！有什么我可以帮你的吗？"}]}}"""

FRAME_RESPONSE_DONE = r"""{"event_id":"event_CSaxRRYLvbrfexDXAEuDG","type":"response.done","response":{"id":"resp_HaVOPdbmX6vifiV5pAfJY","object":"realtime.response","conversation_id":"conv_FjJaccpnvwHNo9cPVuzGc","status":"completed","modalities":["text","audio"],"voice":"Cherry","output_audio_format":"pcm24","output":[{"id":"item_Ls6MtCUWO7LM4E59QziNv","object":"realtime.item","type":"message","status":"completed","role":"assistant","content":[{"type":"audio","transcript":"你好呀！有什么我可以帮你的吗？"}]}],"usage":{"total_tokens":377,"input_tokens":336,"output_tokens":41,"input_tokens_details":{"text_tokens":228,"audio_tokens":108},"output_tokens_details":{"text_tokens":9,"audio_tokens":32}}}}"""

# `event_…`, `resp_…`, `item_…`, `call_…` substituted.
FRAME_FUNCTION_CALL_ARGUMENTS_DONE = r"""{"event_id":"event_Fc9dKq2LmZr7Tx4WbN1sA","type":"response.function_call_arguments.done","response_id":"resp_HaVOPdbmX6vifiV5pAfJY","item_id":"item_Ls6MtCUWO7LM4E59QziNv","output_index":0,"call_id":"call_0f8e7d6c5b4a","name":"get_current_weather","arguments":"{\"location\":\"杭州\"}"}"""

FRAME_SESSION_FINISHED = r"""{"event_id":"event_2239","type":"session.finished"}"""

# Section 4's error shape: `event_…`, `…` and `event_<client event that failed>` substituted.
FRAME_ERROR_SHAPE = r"""{"event_id":"event_Sr4aE8kPq1Zt6VbN0mLxC","type":"error","error":{"type":"invalid_request_error","code":"invalid_value","message":"Invalid value: 'whisper-1xx'. Supported values are: 'whisper-1'.","param":"session.modalities","event_id":"event_3f2a1b0c9d8e_7"}}"""

_ASSISTANT_TEXT = "你好呀！有什么我可以帮你的吗？"

#: (frame, expected class, {dotted attribute path: expected value}).
DOC_FRAMES: list[tuple[str, type[ds.ServerEvent], dict[str, Any]]] = [
    (
        FRAME_ERROR,
        ds.ErrorEvent,
        {
            "error.type": "invalid_request_error",
            "error.code": "invalid_value",
            "error.param": "session.modalities",
            "error.message": "Invalid modalities: ['audio']. Supported combinations are: "
            "['text'] and ['audio', 'text'].",
            "error.event_id": None,
        },
    ),
    (
        FRAME_SESSION_CREATED,
        ds.SessionCreated,
        {
            "session.id": "sess_Ov7GOXoNXhNjlxXtOGKQS",
            "session.object": "realtime.session",
            "session.model": "qwen3-omni-flash-realtime",
            "session.modalities": ["text", "audio"],
            "session.voice": "Cherry",
            "session.input_audio_format": "pcm16",
            "session.output_audio_format": "pcm24",
            "session.input_audio_transcription": {"model": "gummy-realtime-v1"},
            "session.turn_detection": {
                "type": "server_vad",
                "threshold": 0.5,
                "prefix_padding_ms": 300,
                "silence_duration_ms": 800,
                "create_response": True,
                "interrupt_response": True,
            },
            "session.tools": [],
            "session.tool_choice": "auto",
            "session.temperature": 0.8,
            "session.instructions": None,
            "session.max_tokens": None,
        },
    ),
    (
        FRAME_SESSION_UPDATED,
        ds.SessionUpdated,
        {
            "session.id": "sess_Aih6vAcY5Ddt6jwFx1tCa",
            "session.instructions": "You are a helpful assistant.",
            "session.turn_detection.threshold": 0.1,
            "session.turn_detection.silence_duration_ms": 900,
            "session.max_response_output_token": "inf",
            "session.max_tokens": 16384,
            "session.repetition_penalty": 1.05,
            "session.presence_penalty": 0.0,
            "session.top_k": 50,
            "session.top_p": 1.0,
            "session.seed": -1,
        },
    ),
    (
        FRAME_SPEECH_STARTED,
        ds.InputAudioBufferSpeechStarted,
        {"audio_start_ms": 3647, "item_id": "item_YbAiGvK2H7YaS34o4R6Ba"},
    ),
    (
        FRAME_SPEECH_STOPPED,
        ds.InputAudioBufferSpeechStopped,
        {"audio_end_ms": 4453, "item_id": "item_YbAiGvK2H7YaS34o4R6Ba"},
    ),
    (
        FRAME_COMMITTED,
        ds.InputAudioBufferCommitted,
        {"item_id": "item_YbAiGvK2H7YaS34o4R6Ba", "previous_item_id": None},
    ),
    (FRAME_CLEARED, ds.InputAudioBufferCleared, {}),
    (
        FRAME_ITEM_CREATED,
        ds.ConversationItemCreated,
        {
            "item.id": "item_YbAiGvK2H7YaS34o4R6Ba",
            "item.object": "realtime.item",
            "item.type": "message",
            "item.status": "in_progress",
            "item.role": "assistant",
            "item.content.0.type": "input_audio",
            "item.content.0.value": "",
            "previous_item_id": None,
        },
    ),
    (
        FRAME_TRANSCRIPTION_COMPLETED,
        ds.ConversationItemInputAudioTranscriptionCompleted,
        {"item_id": "item_YbAiGvK2H7YaS34o4R6Ba", "content_index": 0, "transcript": "喂，你好。"},
    ),
    (
        FRAME_TRANSCRIPTION_FAILED,
        ds.ConversationItemInputAudioTranscriptionFailed,
        {
            "item_id": "item_YbAiGvK2H7YaS34o4R6Ba",
            "content_index": 0,
            "error.code": "InternalError",
            "error.message": "transcription model failed",
            "error.param": "input_audio_transcription",
            "error.type": None,
        },
    ),
    (
        FRAME_TRANSCRIPTION_TEXT,
        ds.ConversationItemInputAudioTranscriptionText,
        {
            "item_id": "item_YbAiGvK2H7YaS34o4R6Ba",
            "text": "今天天气",
            "stash": "怎么样",
            "language": None,
        },
    ),
    (
        FRAME_RESPONSE_CREATED,
        ds.ResponseCreated,
        {
            "response.id": "resp_HaVOPdbmX6vifiV5pAfJY",
            "response.object": "realtime.response",
            "response.conversation_id": "conv_FjJaccpnvwHNo9cPVuzGc",
            "response.status": "in_progress",
            "response.modalities": ["text", "audio"],
            "response.voice": "Cherry",
            "response.output_audio_format": "pcm24",
            "response.output": [],
            "response.usage": None,
        },
    ),
    (
        FRAME_OUTPUT_ITEM_ADDED,
        ds.ResponseOutputItemAdded,
        {
            "response_id": "resp_HaVOPdbmX6vifiV5pAfJY",
            "output_index": 0,
            "item.id": "item_Ls6MtCUWO7LM4E59QziNv",
            "item.role": "assistant",
            "item.status": "in_progress",
            "item.content": [],
        },
    ),
    (
        FRAME_CONTENT_PART_ADDED,
        ds.ResponseContentPartAdded,
        {
            "response_id": "resp_HaVOPdbmX6vifiV5pAfJY",
            "item_id": "item_Ls6MtCUWO7LM4E59QziNv",
            "output_index": 0,
            "content_index": 0,
            "part.type": "audio",
            "part.text": "",
        },
    ),
    (
        FRAME_AUDIO_TRANSCRIPT_DELTA,
        ds.ResponseAudioTranscriptDelta,
        {"response_id": "resp_HaVOPdbmX6vifiV5pAfJY", "delta": "有什么"},
    ),
    (
        FRAME_AUDIO_DELTA,
        ds.ResponseAudioDelta,
        {
            "response_id": "resp_P79OOMs8LnrXVpiIHUCKR",
            "item_id": "item_OFaPGtzfWCPyGzxnuEX9i",
            "delta": AUDIO_PCM,
        },
    ),
    (
        FRAME_TEXT_DELTA,
        ds.ResponseTextDelta,
        {
            "delta": "喂",
            "response_id": "resp_PrRSvPVpnCExdUOGHHLuP",
            "item_id": "item_L8IRm9kRXFpxoOjDqDC96",
        },
    ),
    (
        FRAME_TEXT_DONE,
        ds.ResponseTextDone,
        {"text": "How can I assist you today?", "item_id": "item_B1lIdJsAJlJiFs8ztWpJt"},
    ),
    (
        FRAME_AUDIO_TRANSCRIPT_DONE,
        ds.ResponseAudioTranscriptDone,
        {"transcript": _ASSISTANT_TEXT, "content_index": 0},
    ),
    (
        FRAME_AUDIO_DONE,
        ds.ResponseAudioDone,
        {"response_id": "resp_HaVOPdbmX6vifiV5pAfJY", "item_id": "item_Ls6MtCUWO7LM4E59QziNv"},
    ),
    (
        FRAME_CONTENT_PART_DONE,
        ds.ResponseContentPartDone,
        {"part.type": "audio", "part.text": _ASSISTANT_TEXT, "part.value": _ASSISTANT_TEXT},
    ),
    (
        FRAME_OUTPUT_ITEM_DONE,
        ds.ResponseOutputItemDone,
        {
            "item.status": "completed",
            "item.content.0.type": "audio",
            "item.content.0.text": _ASSISTANT_TEXT,
            "item.content.0.transcript": None,
            "item.content.0.value": _ASSISTANT_TEXT,
        },
    ),
    (
        FRAME_RESPONSE_DONE,
        ds.ResponseDone,
        {
            "response.status": "completed",
            "response.output.0.id": "item_Ls6MtCUWO7LM4E59QziNv",
            "response.output.0.role": "assistant",
            "response.output.0.content.0.transcript": _ASSISTANT_TEXT,
            "response.output.0.content.0.text": None,
            "response.output.0.content.0.value": _ASSISTANT_TEXT,
            "response.usage.total_tokens": 377,
            "response.usage.input_tokens_details": ds.TokenDetails(
                text_tokens=228, audio_tokens=108
            ),
            "response.usage.output_tokens_details": ds.TokenDetails(text_tokens=9, audio_tokens=32),
        },
    ),
    (
        FRAME_FUNCTION_CALL_ARGUMENTS_DONE,
        ds.ResponseFunctionCallArgumentsDone,
        {
            "call_id": "call_0f8e7d6c5b4a",
            "name": "get_current_weather",
            "arguments": '{"location":"杭州"}',
            "item_id": "item_Ls6MtCUWO7LM4E59QziNv",
        },
    ),
    (FRAME_SESSION_FINISHED, ds.SessionFinished, {}),
    (
        FRAME_ERROR_SHAPE,
        ds.ErrorEvent,
        {
            "error.type": "invalid_request_error",
            "error.code": "invalid_value",
            "error.param": "session.modalities",
            "error.event_id": "event_3f2a1b0c9d8e_7",
        },
    ),
]

#: Every server event type documented in PROTOCOL.md sections 3 and 4.
DOCUMENTED_SERVER_EVENT_TYPES = [
    "error",
    "session.created",
    "session.updated",
    "session.finished",
    "input_audio_buffer.speech_started",
    "input_audio_buffer.speech_stopped",
    "input_audio_buffer.committed",
    "input_audio_buffer.cleared",
    "conversation.item.created",
    "conversation.item.input_audio_transcription.completed",
    "conversation.item.input_audio_transcription.failed",
    "conversation.item.input_audio_transcription.delta",
    "conversation.item.input_audio_transcription.text",
    "response.created",
    "response.output_item.added",
    "response.content_part.added",
    "response.audio_transcript.delta",
    "response.audio.delta",
    "response.text.delta",
    "response.text.done",
    "response.audio_transcript.done",
    "response.audio.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.done",
    "response.function_call_arguments.delta",
    "response.function_call_arguments.done",
]


def _get(obj: Any, path: str) -> Any:
    """Follow a dotted path of attributes, mapping keys and list indices."""
    for part in path.split("."):
        if isinstance(obj, list):
            obj = obj[int(part)]
        elif isinstance(obj, dict):
            obj = obj[part]
        else:
            obj = getattr(obj, part)
    return obj


def _frame_id(param: tuple[str, type, dict[str, Any]]) -> str:
    return str(json.loads(param[0])["type"])


def _camel(wire_type: str) -> str:
    return "".join(word.capitalize() for word in re.split(r"[._]", wire_type))


def _expected_class_name(wire_type: str) -> str:
    # `error` alone would shadow the builtin-ish name `Error`; the class is ErrorEvent.
    return "ErrorEvent" if wire_type == "error" else _camel(wire_type)


def _is_empty_default(value: Any) -> bool:
    """Whether a decoded value is an 'absent' default: "", 0, [], b"", None or a record of them."""
    if attrs.has(type(value)):
        return all(
            _is_empty_default(getattr(value, f.name))
            for f in attrs.fields(type(value))
            if f.name != "raw"
        )
    return value is None or (value in ("", 0, [], b"") and type(value) is not bool)


# --------------------------------------------------------------------------------------


class TestDecodeDocFrames:
    """The documented example frames decode to the right typed records."""

    @pytest.mark.parametrize(
        ("frame", "cls", "fields"), DOC_FRAMES, ids=[_frame_id(p) for p in DOC_FRAMES]
    )
    def test_doc_frame_decodes_to_its_class(
        self, frame: str, cls: type[ds.ServerEvent], fields: dict[str, Any]
    ) -> None:
        """A documented frame decodes to EVENT_TYPES[type] with type, event_id, raw and fields as sent."""
        parsed = json.loads(frame)
        event = decode(frame)
        assert type(event) is cls
        assert ds.EVENT_TYPES[parsed["type"]] is cls
        assert event.type == parsed["type"]
        assert event.event_id == parsed.get("event_id", "")
        assert event.raw == parsed
        for path, expected in fields.items():
            actual = _get(event, path)
            assert actual == expected, path
            assert type(actual) is type(expected), path

    @pytest.mark.parametrize(
        ("frame", "cls", "fields"), DOC_FRAMES, ids=[_frame_id(p) for p in DOC_FRAMES]
    )
    def test_doc_frame_decodes_from_utf8_bytes(
        self, frame: str, cls: type[ds.ServerEvent], fields: dict[str, Any]
    ) -> None:
        """The same frame given as UTF-8 bytes decodes to an equal event."""
        assert decode(frame.encode("utf-8")) == decode(frame)

    def test_every_documented_type_has_a_doc_frame_or_is_streaming_only(self) -> None:
        """The fixtures cover every documented type except the two without a doc example."""
        covered = {json.loads(frame)["type"] for frame, _, _ in DOC_FRAMES}
        assert set(DOCUMENTED_SERVER_EVENT_TYPES) - covered == {
            "conversation.item.input_audio_transcription.delta",
            "response.function_call_arguments.delta",
        }

    def test_transcription_delta_decodes(self) -> None:
        """A qwen3.5 transcription delta (no doc example) decodes with its optional fields."""
        frame = {
            "event_id": "event_a1",
            "type": "conversation.item.input_audio_transcription.delta",
            "item_id": "item_1",
            "delta": "今天",
            "stash": "天气",
            "language": "zh",
            "emotion": "neutral",
        }
        event = decode(json.dumps(frame, ensure_ascii=False))
        assert type(event) is ds.ConversationItemInputAudioTranscriptionDelta
        assert (event.item_id, event.delta, event.stash) == ("item_1", "今天", "天气")
        assert (event.language, event.emotion, event.text) == ("zh", "neutral", None)

    def test_function_call_arguments_delta_decodes_with_name(self) -> None:
        """A function-call arguments delta decodes, accepting an optional ``name``."""
        frame = {
            "event_id": "event_a2",
            "type": "response.function_call_arguments.delta",
            "response_id": "resp_1",
            "item_id": "item_1",
            "output_index": 0,
            "call_id": "call_1",
            "name": "get_current_weather",
            "delta": '{"loc',
        }
        event = decode(json.dumps(frame))
        assert type(event) is ds.ResponseFunctionCallArgumentsDelta
        assert (event.call_id, event.name, event.delta) == (
            "call_1",
            "get_current_weather",
            '{"loc',
        )
        unnamed = decode(json.dumps({**frame, "name": None}))
        assert isinstance(unnamed, ds.ResponseFunctionCallArgumentsDelta)
        assert unnamed.name is None

    def test_function_call_output_item_decodes(self) -> None:
        """An output item of type function_call keeps call_id, name and arguments."""
        frame = {
            "event_id": "event_a3",
            "type": "response.output_item.added",
            "response_id": "resp_1",
            "output_index": 0,
            "item": {
                "id": "item_1",
                "type": "function_call",
                "call_id": "call_1",
                "name": "get_current_weather",
                "arguments": "",
            },
        }
        item = decode(json.dumps(frame)).item  # type: ignore[attr-defined]
        assert (item.type, item.call_id, item.name, item.arguments) == (
            "function_call",
            "call_1",
            "get_current_weather",
            "",
        )


class TestEventTypes:
    """The EVENT_TYPES table and the event classes themselves."""

    def test_contains_every_documented_server_event(self) -> None:
        """EVENT_TYPES has a class for every server event type PROTOCOL.md documents."""
        missing = set(DOCUMENTED_SERVER_EVENT_TYPES) - set(ds.EVENT_TYPES)
        assert not missing

    @pytest.mark.parametrize("wire_type", sorted(ds.EVENT_TYPES))
    def test_class_wire_type_matches_key(self, wire_type: str) -> None:
        """Each class's ``type`` class attribute is its key in EVENT_TYPES."""
        assert ds.EVENT_TYPES[wire_type].type == wire_type

    @pytest.mark.parametrize("wire_type", sorted(ds.EVENT_TYPES))
    def test_class_name_is_camel_case_of_wire_type(self, wire_type: str) -> None:
        """Each class is named by its wire type in CamelCase (``error`` is ErrorEvent)."""
        assert ds.EVENT_TYPES[wire_type].__name__ == _expected_class_name(wire_type)

    def test_camel_case_examples(self) -> None:
        """The naming rule gives the documented examples."""
        assert (
            _expected_class_name("conversation.item.input_audio_transcription.completed")
            == "ConversationItemInputAudioTranscriptionCompleted"
        )
        assert _expected_class_name("error") == "ErrorEvent"
        assert _expected_class_name("response.audio.delta") == "ResponseAudioDelta"

    @pytest.mark.parametrize("wire_type", sorted(ds.EVENT_TYPES))
    def test_class_is_exported(self, wire_type: str) -> None:
        """Each event class is exported from dashscope_sync under its own name."""
        cls = ds.EVENT_TYPES[wire_type]
        assert cls.__name__ in ds.__all__
        assert getattr(ds, cls.__name__) is cls

    @pytest.mark.parametrize("wire_type", sorted(ds.EVENT_TYPES))
    def test_class_is_frozen_attrs(self, wire_type: str) -> None:
        """Each event class is an attrs class whose instances cannot be assigned to."""
        cls = ds.EVENT_TYPES[wire_type]
        assert attrs.has(cls)
        assert issubclass(cls, ds.ServerEvent)
        event = cls()
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            event.event_id = "changed"  # type: ignore[misc]
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            event.raw = {}  # type: ignore[misc]

    def test_decoded_event_is_frozen(self) -> None:
        """A decoded event and its nested records refuse assignment."""
        event = decode(FRAME_SESSION_CREATED)
        assert isinstance(event, ds.SessionCreated)
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            event.session = ds.SessionInfo()  # type: ignore[misc]
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            event.session.voice = "Ethan"  # type: ignore[misc]

    @pytest.mark.parametrize(
        "cls", [ds.ErrorInfo, ds.SessionInfo, ds.ContentPart, ds.ConversationItem, ds.ResponseInfo]
    )
    def test_nested_records_are_frozen_attrs(self, cls: type) -> None:
        """The nested records are frozen attrs classes too."""
        assert attrs.has(cls)
        first = attrs.fields(cls)[0].name
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            setattr(cls(), first, "x")

    def test_invalid_frame_and_unknown_event_not_in_table(self) -> None:
        """InvalidFrame and UnknownEvent are not reachable through EVENT_TYPES."""
        assert ds.InvalidFrame not in ds.EVENT_TYPES.values()
        assert ds.UnknownEvent not in ds.EVENT_TYPES.values()
        assert "invalid_frame" not in ds.EVENT_TYPES


class TestDecodeLeniency:
    """Missing, null and extra fields never fail a frame."""

    @pytest.mark.parametrize("wire_type", sorted(ds.EVENT_TYPES))
    def test_type_only_frame_decodes_with_defaults(self, wire_type: str) -> None:
        """A frame with only ``type`` decodes to its class with empty defaults everywhere."""
        cls = ds.EVENT_TYPES[wire_type]
        frame = json.dumps({"type": wire_type})
        event = decode(frame)
        assert type(event) is cls
        assert event == cls()
        assert event.event_id == ""
        assert event.raw == {"type": wire_type}
        for field in attrs.fields(cls):
            if field.name == "raw":
                continue
            assert _is_empty_default(getattr(event, field.name)), field.name

    def test_type_only_session_defaults_are_none(self) -> None:
        """Settings the server left out of a session are None, lists empty, id empty."""
        info = decode('{"type":"session.created","session":{}}').session  # type: ignore[attr-defined]
        assert info.id == ""
        assert info.modalities == [] and info.tools == []
        for name in (
            "voice", "instructions", "turn_detection", "input_audio_transcription", "temperature",
            "top_p", "top_k", "max_tokens", "max_response_output_token", "seed", "smooth_output",
            "enable_search", "search_options", "tool_choice",
        ):  # fmt: skip
            assert getattr(info, name) is None, name

    @pytest.mark.parametrize(
        ("frame", "path"),
        [
            ('{"type":"response.text.delta","delta":null}', "delta"),
            ('{"type":"response.text.delta","item_id":null,"response_id":null}', "item_id"),
            ('{"type":"response.audio_transcript.done","transcript":null}', "transcript"),
            ('{"type":"error","error":{"message":null}}', "error.message"),
            ('{"type":"session.created","session":{"id":null}}', "session.id"),
            ('{"type":"response.done","response":{"status":null}}', "response.status"),
            ('{"type":"input_audio_buffer.committed","event_id":null}', "event_id"),
        ],
    )
    def test_null_string_field_is_empty_not_none_text(self, frame: str, path: str) -> None:
        """An explicit JSON null in a string field decodes to "" (never the text "None")."""
        event = decode(frame)
        assert not isinstance(event, ds.InvalidFrame), event
        assert _get(event, path) == ""

    def test_null_optional_field_is_none(self) -> None:
        """An explicit JSON null in an optional field stays None."""
        event = decode(
            '{"type":"session.updated","session":{"voice":null,"turn_detection":null,"tools":null}}'
        )
        assert isinstance(event, ds.SessionUpdated)
        assert event.session.voice is None
        assert event.session.turn_detection is None
        assert event.session.tools == []

    def test_null_list_field_is_empty_list(self) -> None:
        """An explicit JSON null in a list field decodes to [] like a missing one, not an InvalidFrame."""
        event = decode(
            '{"type":"response.done","response":{"id":"resp_1","modalities":null,"output":null}}'
        )
        assert isinstance(event, ds.ResponseDone), event
        assert event.response.modalities == []
        assert event.response.output == []

    def test_null_int_field_is_zero(self) -> None:
        """An explicit JSON null in an int field decodes to 0."""
        event = decode('{"type":"response.audio.done","output_index":null,"content_index":null}')
        assert isinstance(event, ds.ResponseAudioDone)
        assert (event.output_index, event.content_index) == (0, 0)

    @pytest.mark.parametrize("value", ["inf", 16384])
    def test_max_response_output_token_kept_as_sent(self, value: str | int) -> None:
        """``max_response_output_token`` keeps the string "inf" or the number as sent."""
        frame = json.dumps(
            {"type": "session.updated", "session": {"max_response_output_token": value}}
        )
        event = decode(frame)
        assert isinstance(event, ds.SessionUpdated)
        assert event.session.max_response_output_token == value
        assert type(event.session.max_response_output_token) is type(value)

    def test_unknown_keys_ignored_but_kept_in_raw(self) -> None:
        """Unknown keys, top-level and nested, are ignored by decoding but stay in ``raw``."""
        frame = {
            "event_id": "event_x",
            "type": "session.updated",
            "brand_new": {"nested": [1, 2]},
            "session": {"id": "sess_1", "audio": {"output": {"format": {"sample_rate": 24000}}}},
        }
        event = decode(json.dumps(frame))
        assert isinstance(event, ds.SessionUpdated)
        assert event.session.id == "sess_1"
        assert not hasattr(event, "brand_new")
        assert event.raw == frame
        assert event.raw["brand_new"] == {"nested": [1, 2]}
        assert event.raw["session"]["audio"]["output"]["format"]["sample_rate"] == 24000

    def test_unknown_keys_in_text_delta(self) -> None:
        """Extra keys on a streaming event do not disturb its known fields."""
        event = decode('{"type":"response.text.delta","delta":"a","stash":"x","seq":7}')
        assert isinstance(event, ds.ResponseTextDelta)
        assert event.delta == "a"
        assert event.raw["seq"] == 7

    def test_raw_is_the_parsed_frame_not_a_copy_with_changes(self) -> None:
        """``raw`` holds the audio delta's base64 text as received, not the decoded bytes."""
        event = decode(FRAME_AUDIO_DELTA)
        assert event.raw["delta"] == AUDIO_B64

    def test_raw_not_part_of_equality(self) -> None:
        """Two events with the same fields compare equal even if their raw frames differ."""
        a = decode('{"type":"response.text.delta","delta":"a"}')
        b = decode('{"type":"response.text.delta","delta":"a","extra":1}')
        assert a == b


class TestDecodeAudio:
    """``response.audio.delta`` carries decoded PCM; bad base64 is an InvalidFrame."""

    def test_delta_is_decoded_bytes(self) -> None:
        """The delta is the base64-decoded PCM as bytes."""
        pcm = bytes(range(256)) * 10
        frame = json.dumps(
            {"type": "response.audio.delta", "delta": base64.b64encode(pcm).decode()}
        )
        event = decode(frame)
        assert isinstance(event, ds.ResponseAudioDelta)
        assert isinstance(event.delta, bytes)
        assert event.delta == pcm

    def test_empty_and_null_delta_are_empty_bytes(self) -> None:
        """An empty or null audio delta decodes to b""."""
        for value in ("", None):
            event = decode(json.dumps({"type": "response.audio.delta", "delta": value}))
            assert isinstance(event, ds.ResponseAudioDelta)
            assert event.delta == b""

    @pytest.mark.parametrize(
        "bad",
        [
            "SECRETPAYLOAD***not*base64***",  # characters outside the alphabet
            "SECRETPAYLOADab",  # length not a multiple of 4
            "U0VDUkVUUEFZTE9BRA=",  # wrong padding
            "U0VD UkVU",  # embedded space
            "U0VDUkVU==U0VD",  # data after padding
        ],
    )
    def test_bad_base64_is_invalid_frame(self, bad: str, caplog: pytest.LogCaptureFixture) -> None:
        """Bad base64 gives an InvalidFrame naming the type, and a WARNING without the payload."""
        frame = json.dumps({"event_id": "event_b", "type": "response.audio.delta", "delta": bad})
        with caplog.at_level(logging.DEBUG):
            event = decode(frame)
        assert isinstance(event, ds.InvalidFrame)
        assert event.wire_type == "response.audio.delta"
        assert "response.audio.delta" in event.error
        assert event.length == len(frame)
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert warnings, "no WARNING logged"
        assert any("response.audio.delta" in r.getMessage() for r in warnings)
        for record in caplog.records:
            assert bad not in record.getMessage()
            assert "SECRETPAYLOAD" not in record.getMessage()
            assert "U0VD" not in record.getMessage()

    def test_non_string_delta_is_invalid_frame(self) -> None:
        """A number where base64 text is expected gives an InvalidFrame, not bytes."""
        event = decode('{"type":"response.audio.delta","delta":12345}')
        assert isinstance(event, ds.InvalidFrame)
        assert event.wire_type == "response.audio.delta"

    def test_bad_field_value_not_logged(self, caplog: pytest.LogCaptureFixture) -> None:
        """A field of the wrong shape logs a WARNING that does not quote the field's value."""
        frame = '{"type":"input_audio_buffer.speech_started","audio_start_ms":"SECRETVALUE"}'
        with caplog.at_level(logging.DEBUG):
            event = decode(frame)
        assert isinstance(event, ds.InvalidFrame)
        assert any(r.levelno == logging.WARNING for r in caplog.records)
        for record in caplog.records:
            assert "SECRETVALUE" not in record.getMessage()


class TestDecodeUnknown:
    """Unknown wire types become UnknownEvent, never another class."""

    @pytest.mark.parametrize(
        "wire_type",
        [
            "conversation.item.truncated",
            "response.output_audio.delta",
            "response.output_text.done",
            "conversation.created",
            "Response.Done",
            "response.done ",
            "invalid_frame",
            "x.y",
        ],
    )
    def test_unknown_type_gives_unknown_event(self, wire_type: str) -> None:
        """A frame of an undocumented type decodes to UnknownEvent with its type, raw and event_id."""
        frame = {"event_id": "event_u1", "type": wire_type, "payload": {"a": [1, 2]}}
        event = decode(json.dumps(frame))
        assert type(event) is ds.UnknownEvent
        assert event.type == wire_type
        assert event.raw == frame
        assert event.event_id == "event_u1"

    def test_unknown_event_without_event_id(self) -> None:
        """An unknown event with no (or a non-string) event_id has event_id ""."""
        assert decode('{"type":"x.y"}').event_id == ""
        assert decode('{"type":"x.y","event_id":7}').event_id == ""

    def test_unknown_event_positional_construction(self) -> None:
        """UnknownEvent(type, raw) is constructible positionally and reads event_id from raw."""
        event = ds.UnknownEvent("x.y", {"type": "x.y", "event_id": "e1"})
        assert event.type == "x.y"
        assert event.event_id == "e1"
        assert event.raw == {"type": "x.y", "event_id": "e1"}
        assert isinstance(event, ds.ServerEvent)

    def test_unknown_event_explicit_event_id(self) -> None:
        """An explicit event_id argument wins over raw's."""
        assert ds.UnknownEvent("x.y", {"event_id": "e1"}, "e2").event_id == "e2"

    def test_unknown_event_is_frozen(self) -> None:
        """An UnknownEvent refuses assignment."""
        event = ds.UnknownEvent("x.y", {"type": "x.y"})
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            event.type = "other"  # type: ignore[misc]

    def test_unknown_event_type_is_per_instance(self) -> None:
        """Two UnknownEvents keep their own wire types."""
        a = ds.UnknownEvent("a.b", {})
        b = ds.UnknownEvent("c.d", {})
        assert (a.type, b.type) == ("a.b", "c.d")


LONG_TEXT = "x" * 10_000


class TestDecodeInvalid:
    """Frames that cannot be decoded become InvalidFrame; decode never raises."""

    @pytest.mark.parametrize(
        ("data", "needle"),
        [
            ("not json", "JSON"),
            ("", "JSON"),
            ("{", "JSON"),
            ("[1, 2, 3]", "list"),
            ('"hello"', "str"),
            ("null", "NoneType"),
            ("42", "int"),
            ('{"event_id":"event_1"}', "type"),
            ('{"type":5}', "type"),
            ('{"type":null}', "type"),
            ('{"type":["error"]}', "type"),
            (b'{"type":"response.text.delta","delta":"\xff\xfe"}', "UTF-8"),
            ('{"type":"session.created","session":"oops"}', "session.created"),
            ('{"type":"session.created","session":5}', "session.created"),
            ('{"type":"session.created","session":["a"]}', "session.created"),
            ('{"type":"response.done","response":"resp_1"}', "response.done"),
            ('{"type":"error","error":"boom"}', "error"),
            ('{"type":"conversation.item.created","item":"item_1"}', "conversation.item.created"),
            ('{"type":"response.content_part.done","part":"text"}', "response.content_part.done"),
            ('{"type":"session.updated","session":{"turn_detection":"on"}}', "session.updated"),
            ('{"type":"session.updated","session":{"tools":"none"}}', "session.updated"),
            (
                '{"type":"input_audio_buffer.speech_started","audio_start_ms":"soon"}',
                "speech_started",
            ),
        ],
    )
    def test_invalid_frame(self, data: str | bytes, needle: str) -> None:
        """The frame gives an InvalidFrame with type, length, text and an error naming the problem."""
        event = decode(data)
        assert type(event) is ds.InvalidFrame
        assert event.type == "invalid_frame"
        assert event.length == len(data)
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
        assert event.text == text[:200]
        assert event.error
        assert needle in event.error

    def test_wrong_shape_records_wire_type(self) -> None:
        """A readable type with a wrong-shaped field is reported as that wire type."""
        event = decode('{"type":"session.created","session":"oops"}')
        assert isinstance(event, ds.InvalidFrame)
        assert event.wire_type == "session.created"

    def test_no_type_has_no_wire_type(self) -> None:
        """A frame without a readable type has wire_type None."""
        event = decode('{"type":5}')
        assert isinstance(event, ds.InvalidFrame)
        assert event.wire_type is None

    @pytest.mark.parametrize("data", [LONG_TEXT, '["' + LONG_TEXT + '"]'])
    def test_long_frame_text_shortened(self, data: str) -> None:
        """A long undecodable frame keeps its full length but at most 200 chars of text."""
        event = decode(data)
        assert isinstance(event, ds.InvalidFrame)
        assert event.length == len(data)
        assert len(event.text) <= 200
        assert event.text == data[:200]
        assert _protocol.INVALID_TEXT_KEEP == 200

    def test_long_bytes_frame_shortened(self) -> None:
        """A long undecodable bytes frame reports its byte length and shortened text."""
        data = b"\xff" + b"y" * 5000
        event = decode(data)
        assert isinstance(event, ds.InvalidFrame)
        assert event.length == len(data)
        assert len(event.text) <= 200

    def test_invalid_frame_logs_warning(self, caplog: pytest.LogCaptureFixture) -> None:
        """An undecodable frame logs one WARNING on the dashscope_sync logger, without its text."""
        with caplog.at_level(logging.DEBUG, logger="dashscope_sync"):
            decode("garbage-SECRETTEXT-garbage")
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1
        assert warnings[0].name == "dashscope_sync"
        assert "SECRETTEXT" not in warnings[0].getMessage()

    def test_decode_binary(self, caplog: pytest.LogCaptureFixture) -> None:
        """decode_binary reports a binary frame as an InvalidFrame with its byte length and no text."""
        payload = b"\x00\x01\x02binary\xff"
        with caplog.at_level(logging.DEBUG, logger="dashscope_sync"):
            event = decode_binary(payload)
        assert type(event) is ds.InvalidFrame
        assert event.type == "invalid_frame"
        assert event.length == len(payload)
        assert event.text == ""
        assert "binary" in event.error
        assert any(r.levelno == logging.WARNING for r in caplog.records)

    def test_decode_binary_of_valid_json(self) -> None:
        """Even a binary frame holding valid event JSON is an InvalidFrame."""
        event = decode_binary(FRAME_SESSION_FINISHED.encode())
        assert type(event) is ds.InvalidFrame

    def test_invalid_frame_is_server_event_and_frozen(self) -> None:
        """InvalidFrame is a ServerEvent and cannot be modified."""
        event = decode("nope")
        assert isinstance(event, ds.InvalidFrame)
        assert isinstance(event, ds.ServerEvent)
        assert ds.InvalidFrame.type == "invalid_frame"
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            event.error = ""  # type: ignore[misc]


class TestEventRepr:
    """repr() of events stays short: no audio, no long text, no raw frame."""

    def test_audio_delta_repr_shows_byte_count(self) -> None:
        """An audio delta of 48000 bytes reprs as ``<48000 bytes>`` without base64."""
        pcm = bytes(range(256)) * 187 + bytes(128)
        assert len(pcm) == 48000
        b64 = base64.b64encode(pcm).decode()
        event = decode(
            json.dumps({"event_id": "event_r", "type": "response.audio.delta", "delta": b64})
        )
        text = repr(event)
        assert "<48000 bytes>" in text
        assert b64[:16] not in text
        assert "raw" not in text
        assert len(text) < 300

    def test_long_transcript_truncated(self) -> None:
        """A 10k-char transcript is truncated in repr."""
        transcript = "你" * 10_000
        event = decode(
            json.dumps({"type": "response.audio_transcript.done", "transcript": transcript})
        )
        text = repr(event)
        assert len(text) < 300
        assert transcript not in text
        assert "..." in text

    @pytest.mark.parametrize(
        ("frame", "cls", "fields"), DOC_FRAMES, ids=[_frame_id(p) for p in DOC_FRAMES]
    )
    def test_doc_frame_repr_short_without_raw(
        self, frame: str, cls: type[ds.ServerEvent], fields: dict[str, Any]
    ) -> None:
        """No documented frame's repr shows ``raw`` or grows past a screenful."""
        text = repr(decode(frame))
        assert text.startswith(cls.__name__ + "(")
        assert "raw=" not in text
        assert AUDIO_B64 not in text
        assert len(text) < 1200

    def test_unknown_event_repr_hides_raw(self) -> None:
        """An UnknownEvent's repr shows its type, not its raw payload."""
        event = ds.UnknownEvent("x.y", {"type": "x.y", "secret": "SECRET" * 100})
        text = repr(event)
        assert "x.y" in text
        assert "SECRET" not in text

    def test_invalid_frame_repr_short(self) -> None:
        """An InvalidFrame of a long frame has a short repr."""
        assert len(repr(decode(LONG_TEXT))) < 600


class TestEventIds:
    """Client event ids."""

    def test_unique_across_many_calls(self) -> None:
        """10_000 ids from one generator are all distinct."""
        ids = EventIds()
        values = [ids.next() for _ in range(10_000)]
        assert len(set(values)) == 10_000

    def test_unique_across_instances(self) -> None:
        """Two generators never produce the same id."""
        a, b = EventIds(), EventIds()
        first = {a.next() for _ in range(1000)}
        second = {b.next() for _ in range(1000)}
        assert not first & second

    def test_format(self) -> None:
        """Ids start with ``event_`` and need no JSON escaping."""
        value = EventIds().next()
        assert value.startswith("event_")
        assert re.fullmatch(r"event_[0-9A-Za-z_]+", value)
        assert json.dumps(value) == f'"{value}"'


class TestEncode:
    """Encoding client events."""

    def test_dumps_compact(self) -> None:
        """dumps uses no spaces after separators."""
        text = dumps({"type": "input_audio_buffer.commit", "event_id": "event_1", "x": [1, 2]})
        assert text == '{"type":"input_audio_buffer.commit","event_id":"event_1","x":[1,2]}'

    def test_dumps_keeps_non_ascii(self) -> None:
        """dumps writes Chinese text as is, not as \\u escapes."""
        text = dumps({"type": "session.update", "session": {"instructions": "你好，世界"}})
        assert "你好，世界" in text
        assert "\\u" not in text
        assert json.loads(text)["session"]["instructions"] == "你好，世界"

    @pytest.mark.parametrize("pcm", [b"", AUDIO_PCM, bytes(range(256)) * 13])
    def test_encode_audio_append(self, pcm: bytes) -> None:
        """The audio append frame is JSON with the type, the event_id and base64 of the PCM."""
        text = encode_audio_append("event_abc_1", pcm)
        obj = json.loads(text)
        assert obj == {
            "event_id": "event_abc_1",
            "type": "input_audio_buffer.append",
            "audio": base64.b64encode(pcm).decode("ascii"),
        }
        assert base64.b64decode(obj["audio"], validate=True) == pcm

    @pytest.mark.parametrize("jpeg", [b"\xff\xd8\xff\xe0" + bytes(1000) + b"\xff\xd9", b""])
    def test_encode_image_append(self, jpeg: bytes) -> None:
        """The image append frame is JSON with the type, the event_id and base64 of the JPEG."""
        obj = json.loads(encode_image_append("event_abc_2", jpeg))
        assert obj["type"] == "input_image_buffer.append"
        assert obj["event_id"] == "event_abc_2"
        assert base64.b64decode(obj["image"], validate=True) == jpeg
        assert set(obj) == {"event_id", "type", "image"}

    def test_encode_with_generated_id(self) -> None:
        """A generated id goes through the audio frame unchanged."""
        eid = EventIds().next()
        assert json.loads(encode_audio_append(eid, b"\x01\x02"))["event_id"] == eid

    def test_b64encode_standard_no_newline(self) -> None:
        """b64encode gives standard base64 text without a trailing newline."""
        data = bytes(range(256)) * 4
        assert _protocol.b64encode(data) == base64.b64encode(data).decode("ascii")
        assert "\n" not in _protocol.b64encode(data)
