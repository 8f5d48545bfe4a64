"""Qwen-TTS-Realtime's configuration: `SpeechConfig`, its checks and its ``session.update``.

Pure data and functions, no I/O. The fields, ranges and per-model limits are
SPEECH_FAMILIES.md §A1-A2; where the sources disagree (§E) the choice is said
next to the check.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, Final, Literal

import attrs

from .._errors import ConfigError, ConfigTypeError
from .config import RealtimeConfig
from .families import ModelFamily, family_of

__all__ = [
    "MODEL_QWEN3_TTS_FLASH_REALTIME",
    "MODEL_QWEN3_TTS_INSTRUCT_FLASH_REALTIME",
    "MODEL_QWEN_TTS_REALTIME",
    "TTS_LANGUAGES",
    "TTS_MODELS",
    "TTS_VOICES",
    "SpeechConfig",
    "SpeechFormat",
    "SpeechMode",
]

#: ``qwen3-tts-flash-realtime``: system voices (stable alias of a dated snapshot).
MODEL_QWEN3_TTS_FLASH_REALTIME: Final = "qwen3-tts-flash-realtime"
#: ``qwen3-tts-instruct-flash-realtime``: system voices plus ``instructions``.
MODEL_QWEN3_TTS_INSTRUCT_FLASH_REALTIME: Final = "qwen3-tts-instruct-flash-realtime"
#: ``qwen-tts-realtime``: the legacy model (PCM at 24 kHz only, no rate/volume/pitch).
MODEL_QWEN_TTS_REALTIME: Final = "qwen-tts-realtime"

#: Every documented Qwen-TTS-Realtime model name and snapshot (SPEECH_FAMILIES.md §A1).
TTS_MODELS: Final = (
    "qwen3-tts-flash-realtime",
    "qwen3-tts-flash-realtime-2025-11-27",
    "qwen3-tts-flash-realtime-2025-09-18",
    "qwen3-tts-instruct-flash-realtime",
    "qwen3-tts-instruct-flash-realtime-2026-01-22",
    "qwen3-tts-vd-realtime-2026-01-15",
    "qwen3-tts-vd-realtime-2025-12-16",
    "qwen3-tts-vc-realtime-2026-01-15",
    "qwen3-tts-vc-realtime-2025-11-27",
    "qwen-tts-realtime",
    "qwen-tts-realtime-latest",
    "qwen-tts-realtime-2025-07-15",
)
#: System voices seen for the Qwen3-TTS models (third-party lists; the service's
#: own list was not reachable). Listed for convenience: a voice is checked for
#: its shape only, as the service adds voices and custom voice ids.
TTS_VOICES: Final = (
    "Cherry", "Serena", "Ethan", "Chelsie", "Momo", "Vivian", "Moon", "Maia", "Kai",
    "Nofish", "Bella", "Jennifer", "Ryan", "Katerina", "Elias", "Jada", "Dylan", "Sunny",
    "Li", "Marcus", "Roy", "Peter", "Rocky", "Kiki", "Eric",
)  # fmt: skip
#: The documented ``language_type`` values.
TTS_LANGUAGES: Final = (
    "Auto", "Chinese", "English", "German", "Italian", "Portuguese", "Spanish",
    "Japanese", "Korean", "French", "Russian",
)  # fmt: skip

SpeechMode = Literal["server_commit", "commit"]
SpeechFormat = Literal["pcm", "wav", "mp3", "opus"]

_MODES: Final = ("server_commit", "commit")
_FORMATS: Final = ("pcm", "wav", "mp3", "opus")
_RATES: Final = (8000, 16000, 24000, 48000)
#: The default voice of the system-voice models (``session.created`` echoes it).
_DEFAULT_VOICE: Final = "Cherry"
#: A system voice name or a custom (cloned/designed) voice id: no spaces, quotes
#: or control characters.
_VOICE_SHAPE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")
#: The fields the legacy model does not take (SPEECH_FAMILIES.md §A2).
_NOT_LEGACY: Final = ("speech_rate", "volume", "pitch_rate", "bit_rate")


def is_legacy(model: str) -> bool:
    """Is this the legacy ``qwen-tts-realtime`` model (PCM 24 kHz only, no controls)?"""
    return model.strip().lower().startswith("qwen-tts-")


def is_instruct(model: str) -> bool:
    """Does this model take ``instructions`` (the Instruct models only)?"""
    return model.strip().lower().startswith("qwen3-tts-instruct-")


def custom_voices_only(model: str) -> bool:
    """Does this model speak only custom voices (voice design ``-vd-``, voice clone ``-vc-``)?"""
    return model.strip().lower().startswith(("qwen3-tts-vd-", "qwen3-tts-vc-"))


def _number(
    name: str, value: object, low: float, high: float, *, integer: bool = False
) -> float | None:
    if value is None:
        return None
    kinds: tuple[type, ...] = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        kind = "an integer" if integer else "a number"
        raise ConfigTypeError(f"{name} must be {kind}, got {value!r}")
    number = float(value)  # type: ignore[arg-type]  # int or float, checked above
    if not math.isfinite(number) or not low <= number <= high:
        raise ConfigError(f"{name} must be in [{low:g}, {high:g}], got {value!r}")
    return number


def _choice(name: str, value: object, choices: tuple[Any, ...]) -> None:
    if value is not None and value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")


def _check_model(instance: SpeechConfig, attribute: object, model: object) -> None:
    if not isinstance(model, str) or not model.strip():
        raise ConfigTypeError(f"model must be a non-empty string, got {model!r}")
    family = family_of(model)
    if family is not ModelFamily.QWEN_TTS:
        # Name the service the model does belong to, not always the conversation one.
        raise ConfigError(
            f"{model!r} ({family.title}) is not a Qwen-TTS-Realtime model (e.g. "
            f"{MODEL_QWEN3_TTS_FLASH_REALTIME}): open it with {family.opened_with}(model=...)"
        )


def _check_extra(instance: SpeechConfig, attribute: object, extra: object) -> None:
    if not isinstance(extra, Mapping) or not all(isinstance(k, str) for k in extra):
        raise ConfigError(f"extra must be a dict with string keys, got {extra!r}")


@attrs.frozen(kw_only=True)
class SpeechConfig:
    """A Qwen-TTS-Realtime session: the model, its ``session.update`` and the connection.

    Every documented ``session.update`` field (SPEECH_FAMILIES.md §A2), each
    checked when the config is made, against its documented range and the
    model: the legacy ``qwen-tts-realtime`` takes PCM at 24 kHz only and none
    of ``speech_rate``, ``volume``, ``pitch_rate``, ``bit_rate``;
    ``instructions`` only on the Instruct models; the voice-design (``-vd-``)
    and voice-clone (``-vc-``) models need a custom voice id. A field left
    None is not sent (the server's default applies), except ``voice``,
    ``mode``, ``response_format`` and ``sample_rate``, which are always sent,
    as the official SDK does.

    Attributes:
        model: A Qwen-TTS-Realtime model (`TTS_MODELS`).
        voice: A system voice (`TTS_VOICES`; default ``"Cherry"``) or a custom voice id.
        mode: ``"server_commit"`` (the server picks where to cut the text;
            default) or ``"commit"`` (synthesis starts at each commit).
        language_type: The text's language (`TTS_LANGUAGES`), default ``Auto``.
        response_format: ``"pcm"`` (16-bit mono; default), ``"wav"``, ``"mp3"``, ``"opus"``.
        sample_rate: 8000, 16000, 24000 (default) or 48000 Hz.
        speech_rate: Speed, 0.5-2.0 (1.0 normal).
        volume: 0-100 (50 normal).
        pitch_rate: Pitch, 0.5-2.0 (1.0 normal).
        bit_rate: kbps, 6-510, for ``opus`` (the docs) or ``mp3`` (the SDK's docstring).
        instructions: How to speak (Instruct models; Chinese or English).
        optimize_instructions: Let the service rewrite ``instructions`` (needs them).
        extra: More ``session`` fields, sent as given, merged last.
        extra_headers: More HTTP headers for the upgrade.
        request_timeout: Default seconds to wait for an answer (``session.updated``...).
        close_timeout: Seconds `close` waits for the server's close frame.
        handler_timeout: Seconds `close` lets handlers finish.
        max_buffered_events: Events kept for `recv`/`events` (0: off).

    Raises:
        ConfigError: A value out of its range, or not taken by the model.
        ConfigTypeError: A value of the wrong type.
    """

    model: str = attrs.field(default=MODEL_QWEN3_TTS_FLASH_REALTIME, validator=_check_model)
    voice: str | None = None
    mode: SpeechMode = "server_commit"
    language_type: str | None = None
    response_format: SpeechFormat = "pcm"
    sample_rate: int = 24000
    speech_rate: float | None = None
    volume: int | None = None
    pitch_rate: float | None = None
    bit_rate: int | None = None
    instructions: str | None = None
    optimize_instructions: bool | None = None
    extra: Mapping[str, Any] = attrs.field(factory=dict, validator=_check_extra)
    extra_headers: Mapping[str, str] = attrs.field(factory=dict)
    request_timeout: float | None = 10.0
    close_timeout: float | None = 5.0
    handler_timeout: float | None = 5.0
    max_buffered_events: int = 4096

    def __attrs_post_init__(self) -> None:
        model = self.model
        voice = self.voice
        if voice is None:
            if custom_voices_only(model):
                raise ConfigError(
                    f"{model} speaks custom voices only: pass voice= the id of a voice you "
                    "designed or cloned"
                )
            object.__setattr__(self, "voice", _DEFAULT_VOICE)
        elif not isinstance(voice, str):
            raise ConfigTypeError(f"voice must be a string, got {type(voice).__name__}")
        elif not _VOICE_SHAPE.fullmatch(voice):
            raise ConfigError(
                f"voice must be a voice name or id (letters, digits, '_', '-', '.'), got {voice!r}"
            )
        _choice("mode", self.mode, _MODES)
        _choice("language_type", self.language_type, TTS_LANGUAGES)
        _choice("response_format", self.response_format, _FORMATS)
        if isinstance(self.sample_rate, bool) or not isinstance(self.sample_rate, int):
            raise ConfigTypeError(f"sample_rate must be an integer, got {self.sample_rate!r}")
        _choice("sample_rate", self.sample_rate, _RATES)
        _number("speech_rate", self.speech_rate, 0.5, 2.0)
        _number("volume", self.volume, 0, 100, integer=True)
        _number("pitch_rate", self.pitch_rate, 0.5, 2.0)
        _number("bit_rate", self.bit_rate, 6, 510, integer=True)
        if self.bit_rate is not None and self.response_format not in ("opus", "mp3"):
            raise ConfigError(
                "bit_rate applies to response_format 'opus' (or 'mp3'), not "
                f"{self.response_format!r}"
            )
        if self.instructions is not None:
            if not isinstance(self.instructions, str):
                raise ConfigTypeError(
                    f"instructions must be a string, got {type(self.instructions).__name__}"
                )
            if not is_instruct(model):
                raise ConfigError(
                    f"instructions need an Instruct model "
                    f"({MODEL_QWEN3_TTS_INSTRUCT_FLASH_REALTIME}), not {model}"
                )
        if self.optimize_instructions is not None:
            if not isinstance(self.optimize_instructions, bool):
                raise ConfigTypeError(
                    "optimize_instructions must be True or False, got "
                    f"{self.optimize_instructions!r}"
                )
            if self.optimize_instructions and self.instructions is None:
                raise ConfigError("optimize_instructions=True needs instructions")
        if is_legacy(model):
            if self.response_format != "pcm" or self.sample_rate != 24000:
                raise ConfigError(
                    f"{model} produces PCM at 24000 Hz only, not "
                    f"{self.response_format!r} at {self.sample_rate} Hz"
                )
            given = [name for name in _NOT_LEGACY if getattr(self, name) is not None]
            if given:
                raise ConfigError(
                    f"{model} takes none of {', '.join(given)}: use "
                    f"{MODEL_QWEN3_TTS_FLASH_REALTIME} for them"
                )
        # The connection's own checks (timeouts, buffer sizes, headers), now.
        self.realtime_config()

    def session(self) -> dict[str, Any]:
        """The ``session`` object of this config's ``session.update``."""
        session: dict[str, Any] = {
            "voice": self.voice,
            "mode": self.mode,
            "response_format": self.response_format,
            "sample_rate": self.sample_rate,
        }
        for name in (
            "language_type",
            "speech_rate",
            "volume",
            "pitch_rate",
            "bit_rate",
            "instructions",
            "optimize_instructions",
        ):
            value = getattr(self, name)
            if value is not None:
                session[name] = value
        session.update(self.extra)
        return session

    def realtime_config(self) -> RealtimeConfig:
        """The connection options, as the session core takes them."""
        return RealtimeConfig(
            model=self.model,
            extra_headers=self.extra_headers,
            request_timeout=self.request_timeout,
            close_timeout=self.close_timeout,
            handler_timeout=self.handler_timeout,
            max_buffered_events=self.max_buffered_events,
        )
