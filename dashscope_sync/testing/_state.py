"""The input side of one connection's protocol state machine, without I/O.

:class:`ProtocolState` holds the session configuration, the input audio and
image buffers and the user turn that the next response answers. Each handler
takes a decoded client event and returns the server events to send, or raises
:class:`~._session.ClientEventError`; the connection does the sending and the
threading. Responses themselves are planned here (:meth:`ProtocolState.plan_response`)
and streamed by the connection.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from ._audio import INPUT_SAMPLE_RATE, pcm16_peak
from ._response import ResponseStream
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

__all__ = ["ProtocolState"]


class ProtocolState:
    """Session, buffers and pending user turn of one connection.

    Thread safety: not thread-safe; the owning connection serialises access.

    Args:
        model: The model named in the connection URL.
        chunk_ms: Audio per ``response.audio.delta`` in responses it plans.
    """

    def __init__(self, model: str, *, chunk_ms: int) -> None:
        self.session: JSONDict = default_session(model)
        self.conversation_id = new_id("conv_")
        self.last_committed_audio = bytearray()
        self._chunk_ms = chunk_ms
        self._audio = bytearray()
        self._audio_peak = 0
        self._audio_appended = False
        self._images = 0
        self._pending: list[TurnPiece] = []

    def session_created(self) -> JSONDict:
        """Return the ``session.created`` event."""
        return server_event("session.created", session=self.session)

    def session_update(self, frame: JSONDict) -> list[JSONDict]:
        """``session.update``: validate, merge, echo the full session."""
        # apply_session_update returns a new dict, so events already built
        # from the old one are never mutated under a sending thread.
        self.session = apply_session_update(self.session, frame.get("session"))
        return [server_event("session.updated", session=self.session)]

    def audio_append(self, frame: JSONDict) -> list[JSONDict]:
        """``input_audio_buffer.append``: buffer PCM16; no acknowledgement."""
        pcm = _decode_base64(frame.get("audio"), "audio")
        if len(pcm) % 2:
            raise ClientEventError(
                f"Invalid audio: PCM16 needs an even number of bytes, got {len(pcm)}.",
                code="invalid_value",
                param="audio",
            )
        if pcm:
            # Track the peak as we go, so a commit never rescans the whole turn.
            self._audio_peak = max(self._audio_peak, pcm16_peak(pcm))
            self._audio.extend(pcm)
            self._audio_appended = True
        return []

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

    def audio_commit(self, frame: JSONDict) -> list[JSONDict]:
        """``input_audio_buffer.commit``: close the user audio item (and transcribe it)."""
        if not self._audio:
            raise ClientEventError(
                "Error committing input audio buffer: buffer is empty.",
                code="input_audio_buffer_commit_empty",
            )
        piece = AudioInput(len(self._audio), self._audio_peak, self._images)
        self._pending.append(piece)
        self.last_committed_audio = self._audio
        self._reset_input()
        item_id = new_id("item_")
        item = {
            "id": item_id,
            "object": "realtime.item",
            "type": "message",
            "status": "completed",
            "role": "user",
            "content": [{"type": "input_audio"}],
        }
        events = [
            server_event("input_audio_buffer.committed", item_id=item_id),
            server_event("conversation.item.created", item=item),
        ]
        if self.session.get("input_audio_transcription") is not None:
            events.append(
                server_event(
                    "conversation.item.input_audio_transcription.completed",
                    item_id=item_id,
                    content_index=0,
                    transcript=simulated_transcript(piece.num_bytes, piece.peak),
                )
            )
        return events

    def audio_clear(self, frame: JSONDict) -> list[JSONDict]:
        """``input_audio_buffer.clear``: drop buffered audio and images."""
        self._reset_input()
        return [server_event("input_audio_buffer.cleared")]

    def item_create(self, frame: JSONDict) -> list[JSONDict]:
        """``conversation.item.create``: user text or a function call output."""
        item, piece = parse_conversation_item(frame.get("item"))
        self._pending.append(piece)
        return [server_event("conversation.item.created", item=item)]

    def plan_response(self, frame: JSONDict) -> ResponseStream:
        """``response.create``: consume the pending user turn and plan the reply.

        The caller checks first that no response is active.
        """
        modalities, instructions = parse_response_params(frame.get("response"))
        session = self.session
        if modalities is None:
            configured = session.get("modalities")
            modalities = configured if isinstance(configured, list) else ["text", "audio"]
        if instructions is None and isinstance(session.get("instructions"), str):
            instructions = session["instructions"]
        pieces, self._pending = self._pending, []
        return ResponseStream(
            conversation_id=self.conversation_id,
            modalities=modalities,
            voice=session.get("voice"),
            output_audio_format=session.get("output_audio_format"),
            reply_text=compose_reply(pieces, instructions),
            tool_call=choose_tool_call(session, pieces, instructions),
            chunk_ms=self._chunk_ms,
            input_text_tokens=_input_text_tokens(pieces, instructions),
            input_audio_tokens=sum(
                audio_tokens(piece.num_bytes, INPUT_SAMPLE_RATE)
                for piece in pieces
                if isinstance(piece, AudioInput)
            ),
        )

    def _reset_input(self) -> None:
        self._audio = bytearray()
        self._audio_peak = 0
        self._audio_appended = False
        self._images = 0


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


def _input_text_tokens(pieces: list[TurnPiece], instructions: str | None) -> int:
    total = text_tokens(instructions or "")
    for piece in pieces:
        if isinstance(piece, TextInput):
            total += text_tokens(piece.text)
        elif isinstance(piece, FunctionOutput):
            total += text_tokens(piece.output)
    return total
