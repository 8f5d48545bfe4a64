"""Configuration records: per-session options and the ``session.update`` payload.

All are frozen attrs classes validated at construction, so a bad value is a
`ConfigError` (a ``ValueError``) before anything is sent. They are immutable
and safe to share between threads.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Literal

import attrs

from .._constants import (
    DEFAULT_MAX_BUFFERED_BYTES,
    DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_MODEL,
    VAD_SERVER,
    Modality,
)
from .._errors import ConfigError, ConfigTypeError
from .families import ModelFamily

__all__ = [
    "NOT_GIVEN",
    "SAMPLE_RATES",
    "FunctionTool",
    "InputAudioTranscription",
    "NotGiven",
    "RealtimeConfig",
    "SessionUpdate",
    "Translation",
    "TurnDetection",
]


class NotGiven(enum.Enum):
    """The type of `NOT_GIVEN`: "leave this out of the request".

    Distinct from None, which is sent as JSON ``null`` (``turn_detection=None``
    turns server VAD off, while leaving it out keeps the server's setting).
    """

    NOT_GIVEN = "NOT_GIVEN"

    def __repr__(self) -> str:
        return "NOT_GIVEN"

    def __bool__(self) -> Literal[False]:
        return False


#: Marks a field that was not set: it is left out of the request.
NOT_GIVEN: Final = NotGiven.NOT_GIVEN

_Validator = Callable[[Any, "attrs.Attribute[Any]", Any], None]

#: Sample rates the audio formats may name (the official SDK's ``AudioSampleRate``).
SAMPLE_RATES: Final = (8000, 16000, 24000, 48000)
#: The most voiceprint URLs Qwen-Audio takes.
MAX_VOICEPRINT_URLS: Final = 5


def _fail(attribute: attrs.Attribute[Any], value: object, expected: str) -> None:
    raise ConfigError(f"{attribute.name} must be {expected}, got {value!r}")


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _number(
    lo: float | None = None,
    hi: float | None = None,
    *,
    lo_open: bool = False,
    hi_open: bool = False,
    integer: bool = False,
    allow_none: bool = False,
) -> _Validator:
    """A validator for a number in a range; NOT_GIVEN always passes."""
    left = "(" if lo_open else "["
    right = ")" if hi_open else "]"
    kind = "an integer" if integer else "a number"
    expected = kind
    if lo is not None or hi is not None:
        expected += (
            f" in {left}{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}{right}"
        )
    if allow_none:
        expected += " or None"

    def check(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is NOT_GIVEN or (value is None and allow_none):
            return
        if not _is_number(value) or (integer and not isinstance(value, int)):
            _fail(attribute, value, expected)
        if lo is not None and (value < lo or (lo_open and value == lo)):
            _fail(attribute, value, expected)
        if hi is not None and (value > hi or (hi_open and value == hi)):
            _fail(attribute, value, expected)

    return check


def _instance(
    types: type | tuple[type, ...], expected: str, *, allow_none: bool = False
) -> _Validator:
    def check(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is NOT_GIVEN or (value is None and allow_none):
            return
        if not isinstance(value, types):
            _fail(attribute, value, expected)

    return check


def _timeout(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and (not _is_number(value) or value <= 0):
        _fail(attribute, value, "a positive number of seconds or None")


# A header name is an RFC 7230 token.
_HEADER_NAME: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# A header value may hold no control character but tab (RFC 7230,
# field-content): CR or LF would end the header and start another one.
# U+0085, U+2028 and U+2029 are refused too, as some stacks break lines on them.
_HEADER_VALUE_BAD: Final = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")
# A model name goes into the upgrade's request line. It is URL-encoded there,
# but a control character is never part of a real name: refuse it rather
# than trust every layer's encoding.
_MODEL_BAD: Final = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _shown(value: str) -> str:
    """A header value for an error message: its repr, shortened, never echoed whole."""
    return repr(value if len(value) <= 40 else value[:40] + "...")


def _one_of(*choices: object) -> _Validator:
    def check(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is NOT_GIVEN:
            return
        if isinstance(value, bool) or value not in choices:
            _fail(attribute, value, "one of " + ", ".join(repr(c) for c in choices))

    return check


def _voiceprint_urls(value: Any) -> Any:
    if value is NOT_GIVEN:
        return value
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ConfigError(f"voiceprint_audio_urls must be a list of URLs, got {value!r}")
    urls = tuple(value)
    if not 1 <= len(urls) <= MAX_VOICEPRINT_URLS:
        raise ConfigError(
            f"voiceprint_audio_urls takes 1 to {MAX_VOICEPRINT_URLS} URLs, got {len(urls)}"
        )
    for url in urls:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ConfigError(f"each voiceprint URL must be a public http(s) URL, got {url!r}")
    return urls


def _freeze_mapping(value: Any) -> Any:
    return dict(value) if isinstance(value, Mapping) else value


def _family(value: Any) -> ModelFamily | None:
    if value is None or isinstance(value, ModelFamily):
        return value
    try:
        return ModelFamily(value)
    except ValueError:
        names = ", ".join(f.value for f in ModelFamily)
        message = f"family must be a ModelFamily ({names}) or None, got {value!r}"
        raise ConfigError(message) from None


@attrs.frozen(kw_only=True)
class RealtimeConfig:
    """Options of one realtime session, given to `RealtimeService.connect`.

    Attributes:
        model: The model to talk to (``?model=`` in the URL).
        max_buffered_events: How many received events the session keeps for
            `recv`/`events`/`wait_for` (default 4096: about three minutes of a
            spoken reply, whose audio and transcript deltas come ~20 a second).
            When full the oldest is dropped and counted in
            ``session.dropped_events``. 0 turns the buffer off for programs that
            only use callbacks.
        handler_timeout: How long `close` lets handlers finish the events
            already received, in seconds (None: wait for them however long).
        ping_interval: Seconds of silence after which a keepalive ping is sent
            (None: no pings).
        ping_timeout: Seconds to wait for any frame after a ping before the
            peer is declared dead and the session fails with a `TransportError`
            (None: never).
        close_timeout: Seconds `close` waits for the server's close frame
            before dropping the connection.
        request_timeout: The default wait, in seconds, of calls that wait for an
            answer (`update_session`, `finish_session`); None waits forever.
        send_timeout: The longest a send may block on a server that is not
            reading, in seconds (default 10). A send that times out raises
            `DashScopeTimeout` and ends the session, since a frame may have
            gone out in part. Keepalive pongs wait at most this long for a
            user's send. None: no limit.
        max_handler_backlog: How many received events may wait for the
            handler thread (default 4096, as ``max_buffered_events``). Past it
            the oldest are dropped for handlers, counted in
            ``session.dropped_events`` and warned about once, so a stuck
            handler cannot grow memory without limit.
        extra_headers: More HTTP headers for the WebSocket upgrade. Names must
            be RFC 7230 tokens and values may hold no control characters (a
            CR or LF would inject headers): both are checked here.
        max_message_size: The longest message accepted from the server, in
            bytes, counted across the frames of a fragmented message (default
            16 MiB, above the 15 MiB the service accepts in one event; its own
            events are far smaller). A longer one is refused from its header,
            before it is buffered: the session ends with a `TransportError`
            whose ``code`` is 1009, after the events received before it.
            None: no limit.
        max_buffered_bytes: The most bytes of received messages (as they came
            over the wire) that the pull buffer, and likewise the handler
            backlog, may hold (default 64 MiB each). Past it the oldest events
            are dropped as past ``max_buffered_events`` / ``max_handler_backlog``,
            so a server sending huge messages cannot fill memory through
            either. None: bounded in events only.
        family: Force a `ModelFamily` (or its value, ``"omni_v38"``...) for a
            model name the library does not know yet; None (the default)
            chooses it from the model name. Read it back as ``session.family``.
        on_tool_error: What a failed call of a tool registered with
            `RealtimeSession.tool` does (an unknown tool, bad arguments, an
            exception, a timeout): ``"send"`` (the default) sends the error to
            the model as the call's output and logs a warning; ``"raise"``
            also raises it as `ToolError` at the program's next call into the
            session, as a failed handler's `HandlerError` is.

    The ``repr`` hides the values of ``extra_headers``, which may be credentials.
    """

    model: str = attrs.field(default=DEFAULT_MODEL)
    max_buffered_events: int = attrs.field(default=4096, validator=_number(0, integer=True))
    handler_timeout: float | None = attrs.field(default=5.0, validator=_timeout)
    ping_interval: float | None = attrs.field(default=20.0, validator=_timeout)
    ping_timeout: float | None = attrs.field(default=20.0, validator=_timeout)
    close_timeout: float | None = attrs.field(default=5.0, validator=_timeout)
    request_timeout: float | None = attrs.field(default=10.0, validator=_timeout)
    send_timeout: float | None = attrs.field(default=10.0, validator=_timeout)
    max_handler_backlog: int = attrs.field(default=4096, validator=_number(1, integer=True))
    extra_headers: Mapping[str, str] = attrs.field(
        factory=dict, converter=_freeze_mapping, repr=lambda h: repr(dict.fromkeys(h, "***"))
    )
    max_message_size: int | None = attrs.field(
        default=DEFAULT_MAX_MESSAGE_SIZE, validator=_number(1, integer=True, allow_none=True)
    )
    family: ModelFamily | None = attrs.field(default=None, converter=_family)
    max_buffered_bytes: int | None = attrs.field(
        default=DEFAULT_MAX_BUFFERED_BYTES, validator=_number(1, integer=True, allow_none=True)
    )
    on_tool_error: Literal["send", "raise"] = attrs.field(default="send")

    @on_tool_error.validator
    def _check_on_tool_error(self, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value not in ("send", "raise"):
            _fail(attribute, value, '"send" or "raise"')

    @model.validator
    def _check_model(self, attribute: attrs.Attribute[Any], value: Any) -> None:
        if not isinstance(value, str) or not value.strip():
            _fail(attribute, value, "a non-empty model name")
        if _MODEL_BAD.search(value):
            raise ConfigError(
                f"model must be a name without control characters, got {_shown(value)}"
            )

    @extra_headers.validator
    def _check_headers(self, attribute: attrs.Attribute[Any], value: Any) -> None:
        if not isinstance(value, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            _fail(attribute, value, "a mapping of header names to string values")
        for name, text in value.items():
            if not _HEADER_NAME.fullmatch(name):
                raise ConfigError(
                    f"extra_headers: {_shown(name)} is not a valid header name (letters, "
                    "digits and !#$%&'*+-.^_`|~ only: no spaces, colons or control characters)"
                )
            if _HEADER_VALUE_BAD.search(text):
                # The value is not shown: it may be a credential.
                raise ConfigError(
                    f"extra_headers: the value of {name!r} holds a control character "
                    "(CR, LF or other), which could inject headers"
                )


@attrs.frozen(kw_only=True)
class TurnDetection:
    """Server-side turn detection (``session.turn_detection``).

    Only the fields that are set are sent; the server keeps its defaults for
    the rest. Pass ``turn_detection=None`` to `SessionUpdate` for manual mode.

    Attributes:
        type: ``"server_vad"``, ``"semantic_vad"`` (Omni 3.5), ``"smart_turn"``
            (Qwen-Audio) or ``"speaker_detection"`` (LiveTranslate 3.8); left
            out (the default) it is the model family's own: ``speaker_detection``
            on LiveTranslate 3.8, ``server_vad`` elsewhere. A type the
            family's docs do not list is a `ConfigError` when sent.
        threshold: Sensitivity in [-1.0, 1.0]; lower is more sensitive.
        prefix_padding_ms: Audio kept before the detected speech start.
        silence_duration_ms: Silence that ends a turn, 200 to 6000 ms.
        create_response: Whether the server starts a response by itself.
        interrupt_response: Whether speech interrupts a running response.
        extra: More fields, sent as given.
    """

    type: str | NotGiven = attrs.field(default=NOT_GIVEN, validator=_instance(str, "a string"))
    threshold: float | NotGiven = attrs.field(default=NOT_GIVEN, validator=_number(-1.0, 1.0))
    prefix_padding_ms: int | NotGiven = attrs.field(
        default=NOT_GIVEN, validator=_number(0, integer=True)
    )
    silence_duration_ms: int | NotGiven = attrs.field(
        default=NOT_GIVEN, validator=_number(200, 6000, integer=True)
    )
    create_response: bool | NotGiven = attrs.field(
        default=NOT_GIVEN, validator=_instance(bool, "True or False")
    )
    interrupt_response: bool | NotGiven = attrs.field(
        default=NOT_GIVEN, validator=_instance(bool, "True or False")
    )
    extra: Mapping[str, Any] = attrs.field(factory=dict, converter=_freeze_mapping)
    # Fields of the newer families (MODEL_FAMILIES.md §4).
    #: Qwen-Audio ``smart_turn`` only: up to 5 public http(s) URLs of the
    #: user's voice (16 kHz PCM/WAV), honoured in the first update only.
    voiceprint_audio_urls: Sequence[str] | NotGiven = attrs.field(
        default=NOT_GIVEN, converter=_voiceprint_urls
    )
    #: Omni 3.5 ``server_vad``: the silence timeout in ms (the docs give no range).
    idle_timeout_ms: int | NotGiven = attrs.field(
        default=NOT_GIVEN, validator=_number(0, integer=True)
    )

    def __attrs_post_init__(self) -> None:
        if self.voiceprint_audio_urls is not NOT_GIVEN and self.type != "smart_turn":
            raise ConfigError(
                f"voiceprint_audio_urls works only with type='smart_turn' (Qwen-Audio), "
                f"not {self.type!r}"
            )

    def as_dict(self) -> dict[str, Any]:
        """The wire form: the fields that are set, then ``extra``.

        A type left to the family is ``server_vad`` here; the session's
        encoder puts the family's own instead.
        """
        return {"type": VAD_SERVER, **_set_fields(self)}


@attrs.frozen(kw_only=True)
class InputAudioTranscription:
    """Transcription of the user's audio (``session.input_audio_transcription``).

    Attributes:
        model: ``"gummy-realtime-v1"`` (turbo, qwen3 flash) or
            ``"qwen3-asr-flash-realtime"`` (qwen3.5+); NOT_GIVEN leaves it to
            the server.
        extra: More fields (``language``, ``corpus``...), sent as given.
    """

    model: str | NotGiven = attrs.field(default=NOT_GIVEN, validator=_instance(str, "a string"))
    extra: Mapping[str, Any] = attrs.field(factory=dict, converter=_freeze_mapping)
    #: The source language (LiveTranslate: what is spoken; default ``en`` there).
    language: str | NotGiven = attrs.field(default=NOT_GIVEN, validator=_instance(str, "a string"))
    #: Context text that helps recognition, sent as ``corpus: {"text": ...}``.
    corpus_text: str | NotGiven = attrs.field(
        default=NOT_GIVEN, validator=_instance(str, "a string")
    )

    def as_dict(self) -> dict[str, Any]:
        """The wire form: the fields that are set, then ``extra``."""
        out = _set_fields(self)
        if "corpus_text" in out:
            corpus = {"text": out.pop("corpus_text")}
            out["corpus"] = {**corpus, **out.get("corpus", {})}
        return out


@attrs.frozen(kw_only=True)
class FunctionTool:
    """A function the model may call (qwen3.5+), in Chat-Completions nesting.

    Sent as ``{"type": "function", "function": {"name", "description", "parameters"}}``.

    Attributes:
        name: The function's name.
        description: What it does, for the model.
        parameters: Its JSON Schema.
    """

    name: str = attrs.field()
    description: str | NotGiven = attrs.field(
        default=NOT_GIVEN, validator=_instance(str, "a string")
    )
    parameters: Mapping[str, Any] | NotGiven = attrs.field(
        default=NOT_GIVEN, converter=_freeze_mapping
    )

    @name.validator
    def _check_name(self, attribute: attrs.Attribute[Any], value: Any) -> None:
        if not isinstance(value, str) or not value:
            _fail(attribute, value, "a non-empty string")

    @parameters.validator
    def _check_parameters(self, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is not NOT_GIVEN and not isinstance(value, Mapping):
            _fail(attribute, value, "a JSON Schema mapping")

    def as_dict(self) -> dict[str, Any]:
        """The wire form of the tool."""
        function: dict[str, Any] = {"name": self.name}
        if self.description is not NOT_GIVEN:
            function["description"] = self.description
        if self.parameters is not NOT_GIVEN:
            function["parameters"] = dict(self.parameters)
        return {"type": "function", "function": function}


def _set_fields(record: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field in attrs.fields(type(record)):
        if field.name == "extra":
            continue
        value = getattr(record, field.name)
        if value is NOT_GIVEN:
            continue
        out[field.name] = _wire(value)
    out.update(record.extra)
    return out


def _wire(value: Any) -> Any:
    if hasattr(value, "as_dict"):
        return value.as_dict()
    if isinstance(value, tuple):
        return [_wire(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _wire(v) for k, v in value.items()}
    return value


_MODALITY_NAMES: Final = ("text", "audio")


def check_modalities(value: Any) -> Any:
    """Check a ``modalities`` argument; returns it as a tuple (NOT_GIVEN passes).

    The message names only the mistake made: the wrong type, an unknown
    name, a repeat, an empty list, or audio without text.
    """
    if value is NOT_GIVEN:
        return value
    if isinstance(value, str):
        raise ConfigTypeError(
            f"modalities must be a list, not the string {value!r}: write [{value!r}]"
            + (" (audio needs text too: ['text', 'audio'])" if value == "audio" else "")
        )
    if not isinstance(value, Sequence):
        raise ConfigTypeError(
            f"modalities must be a list such as ['text'] or ['text', 'audio'], "
            f"got {type(value).__name__}"
        )
    items = tuple(value)
    for item in items:
        if not isinstance(item, str):
            raise ConfigTypeError(
                f"modalities must hold the strings 'text' and 'audio', got {item!r}"
            )
    unknown = [item for item in items if item not in _MODALITY_NAMES]
    if unknown:
        raise ConfigError(
            f"modalities: unknown modality {unknown[0]!r}; the modalities are 'text' and 'audio'"
        )
    repeated = [name for name in _MODALITY_NAMES if items.count(name) > 1]
    if repeated:
        raise ConfigError(f"modalities lists {repeated[0]!r} more than once: {list(items)!r}")
    if not items:
        raise ConfigError("modalities is empty: use ['text'] or ['text', 'audio']")
    if "text" not in items:
        raise ConfigError(
            "modalities ['audio'] is refused by the service: audio comes with its "
            "transcript, so use ['text', 'audio']"
        )
    return items


def _session_modalities(value: Sequence[Modality] | NotGiven) -> Sequence[Modality] | NotGiven:
    # Typed so that a type checker flags SessionUpdate(modalities="text");
    # `_modalities` itself also checks what arrives untyped at run time.
    checked: Sequence[Modality] | NotGiven = check_modalities(value)
    return checked


def _tools(value: Any) -> Any:
    if value is NOT_GIVEN:
        return value
    if isinstance(value, (str, Mapping)) or not isinstance(value, Sequence):
        raise ConfigError(f"tools must be a list of FunctionTool or dicts, got {value!r}")
    items: list[FunctionTool | dict[str, Any]] = []
    for tool in value:
        if isinstance(tool, FunctionTool):
            items.append(tool)
        elif isinstance(tool, Mapping):
            items.append(dict(tool))
        else:
            raise ConfigError(f"each tool must be a FunctionTool or a dict, got {tool!r}")
    return tuple(items)


def _nested(value: Any, cls: type, name: str) -> Any:
    if value is NOT_GIVEN or value is None or isinstance(value, cls):
        return value
    if isinstance(value, Mapping):
        return dict(value)
    raise ConfigError(f"{name} must be a {cls.__name__}, a dict or None, got {value!r}")


def _translation(value: Any) -> Any:
    return _nested(value, Translation, "translation")


def _transcription(value: Any) -> Any:
    return _nested(value, InputAudioTranscription, "input_audio_transcription")


def _turn_detection(value: Any) -> Any:
    return _nested(value, TurnDetection, "turn_detection")


@attrs.frozen(kw_only=True)
class SessionUpdate:
    """The ``session`` object of a ``session.update``: only the fields set are sent.

    A field left at NOT_GIVEN is not sent, so the server keeps its value; a
    field set to None is sent as JSON ``null`` (``turn_detection=None`` is
    manual mode: commit and ``response.create`` yourself). Values are
    checked against the documented ranges; voices are not checked, as the
    service keeps adding them.

    Example::

        ds.SessionUpdate(modalities=["text", "audio"], voice="Cherry",
                         instructions="Answer briefly.", turn_detection=None)

    Attributes:
        modalities: ``["text"]`` or ``["text", "audio"]`` (a list of `Modality`;
            a plain string is a `ConfigTypeError`).
        voice: The reply voice (``"Cherry"``, ``"Chelsie"``...).
        instructions: The system prompt.
        input_audio_format: ``"pcm16"`` (or ``"pcm"`` in newer docs): 16 kHz mono PCM16.
        output_audio_format: ``"pcm24"``/``"pcm16"``/``"pcm"``: 24 kHz mono PCM16.
        input_audio_transcription: An `InputAudioTranscription`, a dict, or
            None to turn transcription off.
        turn_detection: A `TurnDetection`, a dict, or None for manual mode.
        temperature: Sampling temperature in [0, 2) (fixed on turbo models).
        top_p: Nucleus sampling in (0, 1].
        top_k: Top-k sampling (0 or more; None or over 100 turns it off).
        max_tokens: The longest reply in tokens.
        repetition_penalty: Greater than 0.
        presence_penalty: In [-2, 2].
        seed: In [0, 2**31 - 1] (the docs' range; the server's default, -1,
            is echoed but cannot be sent: leave the seed out for it).
        smooth_output: qwen3-omni-flash: conversational (True) or formal
            (False) style; None lets the model choose.
        enable_search: Web search (newer models).
        search_options: Search options, e.g. ``{"enable_source": True}``.
        tools: Functions the model may call (qwen3.5+): `FunctionTool` or dicts.
        tool_choice: ``"auto"`` or ``"none"``.
        extra: More session fields, sent as given (merged last).
        translation: LiveTranslate: a `Translation` (target language,
            glossary, same-language skipping) or a dict.
        enable_voice_clone: LiveTranslate 3.5/3.8: speak the translation in
            the speaker's cloned voice.
        voice_clone_frequency: ``"once"`` (at session start), ``"always"``
            (before every output, several speakers) or ``"never"`` (a
            pre-created voice id as ``voice``). With once/always, ``voice``
            must be ``"default"``.
        max_history_turns: Qwen-Audio: turns of history kept, 1 to 50.
        enable_speech_emotion: Qwen-Audio: expressive speech (default on).
        input_sample_rate: The input audio's sample rate (8000, 16000,
            24000 or 48000); sent with the input format as the family wants it.
        output_sample_rate: The output audio's sample rate, likewise.
        video_representation_compact: Sent as ``video.input.representation_compact``,
            a string passed through as the official SDK does (no source gives its values).
        voice_placement: Where the 3.8 families get the voice: ``"nested"``
            (``audio.output.voice``, the official SDK 2.0.2 and the default) or
            ``"flat"`` (top-level ``voice``, as the service's docs show). The
            sources disagree; see the README.

    The encoder shapes these per model family and raises `ConfigError`,
    naming the family, for what a family refuses (e.g. turning input
    transcription off on LiveTranslate 3.8).
    """

    modalities: Sequence[Modality] | NotGiven = attrs.field(
        default=NOT_GIVEN, converter=_session_modalities
    )
    voice: str | NotGiven = attrs.field(default=NOT_GIVEN, validator=_instance(str, "a string"))
    instructions: str | NotGiven = attrs.field(
        default=NOT_GIVEN, validator=_instance(str, "a string")
    )
    input_audio_format: str | NotGiven = attrs.field(
        default=NOT_GIVEN, validator=_instance(str, "a string")
    )
    output_audio_format: str | NotGiven = attrs.field(
        default=NOT_GIVEN, validator=_instance(str, "a string")
    )
    input_audio_transcription: InputAudioTranscription | Mapping[str, Any] | NotGiven | None = (
        attrs.field(
            default=NOT_GIVEN,
            converter=_transcription,
        )
    )
    turn_detection: TurnDetection | Mapping[str, Any] | NotGiven | None = attrs.field(
        default=NOT_GIVEN, converter=_turn_detection
    )
    temperature: float | NotGiven = attrs.field(
        default=NOT_GIVEN, validator=_number(0, 2, hi_open=True)
    )
    top_p: float | NotGiven = attrs.field(default=NOT_GIVEN, validator=_number(0, 1, lo_open=True))
    # The docs give no upper bound; the local server stops at 2**31 - 1 (as
    # for seed), and the client agrees with it.
    top_k: int | NotGiven | None = attrs.field(
        default=NOT_GIVEN, validator=_number(0, 2**31 - 1, integer=True, allow_none=True)
    )
    max_tokens: int | NotGiven = attrs.field(
        default=NOT_GIVEN, validator=_number(1, 2**31 - 1, integer=True)
    )
    repetition_penalty: float | NotGiven = attrs.field(
        default=NOT_GIVEN, validator=_number(0, lo_open=True)
    )
    presence_penalty: float | NotGiven = attrs.field(default=NOT_GIVEN, validator=_number(-2, 2))
    seed: int | NotGiven = attrs.field(
        default=NOT_GIVEN, validator=_number(0, 2**31 - 1, integer=True)
    )
    smooth_output: bool | NotGiven | None = attrs.field(
        default=NOT_GIVEN, validator=_instance(bool, "True, False or None", allow_none=True)
    )
    enable_search: bool | NotGiven = attrs.field(
        default=NOT_GIVEN, validator=_instance(bool, "True or False")
    )
    search_options: Mapping[str, Any] | NotGiven = attrs.field(
        default=NOT_GIVEN, converter=_freeze_mapping, validator=_instance(dict, "a dict")
    )
    tools: Sequence[FunctionTool | Mapping[str, Any]] | NotGiven = attrs.field(
        default=NOT_GIVEN, converter=_tools
    )
    tool_choice: str | NotGiven = attrs.field(
        default=NOT_GIVEN, validator=_instance(str, "a string")
    )
    extra: Mapping[str, Any] = attrs.field(factory=dict, converter=_freeze_mapping)
    # Fields of the newer families (MODEL_FAMILIES.md §4); shaped per family
    # by the encoder (_wire/dialects.py), which refuses what a family refuses.
    translation: Translation | Mapping[str, Any] | NotGiven = attrs.field(
        default=NOT_GIVEN, converter=_translation
    )
    enable_voice_clone: bool | NotGiven = attrs.field(
        default=NOT_GIVEN, validator=_instance(bool, "True or False")
    )
    voice_clone_frequency: Literal["once", "always", "never"] | NotGiven = attrs.field(
        default=NOT_GIVEN, validator=_one_of("once", "always", "never")
    )
    max_history_turns: int | NotGiven = attrs.field(
        default=NOT_GIVEN, validator=_number(1, 50, integer=True)
    )
    enable_speech_emotion: bool | NotGiven = attrs.field(
        default=NOT_GIVEN, validator=_instance(bool, "True or False")
    )
    input_sample_rate: int | NotGiven = attrs.field(
        default=NOT_GIVEN, validator=_one_of(*SAMPLE_RATES)
    )
    output_sample_rate: int | NotGiven = attrs.field(
        default=NOT_GIVEN, validator=_one_of(*SAMPLE_RATES)
    )
    video_representation_compact: str | NotGiven = attrs.field(
        default=NOT_GIVEN, validator=_instance(str, "a string")
    )
    voice_placement: Literal["nested", "flat"] | NotGiven = attrs.field(
        default=NOT_GIVEN, validator=_one_of("nested", "flat")
    )

    @extra.validator
    def _check_extra(self, attribute: attrs.Attribute[Any], value: Any) -> None:
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            _fail(attribute, value, "a dict with string keys")

    def __attrs_post_init__(self) -> None:
        cloning = self.voice_clone_frequency in ("once", "always")
        if cloning and self.voice is not NOT_GIVEN and self.voice != "default":
            raise ConfigError(
                f"voice_clone_frequency={self.voice_clone_frequency!r} clones the speaker's "
                f"voice, so voice must be 'default' (or left out), got {self.voice!r}"
            )

    def as_dict(self, family: ModelFamily | None = None) -> dict[str, Any]:
        """The ``session`` object as sent to a family (default: the legacy Omni one).

        Only the fields that are set, shaped for the family, then ``extra``.

        Raises:
            ConfigError: The family refuses a field (the message names it).
        """
        from .dialects import encode_session  # the encoder imports this module

        return encode_session(self, ModelFamily.OMNI if family is None else family, "")


@attrs.frozen(kw_only=True)
class Translation:
    """LiveTranslate's ``session.translation``: the target language and its options.

    Attributes:
        language: The target language code (``"en"``, ``"zh"``...).
        glossary: Hot-word pairs, source term -> target term, sent as
            ``corpus.phrases``.
        skip_same_language_text: Skip the text output when the speech is
            already in the target language (``same_language_skip_options``;
            the service applies it to ``zh`` and ``en`` only; refused on
            LiveTranslate 3.8).
        skip_same_language_audio: The same for the audio output.
        extra: More fields, sent as given.
    """

    language: str = attrs.field()
    glossary: Mapping[str, str] | NotGiven = attrs.field(
        default=NOT_GIVEN, converter=_freeze_mapping
    )
    skip_same_language_text: bool | NotGiven = attrs.field(
        default=NOT_GIVEN, validator=_instance(bool, "True or False")
    )
    skip_same_language_audio: bool | NotGiven = attrs.field(
        default=NOT_GIVEN, validator=_instance(bool, "True or False")
    )
    extra: Mapping[str, Any] = attrs.field(factory=dict, converter=_freeze_mapping)

    @language.validator
    def _check_language(self, attribute: attrs.Attribute[Any], value: Any) -> None:
        if not isinstance(value, str) or not value.strip():
            _fail(attribute, value, "a non-empty language code")

    @glossary.validator
    def _check_glossary(self, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is NOT_GIVEN:
            return
        if not isinstance(value, Mapping) or not all(
            isinstance(k, str) and k and isinstance(v, str) and v for k, v in value.items()
        ):
            _fail(attribute, value, "a dict of non-empty source -> target strings")

    def as_dict(self) -> dict[str, Any]:
        """The wire form of ``translation``."""
        out: dict[str, Any] = {"language": self.language}
        if self.glossary is not NOT_GIVEN:
            out["corpus"] = {"phrases": dict(self.glossary)}
        skip = {
            key: value
            for key, value in (
                ("skip_text", self.skip_same_language_text),
                ("skip_audio", self.skip_same_language_audio),
            )
            if value is not NOT_GIVEN
        }
        if skip:
            out["same_language_skip_options"] = skip
        out.update(self.extra)
        return out
