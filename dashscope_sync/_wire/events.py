"""Typed, frozen records of the server events.

One class per server event of PROTOCOL.md section 3, named by its wire type
in CamelCase (``response.audio.delta`` -> `ResponseAudioDelta`). Each has:

* ``type``: the wire type, also readable on the class (``ResponseAudioDelta.type``);
* ``event_id``: the server's id of the event (empty when the server sent none);
* ``raw``: the whole decoded frame, so fields this library does not model
  yet stay reachable.

Decoding is lenient because the service's documentation contradicts itself:
a missing field takes its default (empty string, 0, empty list, or None for a
setting the server may leave out) and never fails the frame. Frames of a type
this library does not know become `UnknownEvent`; frames that cannot be
decoded at all become `InvalidFrame`. Neither ever raises.

All records are immutable and safe to share between threads.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, cast

import attrs

__all__ = [
    "EVENT_TYPES",
    "ContentPart",
    "ConversationItem",
    "ConversationItemCreated",
    "ConversationItemInputAudioTranscriptionCompleted",
    "ConversationItemInputAudioTranscriptionDelta",
    "ConversationItemInputAudioTranscriptionFailed",
    "ConversationItemInputAudioTranscriptionText",
    "ErrorEvent",
    "ErrorInfo",
    "InputAudioBufferCleared",
    "InputAudioBufferCommitted",
    "InputAudioBufferSpeechStarted",
    "InputAudioBufferSpeechStopped",
    "InvalidFrame",
    "ResponseAudioDelta",
    "ResponseAudioDone",
    "ResponseAudioTranscriptDelta",
    "ResponseAudioTranscriptDone",
    "ResponseContentPartAdded",
    "ResponseContentPartDone",
    "ResponseCreated",
    "ResponseDone",
    "ResponseFunctionCallArgumentsDelta",
    "ResponseFunctionCallArgumentsDone",
    "ResponseInfo",
    "ResponseOutputItemAdded",
    "ResponseOutputItemDone",
    "ResponseTextDelta",
    "ResponseTextDone",
    "ServerEvent",
    "SessionCreated",
    "SessionFinished",
    "SessionInfo",
    "SessionUpdated",
    "TokenDetails",
    "UnknownEvent",
    "Usage",
    # Family events, kept apart (see the end of the module).
    "ConversationItemAmbientAudioTranscriptionCompleted",
    "ConversationItemAmbientAudioTranscriptionDelta",
    "ConversationItemDeleted",
    "ConversationItemRetrieved",
    "InputTextBufferCleared",
    "InputTextBufferCommitted",
    "RateLimit",
    "RateLimitsUpdated",
    "ResponseAudioTranscriptText",
    "ResponseTextText",
    "VoiceprintAudioListCompleted",
    "VoiceprintAudioListFailed",
    "VoiceprintAudioListInProgress",
]

_MAX_REPR_TEXT = 60
_MAX_REPR_ITEMS = 3


def _short(value: object) -> str:
    """Render a field for repr() without dumping audio or long text."""
    if isinstance(value, (bytes, bytearray)):
        return f"<{len(value)} bytes>"
    if isinstance(value, str):
        if len(value) > _MAX_REPR_TEXT:
            return f"{value[:_MAX_REPR_TEXT]!r}...(+{len(value) - _MAX_REPR_TEXT} chars)"
        return repr(value)
    if isinstance(value, list):
        shown = ", ".join(_short(v) for v in value[:_MAX_REPR_ITEMS])
        more = f", ...(+{len(value) - _MAX_REPR_ITEMS})" if len(value) > _MAX_REPR_ITEMS else ""
        return f"[{shown}{more}]"
    if isinstance(value, dict):
        keys = list(value)
        shown = ", ".join(f"{k!r}: {_short(value[k])}" for k in keys[:_MAX_REPR_ITEMS])
        more = f", ...(+{len(keys) - _MAX_REPR_ITEMS})" if len(keys) > _MAX_REPR_ITEMS else ""
        return f"{{{shown}{more}}}"
    return repr(value)


class _ShortRepr:
    """repr() that shows only the fields that differ from their defaults, shortened."""

    __slots__ = ()

    def __repr__(self) -> str:
        parts = []
        for field in attrs.fields(cast("type[attrs.AttrsInstance]", type(self))):
            if not field.repr:
                continue
            value = getattr(self, field.name)
            default = field.default
            if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
                default = default.factory()
            if value == default and field.name != "type":
                continue
            parts.append(f"{field.name}={_short(value)}")
        return f"{type(self).__name__}({', '.join(parts)})"


# Nested records -------------------------------------------------------------


@attrs.frozen(kw_only=True, repr=False)
class ErrorInfo(_ShortRepr):
    """The ``error`` object of an ``error`` event (or of a failed transcription).

    Attributes:
        type: ``"invalid_request_error"`` for client mistakes, ``"server_error"``...
        code: The error code (``"invalid_value"``, a gateway code...), if given.
        message: The human-readable message.
        param: The request field at fault (``"session.modalities"``), if given.
        event_id: The id of the client event that failed, if the server named it.
    """

    type: str | None = None
    code: str | None = None
    message: str = ""
    param: str | None = None
    event_id: str | None = None


@attrs.frozen(kw_only=True, repr=False)
class SessionInfo(_ShortRepr):
    """The effective session configuration from ``session.created``/``session.updated``.

    Settings the server left out are None. Nested settings whose shape
    differs between model families (``turn_detection``,
    ``input_audio_transcription``, ``tools``...) are kept as the server sent them.
    """

    id: str = ""
    object: str | None = None
    model: str | None = None
    modalities: list[str] = attrs.Factory(list)
    voice: str | None = None
    instructions: str | None = None
    input_audio_format: str | None = None
    output_audio_format: str | None = None
    input_audio_transcription: dict[str, Any] | None = None
    turn_detection: dict[str, Any] | None = None
    tools: list[dict[str, Any]] = attrs.Factory(list)
    tool_choice: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    max_tokens: int | None = None
    #: The server echoes this as the string ``"inf"`` or a number.
    max_response_output_token: int | str | None = None
    repetition_penalty: float | None = None
    presence_penalty: float | None = None
    seed: int | None = None
    smooth_output: bool | None = None
    enable_search: bool | None = None
    search_options: dict[str, Any] | None = None
    # Fields of the newer families (MODEL_FAMILIES.md §4). The nested echo of
    # Omni 3.8 / LiveTranslate 3.8 (``audio.output.voice``,
    # ``audio.input.format``, ``audio.input.turn_detection``,
    # ``output_modalities``) is decoded into the flat attributes above, so
    # ``info.voice`` is right whichever shape the server used.
    #: The input audio's sample rate (``audio.input.format.sample_rate`` or a flat
    #: ``sample_rate``, except Qwen-TTS-Realtime's, which is the output's); None: not echoed.
    input_sample_rate: int | None = None
    #: The output audio's sample rate (``audio.output.format.sample_rate``, or
    #: Qwen-TTS-Realtime's flat ``sample_rate``); None: not echoed.
    output_sample_rate: int | None = None
    #: LiveTranslate: ``{"language": <target>, "corpus": ..., ...}`` as echoed.
    translation: dict[str, Any] | None = None
    enable_voice_clone: bool | None = None
    voice_clone_options: dict[str, Any] | None = None
    #: Qwen-Audio: how many turns of history the model keeps (1-50).
    max_history_turns: int | None = None
    enable_speech_emotion: bool | None = None
    #: LiveTranslate 3.8: the echoed input modalities.
    input_modalities: list[str] = attrs.Factory(list)
    #: Qwen-TTS-Realtime: ``server_commit`` or ``commit``.
    mode: str | None = None
    #: Qwen-TTS-Realtime: the language of the text (``Auto``, ``Chinese``...).
    language_type: str | None = None
    #: Qwen-TTS-Realtime: the audio format of the speech (``pcm``, ``wav``, ``mp3``, ``opus``).
    response_format: str | None = None
    #: The flat ``sample_rate`` as echoed (Qwen-TTS-Realtime: the speech's rate).
    sample_rate: int | None = None


@attrs.frozen(kw_only=True, repr=False)
class ContentPart(_ShortRepr):
    """One content part of a conversation item.

    The service puts a spoken reply's text in ``text`` in some events and in
    ``transcript`` in others; `value` gives whichever is set.
    """

    type: str = ""
    text: str | None = None
    transcript: str | None = None

    @property
    def value(self) -> str:
        """The part's text or transcript, whichever the server sent (else empty)."""
        return self.text or self.transcript or ""


@attrs.frozen(kw_only=True, repr=False)
class ConversationItem(_ShortRepr):
    """A conversation item: a message, a function call or a function call's output."""

    id: str = ""
    object: str | None = None
    type: str = ""
    status: str | None = None
    role: str | None = None
    content: list[ContentPart] = attrs.Factory(list)
    call_id: str | None = None
    name: str | None = None
    arguments: str | None = None
    output: str | None = None


@attrs.frozen(kw_only=True, repr=False)
class TokenDetails(_ShortRepr):
    """How many tokens of each kind: the ``*_tokens_details`` objects of `Usage`.

    Kinds the server did not count are 0.
    """

    text_tokens: int = 0
    audio_tokens: int = 0
    image_tokens: int = 0


@attrs.frozen(kw_only=True, repr=False)
class Usage(_ShortRepr):
    """The token accounting of one response (``response.usage`` of ``response.done``).

    Decoded leniently: a count the server left out (or sent as something
    other than a number) is 0, and keys this library does not know are
    ignored (the whole frame stays in the event's ``raw``).

    Attributes:
        total_tokens: Input plus output tokens.
        input_tokens: Tokens of the conversation the model read.
        output_tokens: Tokens the model produced.
        input_tokens_details: The input tokens by kind (text, audio, image).
        output_tokens_details: The output tokens by kind (text, audio).
        characters: Characters of text billed (Qwen3-TTS-Realtime), else 0.
    """

    total_tokens: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    input_tokens_details: TokenDetails = attrs.Factory(TokenDetails)
    output_tokens_details: TokenDetails = attrs.Factory(TokenDetails)
    #: Qwen3-TTS-Realtime bills characters of text, not tokens.
    characters: int = 0

    def __repr__(self) -> str:
        # One short line (a notebook wraps a long one mid-word): each detail
        # object as its nonzero counts next to its total, e.g.
        # ``Usage(total_tokens=98, input_tokens=3 (text 3), output_tokens=95 (text 24, audio 71))``.
        parts = [f"total_tokens={self.total_tokens}"] if self.total_tokens else []
        for name, count, details in (
            ("input_tokens", self.input_tokens, self.input_tokens_details),
            ("output_tokens", self.output_tokens, self.output_tokens_details),
        ):
            kinds = ", ".join(
                f"{kind} {value}"
                for kind, value in (
                    ("text", details.text_tokens),
                    ("audio", details.audio_tokens),
                    ("image", details.image_tokens),
                )
                if value
            )
            if count or kinds:
                parts.append(f"{name}={count}" + (f" ({kinds})" if kinds else ""))
        if self.characters:
            parts.append(f"characters={self.characters}")
        return f"Usage({', '.join(parts)})"


@attrs.frozen(kw_only=True, repr=False)
class ResponseInfo(_ShortRepr):
    """The ``response`` object of ``response.created`` and ``response.done``.

    ``status`` is ``in_progress``, ``completed``, ``cancelled``, ``failed`` or
    ``incomplete``; ``usage`` is the token accounting (None if the server sent none).
    """

    id: str = ""
    object: str | None = None
    conversation_id: str | None = None
    status: str = ""
    status_details: dict[str, Any] | None = None
    modalities: list[str] = attrs.Factory(list)
    voice: str | None = None
    output_audio_format: str | None = None
    output: list[ConversationItem] = attrs.Factory(list)
    usage: Usage | None = None


# Events -----------------------------------------------------------------------


@attrs.frozen(kw_only=True, repr=False)
class ServerEvent(_ShortRepr):
    """Base class of every event the session delivers.

    Attributes:
        type: The wire type (``"response.audio.delta"``); a class attribute too.
        event_id: The server's id for this event, empty if it sent none.
        raw: The decoded frame as received (not part of equality or repr).
    """

    type: ClassVar[str] = ""
    event_id: str = ""
    raw: Mapping[str, Any] = attrs.field(factory=dict, eq=False, repr=False)


@attrs.frozen(kw_only=True, repr=False)
class _ResponsePart(ServerEvent):
    """Fields shared by the events that stream one part of a response."""

    response_id: str = ""
    item_id: str = ""
    output_index: int = 0
    content_index: int = 0


@attrs.frozen(kw_only=True, repr=False)
class ErrorEvent(ServerEvent):
    """``error``: the server refused a client event or failed; the session goes on."""

    type: ClassVar[str] = "error"
    error: ErrorInfo = attrs.Factory(ErrorInfo)


@attrs.frozen(kw_only=True, repr=False)
class SessionCreated(ServerEvent):
    """``session.created``: the first event, with the default configuration."""

    type: ClassVar[str] = "session.created"
    session: SessionInfo = attrs.Factory(SessionInfo)


@attrs.frozen(kw_only=True, repr=False)
class SessionUpdated(ServerEvent):
    """``session.updated``: the full effective configuration after a ``session.update``."""

    type: ClassVar[str] = "session.updated"
    session: SessionInfo = attrs.Factory(SessionInfo)


@attrs.frozen(kw_only=True, repr=False)
class SessionFinished(ServerEvent):
    """``session.finished``: the answer to ``session.finish`` on models that support it."""

    type: ClassVar[str] = "session.finished"


@attrs.frozen(kw_only=True, repr=False)
class InputAudioBufferSpeechStarted(ServerEvent):
    """``input_audio_buffer.speech_started``: server VAD heard speech begin.

    In VAD mode this also interrupts a running response: stop local playback.
    """

    type: ClassVar[str] = "input_audio_buffer.speech_started"
    audio_start_ms: int = 0
    item_id: str = ""


@attrs.frozen(kw_only=True, repr=False)
class InputAudioBufferSpeechStopped(ServerEvent):
    """``input_audio_buffer.speech_stopped``: server VAD heard speech end.

    Attributes:
        reason: Why the speech ended, when the server says (Qwen-Audio):
            ``"turn_invalid"`` when smart turn judged it not to be a turn
            (a filler such as "嗯": no response follows); None otherwise.
    """

    type: ClassVar[str] = "input_audio_buffer.speech_stopped"
    audio_end_ms: int = 0
    item_id: str = ""
    reason: str | None = None


@attrs.frozen(kw_only=True, repr=False)
class InputAudioBufferCommitted(ServerEvent):
    """``input_audio_buffer.committed``: the input buffer became a user item."""

    type: ClassVar[str] = "input_audio_buffer.committed"
    item_id: str = ""
    previous_item_id: str | None = None


@attrs.frozen(kw_only=True, repr=False)
class InputAudioBufferCleared(ServerEvent):
    """``input_audio_buffer.cleared``: the answer to ``input_audio_buffer.clear``."""

    type: ClassVar[str] = "input_audio_buffer.cleared"


@attrs.frozen(kw_only=True, repr=False)
class ConversationItemCreated(ServerEvent):
    """``conversation.item.created``: an item joined the conversation."""

    type: ClassVar[str] = "conversation.item.created"
    item: ConversationItem = attrs.Factory(ConversationItem)
    previous_item_id: str | None = None


@attrs.frozen(kw_only=True, repr=False)
class ConversationItemInputAudioTranscriptionCompleted(ServerEvent):
    """``conversation.item.input_audio_transcription.completed``: what the user said.

    Produced by a separate ASR model, asynchronously: it often arrives in the
    middle of the response.
    """

    type: ClassVar[str] = "conversation.item.input_audio_transcription.completed"
    item_id: str = ""
    content_index: int = 0
    transcript: str = ""
    #: Qwen-ASR-Realtime: the detected language and the speaker's emotion.
    language: str | None = None
    emotion: str | None = None


@attrs.frozen(kw_only=True, repr=False)
class ConversationItemInputAudioTranscriptionFailed(ServerEvent):
    """``conversation.item.input_audio_transcription.failed``: the ASR model failed."""

    type: ClassVar[str] = "conversation.item.input_audio_transcription.failed"
    item_id: str = ""
    content_index: int = 0
    error: ErrorInfo = attrs.Factory(ErrorInfo)


@attrs.frozen(kw_only=True, repr=False)
class ConversationItemInputAudioTranscriptionDelta(ServerEvent):
    """``conversation.item.input_audio_transcription.delta`` (qwen3.5+ transcription)."""

    type: ClassVar[str] = "conversation.item.input_audio_transcription.delta"
    item_id: str = ""
    content_index: int = 0
    delta: str = ""
    text: str | None = None
    stash: str | None = None
    language: str | None = None
    emotion: str | None = None


@attrs.frozen(kw_only=True, repr=False)
class ConversationItemInputAudioTranscriptionText(ServerEvent):
    """``conversation.item.input_audio_transcription.text``: the running transcript.

    The transcript so far is ``text + stash``; ``stash`` is the provisional tail.
    """

    type: ClassVar[str] = "conversation.item.input_audio_transcription.text"
    item_id: str = ""
    content_index: int = 0
    text: str = ""
    stash: str = ""
    language: str | None = None
    emotion: str | None = None


@attrs.frozen(kw_only=True, repr=False)
class ResponseCreated(ServerEvent):
    """``response.created``: a response started."""

    type: ClassVar[str] = "response.created"
    response: ResponseInfo = attrs.Factory(ResponseInfo)


@attrs.frozen(kw_only=True, repr=False)
class ResponseDone(ServerEvent):
    """``response.done``: a response ended; ``response.status`` says how."""

    type: ClassVar[str] = "response.done"
    response: ResponseInfo = attrs.Factory(ResponseInfo)


@attrs.frozen(kw_only=True, repr=False)
class ResponseOutputItemAdded(ServerEvent):
    """``response.output_item.added``: a response began an output item."""

    type: ClassVar[str] = "response.output_item.added"
    response_id: str = ""
    output_index: int = 0
    item: ConversationItem = attrs.Factory(ConversationItem)


@attrs.frozen(kw_only=True, repr=False)
class ResponseOutputItemDone(ServerEvent):
    """``response.output_item.done``: an output item is complete."""

    type: ClassVar[str] = "response.output_item.done"
    response_id: str = ""
    output_index: int = 0
    item: ConversationItem = attrs.Factory(ConversationItem)


@attrs.frozen(kw_only=True, repr=False)
class ResponseContentPartAdded(_ResponsePart):
    """``response.content_part.added``: an output item began a content part."""

    type: ClassVar[str] = "response.content_part.added"
    part: ContentPart = attrs.Factory(ContentPart)


@attrs.frozen(kw_only=True, repr=False)
class ResponseContentPartDone(_ResponsePart):
    """``response.content_part.done``: a content part is complete."""

    type: ClassVar[str] = "response.content_part.done"
    part: ContentPart = attrs.Factory(ContentPart)


@attrs.frozen(kw_only=True, repr=False)
class ResponseTextDelta(_ResponsePart):
    """``response.text.delta``: the next piece of a text-only reply."""

    type: ClassVar[str] = "response.text.delta"
    delta: str = ""


@attrs.frozen(kw_only=True, repr=False)
class ResponseTextDone(_ResponsePart):
    """``response.text.done``: the whole text (also sent on interrupt or cancel)."""

    type: ClassVar[str] = "response.text.done"
    text: str = ""


@attrs.frozen(kw_only=True, repr=False)
class ResponseAudioDelta(_ResponsePart):
    """``response.audio.delta``: the next chunk of the spoken reply.

    ``delta`` is already decoded: 24 kHz mono 16-bit little-endian PCM bytes.
    """

    type: ClassVar[str] = "response.audio.delta"
    delta: bytes = b""


@attrs.frozen(kw_only=True, repr=False)
class ResponseAudioDone(_ResponsePart):
    """``response.audio.done``: no more audio for this part (also on interrupt or cancel)."""

    type: ClassVar[str] = "response.audio.done"


@attrs.frozen(kw_only=True, repr=False)
class ResponseAudioTranscriptDelta(_ResponsePart):
    """``response.audio_transcript.delta``: the next piece of the spoken reply's text."""

    type: ClassVar[str] = "response.audio_transcript.delta"
    delta: str = ""


@attrs.frozen(kw_only=True, repr=False)
class ResponseAudioTranscriptDone(_ResponsePart):
    """``response.audio_transcript.done``: the spoken reply's whole text."""

    type: ClassVar[str] = "response.audio_transcript.done"
    transcript: str = ""


@attrs.frozen(kw_only=True, repr=False)
class ResponseFunctionCallArgumentsDelta(ServerEvent):
    """``response.function_call_arguments.delta``: the next piece of a call's arguments."""

    type: ClassVar[str] = "response.function_call_arguments.delta"
    response_id: str = ""
    item_id: str = ""
    output_index: int = 0
    call_id: str = ""
    name: str | None = None
    delta: str = ""


@attrs.frozen(kw_only=True, repr=False)
class ResponseFunctionCallArgumentsDone(ServerEvent):
    """``response.function_call_arguments.done``: a function call is complete.

    ``arguments`` is the JSON text of the arguments, as the model wrote it.
    """

    type: ClassVar[str] = "response.function_call_arguments.done"
    response_id: str = ""
    item_id: str = ""
    output_index: int = 0
    call_id: str = ""
    name: str = ""
    arguments: str = ""


@attrs.frozen(repr=False, init=False)
class UnknownEvent(ServerEvent):
    """An event of a type this library does not model (newer models add events).

    Its fields are in ``raw``. Never an error, and never mistaken for another class.
    """

    # An instance field here, unlike the class-level ``type`` of typed events,
    # because each unknown event carries its own wire type.
    type: str  # type: ignore[misc]

    def __init__(self, type: str, raw: Mapping[str, Any], event_id: str | None = None) -> None:
        eid = event_id if event_id is not None else raw.get("event_id")
        self.__attrs_init__(type=type, raw=raw, event_id=eid if isinstance(eid, str) else "")


@attrs.frozen(kw_only=True, repr=False)
class InvalidFrame(ServerEvent):
    """A frame that could not be decoded: not JSON, not an object, bad base64...

    Delivered in order like any event (by the type ``"invalid_frame"``, by
    class and to ``"*"`` handlers) so a program sees it without its loop
    breaking; it never ends the session.

    Attributes:
        error: What was wrong with the frame.
        wire_type: The frame's ``type``, when it could be read.
        length: The frame's length (characters for text, bytes for binary).
        text: The start of the frame's text, shortened (empty for binary frames).
    """

    type: ClassVar[str] = "invalid_frame"
    error: str = ""
    wire_type: str | None = None
    length: int = 0
    text: str = ""


_TYPED_EVENTS: tuple[type[ServerEvent], ...] = (
    ErrorEvent,
    SessionCreated,
    SessionUpdated,
    SessionFinished,
    InputAudioBufferSpeechStarted,
    InputAudioBufferSpeechStopped,
    InputAudioBufferCommitted,
    InputAudioBufferCleared,
    ConversationItemCreated,
    ConversationItemInputAudioTranscriptionCompleted,
    ConversationItemInputAudioTranscriptionFailed,
    ConversationItemInputAudioTranscriptionDelta,
    ConversationItemInputAudioTranscriptionText,
    ResponseCreated,
    ResponseDone,
    ResponseOutputItemAdded,
    ResponseOutputItemDone,
    ResponseContentPartAdded,
    ResponseContentPartDone,
    ResponseTextDelta,
    ResponseTextDone,
    ResponseAudioDelta,
    ResponseAudioDone,
    ResponseAudioTranscriptDelta,
    ResponseAudioTranscriptDone,
    ResponseFunctionCallArgumentsDelta,
    ResponseFunctionCallArgumentsDone,
)

#: The one table from wire type to event class; anything else is an `UnknownEvent`.
EVENT_TYPES: Mapping[str, type[ServerEvent]] = {cls.type: cls for cls in _TYPED_EVENTS}


# Family events (MODEL_FAMILIES.md §7) ------------------------------------------
#
# The server events only some model families send. Kept in one block, and
# registered in EVENT_TYPES below, like every other typed event.


@attrs.frozen(kw_only=True, repr=False)
class ResponseTextText(_ResponsePart):
    """``response.text.text``: a LiveTranslate translation as it firms up (text-only output).

    ``text`` is what is confirmed so far, ``stash`` the provisional tail: show
    ``text + stash`` and replace it on every event. The final form is
    ``response.text.done``.
    """

    type: ClassVar[str] = "response.text.text"
    text: str = ""
    stash: str = ""


@attrs.frozen(kw_only=True, repr=False)
class ResponseAudioTranscriptText(_ResponsePart):
    """``response.audio_transcript.text``: a spoken translation's text as it firms up.

    ``text`` is confirmed, ``stash`` provisional (see `ResponseTextText`); the
    final form is ``response.audio_transcript.done``.
    """

    type: ClassVar[str] = "response.audio_transcript.text"
    text: str = ""
    stash: str = ""


@attrs.frozen(kw_only=True, repr=False)
class ConversationItemAmbientAudioTranscriptionDelta(ServerEvent):
    """``conversation.item.ambient_audio_transcription.delta`` (Qwen-Audio smart turn).

    Speech that smart turn judged not to be a turn (a "hmm"): it is not added
    to the conversation and no response follows. ``text`` is confirmed,
    ``stash`` provisional.
    """

    type: ClassVar[str] = "conversation.item.ambient_audio_transcription.delta"
    item_id: str = ""
    content_index: int = 0
    text: str = ""
    stash: str = ""
    delta: str = ""


@attrs.frozen(kw_only=True, repr=False)
class ConversationItemAmbientAudioTranscriptionCompleted(ServerEvent):
    """``conversation.item.ambient_audio_transcription.completed``: the ambient speech's text.

    The sources show no example of this frame: the text is read from
    ``transcript`` and, failing that, ``text`` (`value` gives whichever is set).
    """

    type: ClassVar[str] = "conversation.item.ambient_audio_transcription.completed"
    item_id: str = ""
    content_index: int = 0
    transcript: str = ""
    text: str = ""

    @property
    def value(self) -> str:
        """The ambient speech's text, from ``transcript`` or ``text``."""
        return self.transcript or self.text


@attrs.frozen(kw_only=True, repr=False)
class VoiceprintAudioListInProgress(ServerEvent):
    """``voiceprint_audio_list.in_progress``: Qwen-Audio is enrolling the voiceprint URLs.

    Sent before ``session.updated`` when ``voiceprint_audio_urls`` were given.
    """

    type: ClassVar[str] = "voiceprint_audio_list.in_progress"
    item_id: str = ""


@attrs.frozen(kw_only=True, repr=False)
class VoiceprintAudioListCompleted(ServerEvent):
    """``voiceprint_audio_list.completed``: the voiceprints are enrolled."""

    type: ClassVar[str] = "voiceprint_audio_list.completed"
    item_id: str = ""


@attrs.frozen(kw_only=True, repr=False)
class VoiceprintAudioListFailed(ServerEvent):
    """``voiceprint_audio_list.failed``: enrolment failed (``reason``); the session goes on."""

    type: ClassVar[str] = "voiceprint_audio_list.failed"
    item_id: str = ""
    reason: str = ""


@attrs.frozen(kw_only=True, repr=False)
class ConversationItemRetrieved(ServerEvent):
    """``conversation.item.retrieved``: the answer to ``conversation.item.retrieve``.

    No source shows this frame; it is read in the OpenAI shape (``item``).
    Qwen-Audio returns audio content as its transcript only.
    """

    type: ClassVar[str] = "conversation.item.retrieved"
    item: ConversationItem = attrs.Factory(ConversationItem)


@attrs.frozen(kw_only=True, repr=False)
class ConversationItemDeleted(ServerEvent):
    """``conversation.item.deleted``: the answer to ``conversation.item.delete``."""

    type: ClassVar[str] = "conversation.item.deleted"
    item_id: str = ""


@attrs.frozen(kw_only=True, repr=False)
class RateLimit(_ShortRepr):
    """One entry of ``rate_limits.updated`` (OpenAI shape; no DashScope source documents it)."""

    name: str = ""
    limit: int | None = None
    remaining: int | None = None
    reset_seconds: float | None = None


@attrs.frozen(kw_only=True, repr=False)
class RateLimitsUpdated(ServerEvent):
    """``rate_limits.updated``: the rate limits after a response (undocumented by DashScope)."""

    type: ClassVar[str] = "rate_limits.updated"
    rate_limits: list[RateLimit] = attrs.Factory(list)


@attrs.frozen(kw_only=True, repr=False)
class InputTextBufferCommitted(ServerEvent):
    """``input_text_buffer.committed``: Qwen-TTS-Realtime took the text buffer for synthesis.

    The docs' example has an empty ``item_id``.
    """

    type: ClassVar[str] = "input_text_buffer.committed"
    item_id: str = ""


@attrs.frozen(kw_only=True, repr=False)
class InputTextBufferCleared(ServerEvent):
    """``input_text_buffer.cleared``: Qwen-TTS-Realtime cleared the text buffer as asked."""

    type: ClassVar[str] = "input_text_buffer.cleared"


_FAMILY_EVENTS: tuple[type[ServerEvent], ...] = (
    ResponseTextText,
    ResponseAudioTranscriptText,
    ConversationItemAmbientAudioTranscriptionDelta,
    ConversationItemAmbientAudioTranscriptionCompleted,
    VoiceprintAudioListInProgress,
    VoiceprintAudioListCompleted,
    VoiceprintAudioListFailed,
    ConversationItemRetrieved,
    ConversationItemDeleted,
    RateLimitsUpdated,
    InputTextBufferCommitted,
    InputTextBufferCleared,
)

# The one table, with the family events registered.
EVENT_TYPES = {**EVENT_TYPES, **{cls.type: cls for cls in _FAMILY_EVENTS}}
