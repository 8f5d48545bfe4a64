"""`TranscriptionConfig`: a Qwen-ASR-Realtime session's configuration and its ``session.update``.

Pure data, no I/O: validated at construction (a bad value is a `ConfigError`
before anything is sent), and encoded field for field as SPEECH_FAMILIES.md
B2 writes the frame::

    {"input_audio_format": "pcm", "sample_rate": 16000,
     "input_audio_transcription": {"language": "zh", "corpus": {"text": "..."}},
     "turn_detection": {"type": "server_vad", "threshold": 0.0, "silence_duration_ms": 400}}

``turn_detection`` is always sent (an object, or ``null`` for manual mode):
the service takes the configuration once, and its documented defaults
disagree with its own examples (SPEECH_FAMILIES.md E10), so the mode is
never left to a default the client would have to guess.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal

import attrs

from .._constants import VAD_SERVER
from .._errors import ConfigError
from .config import NOT_GIVEN, TurnDetection
from .families import ASR_LANGUAGES, MODEL_QWEN3_ASR_FLASH_REALTIME, ModelFamily, family_of

__all__ = ["ASR_FORMATS", "ASR_SAMPLE_RATES", "TranscriptionConfig"]

#: The input formats Qwen-ASR-Realtime takes.
ASR_FORMATS: Final = ("pcm", "opus")
#: Its input sample rates (8 kHz is upsampled by the server).
ASR_SAMPLE_RATES: Final = (16000, 8000)

#: `TurnDetection` fields Qwen-ASR documents; any other set field is refused.
_VAD_FIELDS: Final = frozenset({"type", "threshold", "silence_duration_ms", "extra"})


def _model(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"model must be a non-empty model name, got {value!r}")
    family = family_of(value)
    if family is not ModelFamily.QWEN_ASR:
        # Name the service the model does belong to (a TTS model is not a conversation one).
        raise ConfigError(
            f"{value} ({family.title}) is not a speech recognition model (e.g. "
            f"{MODEL_QWEN3_ASR_FLASH_REALTIME}): open it with {family.opened_with}(model=...)"
        )


def _one_of(*choices: object) -> Any:
    def check(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if isinstance(value, bool) or value not in choices:
            expected = ", ".join(repr(c) for c in choices)
            raise ConfigError(f"{attribute.name} must be one of {expected}, got {value!r}")

    return check


def _language(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, str) or value not in ASR_LANGUAGES:
        raise ConfigError(
            f"language must be None (detect it) or one of the codes the service documents "
            f"({', '.join(ASR_LANGUAGES)}), got {value!r}"
        )


def _corpus(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise ConfigError(f"corpus_text must be None or a non-empty string, got {value!r}")


def _turn_detection(value: Any) -> TurnDetection | None:
    """A `TurnDetection` (a dict is built into one), or None for manual mode."""
    if value is None or isinstance(value, TurnDetection):
        detection = value
    elif isinstance(value, Mapping):
        try:
            detection = TurnDetection(**value)
        except TypeError as exc:
            raise ConfigError(
                f"turn_detection: {exc}; Qwen-ASR takes type, threshold and silence_duration_ms"
            ) from None
    else:
        raise ConfigError(
            f"turn_detection must be a TurnDetection, a dict or None (manual mode), got {value!r}"
        )
    if detection is None:
        return None
    foreign = [
        field.name
        for field in attrs.fields(TurnDetection)
        if field.name not in _VAD_FIELDS and getattr(detection, field.name) is not NOT_GIVEN
    ]
    if foreign:
        raise ConfigError(
            f"turn_detection: {', '.join(foreign)} is not a Qwen-ASR setting; it takes "
            "threshold ([-1, 1]) and silence_duration_ms ([200, 6000]) only"
        )
    if detection.type not in (NOT_GIVEN, VAD_SERVER):
        raise ConfigError(
            f"turn_detection: type {detection.type!r} on Qwen-ASR: it takes {VAD_SERVER!r} "
            "only (or turn_detection=None for manual mode)"
        )
    return detection


def _copy(value: Any) -> Any:
    """A copy of a mapping (the caller's dict may change later); anything else as given."""
    return dict(value) if isinstance(value, Mapping) else value


def _extra(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise ConfigError(f"extra must be a dict with string keys, got {value!r}")


@attrs.frozen(kw_only=True)
class TranscriptionConfig:
    """A Qwen-ASR-Realtime session: the ``session.update`` it sends once, at connect.

    Example::

        ds.TranscriptionConfig(language="en", turn_detection=None)  # manual commits

    Attributes:
        model: ``qwen3-asr-flash-realtime`` (the default) or one of its
            snapshots; another family's model is a `ConfigError`.
        input_audio_format: ``"pcm"`` (mono 16-bit little-endian, the
            default) or ``"opus"``.
        sample_rate: 16000 (the default) or 8000 Hz.
        language: The spoken language, one of `ASR_LANGUAGES`
            (``"zh"``, ``"en"``...); None (the default) lets the service detect it.
        corpus_text: Context and hot words that bias the recognition
            (names, terms), sent as ``input_audio_transcription.corpus.text``.
        turn_detection: Server VAD (the default: a `TurnDetection`, or a
            dict, with ``threshold`` in [-1, 1] and ``silence_duration_ms``
            in [200, 6000]; left out, the server's own values apply), or None
            for manual mode, where `TranscriptionSession.commit_audio` ends
            each utterance.
        extra: More ``session`` fields, merged last (deeply), for fields
            newer than this library.
    """

    model: str = attrs.field(default=MODEL_QWEN3_ASR_FLASH_REALTIME, validator=_model)
    input_audio_format: Literal["pcm", "opus"] = attrs.field(
        default="pcm", validator=_one_of(*ASR_FORMATS)
    )
    sample_rate: Literal[16000, 8000] = attrs.field(
        default=16000, validator=_one_of(*ASR_SAMPLE_RATES)
    )
    language: str | None = attrs.field(default=None, validator=_language)
    corpus_text: str | None = attrs.field(default=None, validator=_corpus)
    turn_detection: TurnDetection | Mapping[str, Any] | None = attrs.field(
        factory=lambda: TurnDetection(type=VAD_SERVER), converter=_turn_detection
    )
    extra: Mapping[str, Any] = attrs.field(factory=dict, converter=_copy, validator=_extra)

    @property
    def vad(self) -> bool:
        """True under server VAD, False in manual mode."""
        return self.turn_detection is not None

    def as_session(self) -> dict[str, Any]:
        """The ``session`` object of the one ``session.update`` (SPEECH_FAMILIES.md B2)."""
        session: dict[str, Any] = {
            "input_audio_format": self.input_audio_format,
            "sample_rate": self.sample_rate,
        }
        transcription: dict[str, Any] = {}
        if self.language is not None:
            transcription["language"] = self.language
        if self.corpus_text is not None:
            transcription["corpus"] = {"text": self.corpus_text}
        if transcription:
            session["input_audio_transcription"] = transcription
        detection = self.turn_detection
        if isinstance(detection, TurnDetection):
            wire = detection.as_dict()
            wire["type"] = wire.get("type", VAD_SERVER)
            # The type first, as the docs write the object.
            session["turn_detection"] = {"type": wire.pop("type"), **wire}
        else:
            session["turn_detection"] = None
        return _deep_merge(session, self.extra)


def _deep_merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        old = out.get(key)
        if isinstance(old, dict) and isinstance(value, Mapping):
            out[key] = _deep_merge(old, value)
        else:
            out[key] = value
    return out
