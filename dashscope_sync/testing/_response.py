"""The frames of one response, produced lazily.

:class:`ResponseStream` knows the event sequence of PROTOCOL.md section 3
("Typical turn") and remembers how much of it was actually sent, so that a
response stopped early (cancelled, interrupted, failed) can be closed with the
right partial transcript, the right ``*.done`` events and an honest ``usage``.
:class:`ScriptedStream` replays frames a test scripted instead. Neither does
I/O: the connection's response thread pulls frames from ``body_frames()`` and
sends them.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Iterator
from typing import Any, Protocol

from ._audio import OUTPUT_SAMPLE_RATE, speech_for_text
from ._session import (
    JSONDict,
    audio_tokens,
    new_id,
    server_event,
    split_words,
    text_tokens,
    usage,
)

__all__ = ["ResponseStream", "ScriptedStream", "Stream"]

# Size of the function-call argument deltas, in characters.
_ARGUMENT_CHUNK = 8


class ResponseStream:
    """Generate and track the frames of one response.

    Thread safety: not thread-safe; one streaming thread owns an instance.

    Args:
        conversation_id: The connection's ``conv_...`` id.
        modalities: Effective modalities of the response.
        voice: Echoed in ``response.created`` / ``response.done``.
        output_audio_format: Echoed likewise.
        reply_text: The text (or transcript) to stream.
        tool_call: ``(name, arguments_json)`` to stream a function call instead.
        chunk_ms: Audio per ``response.audio.delta``, in milliseconds.
        input_text_tokens: Input text tokens reported in ``usage``.
        input_audio_tokens: Input audio tokens reported in ``usage``.
        audio: 24 kHz PCM16 to stream as the reply audio (echo mode); None
            synthesises speech-like audio for ``reply_text``.
        stash: Stream the text as LiveTranslate does: ``response.text.text`` /
            ``response.audio_transcript.text`` events with ``text`` and ``stash``.
        leading_silence_ms: Silence streamed before the reply's audio.
    """

    def __init__(
        self,
        *,
        conversation_id: str,
        modalities: list[str],
        voice: Any,
        output_audio_format: Any,
        reply_text: str,
        tool_call: tuple[str, str] | None,
        chunk_ms: int,
        input_text_tokens: int,
        input_audio_tokens: int,
        audio: bytes | None = None,
        stash: bool = False,
        leading_silence_ms: int = 0,
    ) -> None:
        self.response_id = new_id("resp_")
        # LiveTranslate streams its text as `.text` events (confirmed text so
        # far, and the provisional next word as the stash) instead of deltas.
        self._stash = stash
        self.item_id = new_id("item_")
        self.call_id = new_id("call_") if tool_call is not None else None
        self.reply_text = reply_text
        self.tool_call = tool_call
        self.audio_mode = "audio" in modalities and tool_call is None
        self._conversation_id = conversation_id
        self._modalities = list(modalities)
        self._voice = voice
        self._output_audio_format = output_audio_format
        self._chunk_bytes = max(2, OUTPUT_SAMPLE_RATE * chunk_ms // 1000 * 2)
        self._input_text_tokens = input_text_tokens
        self._input_audio_tokens = input_audio_tokens
        self._audio = audio
        self._leading = bytes(OUTPUT_SAMPLE_RATE * leading_silence_ms // 1000 * 2)
        # Progress, updated only after the consumer came back for the next
        # frame, i.e. once the previous frame was sent.
        self._text_sent: list[str] = []
        self._audio_bytes_sent = 0
        self._item_added = False
        self._part_added = False
        self._pending_done: list[str] = []
        self._body_complete = False

    # ------------------------------------------------------------------
    # Building blocks

    def _response(self, status: str) -> JSONDict:
        return {
            "id": self.response_id,
            "object": "realtime.response",
            "conversation_id": self._conversation_id,
            "status": status,
            "modalities": list(self._modalities),
            "voice": self._voice,
            "output_audio_format": self._output_audio_format,
            "output": [],
        }

    def _event(self, event_type: str, **fields: Any) -> JSONDict:
        return server_event(
            event_type, response_id=self.response_id, item_id=self.item_id, **fields
        )

    def _part_event(self, event_type: str, **fields: Any) -> JSONDict:
        return self._event(event_type, output_index=0, content_index=0, **fields)

    def _message_item(self, status: str, content: list[JSONDict]) -> JSONDict:
        return {
            "id": self.item_id,
            "object": "realtime.item",
            "type": "message",
            "status": status,
            "role": "assistant",
            "content": content,
        }

    def _function_item(self, status: str, arguments: str) -> JSONDict:
        assert self.tool_call is not None
        return {
            "id": self.item_id,
            "object": "realtime.item",
            "type": "function_call",
            "status": status,
            "call_id": self.call_id,
            "name": self.tool_call[0],
            "arguments": arguments,
        }

    @property
    def _part_type(self) -> str:
        return "audio" if self.audio_mode else "text"

    @property
    def sent_text(self) -> str:
        """The transcript, text or arguments sent so far."""
        return "".join(self._text_sent)

    # ------------------------------------------------------------------
    # Frames

    def created_event(self) -> JSONDict:
        """Return ``response.created``."""
        return server_event("response.created", response=self._response("in_progress"))

    def body_frames(self) -> Iterator[tuple[JSONDict, bool]]:
        """Yield ``(frame, is_delta)`` from ``output_item.added`` to ``output_item.done``.

        Progress is recorded when the consumer asks for the next frame, so a
        consumer that stops early (a cancel) leaves an exact record of what it
        sent.
        """
        if self.tool_call is not None:
            yield from self._function_frames()
        else:
            yield from self._message_frames()
        self._body_complete = True

    def _function_frames(self) -> Iterator[tuple[JSONDict, bool]]:
        assert self.tool_call is not None
        name, arguments = self.tool_call
        yield (
            server_event(
                "response.output_item.added",
                response_id=self.response_id,
                output_index=0,
                item=self._function_item("in_progress", ""),
            ),
            False,
        )
        self._item_added = True
        for start in range(0, len(arguments), _ARGUMENT_CHUNK):
            delta = arguments[start : start + _ARGUMENT_CHUNK]
            yield (
                self._event(
                    "response.function_call_arguments.delta",
                    output_index=0,
                    call_id=self.call_id,
                    delta=delta,
                ),
                True,
            )
            self._text_sent.append(delta)
        yield (
            self._event(
                "response.function_call_arguments.done",
                output_index=0,
                call_id=self.call_id,
                name=name,
                arguments=arguments,
            ),
            False,
        )
        yield (
            server_event(
                "response.output_item.done",
                response_id=self.response_id,
                output_index=0,
                item=self._function_item("completed", arguments),
            ),
            False,
        )

    def _message_frames(self) -> Iterator[tuple[JSONDict, bool]]:
        text = self.reply_text
        yield (
            server_event(
                "response.output_item.added",
                response_id=self.response_id,
                output_index=0,
                item=self._message_item("in_progress", []),
            ),
            False,
        )
        self._item_added = True
        yield (
            server_event("conversation.item.created", item=self._message_item("in_progress", [])),
            False,
        )
        yield (
            self._part_event(
                "response.content_part.added", part={"type": self._part_type, "text": ""}
            ),
            False,
        )
        self._part_added = True
        if self.audio_mode:
            self._pending_done = ["response.audio_transcript.done", "response.audio.done"]
            yield from self._audio_deltas(text)
            yield self._part_event("response.audio_transcript.done", transcript=text), False
            self._pending_done.remove("response.audio_transcript.done")
            yield self._part_event("response.audio.done"), False
            self._pending_done.remove("response.audio.done")
        else:
            self._pending_done = ["response.text.done"]
            words = split_words(text)
            for index, word in enumerate(words):
                yield self._text_event("response.text", words, index), True
                self._text_sent.append(word)
            yield self._part_event("response.text.done", text=text), False
            self._pending_done.clear()
        part = {"type": self._part_type, "text": text}
        yield self._part_event("response.content_part.done", part=part), False
        yield (
            server_event(
                "response.output_item.done",
                response_id=self.response_id,
                output_index=0,
                item=self._message_item("completed", [part]),
            ),
            False,
        )

    def _audio_deltas(self, text: str) -> Iterator[tuple[JSONDict, bool]]:
        words = split_words(text)
        audio = self._audio if self._audio is not None else speech_for_text(text)
        if self._leading:
            audio = self._leading + audio
        chunk = self._chunk_bytes
        n_words = len(words)
        n_chunks = (len(audio) + chunk - 1) // chunk
        i = j = 0
        # Merge the two streams by relative position (word i sits at i / n_words
        # of the reply, chunk j at j / n_chunks) so the transcript stays roughly
        # in step with the audio, transcript first on ties, as the service does.
        while i < n_words or j < n_chunks:
            if j >= n_chunks or (i < n_words and i * n_chunks <= j * n_words):
                yield self._text_event("response.audio_transcript", words, i), True
                self._text_sent.append(words[i])
                i += 1
            else:
                data = audio[j * chunk : (j + 1) * chunk]
                encoded = base64.b64encode(data).decode("ascii")
                yield self._part_event("response.audio.delta", delta=encoded), True
                self._audio_bytes_sent += len(data)
                j += 1

    def _text_event(self, prefix: str, words: list[str], index: int) -> JSONDict:
        """The next piece of text: a ``.delta``, or in stash mode a ``.text`` event."""
        if not self._stash:
            return self._part_event(f"{prefix}.delta", delta=words[index])
        confirmed = "".join(words[: index + 1])
        stash = words[index + 1] if index + 1 < len(words) else ""
        return self._part_event(f"{prefix}.text", text=confirmed, stash=stash)

    def owed_done_frames(self) -> list[JSONDict]:
        """Return the ``*.done`` events still owed after stopping early.

        ``response.text.done`` in text mode; ``response.audio_transcript.done``
        and ``response.audio.done`` in audio mode (the docs say both ``done``
        events are also sent on cancel). Each carries what was sent so far.
        """
        if not self._part_added:
            return []
        frames: list[JSONDict] = []
        for event_type in self._pending_done:
            if event_type == "response.audio_transcript.done":
                frames.append(self._part_event(event_type, transcript=self.sent_text))
            elif event_type == "response.text.done":
                frames.append(self._part_event(event_type, text=self.sent_text))
            else:
                frames.append(self._part_event(event_type))
        self._pending_done = []
        return frames

    def done_event(
        self, status: str = "completed", status_details: JSONDict | None = None
    ) -> JSONDict:
        """Return ``response.done`` with ``status`` (and ``status_details`` if given).

        Output items are ``completed`` when the whole body was sent, else
        ``incomplete``; ``usage`` counts what was actually sent.
        """
        response = self._response(status)
        item_status = "completed" if self._body_complete else "incomplete"
        text = self.sent_text
        if self._item_added:
            if self.tool_call is not None:
                response["output"] = [self._function_item(item_status, text)]
            elif self.audio_mode:
                content = [{"type": "audio", "transcript": text}]
                response["output"] = [self._message_item(item_status, content)]
            else:
                content = [{"type": "text", "text": text}]
                response["output"] = [self._message_item(item_status, content)]
        if status_details is not None:
            response["status_details"] = copy.deepcopy(status_details)
        output_text = text_tokens(text)
        if self.tool_call is not None and self._item_added:
            output_text += text_tokens(self.tool_call[0])
        response["usage"] = usage(
            input_text=self._input_text_tokens,
            input_audio=self._input_audio_tokens,
            output_text=output_text,
            output_audio=audio_tokens(self._audio_bytes_sent, OUTPUT_SAMPLE_RATE),
        )
        return server_event("response.done", response=response)


class Stream(Protocol):
    """What the connection's response thread needs from a response."""

    response_id: str

    def created_event(self) -> JSONDict | None: ...

    def body_frames(self) -> Iterator[tuple[JSONDict, bool]]: ...

    def owed_done_frames(self) -> list[JSONDict]: ...

    def done_event(
        self, status: str = "completed", status_details: JSONDict | None = None
    ) -> JSONDict | None: ...


# Events about one content part: they carry item_id (filled in when missing).
_ITEM_LEVEL_PREFIXES = (
    "response.content_part.",
    "response.text.",
    "response.audio.",
    "response.audio_transcript.",
    "response.function_call_arguments.",
)


class ScriptedStream:
    """Replay frames scripted by a test (``LocalRealtimeServer.script_response``).

    Every frame is sent as given, paced like deltas when its type ends with
    ``.delta``, with the ids it leaves out filled in:

    * ``event_id`` on every frame;
    * ``response.id`` (and ``object``, ``conversation_id``) inside
      ``response.created`` / ``response.done``, whose ``response`` object is
      created when missing (status ``in_progress`` / ``completed``);
    * ``response_id`` on the other ``response.*`` events;
    * ``item.id`` on ``response.output_item.*`` and ``conversation.item.created``;
    * ``item_id`` on content events (``response.content_part.*``,
      ``response.text.*``, ``response.audio.*``, ``response.audio_transcript.*``,
      ``response.function_call_arguments.*``).

    Thread safety: not thread-safe; one streaming thread owns an instance.
    """

    def __init__(self, frames: list[JSONDict], *, conversation_id: str) -> None:
        self.response_id = new_id("resp_")
        self.item_id = new_id("item_")
        self._conversation_id = conversation_id
        self._frames = [self._fill(copy.deepcopy(frame)) for frame in frames]
        self._created_sent = False

    def _fill(self, frame: JSONDict) -> JSONDict:
        frame.setdefault("event_id", new_id("event_"))
        event_type = str(frame.get("type", ""))
        if event_type in ("response.created", "response.done"):
            status = "in_progress" if event_type == "response.created" else "completed"
            response = frame.setdefault("response", {"status": status, "output": []})
            if isinstance(response, dict):
                response.setdefault("id", self.response_id)
                response.setdefault("object", "realtime.response")
                response.setdefault("conversation_id", self._conversation_id)
            return frame
        if event_type.startswith("response."):
            frame.setdefault("response_id", self.response_id)
        if event_type.startswith("response.output_item.") or event_type == (
            "conversation.item.created"
        ):
            item = frame.get("item")
            if isinstance(item, dict):
                item.setdefault("id", self.item_id)
        elif event_type.startswith(_ITEM_LEVEL_PREFIXES):
            frame.setdefault("item_id", self.item_id)
        return frame

    def created_event(self) -> JSONDict | None:
        """None: a script sends its own ``response.created`` (or none)."""
        return None

    def body_frames(self) -> Iterator[tuple[JSONDict, bool]]:
        """Yield the scripted frames, ``is_delta`` for types ending in ``.delta``."""
        for frame in self._frames:
            yield frame, str(frame.get("type", "")).endswith(".delta")
            if frame.get("type") == "response.created":
                self._created_sent = True

    def owed_done_frames(self) -> list[JSONDict]:
        """Nothing: what a script owes is up to the script."""
        return []

    def done_event(
        self, status: str = "completed", status_details: JSONDict | None = None
    ) -> JSONDict | None:
        """A closing ``response.done`` for a script stopped early, else None.

        Only when the script's ``response.created`` went out and the response
        did not complete: the script is trusted to end itself otherwise.
        """
        if status == "completed" or not self._created_sent:
            return None
        response: JSONDict = {
            "id": self.response_id,
            "object": "realtime.response",
            "conversation_id": self._conversation_id,
            "status": status,
            "output": [],
        }
        if status_details is not None:
            response["status_details"] = copy.deepcopy(status_details)
        return server_event("response.done", response=response)
