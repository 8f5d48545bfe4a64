"""The family events of MODEL_FAMILIES.md §7 and the two shapes of the session echo."""

from __future__ import annotations

import json
from typing import Any

import pytest

import dashscope_sync as ds
from dashscope_sync._wire.codec import decode
from dashscope_sync.testing import LocalRealtimeServer

# Both modes (issue 18): each test runs with threads and again on a ds.Reactor.
pytestmark = pytest.mark.both_modes

# Composed from MODEL_FAMILIES.md §7 (the sources' own examples).
FRAMES: list[tuple[dict[str, Any], type[ds.ServerEvent], dict[str, Any]]] = [
    (
        {
            "type": "conversation.item.input_audio_transcription.text",
            "item_id": "item_1",
            "text": "今天天气",
            "stash": "怎么样",
        },
        ds.ConversationItemInputAudioTranscriptionText,
        {"item_id": "item_1", "text": "今天天气", "stash": "怎么样"},
    ),
    (
        {
            "type": "response.audio_transcript.text",
            "response_id": "resp_1",
            "item_id": "item_2",
            "output_index": 0,
            "content_index": 0,
            "text": "The weather today",
            "stash": " is",
        },
        ds.ResponseAudioTranscriptText,
        {"response_id": "resp_1", "item_id": "item_2", "text": "The weather today", "stash": " is"},
    ),
    (
        {
            "type": "response.text.text",
            "response_id": "resp_1",
            "item_id": "item_2",
            "text": "The weather",
            "stash": " today",
        },
        ds.ResponseTextText,
        {"response_id": "resp_1", "text": "The weather", "stash": " today"},
    ),
    (
        {
            "type": "conversation.item.ambient_audio_transcription.delta",
            "item_id": "item_9",
            "text": "嗯",
            "stash": "",
        },
        ds.ConversationItemAmbientAudioTranscriptionDelta,
        {"item_id": "item_9", "text": "嗯", "stash": ""},
    ),
    (
        {
            "type": "conversation.item.ambient_audio_transcription.completed",
            "item_id": "item_9",
            "transcript": "嗯",
        },
        ds.ConversationItemAmbientAudioTranscriptionCompleted,
        {"item_id": "item_9", "transcript": "嗯", "value": "嗯"},
    ),
    (
        {"type": "voiceprint_audio_list.in_progress", "item_id": "item_v"},
        ds.VoiceprintAudioListInProgress,
        {"item_id": "item_v"},
    ),
    (
        {"type": "voiceprint_audio_list.completed", "item_id": "item_v"},
        ds.VoiceprintAudioListCompleted,
        {"item_id": "item_v"},
    ),
    (
        {"type": "voiceprint_audio_list.failed", "item_id": "item_v", "reason": "download failed"},
        ds.VoiceprintAudioListFailed,
        {"item_id": "item_v", "reason": "download failed"},
    ),
    (
        {
            "type": "conversation.item.retrieved",
            "item": {
                "id": "item_3",
                "type": "message",
                "role": "user",
                "content": [{"type": "input_audio", "transcript": "hello"}],
            },
        },
        ds.ConversationItemRetrieved,
        {"item.id": "item_3", "item.role": "user", "item.content.0.value": "hello"},
    ),
    (
        {"type": "conversation.item.deleted", "item_id": "item_3"},
        ds.ConversationItemDeleted,
        {"item_id": "item_3"},
    ),
    (
        {
            "type": "rate_limits.updated",
            "rate_limits": [
                {"name": "requests", "limit": 60, "remaining": 59, "reset_seconds": 1.5},
            ],
        },
        ds.RateLimitsUpdated,
        {"rate_limits.0.name": "requests", "rate_limits.0.remaining": 59},
    ),
]


def _path(obj: object, path: str) -> object:
    for part in path.split("."):
        obj = obj[int(part)] if part.isdigit() else getattr(obj, part)  # type: ignore[index]
    return obj


@pytest.mark.parametrize(("frame", "cls", "fields"), FRAMES, ids=[f["type"] for f, _, _ in FRAMES])
def test_documented_frame_decodes(
    frame: dict[str, Any], cls: type[ds.ServerEvent], fields: dict[str, Any]
) -> None:
    """Each family event decodes its documented frame into its class and fields."""
    event = decode(json.dumps({"event_id": "event_1", **frame}))
    assert type(event) is cls
    assert event.type == frame["type"]
    assert event.event_id == "event_1"
    for path, value in fields.items():
        assert _path(event, path) == value


@pytest.mark.parametrize("cls", sorted({c for _, c, _ in FRAMES}, key=lambda c: c.type))
def test_registered_and_exported(cls: type[ds.ServerEvent]) -> None:
    """Every family event is in the one type table and exported by the package."""
    assert ds.EVENT_TYPES[cls.type] is cls
    assert getattr(ds, cls.__name__) is cls


def test_missing_fields_take_defaults() -> None:
    """A family event with only its type decodes to defaults, never an InvalidFrame."""
    event = decode('{"type":"voiceprint_audio_list.failed"}')
    assert isinstance(event, ds.VoiceprintAudioListFailed)
    assert event.reason == ""


def test_ambient_completed_reads_text_too() -> None:
    """An ambient .completed that carries `text` instead of `transcript` still has a value."""
    event = decode(
        '{"type":"conversation.item.ambient_audio_transcription.completed","text":"嗯嗯"}'
    )
    assert isinstance(event, ds.ConversationItemAmbientAudioTranscriptionCompleted)
    assert event.value == "嗯嗯"


FLAT = {
    "id": "sess_1",
    "modalities": ["text", "audio"],
    "voice": "Tina",
    "input_audio_format": "pcm",
    "output_audio_format": "pcm",
    "turn_detection": {"type": "server_vad"},
    "input_audio_transcription": {"model": "qwen3-asr-flash-realtime"},
}
NESTED = {
    "id": "sess_1",
    "output_modalities": ["text", "audio"],
    "audio": {
        "input": {
            "format": {"type": "pcm", "sample_rate": 16000},
            "turn_detection": {"type": "server_vad"},
            "transcription": {"model": "qwen3-asr-flash-realtime"},
        },
        "output": {"voice": "Tina", "format": {"type": "pcm", "sample_rate": 24000}},
    },
}


class TestSessionInfoShapes:
    """SessionInfo reads the flat and the nested echo into the same attributes."""

    @pytest.mark.parametrize("kind", ["session.created", "session.updated"])
    def test_same_attributes(self, kind: str) -> None:
        """info.voice, formats, modalities, turn detection and transcription agree across shapes."""
        flat = decode(json.dumps({"type": kind, "session": FLAT}))
        nested = decode(json.dumps({"type": kind, "session": NESTED}))
        assert isinstance(flat, (ds.SessionCreated, ds.SessionUpdated))
        assert isinstance(nested, (ds.SessionCreated, ds.SessionUpdated))
        for name in (
            "id",
            "modalities",
            "voice",
            "input_audio_format",
            "output_audio_format",
            "turn_detection",
            "input_audio_transcription",
        ):
            assert getattr(flat.session, name) == getattr(nested.session, name), name
        assert nested.session.input_sample_rate == 16000
        assert nested.session.output_sample_rate == 24000

    def test_flat_wins_when_both(self) -> None:
        """When the server echoes both shapes, the flat value is the attribute."""
        both = {**NESTED, "voice": "Cherry"}
        event = decode(json.dumps({"type": "session.updated", "session": both}))
        assert isinstance(event, ds.SessionUpdated)
        assert event.session.voice == "Cherry"

    def test_nested_manual_mode(self) -> None:
        """A nested turn_detection of null reads as manual mode (None)."""
        session = {"id": "s", "audio": {"input": {"turn_detection": None}}}
        event = decode(json.dumps({"type": "session.updated", "session": session}))
        assert isinstance(event, ds.SessionUpdated)
        assert event.session.turn_detection is None

    def test_livetranslate_flat_sample_rate(self) -> None:
        """LiveTranslate's flat sample_rate is the input sample rate; translation is kept."""
        session = {
            "id": "s",
            "sample_rate": 16000,
            "translation": {"language": "en"},
            "enable_voice_clone": True,
            "voice_clone_options": {"frequency": "once"},
        }
        event = decode(json.dumps({"type": "session.created", "session": session}))
        assert isinstance(event, ds.SessionCreated)
        info = event.session
        assert info.input_sample_rate == 16000
        assert info.translation == {"language": "en"}
        assert info.enable_voice_clone is True
        assert info.voice_clone_options == {"frequency": "once"}

    def test_qwen_audio_fields(self) -> None:
        """Qwen-Audio's max_history_turns and enable_speech_emotion are read."""
        session = {"id": "s", "max_history_turns": 20, "enable_speech_emotion": False}
        event = decode(json.dumps({"type": "session.created", "session": session}))
        assert isinstance(event, ds.SessionCreated)
        assert event.session.max_history_turns == 20
        assert event.session.enable_speech_emotion is False

    def test_bad_nested_shape_is_not_fatal(self) -> None:
        """A nested audio object of an unexpected shape leaves the flat attributes unset."""
        session = {"id": "s", "audio": "pcm"}
        event = decode(json.dumps({"type": "session.created", "session": session}))
        assert isinstance(event, ds.SessionCreated)
        assert event.session.voice is None


def test_delivered_by_class(session: ds.RealtimeSession, server: LocalRealtimeServer) -> None:
    """A family event from the socket reaches handlers and wait_for by its class."""
    seen: list[ds.ServerEvent] = []
    session.on(ds.ResponseTextText, seen.append)
    server.send({"type": "response.text.text", "response_id": "r", "text": "Hi", "stash": " th"})
    event = session.wait_for(ds.ResponseTextText, timeout=10)
    assert (event.text, event.stash) == ("Hi", " th")
    session.close()
    assert seen == [event]


def test_booleans_stay_booleans() -> None:
    """Boolean session settings decode as True/False, not as the integers 1/0."""
    session = {"id": "s", "enable_search": True, "smooth_output": False}
    event = decode(json.dumps({"type": "session.created", "session": session}))
    assert isinstance(event, ds.SessionCreated)
    assert event.session.enable_search is True
    assert event.session.smooth_output is False


@pytest.mark.parametrize(("wire", "value"), [("1", True), ("0", False), ('"false"', False)])
def test_boolean_spellings(wire: str, value: bool) -> None:
    """A boolean sent as a number or as "true"/"false" text decodes to that boolean."""
    event = decode('{"type":"session.created","session":{"enable_search":' + wire + "}}")
    assert isinstance(event, ds.SessionCreated)
    assert event.session.enable_search is value


def test_boolean_garbage_is_an_invalid_frame() -> None:
    """A boolean setting with a value that is no boolean makes the frame an InvalidFrame."""
    event = decode('{"type":"session.created","session":{"enable_search":"maybe"}}')
    assert isinstance(event, ds.InvalidFrame)
