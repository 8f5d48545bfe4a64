"""What differs per model family in the local server's answers (MODEL_FAMILIES.md).

The server picks the family from the ``model`` of the connection URL, by the
same prefix rules as the library (and the official SDK), and answers in that
family's dialect:

- ``session.created`` carries the family's defaults (voice, transcription
  model, LiveTranslate's translation, Qwen-Audio's history and emotion);
- ``session.update`` is accepted in the flat and in the nested shape
  (``audio.output.voice``, ``audio.input.turn_detection``,
  ``output_modalities``), and echoed with both kept in step;
- LiveTranslate translates every committed turn by itself (no
  ``response.create``), streaming ``text``/``stash`` events;
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
from ._session import JSONDict, TextInput, TurnPiece, server_event

__all__ = [
    "TURN_DETECTION_TYPES",
    "FamilyRules",
]

#: Every turn detection type of every family (MODEL_FAMILIES.md §4).
TURN_DETECTION_TYPES: Final = ("server_vad", "semantic_vad", "smart_turn", "speaker_detection")

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
