"""What differs per model family in the local server's answers (MODEL_FAMILIES.md).

The server picks the family from the ``model`` of the connection URL, by the
same prefix rules as the library (and the official SDK), and answers in that
family's dialect:

- ``session.created`` carries the family's defaults (voice, transcription
  model, LiveTranslate's translation, Qwen-Audio's history and emotion);
- ``session.update`` is accepted in the shapes the family's docs and the
  official SDK send (the 3.8 families' nested ``audio.output.voice``, and
  LiveTranslate 3.8's ``audio.input.turn_detection`` and
  ``output_modalities``), and echoed with the flat keys kept in step;
- names are checked (``strict_names``): unknown models, voices missing
  from a documented list, unknown transcription languages;
- LiveTranslate translates every spoken turn by itself (no
  ``response.create``), streaming ``text``/``stash`` events; silence is
  never translated;
- what the family's docs do not list is refused as the service refuses it:
  another family's turn detection type, client events (``invalid event
  type``) and fields of another family or at the wrong level;
- ``session.finish``: answered with ``session.finished`` (legacy Omni,
  LiveTranslate), accepted without an answer (Omni 3.8), rejected as an
  invalid event type (Omni 3.5, Qwen-Audio);
- Qwen-Audio: voiceprint events for ``voiceprint_audio_urls``, and a
  ``server_error`` ends the connection.

Everything it says is simulated, and says so.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection, Sequence
from typing import Any, Final

from .._constants import VOICES_QWEN3_OMNI_FLASH, VOICES_QWEN_OMNI_TURBO
from .._wire.families import (
    VOICES_QWEN3_8_OMNI_FLASH,
    VOICES_QWEN_AUDIO_3_0,
    VOICES_QWEN_AUDIO_3_1_PLUS,
    FinishRule,
    ModelFamily,
    default_voice,
    family_of,
    finish_rule,
    is_omni_3_5,
    server_error_ends_session,
)
from ._asr import ASR_MODELS
from ._session import ClientEventError, JSONDict, TextInput, TurnPiece, server_event
from ._tts import TTS_MODELS

__all__ = [
    "TURN_DETECTION_TYPES",
    "FamilyRules",
]

#: Every turn detection type of every family (MODEL_FAMILIES.md §4).
TURN_DETECTION_TYPES: Final = ("server_vad", "semantic_vad", "smart_turn", "speaker_detection")

#: The models the local server answers for (MODEL_FAMILIES.md §1, PROTOCOL.md; the
#: qwen3 LiveTranslate snapshot from its model page). Others get an ``error``
#: naming ``model``, then a close, unless the server accepts any name.
KNOWN_MODELS: Final = frozenset(
    {
        "qwen-omni-turbo-realtime",
        "qwen-omni-turbo-realtime-latest",
        "qwen-omni-turbo-realtime-2025-05-08",
        "qwen3-omni-flash-realtime",
        "qwen3-omni-flash-realtime-latest",
        "qwen3-omni-flash-realtime-2025-09-15",
        "qwen3-omni-flash-realtime-2025-12-01",
        "qwen3.5-omni-plus-realtime",
        "qwen3.5-omni-flash-realtime",
        "qwen3.8-omni-flash-realtime",
        "qwen3-livetranslate-flash-realtime",
        "qwen3-livetranslate-flash-realtime-2025-09-22",
        "qwen3.5-livetranslate-flash-realtime",
        "qwen3.5-livetranslate-flash-realtime-2026-05-19",
        "qwen3.8-livetranslate-flash-realtime",
        "qwen-audio-3.0-realtime-plus",
        "qwen-audio-3.0-realtime-flash",
        "qwen-audio-3.1-realtime-plus",
        "qwen-audio-3.1-realtime-flash",
    }
)
#: Every model the local server serves: the conversation families, TTS and ASR.
SERVED_MODELS: Final = KNOWN_MODELS | frozenset(TTS_MODELS) | frozenset(ASR_MODELS)
# The 32 voices the 2025-12-01 snapshot adds (PROTOCOL.md §2.9).
_FLASH_2025_12_01_EXTRA: Final = (
    "Serena", "Chelsie", "Momo", "Vivian", "Moon", "Maia", "Kai", "Bella", "Aiden",
    "Eldric Sage", "Mia", "Mochi", "Bellona", "Vincent", "Bunny", "Neil", "Arthur", "Nini",
    "Ebona", "Seren", "Pip", "Stella", "Bodega", "Sonrisa", "Alek", "Dolce", "Sohee",
    "Ono Anna", "Lenn", "Emilien", "Andre", "Radio Gol",
)  # fmt: skip
#: The languages of qwen3-asr-flash-realtime, the input transcription model of
#: the newer families (SPEECH_FAMILIES.md §B1).
TRANSCRIPTION_LANGUAGES: Final = frozenset(
    {
        "zh", "yue", "en", "ja", "de", "ko", "ru", "fr", "pt", "ar", "it", "es", "hi", "id",
        "th", "tr", "uk", "vi", "cs", "da", "fil", "fi", "is", "ms", "no", "pl", "sv",
    }
)  # fmt: skip
# No reference lists LiveTranslate's 18 or 60 target languages: only the form
# of a language code is checked ("en", "zh", "pt-BR"; not "English" or "en_US").
_LANGUAGE_CODE: Final = re.compile(r"[a-z]{2,3}(-[A-Za-z0-9]{2,8})?")


def _did_you_mean(value: str, known: Collection[str]) -> str:
    close = difflib.get_close_matches(value, sorted(known), n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


# The client events each family's docs list (MODEL_FAMILIES.md §4-§6, PROTOCOL.md §2).
# session.finish is left to the finish rule, which also knows the server's knob.
_OMNI_EVENTS: Final = frozenset(
    {
        "session.update",
        "input_audio_buffer.append",
        "input_audio_buffer.commit",
        "input_audio_buffer.clear",
        "input_image_buffer.append",
        "conversation.item.create",
        "response.create",
        "response.cancel",
        "session.finish",
    }
)
# Qwen-Audio: audio only (no images), items can be retrieved and deleted, no finish.
_QWEN_AUDIO_EVENTS: Final = (_OMNI_EVENTS - {"input_image_buffer.append", "session.finish"}) | {
    "conversation.item.retrieve",
    "conversation.item.delete",
}
# LiveTranslate lists only these: the server drives turns and output by itself.
_LIVETRANSLATE_EVENTS: Final = frozenset(
    {"session.update", "input_audio_buffer.append", "input_image_buffer.append", "session.finish"}
)
# Qwen-ASR-Realtime (SPEECH_FAMILIES.md §B2).
_ASR_EVENTS: Final = frozenset(
    {"session.update", "input_audio_buffer.append", "input_audio_buffer.commit", "session.finish"}
)
# Qwen-TTS-Realtime (SPEECH_FAMILIES.md §A2), with the response.cancel the SDK sends.
_TTS_EVENTS: Final = frozenset(
    {
        "session.update",
        "input_text_buffer.append",
        "input_text_buffer.commit",
        "input_text_buffer.clear",
        "session.finish",
        "response.cancel",
    }
)

_ASR_FLASH: Final = "qwen3-asr-flash-realtime"
#: Speech shorter than this is "not a turn" for the simulated smart turn.
AMBIENT_MAX_SAMPLES: Final = 16000 * 6 // 10  # 0.6 s at 16 kHz


class FamilyRules:
    """The family of one connection's model and what the server does about it."""

    def __init__(self, model: str, *, strict_names: bool = True) -> None:
        self.model = model
        #: Refuse model names, voices and languages the references do not give.
        self.strict_names = strict_names
        self.family = family_of(model)
        self.finish = finish_rule(self.family, model)
        #: A server_error ends the connection (Qwen-Audio).
        self.server_error_ends = server_error_ends_session(self.family)

    @property
    def turn_detection_types(self) -> tuple[str, ...]:
        """The turn detection types this family takes, its default first (MODEL_FAMILIES.md §4)."""
        family = self.family
        if family is ModelFamily.LIVETRANSLATE_V38:
            return ("speaker_detection",)
        if family is ModelFamily.QWEN_AUDIO:
            return ("server_vad", "smart_turn")
        if family is ModelFamily.OMNI_V38 or is_omni_3_5(self.model):
            # 3.8's types are not documented (Q9); third-party catalogs give semantic_vad.
            return ("server_vad", "semantic_vad")
        return ("server_vad",)

    def model_error(self) -> ClientEventError | None:
        """The ``error`` for a model the service would not serve, or None.

        The references do not say how the service refuses an unknown model
        (PROTOCOL.md Q1); the local server sends this error, then closes.
        """
        model = self.model
        if not self.strict_names or model in SERVED_MODELS:
            return None
        message = f"Model not exist: {model!r}.{_did_you_mean(model, SERVED_MODELS)}"
        return ClientEventError(
            message + " (LocalRealtimeServer(strict_names=False) accepts any name.)",
            code="Model.NotExist",
            param="model",
        )

    def voices(self) -> frozenset[str] | None:
        """The system voices of this model, or None where no reference lists them."""
        name = self.model
        if name.startswith("qwen-omni-turbo-"):
            return frozenset(VOICES_QWEN_OMNI_TURBO)
        if name == "qwen3-omni-flash-realtime-2025-12-01":
            return frozenset(VOICES_QWEN3_OMNI_FLASH + _FLASH_2025_12_01_EXTRA)
        if name.startswith("qwen3-omni-flash-"):
            return frozenset(VOICES_QWEN3_OMNI_FLASH)
        if self.family is ModelFamily.OMNI_V38:
            return frozenset(VOICES_QWEN3_8_OMNI_FLASH)
        if name.startswith("qwen-audio-3.0-"):
            return frozenset(VOICES_QWEN_AUDIO_3_0)
        if name.startswith("qwen-audio-3.1-"):
            return frozenset(VOICES_QWEN_AUDIO_3_0 + VOICES_QWEN_AUDIO_3_1_PLUS)
        return None  # Omni 3.5 and LiveTranslate: no voice list is documented

    def _check_names(self, update: JSONDict) -> None:
        if not self.strict_names:
            return
        audio = update.get("audio")
        output = audio.get("output") if isinstance(audio, dict) else None
        for param, voice in (
            ("session.voice", update.get("voice")),
            (
                "session.audio.output.voice",
                output.get("voice") if isinstance(output, dict) else None,
            ),
        ):
            self._check_voice(voice, param)
        transcription = update.get("input_audio_transcription")
        language = transcription.get("language") if isinstance(transcription, dict) else None
        if language is not None and language not in TRANSCRIPTION_LANGUAGES:
            raise ClientEventError(
                f"Invalid language: {language!r}. Supported values are: "
                + ", ".join(sorted(TRANSCRIPTION_LANGUAGES))
                + "."
                + (
                    _did_you_mean(language, TRANSCRIPTION_LANGUAGES)
                    if isinstance(language, str)
                    else ""
                ),
                code="invalid_value",
                param="session.input_audio_transcription.language",
            )
        translation = update.get("translation")
        target = translation.get("language") if isinstance(translation, dict) else None
        if target is not None and not (
            isinstance(target, str) and _LANGUAGE_CODE.fullmatch(target)
        ):
            raise ClientEventError(
                f"Invalid language: {target!r}. Expected a language code such as 'en' or 'zh'.",
                code="invalid_value",
                param="session.translation.language",
            )

    def _check_voice(self, voice: Any, param: str) -> None:
        voices = self.voices()
        if voice is None or voices is None or not isinstance(voice, str):
            return  # null is the default voice; the shape is checked elsewhere
        if voice in voices or voice.startswith(f"{self.model}-"):
            return  # a system voice, or one cloned for this model (named after it)
        raise ClientEventError(
            f"Invalid voice: {voice!r} is not a voice of {self.model}. Supported voices are: "
            + ", ".join(sorted(voices))
            + "."
            + _did_you_mean(voice, voices),
            code="invalid_value",
            param=param,
        )

    def takes_event(self, event_type: str) -> bool:
        """Whether this family's docs list the client event (others: "invalid event type")."""
        family = self.family
        if family in (ModelFamily.LIVETRANSLATE, ModelFamily.LIVETRANSLATE_V38):
            return event_type in _LIVETRANSLATE_EVENTS
        if family is ModelFamily.QWEN_AUDIO:
            return event_type in _QWEN_AUDIO_EVENTS
        if family is ModelFamily.QWEN_TTS:
            return event_type in _TTS_EVENTS
        if family is ModelFamily.QWEN_ASR:
            return event_type in _ASR_EVENTS
        return event_type in _OMNI_EVENTS

    def late_update(self, update: Any, *, updated_before: bool, audio_sent: bool) -> Any:
        """Qwen-Audio's timing rules for ``session.update`` (MODEL_FAMILIES.md §4.6).

        ``turn_detection`` and ``input_audio_format`` can change only before
        the first audio: refused after it. ``voice`` applies only in the first
        update: a later one is dropped (not echoed), as the service ignores it.

        Returns:
            The update to apply.

        Raises:
            ClientEventError: ``invalid_value`` naming the late field.
        """
        if self.family is not ModelFamily.QWEN_AUDIO or not isinstance(update, dict):
            return update
        if audio_sent:
            for key in ("turn_detection", "input_audio_format"):
                if key in update:
                    raise ClientEventError(
                        f"{key} can be changed only before the first audio; open a new "
                        "connection to change it.",
                        code="invalid_value",
                        param=f"session.{key}",
                    )
        if updated_before and "voice" in update:
            return {key: value for key, value in update.items() if key != "voice"}
        return update

    def _audio_keys(self) -> frozenset[tuple[str, str]]:
        """The ``audio.<direction>.<key>`` fields this family takes in ``session.update``."""
        family = self.family
        formats = frozenset({("input", "format"), ("output", "format")})
        if family is ModelFamily.OMNI and not is_omni_3_5(self.model):
            # Turbo and qwen3-flash take the flat shape only; the service drops
            # nested fields silently (PROTOCOL.md §2.1), which no test could see.
            return frozenset()
        if family is ModelFamily.OMNI_V38:
            return formats | {("output", "voice")}
        if family is ModelFamily.LIVETRANSLATE_V38:
            return formats | {("output", "voice"), ("input", "turn_detection")}
        return formats

    def check_update(self, update: Any) -> None:
        """Refuse a ``session.update`` field this family does not take, or of its wrong shape.

        Raises:
            ClientEventError: ``invalid_value`` naming the field.
        """
        if not isinstance(update, dict):
            return  # apply_session_update refuses it
        family = self.family
        v38_translate = family is ModelFamily.LIVETRANSLATE_V38
        misplaced = {
            "output_modalities": not v38_translate,
            "modalities": v38_translate,
            "turn_detection": v38_translate,
            "translation": not self.translates,
            "enable_voice_clone": not self._clones_voices,
            "voice_clone_options": not self._clones_voices,
            "max_history_turns": family is not ModelFamily.QWEN_AUDIO,
            "enable_speech_emotion": family is not ModelFamily.QWEN_AUDIO,
        }
        for key, refused in misplaced.items():
            if refused and key in update:
                raise self._foreign(f"session.{key}")
        audio = update.get("audio")
        if "audio" in update and not isinstance(audio, dict):
            raise ClientEventError(
                f"Invalid value: {audio!r}. Expected an object.",
                code="invalid_value",
                param="session.audio",
            )
        allowed = self._audio_keys()
        for direction, fields in (audio or {}).items():
            if not isinstance(fields, dict) or not fields:
                if not any(d == direction for d, _ in allowed):
                    raise self._foreign(f"session.audio.{direction}")
                continue
            for key in fields:
                if (direction, key) not in allowed:
                    raise self._foreign(f"session.audio.{direction}.{key}")
        self._check_names(update)
        self._check_turn_type(update.get("turn_detection"), "session.turn_detection")
        nested = audio.get("input") if isinstance(audio, dict) else None
        if isinstance(nested, dict):
            self._check_turn_type(
                nested.get("turn_detection"), "session.audio.input.turn_detection"
            )

    @property
    def _clones_voices(self) -> bool:
        # Voice cloning is documented for LiveTranslate 3.5 and 3.8 (MODEL_FAMILIES.md §4.4).
        if self.family is ModelFamily.LIVETRANSLATE_V38:
            return True
        return self.family is ModelFamily.LIVETRANSLATE and not self.model.startswith("qwen3-")

    def _foreign(self, param: str) -> ClientEventError:
        return ClientEventError(
            f"Unknown parameter: {param!r} is not a field of {self.model} "
            f"(the {self.family.value} family's session).",
            code="invalid_value",
            param=param,
        )

    def _check_turn_type(self, detection: Any, param: str) -> None:
        if not isinstance(detection, dict) or "type" not in detection:
            return  # null is manual mode; a missing type is the family's default
        types = self.turn_detection_types
        if detection["type"] not in types:
            raise ClientEventError(
                f"Invalid value: {detection['type']!r}. Supported values for {self.model} are: "
                + ", ".join(repr(t) for t in types)
                + ".",
                code="invalid_value",
                param=f"{param}.type",
            )

    @property
    def translates(self) -> bool:
        """LiveTranslate: every committed turn is translated with no response.create."""
        return self.family in (ModelFamily.LIVETRANSLATE, ModelFamily.LIVETRANSLATE_V38)

    @property
    def takes_history(self) -> bool:
        """Qwen-Audio: ``system``/``assistant`` messages and ``function_call`` items."""
        return self.family is ModelFamily.QWEN_AUDIO

    @property
    def answers_finish(self) -> bool:
        return self.finish is FinishRule.WAIT_FINISHED

    @property
    def rejects_finish(self) -> bool:
        return self.finish is FinishRule.UNSUPPORTED

    def created_session(self, base: JSONDict) -> JSONDict:
        """The ``session`` of ``session.created``: the family's fields over ``base``.

        ``base`` is the legacy Omni session. A family whose docs state no
        default voice (LiveTranslate 3.8, Qwen-Audio 3.1 flash) echoes none,
        never an Omni voice.
        """
        family = self.family
        out: JSONDict = dict(base)
        voice = default_voice(self.model, family)
        if voice is None:
            out.pop("voice", None)
        else:
            out["voice"] = voice
        newer_omni = family is ModelFamily.OMNI and is_omni_3_5(self.model)
        if newer_omni or family is ModelFamily.OMNI_V38:
            out.update(
                input_audio_format="pcm",
                output_audio_format="pcm",
                input_audio_transcription={"model": _ASR_FLASH},
            )
        elif family is ModelFamily.LIVETRANSLATE and self.model.startswith("qwen3-"):
            # The qwen3 LiveTranslate server events show pcm16 in, pcm24 out.
            out.update(
                input_audio_format="pcm16",
                output_audio_format="pcm24",
                input_audio_transcription={"model": _ASR_FLASH, "language": "en"},
                translation={"language": "en"},
            )
        elif family is ModelFamily.LIVETRANSLATE:
            # 3.5 spells the formats pcm, with the input rate apart (MODEL_FAMILIES.md §4.4).
            out.update(
                input_audio_format="pcm",
                output_audio_format="pcm",
                sample_rate=16000,
                input_audio_transcription={"model": _ASR_FLASH, "language": "en"},
                translation={"language": "en"},
            )
        elif family is ModelFamily.LIVETRANSLATE_V38:
            out.update(
                input_audio_format="pcm",
                output_audio_format="pcm",
                input_modalities=["audio"],
                output_modalities=["text", "audio"],
                input_audio_transcription={"model": _ASR_FLASH},
                translation={"language": "en"},
            )
            out["turn_detection"] = {"type": "speaker_detection", "threshold": 0.5}
        elif family is ModelFamily.QWEN_AUDIO:
            out.update(
                input_audio_format="pcm",
                output_audio_format="pcm",
                input_audio_transcription={"model": "fun-asr"},
                max_history_turns=20,
                enable_speech_emotion=True,
            )
        return out

    def update_events(self, update: Any) -> tuple[list[JSONDict], list[JSONDict]]:
        """Events before and after ``session.updated`` for this update (Qwen-Audio voiceprints)."""
        if self.family is not ModelFamily.QWEN_AUDIO or not isinstance(update, dict):
            return [], []
        detection = update.get("turn_detection")
        urls = detection.get("voiceprint_audio_urls") if isinstance(detection, dict) else None
        if not urls:
            return [], []
        item_id = "item_voiceprint"
        before = [server_event("voiceprint_audio_list.in_progress", item_id=item_id)]
        if any("fail" in str(url) for url in urls):
            after = [
                server_event(
                    "voiceprint_audio_list.failed",
                    item_id=item_id,
                    reason="simulated failure: the local server does not download voiceprints",
                )
            ]
        else:
            after = [server_event("voiceprint_audio_list.completed", item_id=item_id)]
        return before, after

    def ambient_events(
        self, turn_detection: JSONDict | None, samples: int, item_id: str
    ) -> list[JSONDict]:
        """Qwen-Audio smart turn: speech too short to be a turn comes back as ambient ASR.

        The real model judges acoustically and semantically; the simulation
        calls any speech under 0.6 s ambient (a "hmm").
        """
        if (
            self.family is not ModelFamily.QWEN_AUDIO
            or not turn_detection
            or turn_detection.get("type") != "smart_turn"
            or samples >= AMBIENT_MAX_SAMPLES
        ):
            return []
        text = f"[simulated ambient speech: {samples / 16000:.2f} s, not a turn]"
        half = len(text) // 2
        return [
            server_event(
                "conversation.item.ambient_audio_transcription.delta",
                item_id=item_id,
                text=text[:half],
                stash=text[half:],
            ),
            server_event(
                "conversation.item.ambient_audio_transcription.completed",
                item_id=item_id,
                transcript=text,
            ),
        ]

    def translation_text(self, session: JSONDict, pieces: Sequence[TurnPiece]) -> str:
        """The simulated translation of a turn, saying plainly that it is simulated."""
        translation = session.get("translation")
        target = translation.get("language") if isinstance(translation, dict) else None
        said = " ".join(piece.text for piece in pieces if isinstance(piece, TextInput))
        heard = "the audio" if not said else repr(said)
        return f"This is a simulated translation into {target or 'en'} of {heard}."
