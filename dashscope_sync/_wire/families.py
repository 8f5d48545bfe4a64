"""Model families: which dialect a model speaks, and the facts that differ per family.

Pure data and functions, no I/O. The facts and their sources are in
MODEL_FAMILIES.md; where the sources disagree the official SDK 2.0.2 is
followed, and the disagreement is said where it matters.

The family is chosen from the model name (the ``model`` query value) by
prefix, as the official SDK 2.0.2 does (MODEL_FAMILIES.md §3):

=============================  =====================================
prefix                         family
=============================  =====================================
``qwen3.8-omni-``              `ModelFamily.OMNI_V38`
``qwen-audio-``                `ModelFamily.QWEN_AUDIO`
``qwen3.8-livetranslate-``     `ModelFamily.LIVETRANSLATE_V38`
``qwen3-livetranslate-``,      `ModelFamily.LIVETRANSLATE`
``qwen3.5-livetranslate-``
``qwen3-tts-``, ``qwen-tts-``  `ModelFamily.QWEN_TTS`
``qwen3-asr-flash-realtime``   `ModelFamily.QWEN_ASR` (sessions through
                               ``client.transcription``)
anything else                  `ModelFamily.OMNI` (the legacy dialect,
                               ``qwen3.5-omni-*`` included)
=============================  =====================================
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, Final

from .._constants import VAD_SEMANTIC, VAD_SERVER

__all__ = [
    "ASR_EMOTIONS",
    "ASR_LANGUAGES",
    "ASR_MODELS",
    "MODEL_QWEN3_5_LIVETRANSLATE_FLASH_REALTIME",
    "MODEL_QWEN3_5_LIVETRANSLATE_FLASH_REALTIME_2026_05_19",
    "MODEL_QWEN3_5_OMNI_FLASH_REALTIME",
    "MODEL_QWEN3_5_OMNI_PLUS_REALTIME",
    "MODEL_QWEN3_8_LIVETRANSLATE_FLASH_REALTIME",
    "MODEL_QWEN3_8_OMNI_FLASH_REALTIME",
    "MODEL_QWEN3_ASR_FLASH_REALTIME",
    "MODEL_QWEN3_ASR_FLASH_REALTIME_2025_10_27",
    "MODEL_QWEN3_ASR_FLASH_REALTIME_2026_02_10",
    "MODEL_QWEN3_LIVETRANSLATE_FLASH_REALTIME",
    "MODEL_QWEN_AUDIO_3_0_REALTIME_FLASH",
    "MODEL_QWEN_AUDIO_3_0_REALTIME_PLUS",
    "MODEL_QWEN_AUDIO_3_1_REALTIME_FLASH",
    "MODEL_QWEN_AUDIO_3_1_REALTIME_PLUS",
    "VAD_SMART_TURN",
    "VAD_SPEAKER_DETECTION",
    "VOICES_QWEN3_8_OMNI_FLASH",
    "VOICES_QWEN_AUDIO_3_0",
    "VOICES_QWEN_AUDIO_3_1_PLUS",
    "VOICE_CLONE",
    "VOICE_LONGANQIAN",
    "VOICE_LONGANQIAN_V3_1",
    "VOICE_TINA",
    "FinishRule",
    "ModelFamily",
    "client_events",
    "default_voice",
    "family_of",
    "finish_rule",
    "flatten_session_echo",
    "is_flat_only",
    "is_omni_3_5",
    "needs_workspace",
    "server_error_ends_session",
    "takes_tools",
    "transcription_model",
    "turn_detection_types",
]


class ModelFamily(enum.Enum):
    """The wire dialect a model speaks (``session.family``).

    The values of the conversation families are the official SDK 2.0.2's
    dialect names; the SDK has none for the speech families.
    """

    #: ``qwen-omni-turbo-realtime``, ``qwen3-omni-flash-realtime`` and
    #: ``qwen3.5-omni-*-realtime``: the flat OpenAI-beta ``session.update``.
    #: Also every model name the library does not know.
    OMNI = "omni"
    #: ``qwen3.8-omni-flash-realtime``: workspace host only; the voice and the
    #: audio formats nested under ``audio.*``.
    OMNI_V38 = "omni_v38"
    #: ``qwen3-livetranslate-*`` and ``qwen3.5-livetranslate-*``: flat plus
    #: ``translation``; the server streams translations with no ``response.create``.
    LIVETRANSLATE = "livetranslate"
    #: ``qwen3.8-livetranslate-*``: ``output_modalities`` and ``audio.input.*``.
    LIVETRANSLATE_V38 = "livetranslate_v38"
    #: ``qwen-audio-3.*-realtime-*``: smart turn, voiceprints, ambient
    #: transcripts; no ``session.finish``; a ``server_error`` ends the session.
    QWEN_AUDIO = "qwen_audio"
    #: ``qwen3-tts-*-realtime`` and ``qwen-tts-realtime*``: text in, audio out
    #: (SPEECH_FAMILIES.md §A). Opened with ``client.speech.connect``.
    QWEN_TTS = "qwen_tts"
    #: ``qwen3-asr-flash-realtime`` and its snapshots: audio in, live
    #: transcripts out (SPEECH_FAMILIES.md B); ``client.transcription.connect``.
    QWEN_ASR = "qwen_asr"

    def __repr__(self) -> str:
        return f"ModelFamily.{self.name}"

    @property
    def title(self) -> str:
        """The family's name for people and messages: ``"Qwen-Omni 3.8"``, ``"LiveTranslate"``..."""
        return _TITLES[self]

    @property
    def opened_with(self) -> str:
        """The call that opens its sessions, for messages that send a model to the
        right service: ``"client.speech.connect"``, ``"client.transcription.connect"``
        or ``"client.realtime.connect"``."""
        if self is ModelFamily.QWEN_TTS:
            return "client.speech.connect"
        if self is ModelFamily.QWEN_ASR:
            return "client.transcription.connect"
        return "client.realtime.connect"


_TITLES: Final[Mapping[ModelFamily, str]] = {
    ModelFamily.OMNI: "Qwen-Omni",
    ModelFamily.OMNI_V38: "Qwen-Omni 3.8",
    ModelFamily.LIVETRANSLATE: "LiveTranslate",
    ModelFamily.LIVETRANSLATE_V38: "LiveTranslate 3.8",
    ModelFamily.QWEN_AUDIO: "Qwen-Audio",
    ModelFamily.QWEN_TTS: "Qwen-TTS-Realtime",
    ModelFamily.QWEN_ASR: "Qwen-ASR-Realtime",
}


class FinishRule(enum.Enum):
    """What ``session.finish`` does for a model (MODEL_FAMILIES.md §6)."""

    #: Send it and wait for ``session.finished`` (LiveTranslate; best effort on
    #: the legacy Omni models, which may not answer).
    WAIT_FINISHED = "wait_finished"
    #: Accepted without an answer: send it and return (Omni 3.8).
    SEND_ONLY = "send_only"
    #: Rejected (Omni 3.5 answers "invalid event type") or missing (Qwen-Audio):
    #: do not send it; `close` ends the session.
    UNSUPPORTED = "unsupported"


# Models (MODEL_FAMILIES.md §1; the legacy Omni names live in _constants.py) ----

#: ``qwen3.5-omni-plus-realtime`` (no dated snapshot is documented).
MODEL_QWEN3_5_OMNI_PLUS_REALTIME: Final = "qwen3.5-omni-plus-realtime"
#: ``qwen3.5-omni-flash-realtime`` (no dated snapshot is documented).
MODEL_QWEN3_5_OMNI_FLASH_REALTIME: Final = "qwen3.5-omni-flash-realtime"
#: ``qwen3.8-omni-flash-realtime``, the model the service recommends; workspace host only.
MODEL_QWEN3_8_OMNI_FLASH_REALTIME: Final = "qwen3.8-omni-flash-realtime"
#: ``qwen3-livetranslate-flash-realtime``.
MODEL_QWEN3_LIVETRANSLATE_FLASH_REALTIME: Final = "qwen3-livetranslate-flash-realtime"
#: ``qwen3.5-livetranslate-flash-realtime``.
MODEL_QWEN3_5_LIVETRANSLATE_FLASH_REALTIME: Final = "qwen3.5-livetranslate-flash-realtime"
#: ``qwen3.5-livetranslate-flash-realtime-2026-05-19``, its dated snapshot.
MODEL_QWEN3_5_LIVETRANSLATE_FLASH_REALTIME_2026_05_19: Final = (
    "qwen3.5-livetranslate-flash-realtime-2026-05-19"
)
#: ``qwen3.8-livetranslate-flash-realtime``.
MODEL_QWEN3_8_LIVETRANSLATE_FLASH_REALTIME: Final = "qwen3.8-livetranslate-flash-realtime"
#: ``qwen-audio-3.0-realtime-plus``.
MODEL_QWEN_AUDIO_3_0_REALTIME_PLUS: Final = "qwen-audio-3.0-realtime-plus"
#: ``qwen-audio-3.0-realtime-flash``.
MODEL_QWEN_AUDIO_3_0_REALTIME_FLASH: Final = "qwen-audio-3.0-realtime-flash"
#: ``qwen-audio-3.1-realtime-plus``.
MODEL_QWEN_AUDIO_3_1_REALTIME_PLUS: Final = "qwen-audio-3.1-realtime-plus"
#: ``qwen-audio-3.1-realtime-flash`` (one third-party note says "not on sale").
MODEL_QWEN_AUDIO_3_1_REALTIME_FLASH: Final = "qwen-audio-3.1-realtime-flash"

#: ``qwen3-asr-flash-realtime``, the stable name (= ``-2025-10-27``).
MODEL_QWEN3_ASR_FLASH_REALTIME: Final = "qwen3-asr-flash-realtime"
#: ``qwen3-asr-flash-realtime-2025-10-27``.
MODEL_QWEN3_ASR_FLASH_REALTIME_2025_10_27: Final = "qwen3-asr-flash-realtime-2025-10-27"
#: ``qwen3-asr-flash-realtime-2026-02-10``, the latest snapshot.
MODEL_QWEN3_ASR_FLASH_REALTIME_2026_02_10: Final = "qwen3-asr-flash-realtime-2026-02-10"
#: Every documented Qwen-ASR-Realtime model name (SPEECH_FAMILIES.md B1); the
#: local server reads this list too.
ASR_MODELS: Final = (
    MODEL_QWEN3_ASR_FLASH_REALTIME,
    MODEL_QWEN3_ASR_FLASH_REALTIME_2025_10_27,
    MODEL_QWEN3_ASR_FLASH_REALTIME_2026_02_10,
)
#: The ``input_audio_transcription.language`` codes Qwen-ASR-Realtime documents
#: (``zh`` covers Mandarin, Sichuanese, Minnan and Wu); left out, it detects the language.
ASR_LANGUAGES: Final = (
    "zh", "yue", "en", "ja", "de", "ko", "ru", "fr", "pt", "ar", "it", "es", "hi", "id",
    "th", "tr", "uk", "vi", "cs", "da", "fil", "fi", "is", "ms", "no", "pl", "sv",
)  # fmt: skip
#: The ``emotion`` values its transcripts may carry.
ASR_EMOTIONS: Final = ("surprised", "neutral", "happy", "sad", "disgusted", "angry", "fearful")

#: Qwen-Audio's acoustic + semantic turn detection (``TurnDetection(type=...)``).
VAD_SMART_TURN: Final = "smart_turn"
#: LiveTranslate 3.8's turn detection, sent under ``audio.input.turn_detection``.
VAD_SPEAKER_DETECTION: Final = "speaker_detection"

# Voices. Listed for convenience, never validated: the service keeps adding them.

#: The default voice of Omni 3.5 and 3.8 (the docs; SDK 2.0.2's 3.8 example
#: uses ``longanlingxin`` instead).
VOICE_TINA: Final = "Tina"
#: The voice to name when LiveTranslate clones the speaker's voice
#: (``enable_voice_clone`` with frequency ``once`` or ``always``).
VOICE_CLONE: Final = "default"
#: The default voice of Qwen-Audio 3.0.
VOICE_LONGANQIAN: Final = "longanqian"
#: The default voice of Qwen-Audio 3.1 plus.
VOICE_LONGANQIAN_V3_1: Final = "longanqian_v3.1"
#: Voices of ``qwen3.8-omni-flash-realtime`` (agentscope's model card; the docs
#: point to a voice list that was not reachable).
VOICES_QWEN3_8_OMNI_FLASH: Final = ("Tina", "Serena", "Ryan", "Katerina", "longanlingxin")
#: System voices of Qwen-Audio 3.0. A voice applies only in the first ``session.update``.
VOICES_QWEN_AUDIO_3_0: Final = (
    "longanqian", "longanlingxin", "longanlingxi", "longanxiaoxin", "longanlufeng",
)  # fmt: skip
#: Voices of Qwen-Audio 3.1 plus (agentscope's model card).
VOICES_QWEN_AUDIO_3_1_PLUS: Final = (
    "longanqian_v3.1", "longanhuan_v3.1", "longanlingxin_v3.1", "longanfengyue_v3.1",
    "xunanchuan_v3.1", "beth_v3.1", "betty_v3.1", "cally_v3.1",
)  # fmt: skip

_PREFIXES: Final[tuple[tuple[str, ModelFamily], ...]] = (
    ("qwen3.8-omni-", ModelFamily.OMNI_V38),
    ("qwen-audio-", ModelFamily.QWEN_AUDIO),
    ("qwen3.8-livetranslate-", ModelFamily.LIVETRANSLATE_V38),
    ("qwen3-livetranslate-", ModelFamily.LIVETRANSLATE),
    ("qwen3.5-livetranslate-", ModelFamily.LIVETRANSLATE),
    ("qwen3-tts-", ModelFamily.QWEN_TTS),
    ("qwen-tts-", ModelFamily.QWEN_TTS),
    ("qwen3-asr-flash-realtime", ModelFamily.QWEN_ASR),
)


def family_of(model: str) -> ModelFamily:
    """The family of a model name, by prefix (see the module docstring).

    Unknown names get the legacy `ModelFamily.OMNI` dialect, as in the
    official SDK; force another with ``RealtimeConfig(family=...)``.
    """
    name = model.strip().lower()
    for prefix, family in _PREFIXES:
        if name.startswith(prefix):
            return family
    return ModelFamily.OMNI


def is_omni_3_5(model: str) -> bool:
    """Is this a ``qwen3.5-omni-*`` model (legacy dialect, but no ``session.finish``)?"""
    return model.strip().lower().startswith("qwen3.5-omni-")


def is_flat_only(model: str) -> bool:
    """Does this model take only the flat ``session.update`` (turbo, qwen3-flash)?

    They drop nested or GA-shaped fields (``audio.*``, ``output_modalities``)
    without an error (PROTOCOL.md §2.1), so such fields must never reach them.
    """
    return model.strip().lower().startswith(("qwen-omni-turbo-", "qwen3-omni-flash-"))


def takes_tools(family: ModelFamily, model: str) -> bool:
    """Does the model take ``session.tools`` (function calling)?

    Omni 3.5 and newer, Omni 3.8 and Qwen-Audio do (PROTOCOL.md §2.1 and
    point 9, MODEL_FAMILIES.md §4); LiveTranslate translates and calls
    nothing; the legacy Omni models (turbo, qwen3-flash) ignore tools. A
    model name the library does not know (Omni by default) is given the
    benefit of the doubt.
    """
    if family in (ModelFamily.OMNI_V38, ModelFamily.QWEN_AUDIO):
        return True
    return family is ModelFamily.OMNI and not is_flat_only(model)


#: The input transcription model of the 3.5 and 3.8 families and LiveTranslate.
ASR_FLASH: Final = "qwen3-asr-flash-realtime"
#: The input transcription model of turbo and qwen3-flash (PROTOCOL.md §2.1).
ASR_GUMMY: Final = "gummy-realtime-v1"


def transcription_model(family: ModelFamily, model: str) -> str | None:
    """The one input transcription model the docs name for this model, or None.

    None where no source names one to send: Qwen-Audio (the SDK sends ``{}``;
    ``fun-asr`` is only echoed), LiveTranslate 3.8 (always on, nothing is
    sent), and Omni models the library does not know.
    """
    if family is ModelFamily.OMNI:
        if is_flat_only(model):
            return ASR_GUMMY
        return ASR_FLASH if is_omni_3_5(model) else None
    if family in (ModelFamily.OMNI_V38, ModelFamily.LIVETRANSLATE):
        return ASR_FLASH
    return None


def turn_detection_types(family: ModelFamily, model: str) -> tuple[str, ...] | None:
    """The ``turn_detection.type`` values a model's docs list, its default first.

    None where no source lists them (Omni 3.8, Omni models the library does
    not know): anything is passed through. MODEL_FAMILIES.md §4.
    """
    if family is ModelFamily.OMNI:
        if is_flat_only(model):
            return (VAD_SERVER,)
        return (VAD_SERVER, VAD_SEMANTIC) if is_omni_3_5(model) else None
    if family is ModelFamily.LIVETRANSLATE:
        return (VAD_SERVER,)
    if family is ModelFamily.LIVETRANSLATE_V38:
        return (VAD_SPEAKER_DETECTION,)
    if family is ModelFamily.QWEN_AUDIO:
        return (VAD_SERVER, VAD_SMART_TURN)
    if family is ModelFamily.QWEN_ASR:
        return (VAD_SERVER,)
    return None


#: The client events LiveTranslate's docs list (MODEL_FAMILIES.md §4.5, §6): the
#: server ends turns and starts the translations itself.
_LIVETRANSLATE_EVENTS: Final = frozenset(
    {"session.update", "input_audio_buffer.append", "input_image_buffer.append", "session.finish"}
)
#: The client events Qwen-Audio's docs list (§4.6): audio only, no ``session.finish``.
_QWEN_AUDIO_EVENTS: Final = frozenset(
    {
        "session.update",
        "input_audio_buffer.append",
        "input_audio_buffer.commit",
        "input_audio_buffer.clear",
        "conversation.item.create",
        "conversation.item.retrieve",
        "conversation.item.delete",
        "response.create",
        "response.cancel",
    }
)


#: The client events Qwen-TTS-Realtime's docs list (SPEECH_FAMILIES.md §A2).
_QWEN_TTS_EVENTS: Final = frozenset(
    {
        "session.update",
        "input_text_buffer.append",
        "input_text_buffer.commit",
        "input_text_buffer.clear",
        "session.finish",
    }
)
#: The client events Qwen-ASR-Realtime's docs list (SPEECH_FAMILIES.md B2).
_QWEN_ASR_EVENTS: Final = frozenset(
    {"session.update", "input_audio_buffer.append", "input_audio_buffer.commit", "session.finish"}
)


def client_events(family: ModelFamily) -> frozenset[str] | None:
    """The client events a family's docs list, or None where no list is closed.

    The Omni families' docs grow with each model and leave open questions
    (PROTOCOL.md Q5), so they are not restricted here beyond `finish_rule`.
    """
    if family in (ModelFamily.LIVETRANSLATE, ModelFamily.LIVETRANSLATE_V38):
        return _LIVETRANSLATE_EVENTS
    if family is ModelFamily.QWEN_AUDIO:
        return _QWEN_AUDIO_EVENTS
    if family is ModelFamily.QWEN_TTS:
        return _QWEN_TTS_EVENTS
    if family is ModelFamily.QWEN_ASR:
        return _QWEN_ASR_EVENTS
    return None


def replaces_items(family: ModelFamily) -> bool:
    """Do the family's docs list both item operations a truncating
    ``interrupt()`` needs (``conversation.item.delete`` and ``.create``)?

    Only Qwen-Audio's do. The Omni docs list ``conversation.item.create``
    alone, and whether their servers take ``conversation.item.delete`` is
    an open question (PROTOCOL.md Q5); LiveTranslate, TTS and ASR take no
    items.
    """
    listed = client_events(family)
    return (
        listed is not None
        and {
            "conversation.item.delete",
            "conversation.item.create",
        }
        <= listed
    )


def needs_workspace(family: ModelFamily) -> bool:
    """Must this family connect through the workspace host?

    Only Omni 3.8 is documented as refused on the legacy hosts. The pages of
    LiveTranslate 3.5/3.8 and Qwen-Audio list only workspace hosts but do not
    say the legacy ones are refused, and older pages used them
    (MODEL_FAMILIES.md §2.3), so they are not refused here.
    """
    return family is ModelFamily.OMNI_V38


def server_error_ends_session(family: ModelFamily) -> bool:
    """Does a ``server_error`` event end the session (Qwen-Audio, MODEL_FAMILIES.md §8)?

    Qwen-Audio is documented to close the connection after a ``server_error``.
    The official SDK applies that to every family; the docs of the others do
    not say so, so their sessions go on (the error is delivered as an event).
    """
    return family is ModelFamily.QWEN_AUDIO


def finish_rule(family: ModelFamily, model: str) -> FinishRule:
    """What ``finish_session()`` does for this family and model (MODEL_FAMILIES.md §6)."""
    if family is ModelFamily.QWEN_AUDIO:
        return FinishRule.UNSUPPORTED
    if family is ModelFamily.OMNI_V38:
        return FinishRule.SEND_ONLY
    if family is ModelFamily.OMNI and is_omni_3_5(model):
        return FinishRule.UNSUPPORTED
    return FinishRule.WAIT_FINISHED


def default_voice(model: str, family: ModelFamily | None = None) -> str | None:
    """The documented default voice of a model, or None when no source states one."""
    family = family_of(model) if family is None else family
    name = model.strip().lower()
    if family is ModelFamily.OMNI:
        if name.startswith("qwen-omni-turbo-"):
            return "Chelsie"
        if name.startswith("qwen3-omni-flash-"):
            return "Cherry"
        if is_omni_3_5(name):
            return VOICE_TINA
        return None
    if family is ModelFamily.OMNI_V38:
        return VOICE_TINA
    if family is ModelFamily.LIVETRANSLATE:
        return "Cherry"
    if family is ModelFamily.QWEN_AUDIO:
        if name.startswith("qwen-audio-3.0-"):
            return VOICE_LONGANQIAN
        if name.startswith("qwen-audio-3.1-realtime-plus"):
            return VOICE_LONGANQIAN_V3_1
    return None


def _get(obj: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def _format(obj: Any) -> tuple[Any, Any]:
    """A nested ``format``: ``{"type", "sample_rate"}``, or a bare string."""
    if isinstance(obj, Mapping):
        return obj.get("type"), obj.get("sample_rate")
    return obj, None


def flatten_session_echo(session: Mapping[str, Any]) -> dict[str, Any]:
    """The ``session`` of ``session.created``/``.updated`` in the flat shape.

    Omni 3.8 and LiveTranslate 3.8 may echo a nested shape (``audio.output.voice``,
    ``audio.{input,output}.format``, ``audio.input.turn_detection``,
    ``audio.input.transcription``, ``output_modalities``); each nested value
    fills its flat key when that key is absent or null, so ``SessionInfo``
    reads the same attributes whichever shape the server used. A flat
    ``sample_rate`` (LiveTranslate 3/3.5) is the input sample rate; in a
    Qwen-TTS-Realtime echo (its model, or its ``response_format``, a field only
    TTS echoes) it is the speech's, the output rate.
    """
    out = dict(session)

    def fill(key: str, value: Any) -> None:
        if value is not None and out.get(key) is None:
            out[key] = value

    fill("modalities", session.get("output_modalities"))
    fill("voice", _get(session, "audio", "output", "voice"))
    in_type, in_rate = _format(_get(session, "audio", "input", "format"))
    out_type, out_rate = _format(_get(session, "audio", "output", "format"))
    fill("input_audio_format", in_type)
    fill("output_audio_format", out_type)
    fill("input_sample_rate", in_rate)
    fill("output_sample_rate", out_rate)
    # TTS takes text, not audio: its flat rate is the audio it sends back.
    # The echoed model may be a placeholder, so its TTS-only field counts too.
    model = session.get("model")
    tts = "response_format" in session or (
        isinstance(model, str) and family_of(model) is ModelFamily.QWEN_TTS
    )
    fill("output_sample_rate" if tts else "input_sample_rate", session.get("sample_rate"))
    audio_input = _get(session, "audio", "input")
    # turn_detection: null (manual mode) is a value here, so "absent" means absent.
    nested = isinstance(audio_input, Mapping) and "turn_detection" in audio_input
    if nested and "turn_detection" not in session:
        out["turn_detection"] = audio_input["turn_detection"]
    fill("input_audio_transcription", _get(session, "audio", "input", "transcription"))
    return out
