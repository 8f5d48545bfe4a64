"""Each family's wire dialect: what the session sends, shaped per `ModelFamily`.

Pure functions over the configuration records, no I/O. The family facts
themselves live in `_families`; this module applies them to `RealtimeConfig`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import attrs

from ._config import NOT_GIVEN, RealtimeConfig, SessionUpdate, _wire
from ._errors import ConfigError
from ._families import ModelFamily, family_of, is_omni_3_5, needs_workspace
from ._regions import WORKSPACE_ENV, is_legacy_host

__all__ = ["check_host", "check_late_update", "encode_session", "family_for"]

#: `SessionUpdate` fields that are not session keys: the encoder places them.
_PLACED: Final = frozenset(
    {
        "extra",
        "voice_placement",
        "input_sample_rate",
        "output_sample_rate",
        "video_representation_compact",
        "voice_clone_frequency",
    }
)
#: The only input transcription model of the 3.5 and 3.8 families.
_ASR_FLASH: Final = "qwen3-asr-flash-realtime"


def family_for(config: RealtimeConfig) -> ModelFamily:
    """The family a session speaks: ``config.family`` if forced, else from the model name."""
    return config.family if config.family is not None else family_of(config.model)


def check_host(config: RealtimeConfig, realtime_url: str) -> None:
    """Refuse, before any network traffic, a family that needs the workspace host on a legacy host.

    Raises:
        ConfigError: Says which family, and to set a workspace.
    """
    family = family_for(config)
    if needs_workspace(family) and is_legacy_host(realtime_url):
        raise ConfigError(
            f"{config.model} ({family.title}) is served only on the workspace host, not on the "
            f"shared host {realtime_url}: pass Client(workspace=...) or set {WORKSPACE_ENV} "
            "(and the region the workspace is in, region=... or DASHSCOPE_REGION)"
        )


def _deep_merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """``extra`` over ``base``; nested dicts are merged, not replaced."""
    out = dict(base)
    for key, value in extra.items():
        old = out.get(key)
        if isinstance(old, dict) and isinstance(value, Mapping):
            out[key] = _deep_merge(old, value)
        else:
            out[key] = value
    return out


def _nest(session: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = session
    for key in path[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
    node[path[-1]] = value


def _refuse(family: ModelFamily, what: str) -> ConfigError:
    return ConfigError(f"{family.title} refuses {what}")


def encode_session(update: SessionUpdate, family: ModelFamily, model: str) -> dict[str, Any]:
    """The ``session`` object of a ``session.update`` in the family's dialect.

    Follows the official SDK 2.0.2 (MODEL_FAMILIES.md §3), which is also what
    its examples send:

    - every family: the fields set, ``voice_clone_options.frequency``,
      ``video.input.representation_compact``; ``extra`` merged last (deep);
    - legacy Omni, Qwen-Audio: flat; a sample rate moves that direction's
      format to ``audio.{input,output}.format = {type, sample_rate}``;
    - LiveTranslate: flat plus ``translation``; the input sample rate is the
      flat ``sample_rate``; transcription off is ``{"model": null}``;
    - Omni 3.8: ``modalities`` and ``turn_detection`` flat; the voice at
      ``audio.output.voice`` and the formats at ``audio.*.format``;
    - LiveTranslate 3.8: ``output_modalities``, the voice at
      ``audio.output.voice``, the formats at ``audio.*.format``, the turn
      detection at ``audio.input.turn_detection``.

    The docs put the voice of both 3.8 families at the top level instead
    (MODEL_FAMILIES.md §10); ``voice_placement="flat"`` sends it there.

    Raises:
        ConfigError: A field the family is documented to refuse.
    """
    session: dict[str, Any] = {}
    for field in attrs.fields(SessionUpdate):
        value = getattr(update, field.name)
        if field.name in _PLACED or value is NOT_GIVEN:
            continue
        session[field.name] = _wire(value)
    _check_refusals(update, session, family, model)
    if update.voice_clone_frequency is not NOT_GIVEN:
        session["voice_clone_options"] = {"frequency": update.voice_clone_frequency}
    if update.video_representation_compact is not NOT_GIVEN:
        _nest(
            session,
            ("video", "input", "representation_compact"),
            update.video_representation_compact,
        )
    v38 = family in (ModelFamily.OMNI_V38, ModelFamily.LIVETRANSLATE_V38)
    nested_voice = v38 and update.voice_placement != "flat"
    if nested_voice and "voice" in session:
        _nest(session, ("audio", "output", "voice"), session.pop("voice"))
    for direction, rate in (
        ("input", update.input_sample_rate),
        ("output", update.output_sample_rate),
    ):
        flat_key = f"{direction}_audio_format"
        if direction == "input" and family is ModelFamily.LIVETRANSLATE:
            if rate is not NOT_GIVEN:
                session["sample_rate"] = rate
            continue
        if v38 or rate is not NOT_GIVEN:
            if flat_key not in session and rate is NOT_GIVEN:
                continue
            audio_format: dict[str, Any] = {"type": session.pop(flat_key, "pcm")}
            if rate is not NOT_GIVEN:
                audio_format["sample_rate"] = rate
            _nest(session, ("audio", direction, "format"), audio_format)
    if family is ModelFamily.LIVETRANSLATE_V38:
        if "modalities" in session:
            session["output_modalities"] = session.pop("modalities")
        if "turn_detection" in session:
            _nest(session, ("audio", "input", "turn_detection"), session.pop("turn_detection"))
    if (
        family is ModelFamily.LIVETRANSLATE
        and session.get("input_audio_transcription", ...) is None
    ):
        session["input_audio_transcription"] = {"model": None}
    return _deep_merge(session, update.extra)


def _check_refusals(
    update: SessionUpdate, session: dict[str, Any], family: ModelFamily, model: str
) -> None:
    """Refuse, before sending, what the family is documented to refuse (MODEL_FAMILIES.md §8)."""
    if family is ModelFamily.LIVETRANSLATE_V38:
        if "input_audio_transcription" in session and session["input_audio_transcription"] is None:
            raise _refuse(family, "turning input transcription off: its ASR is always on")
        translation = session.get("translation")
        if isinstance(translation, dict) and "same_language_skip_options" in translation:
            raise _refuse(family, "same-language skipping (same_language_skip_options)")
    if family is ModelFamily.QWEN_AUDIO:
        searching = update.enable_search is True
        if searching and update.tools is not NOT_GIVEN and len(update.tools) > 0:
            raise _refuse(family, "enable_search together with tools (function calling)")
        if update.input_sample_rate not in (NOT_GIVEN, 16000):
            raise _refuse(family, f"input_sample_rate={update.input_sample_rate}: input is 16 kHz")
        if update.output_sample_rate not in (NOT_GIVEN, 24000):
            raise _refuse(
                family, f"output_sample_rate={update.output_sample_rate}: output is 24 kHz"
            )
    if family is ModelFamily.OMNI and is_omni_3_5(model):
        transcription = session.get("input_audio_transcription")
        chosen = transcription.get("model") if isinstance(transcription, dict) else None
        if chosen not in (None, _ASR_FLASH):
            raise _refuse(
                family,
                f"input transcription model {chosen!r} on {model}: it is fixed to {_ASR_FLASH}",
            )
        if update.output_sample_rate not in (NOT_GIVEN, 24000):
            raise _refuse(
                family, f"output_sample_rate={update.output_sample_rate} on {model}: 24 kHz only"
            )


def check_late_update(
    update: SessionUpdate, family: ModelFamily, *, updated_before: bool, audio_sent: bool
) -> str | None:
    """Qwen-Audio's timing rules for ``session.update`` (MODEL_FAMILIES.md §4.6).

    ``turn_detection`` and ``input_audio_format`` can change only before the
    first audio (a new connection is needed after it): refused. ``voice``
    applies only in the first update: allowed, but the returned warning says
    it will be ignored.

    Raises:
        ConfigError: A setting the family takes only before the first audio.
    """
    if family is not ModelFamily.QWEN_AUDIO:
        return None
    if audio_sent:
        late = [
            name
            for name in ("turn_detection", "input_audio_format", "input_sample_rate")
            if getattr(update, name) is not NOT_GIVEN
        ]
        if late:
            raise _refuse(
                family,
                f"changing {', '.join(late)} after the first audio: it is taken only "
                "before audio is sent; open a new session to change it",
            )
    if updated_before and update.voice is not NOT_GIVEN:
        return (
            f"{family.title} applies the voice of the first session.update only: "
            f"voice={update.voice!r} will be ignored"
        )
    return None
