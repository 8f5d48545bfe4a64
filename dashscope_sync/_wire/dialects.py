"""Each family's wire dialect: what the session sends, shaped per `ModelFamily`.

Pure functions over the configuration records, no I/O. The family facts
themselves live in `_families`; this module applies them to `RealtimeConfig`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import attrs

from .._constants import INPUT_SAMPLE_RATE, OUTPUT_SAMPLE_RATE, VAD_SERVER
from .._errors import ConfigError, UsageError
from .config import NOT_GIVEN, RealtimeConfig, SessionUpdate, TurnDetection, _wire
from .families import (
    ASR_FLASH,
    MODEL_QWEN3_5_LIVETRANSLATE_FLASH_REALTIME,
    ModelFamily,
    client_events,
    family_of,
    is_flat_only,
    is_omni_3_5,
    needs_workspace,
    transcription_model,
    turn_detection_types,
)
from .regions import WORKSPACE_ENV, is_legacy_host

__all__ = [
    "TurnPlan",
    "check_client_event",
    "check_host",
    "check_late_update",
    "check_realtime_family",
    "encode_session",
    "family_for",
    "plan_turn",
    "takes_client_event",
]

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
#: The flat format keys, which one update never mixes with ``audio.*.format``.
_FLAT_FORMATS: Final = ("input_audio_format", "output_audio_format")
#: The rate each direction's flat format means, where the rate is fixed.
_FIXED_RATES: Final = {"input": INPUT_SAMPLE_RATE, "output": OUTPUT_SAMPLE_RATE}
_LIVETRANSLATE: Final = (ModelFamily.LIVETRANSLATE, ModelFamily.LIVETRANSLATE_V38)


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


def check_realtime_family(config: RealtimeConfig) -> None:
    """Refuse, before connecting, a family ``client.realtime`` cannot speak.

    Raises:
        ConfigError: A speech recognition model (names ``client.transcription.connect``)
            or a text-to-speech one (names ``client.speech.connect``).
    """
    family = family_for(config)
    if family is ModelFamily.QWEN_ASR:
        raise ConfigError(
            f"{config.model} ({family.title}) is a speech recognition model, not a "
            "conversation one: open it with client.transcription.connect(model=...)"
        )
    if family is ModelFamily.QWEN_TTS:
        raise ConfigError(
            f"{config.model} is a text-to-speech model (Qwen-TTS-Realtime): open it with "
            "client.speech.connect(model=...)"
        )


def takes_client_event(family: ModelFamily, wire_type: str) -> bool:
    """Do the family's docs list this client event (or list none, leaving it open)?"""
    listed = client_events(family)
    return listed is None or wire_type in listed


def check_client_event(family: ModelFamily, model: str, wire_type: str) -> None:
    """Refuse, before sending, a client event the family's docs do not list.

    Raises:
        UsageError: Names the event, what the family takes, and `send_raw` as
            the way to send it anyway.
    """
    listed = client_events(family)
    if listed is None or wire_type in listed:
        return
    raise UsageError(
        f"{model} ({family.title}) does not take {wire_type}: its docs list only "
        f"{', '.join(sorted(listed))}. send_raw() sends it anyway"
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
    its examples send, except where the service's docs say otherwise:

    - every family: the fields set, ``voice_clone_options.frequency``,
      ``video.input.representation_compact``; ``extra`` merged last (deep);
      a `TurnDetection` without a type gets the family's own; turning
      transcription on names the model the family's docs name;
    - legacy Omni: flat. The flat-only models (turbo, qwen3-flash) take a
      sample rate only where it is the flat format's own (16 kHz in, 24 kHz
      out: then it is not sent); on the others a sample rate moves both
      formats to ``audio.{input,output}.format = {type, sample_rate}``;
    - Qwen-Audio: flat, its rates fixed as on the flat-only models;
    - LiveTranslate: flat plus ``translation``; the input sample rate is the
      flat ``sample_rate``; transcription off is ``{"model": null}``;
    - Omni 3.8: ``modalities`` and ``turn_detection`` flat; the voice at
      ``audio.output.voice`` and the formats at ``audio.*.format``;
    - LiveTranslate 3.8: ``output_modalities``, the voice at
      ``audio.output.voice``, the formats at ``audio.*.format``, the turn
      detection (``speaker_detection``) at ``audio.input.turn_detection``;
      its always-on transcription is not sent.

    The docs put the voice of both 3.8 families at the top level instead
    (MODEL_FAMILIES.md §10); ``voice_placement="flat"`` sends it there.
    One update never mixes the flat formats with ``audio.*.format``.

    Raises:
        ConfigError: A field the family is documented to refuse, or one of
            another family (``translation`` on Omni...), or a shape the
            model would silently drop.
    """
    session: dict[str, Any] = {}
    for field in attrs.fields(SessionUpdate):
        value = getattr(update, field.name)
        if field.name in _PLACED or value is NOT_GIVEN:
            continue
        session[field.name] = _wire(value)
    _check_refusals(update, session, family, model)
    _check_family_fields(update, family, model)
    _place_turn_detection(update, session, family, model)
    _place_transcription(session, family, model)
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
    _place_formats(update, session, family, model, nest=v38)
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
    merged = _deep_merge(session, update.extra)
    _check_one_shape(merged, family, model)
    return merged


def _place_formats(
    update: SessionUpdate, session: dict[str, Any], family: ModelFamily, model: str, *, nest: bool
) -> None:
    """Put the audio formats and sample rates where the family takes them, in one shape."""
    rates = {"input": update.input_sample_rate, "output": update.output_sample_rate}
    flat_only = family is ModelFamily.QWEN_AUDIO or is_flat_only(model)
    if family is ModelFamily.LIVETRANSLATE:
        if rates["input"] is not NOT_GIVEN:
            session["sample_rate"] = rates["input"]
        # The flat sample_rate is the input's: the output has no flat rate field.
        rates = {"output": rates["output"]}
        flat_only = True
    if flat_only:
        for direction, rate in rates.items():
            if rate not in (NOT_GIVEN, _FIXED_RATES[direction]):
                raise _refuse(
                    family,
                    f"{direction}_sample_rate={rate} on {model or family.value}: it takes the "
                    f"flat {direction}_audio_format only, which is "
                    f"{_FIXED_RATES[direction] // 1000} kHz",
                )
        return  # a fixed rate is what the flat format already says: not sent
    if not nest and all(rate is NOT_GIVEN for rate in rates.values()):
        return
    for direction, rate in rates.items():
        flat_key = f"{direction}_audio_format"
        if flat_key not in session and rate is NOT_GIVEN:
            continue
        audio_format: dict[str, Any] = {"type": session.pop(flat_key, "pcm")}
        if rate is not NOT_GIVEN:
            audio_format["sample_rate"] = rate
        _nest(session, ("audio", direction, "format"), audio_format)


def _check_one_shape(session: Mapping[str, Any], family: ModelFamily, model: str) -> None:
    """Refuse an update (``extra`` included) that mixes the flat and nested audio shapes."""
    audio = session.get("audio")
    nested = [
        f"audio.{direction}.format"
        for direction in ("input", "output")
        if isinstance(audio, Mapping)
        and isinstance(audio.get(direction), Mapping)
        and "format" in audio[direction]
    ]
    flat = [key for key in _FLAT_FORMATS if key in session]
    if flat and nested:
        raise _refuse(
            family,
            f"mixing flat {', '.join(flat)} with nested {', '.join(nested)} in one "
            "session.update: give the audio formats in one shape",
        )
    if is_flat_only(model):
        foreign = [key for key in ("audio", "output_modalities") if key in session]
        if foreign:
            raise _refuse(
                family,
                f"{', '.join(foreign)} on {model}: it takes the flat session.update only "
                "(modalities, voice, input_audio_format, output_audio_format) and would "
                "silently drop them",
            )


def _check_family_fields(update: SessionUpdate, family: ModelFamily, model: str) -> None:
    """Refuse typed fields of another family: the service would ignore them, or wait for nothing."""
    where = model or family.value
    if family not in _LIVETRANSLATE:
        for name in ("translation", "enable_voice_clone", "voice_clone_frequency"):
            if getattr(update, name) is not NOT_GIVEN:
                raise _refuse(
                    family,
                    f"{name} on {where}: only LiveTranslate models translate (e.g. "
                    f"{MODEL_QWEN3_5_LIVETRANSLATE_FLASH_REALTIME}); connect to one of them",
                )
    if family is not ModelFamily.QWEN_AUDIO:
        for name in ("max_history_turns", "enable_speech_emotion"):
            if getattr(update, name) is not NOT_GIVEN:
                raise _refuse(family, f"{name} on {where}: it is a Qwen-Audio setting")


def _place_turn_detection(
    update: SessionUpdate, session: dict[str, Any], family: ModelFamily, model: str
) -> None:
    """Give a `TurnDetection` without a type the family's own; refuse a type it does not list."""
    wire = session.get("turn_detection")
    if not isinstance(wire, dict):
        return  # not given, or None (manual mode), which every family takes
    types = turn_detection_types(family, model)
    if isinstance(update.turn_detection, TurnDetection) and update.turn_detection.type is NOT_GIVEN:
        wire["type"] = types[0] if types else VAD_SERVER
    kind = wire.get("type")
    if types is not None and kind is not None and kind not in types:
        raise _refuse(
            family,
            f"turn detection type {kind!r} on {model or family.value}: it takes "
            f"{' or '.join(repr(t) for t in types)} (or turn_detection=None for none)",
        )


def _place_transcription(session: dict[str, Any], family: ModelFamily, model: str) -> None:
    """Turning transcription on names the model the family's docs name (MODEL_FAMILIES.md §3)."""
    wire = session.get("input_audio_transcription")
    if not isinstance(wire, dict):
        return  # not given, or None (off: each family's form is placed later)
    if family is ModelFamily.LIVETRANSLATE_V38:
        if wire and wire != {"model": ASR_FLASH}:
            raise _refuse(
                family,
                f"input transcription settings {wire!r}: its transcription is always on "
                "and takes no settings",
            )
        del session["input_audio_transcription"]  # always on: nothing to send
        return
    fixed = transcription_model(family, model)
    if fixed is None:
        return
    chosen = wire.get("model")
    if chosen is not None and chosen != fixed:
        raise _refuse(
            family,
            f"input transcription model {chosen!r} on {model}: it takes {fixed} only",
        )
    session["input_audio_transcription"] = {
        "model": fixed,
        **{k: v for k, v in wire.items() if k != "model"},
    }


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
    omni_3_5 = family is ModelFamily.OMNI and is_omni_3_5(model)
    if omni_3_5 and update.output_sample_rate not in (NOT_GIVEN, OUTPUT_SAMPLE_RATE):
        raise _refuse(
            family, f"output_sample_rate={update.output_sample_rate} on {model}: 24 kHz only"
        )


def check_late_update(
    update: SessionUpdate, family: ModelFamily, *, updated_before: bool, audio_sent: bool
) -> str | None:
    """Qwen-Audio's and Qwen-ASR's timing rules for ``session.update``.

    Qwen-ASR takes one ``session.update`` only: a second is `UsageError`.
    Qwen-Audio (MODEL_FAMILIES.md §4.6):

    ``turn_detection`` and ``input_audio_format`` can change only before the
    first audio (a new connection is needed after it): refused. ``voice``
    applies only in the first update: allowed, but the returned warning says
    it will be ignored.

    Raises:
        ConfigError: A setting the family takes only before the first audio.
        UsageError: A second update on Qwen-ASR.
    """
    if family is ModelFamily.QWEN_ASR:
        if updated_before:
            # SPEECH_FAMILIES.md B2: a second one fails ("session already started
            # or finished or failed") and the server closes with 1007.
            raise UsageError(
                f"{family.title} takes session.update once, before the audio: the session "
                "is configured already (the service would refuse a second one and close); "
                "open a new session to change it"
            )
        return None
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


@attrs.frozen
class TurnPlan:
    """How `respond` ends a turn and gets its reply, under the session's turn detection.

    Attributes:
        commit: Send ``input_audio_buffer.commit`` after the input.
        server_creates: The server starts the response by itself: follow it
            (`next_response`) instead of sending ``response.create``.
        trailing_silence_ms: Silence to append after the audio so that the
            server's own turn detection ends the turn (0: none).
    """

    commit: bool
    server_creates: bool
    trailing_silence_ms: int = 0


#: Silence past the server's ``silence_duration_ms``, so its detection surely fires.
_SILENCE_MARGIN_MS: Final = 200
#: The service's default ``silence_duration_ms`` (PROTOCOL.md §2.1).
_DEFAULT_SILENCE_MS: Final = 800


def plan_turn(
    family: ModelFamily, detection: Mapping[str, Any] | None, *, audio: bool, image: bool
) -> TurnPlan:
    """How one `respond` turn goes, from the effective ``turn_detection`` (None: manual).

    Under turn detection with automatic responses the server commits the
    turn and starts the reply itself: a commit of our own would make a
    second turn and a second reply (or fail on an emptied buffer), so none is
    sent; silence past the detection's ``silence_duration_ms`` is appended
    instead, so a clip that ends on speech still ends the turn. LiveTranslate
    always answers by itself and takes no commit at all. Otherwise (manual
    mode, ``create_response: false``, or no audio) the turn is committed and
    the response asked for, as before.

    Raises:
        ConfigError: LiveTranslate without audio.
        UsageError: LiveTranslate with turn detection off, where only
            ``session.finish`` ends the speech.
    """
    if family in _LIVETRANSLATE:
        if not audio:
            raise ConfigError(f"respond() on {family.title} needs audio to translate")
        if detection is None:
            raise UsageError(
                f"respond() on {family.title} needs turn detection, which ends the speech: with "
                "turn_detection=None the translation comes at finish_session() (append the "
                "audio, take next_response(), then call finish_session())"
            )
    if detection is None:
        return TurnPlan(commit=audio or image, server_creates=False)
    automatic = detection.get("create_response", True) is not False
    if (audio and automatic) or family in _LIVETRANSLATE:
        silence = detection.get("silence_duration_ms")
        if not isinstance(silence, int) or isinstance(silence, bool) or silence <= 0:
            silence = _DEFAULT_SILENCE_MS
        return TurnPlan(
            commit=False, server_creates=True, trailing_silence_ms=silence + _SILENCE_MARGIN_MS
        )
    return TurnPlan(commit=audio or image, server_creates=False)
