"""The input side of one connection's protocol state machine, without I/O.

:class:`ProtocolState` holds the session configuration, the input audio and
image buffers, the server VAD and the user turn that the next response
answers. Each handler takes a decoded client event and returns the steps to
carry out in order: server events to send, and the actions a connection must
take (:class:`BargeIn`, :class:`AutoResponse`); or it raises
:class:`~._session.ClientEventError`. Responses themselves are planned here
(:meth:`ProtocolState.plan_response`) and streamed by the connection.

Audio timeline: every appended sample advances the session's timeline (16 kHz
samples since the connection opened, whatever was committed or cleared). VAD
positions (``audio_start_ms``, ``audio_end_ms``) are read on it, so they depend
on the audio alone, never on wall-clock time.
"""

from __future__ import annotations

import base64
import binascii
import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ._audio import INPUT_SAMPLE_RATE, OUTPUT_SAMPLE_RATE, pcm16_peak, resample_pcm16
from ._families import FamilyRules
from ._responder import ResponsePlan
from ._response import ResponseStream, ScriptedStream, Stream
from ._session import (
    AudioInput,
    ClientEventError,
    FunctionOutput,
    JSONDict,
    TextInput,
    TurnPiece,
    apply_session_update,
    audio_tokens,
    choose_tool_call,
    compose_reply,
    default_session,
    new_id,
    parse_conversation_item,
    parse_response_params,
    server_event,
    simulated_transcript,
    text_tokens,
)
from ._vad import EnergyVad, contains_speech, samples_to_ms

__all__ = ["AutoResponse", "BargeIn", "ProtocolState", "Step"]


@dataclass(frozen=True)
class BargeIn:
    """Speech started while ``interrupt_response`` allows it: cancel what is streaming."""


@dataclass(frozen=True)
class AutoResponse:
    """A VAD turn ended (or was forced): respond to these pieces of the user turn."""

    pieces: tuple[TurnPiece, ...]


Step = JSONDict | BargeIn | AutoResponse
"""One thing for the connection to do: send an event, or act."""


def _samples(ms: Any, default: int) -> int:
    value = ms if isinstance(ms, int) and not isinstance(ms, bool) else default
    return max(0, value) * INPUT_SAMPLE_RATE // 1000


class ProtocolState:
    """Session, buffers, VAD and pending user turn of one connection.

    Thread safety: not thread-safe; the owning connection serialises access.

    Args:
        model: The model named in the connection URL.
        chunk_ms: Audio per ``response.audio.delta`` in responses it plans.
        server_vad: Simulate server VAD when ``turn_detection`` is not null.
        reply_audio: ``"speech"`` (synthesised) or ``"echo"`` (the user's
            committed audio, resampled to 24 kHz) as the reply audio.
        strict_names: Refuse model names, voices and languages the
            references do not give (False accepts any).
        leading_silence_ms: Silence before the voice of every reply's audio.
    """

    def __init__(
        self,
        model: str,
        *,
        chunk_ms: int,
        server_vad: bool = False,
        reply_audio: str = "speech",
        strict_names: bool = True,
        leading_silence_ms: int = 0,
    ) -> None:
        #: The model's family, and what the server does about it.
        self.rules = FamilyRules(model, strict_names=strict_names)
        self.session: JSONDict = self.rules.created_session(default_session(model))
        self.conversation_id = new_id("conv_")
        self.last_committed_audio = bytearray()
        self._chunk_ms = chunk_ms
        self._server_vad = server_vad
        self._echo = reply_audio == "echo"
        self._leading_silence_ms = leading_silence_ms
        self._audio = bytearray()
        # Timeline sample of self._audio[0], and of the end of all audio appended.
        self._buffer_start = 0
        self._timeline = 0
        self._audio_appended = False
        self._images = 0
        self._pending: list[TurnPiece] = []
        self._vad: EnergyVad | None = None
        # The turn_detection settings self._vad was built from.
        self._vad_config: JSONDict | None = None
        # The id announced by speech_started, used by the item it commits.
        self._speech_item_id: str | None = None
        # Timeline sample where the current speech began (for smart turn).
        self._speech_onset = 0
        # The conversation's items by id, in conversation order (a response's
        # items from its conversation.item.created), for the conversation view
        # and conversation.item.retrieve/delete/create with previous_item_id.
        self._items: dict[str, JSONDict] = {}
        # Whether a session.update was accepted (Qwen-Audio takes only the first voice).
        self._updated = False

    def session_created(self) -> JSONDict:
        """Return the ``session.created`` event."""
        return server_event("session.created", session=self.session)

    def session_update(self, frame: JSONDict) -> list[JSONDict]:
        """``session.update``: validate, merge, echo the full session."""
        # apply_session_update returns a new dict, so events already built
        # from the old one are never mutated under a sending thread.
        update = frame.get("session")
        self.rules.check_update(update)
        update = self.rules.late_update(
            update, updated_before=self._updated, audio_sent=self._timeline > 0
        )
        self.session = apply_session_update(
            self.session, update, default_turn_type=self.rules.turn_detection_types[0]
        )
        self._updated = True
        before, after = self.rules.update_events(update)
        return [*before, server_event("session.updated", session=self.session), *after]

    # ------------------------------------------------------------------
    # Input audio and VAD

    def _vad_settings(self) -> JSONDict | None:
        """The active turn_detection settings, or None in manual mode (or VAD off)."""
        settings = self.session.get("turn_detection")
        return settings if self._server_vad and isinstance(settings, dict) else None

    def _current_vad(self) -> EnergyVad | None:
        settings = self._vad_settings()
        if settings is None:
            self._vad, self._vad_config, self._speech_item_id = None, None, None
            return None
        if self._vad is None or settings != self._vad_config:
            # New or changed settings: start listening afresh from here.
            threshold = settings.get("threshold", 0.5)
            silence = settings.get("silence_duration_ms", 800)
            self._vad = EnergyVad(
                threshold=threshold if isinstance(threshold, (int, float)) else 0.5,
                silence_duration_ms=silence if isinstance(silence, int) else 800,
                position=self._timeline,
            )
            self._vad_config = copy.deepcopy(settings)
            self._speech_item_id = None
        return self._vad

    def audio_append(self, frame: JSONDict) -> list[Step]:
        """``input_audio_buffer.append``: buffer PCM16 and run the VAD over it.

        Manual mode sends nothing back. With server VAD, the steps are the
        speech boundaries found, each speech stop followed by its commit
        events and, unless ``create_response`` is false, an
        :class:`AutoResponse`; each speech start while ``interrupt_response``
        is not false is followed by a :class:`BargeIn`.
        """
        pcm = _decode_base64(frame.get("audio"), "audio")
        if len(pcm) % 2:
            raise ClientEventError(
                f"Invalid audio: PCM16 needs an even number of bytes, got {len(pcm)}.",
                code="invalid_value",
                param="audio",
            )
        if not pcm:
            return []
        vad = self._current_vad()
        self._audio.extend(pcm)
        self._timeline += len(pcm) // 2
        self._audio_appended = True
        if vad is None:
            return []
        steps: list[Step] = []
        for event in vad.feed(pcm):
            if event.kind == "start":
                steps.extend(self._speech_started(event.sample))
            else:
                steps.extend(self._speech_stopped(event.sample))
        if not vad.in_speech:
            # Between turns only the prefix padding is worth keeping: a
            # microphone streaming silence must not grow the buffer forever.
            self._drop_before(vad.analysed_end - self._prefix_samples())
        return steps

    def _prefix_samples(self) -> int:
        settings = self._vad_config or {}
        return _samples(settings.get("prefix_padding_ms"), 300)

    def _drop_before(self, sample: int) -> None:
        count = sample - self._buffer_start
        if count > 0:
            del self._audio[: 2 * count]
            self._buffer_start += count

    def _speech_started(self, onset: int) -> list[Step]:
        settings = self._vad_config or {}
        audio_start = max(self._buffer_start, onset - self._prefix_samples())
        self._drop_before(audio_start)
        self._speech_item_id = new_id("item_")
        self._speech_onset = onset
        steps: list[Step] = [
            server_event(
                "input_audio_buffer.speech_started",
                audio_start_ms=samples_to_ms(audio_start),
                item_id=self._speech_item_id,
            )
        ]
        if settings.get("interrupt_response") is not False:
            steps.append(BargeIn())
        return steps

    def _speech_stopped(self, end: int) -> list[Step]:
        item_id = self._speech_item_id or new_id("item_")
        self._speech_item_id = None
        steps: list[Step] = [
            server_event(
                "input_audio_buffer.speech_stopped",
                audio_end_ms=samples_to_ms(end),
                item_id=item_id,
            )
        ]
        ambient = self.rules.ambient_events(self._vad_settings(), end - self._speech_onset, item_id)
        if ambient:
            # Qwen-Audio's smart turn: not a turn. Not added, not answered.
            self._drop_before(end)
            return [*steps, *ambient]
        steps.extend(self._commit(end, item_id))
        steps.extend(self._auto_response())
        return steps

    def _auto_response(self) -> list[Step]:
        if (self._vad_config or {}).get("create_response") is False:
            return []
        pieces, self._pending = tuple(self._pending), []
        return [AutoResponse(pieces)]

    def _commit(self, end: int | None, item_id: str) -> list[Step]:
        """Commit the buffer up to timeline sample ``end`` (None: all of it)."""
        cut = len(self._audio) if end is None else 2 * (end - self._buffer_start)
        pcm = bytes(self._audio[:cut])
        del self._audio[:cut]
        self._buffer_start += cut // 2
        piece = AudioInput(len(pcm), pcm16_peak(pcm), self._images, pcm if self._echo else b"")
        self._pending.append(piece)
        self.last_committed_audio = bytearray(pcm)
        self._images = 0
        self._audio_appended = bool(self._audio)
        item = {
            "id": item_id,
            "object": "realtime.item",
            "type": "message",
            "status": "completed",
            "role": "user",
            "content": [{"type": "input_audio"}],
        }
        steps: list[Step] = [
            server_event("input_audio_buffer.committed", item_id=item_id),
            server_event("conversation.item.created", item=item),
        ]
        transcript = simulated_transcript(piece.num_bytes, piece.peak)
        # Retrieved later with the audio as its transcript only, as Qwen-Audio does.
        self._items[item_id] = {
            **item,
            "content": [{"type": "input_audio", "transcript": transcript}],
        }
        if self.rules.translates:
            # LiveTranslate's source transcript firms up as text/stash first.
            words = transcript.split(" ")
            half = " ".join(words[: len(words) // 2])
            steps.append(
                server_event(
                    "conversation.item.input_audio_transcription.text",
                    item_id=item_id,
                    content_index=0,
                    text=half,
                    stash=transcript[len(half) :],
                )
            )
        if self.session.get("input_audio_transcription") is not None:
            steps.append(
                server_event(
                    "conversation.item.input_audio_transcription.completed",
                    item_id=item_id,
                    content_index=0,
                    transcript=transcript,
                )
            )
        return steps

    def image_append(self, frame: JSONDict) -> list[JSONDict]:
        """``input_image_buffer.append``: needs audio first; no acknowledgement."""
        if not self._audio_appended:
            raise ClientEventError(
                "Error append image before append audio.", code="invalid_request"
            )
        if not _decode_base64(frame.get("image"), "image"):
            raise ClientEventError(
                "Invalid image: the image is empty.", code="invalid_value", param="image"
            )
        self._images += 1
        return []

    def audio_commit(self, frame: JSONDict) -> list[Step]:
        """``input_audio_buffer.commit``: close the user audio item (and transcribe it).

        With server VAD it forces the end of the turn: ``speech_stopped`` if
        speech was going on, the commit, then an :class:`AutoResponse` unless
        ``create_response`` is false.
        """
        if not self._audio:
            raise ClientEventError(
                "Error committing input audio buffer: buffer is empty.",
                code="input_audio_buffer_commit_empty",
            )
        vad = self._current_vad()
        steps: list[Step] = []
        item_id = self._speech_item_id or new_id("item_")
        if vad is not None and vad.in_speech:
            steps.append(
                server_event(
                    "input_audio_buffer.speech_stopped",
                    audio_end_ms=samples_to_ms(self._timeline),
                    item_id=item_id,
                )
            )
            vad.reset()
        self._speech_item_id = None
        steps.extend(self._commit(None, item_id))
        if vad is not None or self.rules.translates:
            # LiveTranslate translates every turn by itself, VAD or not.
            steps.extend(self._auto_response())
        return steps

    def _threshold(self) -> float:
        settings = self.session.get("turn_detection")
        threshold = settings.get("threshold") if isinstance(settings, dict) else None
        return float(threshold) if isinstance(threshold, (int, float)) else 0.5

    def flush_for_finish(self) -> list[Step]:
        """``session.finish`` on LiveTranslate: translate the speech still buffered.

        Only speech is translated: buffered silence (the padding a VAD turn
        leaves behind, or a session that heard nothing) gets no translation,
        as the docs say ``session.finished`` then comes directly.
        """
        if not self.rules.translates or not contains_speech(self._audio, self._threshold()):
            return []
        self._speech_item_id = None
        if self._vad is not None:
            self._vad.reset()
        return [*self._commit(None, new_id("item_")), *self._auto_response()]

    def audio_clear(self, frame: JSONDict) -> list[JSONDict]:
        """``input_audio_buffer.clear``: drop buffered audio and images (and any speech)."""
        self._audio = bytearray()
        self._buffer_start = self._timeline
        self._audio_appended = False
        self._images = 0
        self._speech_item_id = None
        if self._vad is not None:
            self._vad.reset()
        return [server_event("input_audio_buffer.cleared")]

    def item_create(self, frame: JSONDict) -> list[Step]:
        """``conversation.item.create``: user text or a function call output.

        Under server VAD with automatic responses, a function call output is
        answered at once, with no ``response.create``, as the service does.
        """
        item, piece = parse_conversation_item(frame.get("item"), history=self.rules.takes_history)
        if item["id"] in self._items:
            raise ClientEventError(
                f"Item with id {item['id']!r} already exists.",
                code="invalid_value",
                param="item.id",
            )
        previous = frame.get("previous_item_id")
        if previous is not None and (not isinstance(previous, str) or previous not in self._items):
            raise ClientEventError(
                f"Item with id {previous!r} not found.",
                code="invalid_value",
                param="previous_item_id",
            )
        self._insert_item(item, previous)
        if piece is not None:
            self._pending.append(piece)
        created = server_event("conversation.item.created", item=item)
        if previous is not None:
            created["previous_item_id"] = previous
        steps: list[Step] = [created]
        if isinstance(piece, FunctionOutput) and self._vad_settings() is not None:
            steps.extend(self._auto_response())
        return steps

    def _insert_item(self, item: JSONDict, previous: str | None) -> None:
        """Add an item at the end, or right after ``previous`` (a known item)."""
        if previous is None:
            self._items[item["id"]] = item
            return
        items = list(self._items.items())
        at = next(i for i, (key, _) in enumerate(items) if key == previous) + 1
        items.insert(at, (item["id"], item))
        self._items = dict(items)

    def record_sent(self, frame: JSONDict) -> None:
        """Keep the conversation's view of a frame the server sent: a response's
        assistant item from its ``conversation.item.created`` (its place), and
        its content from ``response.done`` (what was actually sent)."""
        kind = frame.get("type")
        if kind == "conversation.item.created":
            item = frame.get("item")
            if isinstance(item, dict) and item.get("id") not in self._items:
                self._items[item["id"]] = copy.deepcopy(item)
        elif kind == "response.done":
            response = frame.get("response")
            output = response.get("output") if isinstance(response, dict) else None
            for item in output if isinstance(output, list) else ():
                if isinstance(item, dict) and item.get("id") in self._items:
                    self._items[item["id"]] = copy.deepcopy(item)

    @property
    def conversation(self) -> list[JSONDict]:
        """The conversation's items in order, as the server keeps them (copies)."""
        return copy.deepcopy(list(self._items.values()))

    def item_retrieve(self, frame: JSONDict) -> list[Step]:
        """``conversation.item.retrieve``: the item (audio as its transcript only)."""
        item_id = self._known_item(frame)
        return [server_event("conversation.item.retrieved", item=self._items[item_id])]

    def item_delete(self, frame: JSONDict) -> list[Step]:
        """``conversation.item.delete``: forget the item."""
        item_id = self._known_item(frame)
        del self._items[item_id]
        return [server_event("conversation.item.deleted", item_id=item_id)]

    def _known_item(self, frame: JSONDict) -> str:
        item_id = frame.get("item_id")
        if not isinstance(item_id, str) or item_id not in self._items:
            raise ClientEventError(
                f"Item with id {item_id!r} not found.", code="invalid_value", param="item_id"
            )
        return item_id

    # ------------------------------------------------------------------
    # Responses

    def plan_response(
        self,
        frame: JSONDict | None,
        *,
        pieces: Sequence[TurnPiece] | None = None,
        take_plan: Callable[[], ResponsePlan | None] = lambda: None,
    ) -> tuple[Stream, ResponsePlan | None]:
        """Plan the answer to ``response.create`` (or to an automatic turn).

        The caller checks first that a response may start.

        Args:
            frame: The ``response.create`` event; None for an automatic response.
            pieces: The user turn to answer; None consumes the pending one.
            take_plan: Returns the test plan for this response, if any; called
                only once the request is known to be valid.

        Returns:
            The stream to send, and the plan that bends it (or None).
        """
        modalities, instructions = parse_response_params(
            None if frame is None else frame.get("response")
        )
        plan = take_plan()
        if pieces is None:
            pieces, self._pending = self._pending, []
        if plan is not None and plan.script is not None:
            return ScriptedStream(list(plan.script), conversation_id=self.conversation_id), plan
        session = self.session
        if modalities is None:
            configured = session.get("modalities")
            modalities = configured if isinstance(configured, list) else ["text", "audio"]
        if instructions is None and isinstance(session.get("instructions"), str):
            instructions = session["instructions"]
        turn = list(pieces)
        if self.rules.translates:
            return self._translation_stream(turn, modalities), plan
        heard = [piece for piece in turn if isinstance(piece, AudioInput)]
        echo = self._echo and bool(heard)
        audio = None
        if echo:
            pcm = b"".join(piece.pcm for piece in heard)
            audio = resample_pcm16(pcm, INPUT_SAMPLE_RATE, OUTPUT_SAMPLE_RATE)
        stream = ResponseStream(
            conversation_id=self.conversation_id,
            modalities=modalities,
            voice=session.get("voice"),
            output_audio_format=session.get("output_audio_format"),
            reply_text=compose_reply(turn, instructions, echo=echo),
            tool_call=choose_tool_call(session, turn, instructions),
            chunk_ms=self._chunk_ms,
            input_text_tokens=_input_text_tokens(turn, instructions),
            input_audio_tokens=sum(
                audio_tokens(piece.num_bytes, INPUT_SAMPLE_RATE) for piece in heard
            ),
            audio=audio,
            leading_silence_ms=self._leading_silence_ms,
        )
        return stream, plan

    def _translation_stream(self, turn: list[TurnPiece], modalities: list[str]) -> Stream:
        """LiveTranslate's answer: the translation, streamed as text/stash events."""
        heard = [piece for piece in turn if isinstance(piece, AudioInput)]
        configured = self.session.get("output_modalities") or self.session.get("modalities")
        if isinstance(configured, list):
            modalities = configured
        text = self.rules.translation_text(self.session, turn)
        return ResponseStream(
            conversation_id=self.conversation_id,
            modalities=modalities,
            voice=self.session.get("voice"),
            output_audio_format=self.session.get("output_audio_format"),
            reply_text=text,
            tool_call=None,
            chunk_ms=self._chunk_ms,
            input_text_tokens=0,
            input_audio_tokens=sum(
                audio_tokens(piece.num_bytes, INPUT_SAMPLE_RATE) for piece in heard
            ),
            stash=True,
        )


def _decode_base64(value: Any, param: str) -> bytes:
    if not isinstance(value, str):
        raise ClientEventError(
            f"Invalid {param}: expected a base64 string.", code="invalid_value", param=param
        )
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ClientEventError(
            f"Invalid {param}: not valid base64.", code="invalid_value", param=param
        ) from None


def _input_text_tokens(pieces: Sequence[TurnPiece], instructions: str | None) -> int:
    total = text_tokens(instructions or "")
    for piece in pieces:
        if isinstance(piece, TextInput):
            total += text_tokens(piece.text)
        elif isinstance(piece, FunctionOutput):
            total += text_tokens(piece.output)
    return total
