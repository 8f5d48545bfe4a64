"""What differs per model family in the local server's answers (MODEL_FAMILIES.md).

The server picks the family from the ``model`` of the connection URL, by the
same prefix rules as the library (and the official SDK), and answers in that
family's dialect:

- ``session.created`` carries the family's defaults (voice, transcription
  model, LiveTranslate's translation, Qwen-Audio's history and emotion);
- ``session.update`` is accepted in the flat and in the nested shape
  (``audio.output.voice``, ``audio.input.turn_detection``,
  ``output_modalities``), and echoed with both kept in step;
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

from collections.abc import Sequence
from typing import Any, Final

from .._families import (
    FinishRule,
    ModelFamily,
    default_voice,
    family_of,
    finish_rule,
    is_omni_3_5,
    server_error_ends_session,
)
from ._session import ClientEventError, JSONDict, TextInput, TurnPiece, server_event

__all__ = [
    "TURN_DETECTION_TYPES",
    "FamilyRules",
]

#: Every turn detection type of every family (MODEL_FAMILIES.md §4).
TURN_DETECTION_TYPES: Final = ("server_vad", "semantic_vad", "smart_turn", "speaker_detection")

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

_ASR_FLASH: Final = "qwen3-asr-flash-realtime"
#: Speech shorter than this is "not a turn" for the simulated smart turn.
AMBIENT_MAX_SAMPLES: Final = 16000 * 6 // 10  # 0.6 s at 16 kHz


class FamilyRules:
    """The family of one connection's model and what the server does about it."""

    def __init__(self, model: str) -> None:
        self.model = model
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

    def takes_event(self, event_type: str) -> bool:
        """Whether this family's docs list the client event (others: "invalid event type")."""
        family = self.family
        if family in (ModelFamily.LIVETRANSLATE, ModelFamily.LIVETRANSLATE_V38):
            return event_type in _LIVETRANSLATE_EVENTS
        if family is ModelFamily.QWEN_AUDIO:
            return event_type in _QWEN_AUDIO_EVENTS
        return event_type in _OMNI_EVENTS

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
