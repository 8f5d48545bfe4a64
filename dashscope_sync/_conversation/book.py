"""The transcript's books: decoded events in, `Transcript` snapshots out.

`TranscriptBook` is pure (no threads, locks, sockets or clocks: the time of
each event comes in as an argument). The session's state machine feeds it
every event under the mailbox lock, in the order the reader read them, so
every snapshot is consistent with the events delivered so far.

How turns are built:

- user turns: reserved in conversation order when the server first names
  their item (``speech_started``, ``input_audio_buffer.committed``,
  ``conversation.item.created``), so a transcription that arrives during the
  reply still lands before it; their text is the sent ``input_text``, else
  the input transcription (``.delta``/``.text`` while it firms up,
  ``.completed`` final). A user audio turn with no text (transcription off)
  is left out of snapshots;
- assistant turns: one per response, from ``response.created`` to
  ``response.done`` (its usage), the text from the ``response.text.*`` /
  ``response.audio_transcript.*`` events (LiveTranslate's confirmed
  ``text``/``stash`` included); a response with neither text nor tool calls
  is left out;
- what was heard: every piece of text is stamped with the bytes of the
  reply's audio that had arrived when it came (the service sends a word's
  text just before its audio). `heard` maps the seconds a speaker played
  onto those stamps (see `heard_text`).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from typing import Any, Final

import attrs

from .._constants import OUTPUT_SAMPLE_RATE
from .._wire.events import (
    ConversationItemCreated,
    ConversationItemDeleted,
    ConversationItemInputAudioTranscriptionCompleted,
    ConversationItemInputAudioTranscriptionDelta,
    ConversationItemInputAudioTranscriptionText,
    InputAudioBufferCommitted,
    InputAudioBufferSpeechStarted,
    InputAudioBufferSpeechStopped,
    ResponseAudioDelta,
    ResponseAudioTranscriptDelta,
    ResponseAudioTranscriptDone,
    ResponseAudioTranscriptText,
    ResponseCreated,
    ResponseDone,
    ResponseOutputItemAdded,
    ResponseTextDelta,
    ResponseTextDone,
    ResponseTextText,
    ServerEvent,
    SessionCreated,
    SessionUpdated,
    Usage,
)
from .tools import ToolCall
from .transcript import Transcript, Turn

__all__ = ["TranscriptBook", "Truncation", "heard_text"]

#: PCM16: two bytes a sample.
_SAMPLE_BYTES: Final = 2
#: A reply whose audio played to within this many seconds of its end was heard
#: whole: the speaker's seconds are floats, and resampling to the device's rate
#: moves a reply's end by a few samples, so "played it all" rarely comes out as
#: exactly the reply's bytes. Far shorter than any word.
_WHOLE_WITHIN: Final = 0.01


@attrs.frozen
class Truncation:
    """Make the model's history match what was heard: delete ``item_id``, then
    re-create an assistant message holding ``text`` after ``previous_item_id``;
    with an empty ``text``, only delete. A non-empty ``skip`` says why it
    cannot be done (nothing is to be sent)."""

    item_id: str
    previous_item_id: str | None
    text: str
    skip: str = ""


class _Draft:
    """One turn being built (mutated only by the book, under the caller's lock)."""

    __slots__ = (
        "_parts",
        "audio",
        "calls",
        "confirmed",
        "cut_audio",
        "cut_chars",
        "done",
        "ended_at",
        "item_id",
        "length",
        "pieces",
        "played",
        "response_id",
        "role",
        "started_at",
        "stash",
        "truncate",
        "usage",
    )

    def __init__(self, role: str, started_at: float | None) -> None:
        self.role = role
        self.started_at = started_at
        self.ended_at: float | None = None
        self.item_id: str | None = None
        self.response_id: str | None = None
        # The text's pieces, joined when read (a reply's many deltas are not
        # copied into one growing string each), and its length in characters.
        self._parts: list[str] = []
        self.length = 0
        # A user transcription's provisional tail (``stash``), shown after the text.
        self.stash = ""
        # Assistant: (characters of text before the piece, audio bytes arrived then).
        self.pieces: list[tuple[int, int]] = []
        self.audio = 0
        # Characters taken from LiveTranslate's confirmed ``text`` events (None: deltas).
        self.confirmed: int | None = None
        # interrupt() hit it while it ran: the text and audio that had arrived.
        self.cut_chars: int | None = None
        self.cut_audio: int | None = None
        # The bytes of its audio the speaker played (None: no speaker said).
        self.played: int | None = None
        # A truncation is owed once its response.done arrives.
        self.truncate = False
        self.done = False
        self.usage: Usage | None = None
        self.calls: list[ToolCall] = []

    @property
    def text(self) -> str:
        parts = self._parts
        if len(parts) > 1:
            parts[:] = ["".join(parts)]
        return parts[0] if parts else ""

    @text.setter
    def text(self, value: str) -> None:
        self._parts = [value] if value else []
        self.length = len(value)

    def add_text(self, piece: str, *, stamp: bool = True) -> None:
        """Append a piece; ``stamp`` it with the audio that had arrived (replies)."""
        if piece:
            if stamp:
                self.pieces.append((self.length, self.audio))
            self._parts.append(piece)
            self.length += len(piece)

    @property
    def cut(self) -> bool:
        return self.cut_chars is not None or self.played is not None

    def heard(self) -> str:
        if not self.cut:
            return self.text
        total = self.audio if self.cut_audio is None else self.cut_audio
        played = total if self.played is None else min(self.played, total)
        if self.cut_chars is None:
            # Stopped after it ended: played to the end, it was all heard
            # (text after the last audio too, such as a final full stop).
            if played >= total:
                return self.text
            return heard_text(self.text, self.pieces, total, played)
        arrived = self.text[: self.cut_chars]
        if total == 0:
            return arrived  # no audio: what had arrived when interrupt() came was read
        pieces = [piece for piece in self.pieces if piece[0] < len(arrived)]
        return heard_text(arrived, pieces, total, played)

    @property
    def interrupted(self) -> bool:
        return self.cut_chars is not None or (self.cut and self.heard() != self.text)


def heard_text(text: str, pieces: list[tuple[int, int]], total: int, played: int) -> str:
    """The part of ``text`` whose audio was played.

    ``pieces`` stamps each piece of text (its start in ``text``) with the audio
    bytes that had arrived when it came; a piece's audio is what arrived
    after it, up to the next piece with a later stamp (the last: up to
    ``total``). Pieces with the same stamp are one span. A span whose audio
    was all played is heard whole; one partly played is heard in
    proportion, cut back to a word boundary (each CJK character is one
    word); a span whose audio did not start (text that came after the last
    audio included) is not heard. Trailing space is dropped from a cut text.
    """
    # Spans: (start char, end char, audio start, audio end).
    starts: list[tuple[int, int]] = []
    for char, audio in pieces:
        if starts and starts[-1][1] == audio:
            continue
        starts.append((char, audio))
    kept = 0 if starts else len(text)
    for index, (char, audio) in enumerate(starts):
        end_char = starts[index + 1][0] if index + 1 < len(starts) else len(text)
        end_audio = starts[index + 1][1] if index + 1 < len(starts) else total
        if played <= audio:
            break  # its audio had not started
        if played >= end_audio:
            kept = end_char
            continue
        share = (played - audio) / (end_audio - audio)
        kept = _word_boundary(text, char, char + int(share * (end_char - char)))
        break
    return text[:kept].rstrip() if kept < len(text) else text


def _wide(char: str) -> bool:
    """A character that is a word by itself (CJK ideographs, kana, hangul)."""
    return unicodedata.east_asian_width(char) in ("W", "F") and char.isalnum()


def _word_boundary(text: str, floor: int, at: int) -> int:
    """The last word boundary of ``text`` at or before ``at`` (not before ``floor``)."""
    position = at
    while position > floor:
        before, after = text[position - 1], text[position] if position < len(text) else " "
        if after.isspace() or before.isspace() or _wide(before) or _wide(after):
            return position
        position -= 1
    return floor


class TranscriptBook:
    """See the module docstring.

    Not thread-safe by itself: the caller serialises every call (the session
    feeds and reads it under its mailbox lock).

    Args:
        origin: The session clock's zero (the ``at`` of the session's start):
            turn times are seconds since it.
    """

    def __init__(self, origin: float) -> None:
        self._origin = origin
        self._rate = OUTPUT_SAMPLE_RATE
        # Every turn, in conversation order.
        self._turns: list[_Draft] = []
        # User turns by item id, assistant turns by response id.
        self._users: dict[str, _Draft] = {}
        self._replies: dict[str, _Draft] = {}
        # The conversation's item ids in order, for where a re-created item goes.
        self._items: list[str] = []
        # Truncated turns whose re-created item's echo has not come yet, oldest
        # first, with the text it holds.
        self._recreating: list[tuple[_Draft, str]] = []
        # Replies cut by a truncating interrupt() whose response.done has not come.
        self._owed: set[str] = set()

    # Events ----------------------------------------------------------------------

    def receive(self, event: ServerEvent, at: float) -> Truncation | None:
        """Take one event; a truncation to carry out now (the cut reply ended), if any."""
        kind = type(event)
        if kind is ResponseAudioDelta:
            # Most events of a spoken reply: counted here, without a handler call.
            draft = self._replies.get(event.response_id)  # type: ignore[attr-defined]
            if draft is not None:
                draft.audio += len(event.delta)  # type: ignore[attr-defined]
            return None
        handler = _HANDLERS.get(kind)
        return None if handler is None else handler(self, event, at - self._origin)

    def _on_session(self, event: SessionCreated | SessionUpdated, at: float) -> None:
        self._rate = event.session.output_sample_rate or self._rate

    def _user(self, item_id: str, at: float) -> _Draft:
        draft = self._users.get(item_id)
        if draft is None:
            draft = self._users[item_id] = _Draft("user", at)
            draft.item_id = item_id
            self._turns.append(draft)
        return draft

    def _on_speech_started(self, event: InputAudioBufferSpeechStarted, at: float) -> None:
        if event.item_id:
            self._user(event.item_id, at)

    def _on_speech_stopped(self, event: InputAudioBufferSpeechStopped, at: float) -> None:
        if event.item_id:
            self._user(event.item_id, at).ended_at = at

    def _on_committed(self, event: InputAudioBufferCommitted, at: float) -> None:
        if event.item_id:
            draft = self._user(event.item_id, at)
            draft.ended_at = at if draft.ended_at is None else draft.ended_at
            self._place(event.item_id, event.previous_item_id)

    def _on_item_created(self, event: ConversationItemCreated, at: float) -> None:
        item = event.item
        if item.id:
            self._place(item.id, event.previous_item_id)
        if item.type != "message":
            return
        if item.role == "user" and item.id:
            draft = self._user(item.id, at)
            typed = "".join(p.text or "" for p in item.content if p.type == "input_text")
            if typed:
                draft.text = typed
                draft.ended_at = at if draft.ended_at is None else draft.ended_at
        elif item.role == "assistant" and self._recreating and item.id:
            draft, heard = self._recreating[0]
            said = "".join(p.text or p.transcript or "" for p in item.content)
            if said == heard and not any(d.item_id == item.id for d in self._turns):
                # The echo of the item a truncation re-created: the turn's item now.
                self._recreating.pop(0)
                draft.item_id = item.id

    def _on_item_deleted(self, event: ConversationItemDeleted, at: float) -> None:
        if event.item_id in self._items:
            self._items.remove(event.item_id)

    def _place(self, item_id: str, previous: str | None) -> None:
        if item_id in self._items:
            return
        if previous and previous in self._items:
            self._items.insert(self._items.index(previous) + 1, item_id)
        else:
            self._items.append(item_id)

    def _on_transcription(
        self,
        event: ConversationItemInputAudioTranscriptionDelta
        | ConversationItemInputAudioTranscriptionText
        | ConversationItemInputAudioTranscriptionCompleted,
        at: float,
    ) -> None:
        draft = self._users.get(event.item_id)
        if draft is None:
            draft = self._users[event.item_id] = _Draft("user", None)
            draft.item_id = event.item_id
            # Unannounced: before the reply running now, which answers it.
            running = [i for i, d in enumerate(self._turns) if d.role == "assistant" and not d.done]
            self._turns.insert(running[0] if running else len(self._turns), draft)
        if type(event) is ConversationItemInputAudioTranscriptionCompleted:
            draft.text, draft.stash = event.transcript, ""
        elif type(event) is ConversationItemInputAudioTranscriptionText:
            draft.text, draft.stash = event.text, event.stash
        elif type(event) is ConversationItemInputAudioTranscriptionDelta:
            if event.text is not None:
                draft.text, draft.stash = event.text, event.stash or ""
            else:
                draft.add_text(event.delta, stamp=False)

    def _on_response_created(self, event: ResponseCreated, at: float) -> None:
        draft = _Draft("assistant", at)
        draft.response_id = event.response.id
        self._replies[event.response.id] = draft
        self._turns.append(draft)

    def _reply(self, response_id: str, item_id: str) -> _Draft | None:
        draft = self._replies.get(response_id)
        if draft is not None and draft.item_id is None and item_id:
            draft.item_id = item_id
        return draft

    def _on_item_added(self, event: ResponseOutputItemAdded, at: float) -> None:
        if event.item.type == "message":
            self._reply(event.response_id, event.item.id)
            if event.item.id:
                self._place(event.item.id, None)  # a reply's item goes at the end

    def _on_delta(self, event: ResponseTextDelta | ResponseAudioTranscriptDelta, at: float) -> None:
        draft = self._reply(event.response_id, event.item_id)
        if draft is not None and draft.confirmed is None:
            draft.add_text(event.delta)

    def _on_confirmed(
        self, event: ResponseTextText | ResponseAudioTranscriptText, at: float
    ) -> None:
        draft = self._reply(event.response_id, event.item_id)
        if draft is not None:
            self._confirm(draft, event.text)

    @staticmethod
    def _confirm(draft: _Draft, confirmed: str) -> None:
        taken = draft.confirmed or 0
        draft.confirmed = max(taken, len(confirmed))
        draft.add_text(confirmed[taken:])

    def _on_text_done(
        self, event: ResponseTextDone | ResponseAudioTranscriptDone, at: float
    ) -> None:
        draft = self._reply(event.response_id, event.item_id)
        final = event.text if type(event) is ResponseTextDone else event.transcript  # type: ignore[union-attr]
        if draft is not None and (draft.confirmed is not None or not draft.length):
            self._confirm(draft, final)

    def _on_response_done(self, event: ResponseDone, at: float) -> Truncation | None:
        draft = self._replies.get(event.response.id)
        if draft is None:
            return None
        draft.done = True
        draft.ended_at = at
        draft.usage = event.response.usage
        if draft.item_id is None:
            message = next((i for i in event.response.output if i.type == "message"), None)
            draft.item_id = None if message is None else message.id or None
        return self._truncation(draft) if draft.truncate else None

    # Interruptions -----------------------------------------------------------------

    def cut(self, response_id: str) -> None:
        """``interrupt()`` stopped this running response: freeze what had arrived."""
        draft = self._replies.get(response_id)
        if draft is not None and not draft.done and draft.cut_chars is None:
            draft.cut_chars, draft.cut_audio = draft.length, draft.audio

    def heard(
        self, response_id: str | None, played_seconds: float | None, *, truncate: bool = False
    ) -> Truncation | None:
        """What the speaker played of a response it stopped (None: no speaker said).

        With ``truncate``, the history is to be made to match: the truncation
        now if the response has ended, else when its ``response.done`` comes.
        """
        draft = None if response_id is None else self._replies.get(response_id)
        if draft is None:
            return None
        if played_seconds is not None:
            played = round(played_seconds * self._rate) * _SAMPLE_BYTES
            total = draft.audio if draft.cut_audio is None else draft.cut_audio
            if played >= total - round(_WHOLE_WITHIN * self._rate) * _SAMPLE_BYTES:
                played = max(played, total)  # all of it: never floored below the total
            draft.played = played if draft.played is None else min(draft.played, played)
        if not truncate or not draft.interrupted:
            return None
        if not draft.done:
            draft.truncate = True
            self._owed.add(draft.response_id or "")
            return None
        return self._truncation(draft)

    @property
    def owes_truncation(self) -> bool:
        """Whether a reply cut with ``truncate`` has still to end (its truncation is due then)."""
        return bool(self._owed)

    def forget_owed_truncations(self) -> None:
        """Stop counting the truncations owed as due (`owes_truncation`); each
        still comes at its reply's ``response.done``, if that ever arrives."""
        self._owed.clear()

    def _truncation(self, draft: _Draft) -> Truncation | None:
        draft.truncate = False
        self._owed.discard(draft.response_id or "")
        item_id = draft.item_id
        if item_id is None:
            return None  # the reply never made an item: nothing to change
        index = self._items.index(item_id) if item_id in self._items else None
        previous = None if not index else self._items[index - 1]
        text = draft.heard()
        if text and previous is None:
            # The protocol documents no way to create an item at the beginning
            # (nor is the place of an item never seen known): re-created at the
            # end, it would follow the items after it. Left whole instead.
            where = "the conversation's first item" if index == 0 else "an item of unknown place"
            skip = (
                f"the cut reply's item {item_id} is {where}, and DashScope documents no "
                "way to create an item there: it is left whole in the server's history "
                "(session.transcript's heard_text says what was heard)"
            )
            return Truncation(item_id, None, text, skip)
        if text:
            self._recreating.append((draft, text))
        return Truncation(item_id, previous, text)

    def add_tool_call(self, call: ToolCall) -> None:
        """Attach a finished tool call to the turn of the response that made it."""
        draft = None if call.response_id is None else self._replies.get(call.response_id)
        if draft is None:
            draft = _Draft("assistant", None)
            draft.response_id = call.response_id
            self._turns.append(draft)
            if call.response_id is not None:
                self._replies[call.response_id] = draft
        draft.calls.append(call)

    # Snapshots ---------------------------------------------------------------------

    def snapshot(self) -> Transcript:
        """The transcript as it stands (records: the book goes on changing)."""
        turns = []
        for draft in self._turns:
            text = draft.text + draft.stash
            if not text and not draft.calls:
                continue
            heard = text if draft.role == "user" else draft.heard()
            turns.append(
                Turn(
                    role="user" if draft.role == "user" else "assistant",
                    text=text,
                    heard_text=heard,
                    interrupted=draft.role == "assistant" and draft.interrupted,
                    started_at=draft.started_at,
                    ended_at=draft.ended_at,
                    item_id=draft.item_id,
                    response_id=draft.response_id,
                    usage=draft.usage,
                    tool_calls=tuple(draft.calls),
                )
            )
        return Transcript(tuple(turns))


_Handler = Callable[[TranscriptBook, Any, float], "Truncation | None"]

_HANDLERS: Final[dict[type[ServerEvent], _Handler]] = {
    SessionCreated: TranscriptBook._on_session,
    SessionUpdated: TranscriptBook._on_session,
    InputAudioBufferSpeechStarted: TranscriptBook._on_speech_started,
    InputAudioBufferSpeechStopped: TranscriptBook._on_speech_stopped,
    InputAudioBufferCommitted: TranscriptBook._on_committed,
    ConversationItemCreated: TranscriptBook._on_item_created,
    ConversationItemDeleted: TranscriptBook._on_item_deleted,
    ConversationItemInputAudioTranscriptionDelta: TranscriptBook._on_transcription,
    ConversationItemInputAudioTranscriptionText: TranscriptBook._on_transcription,
    ConversationItemInputAudioTranscriptionCompleted: TranscriptBook._on_transcription,
    ResponseCreated: TranscriptBook._on_response_created,
    ResponseOutputItemAdded: TranscriptBook._on_item_added,
    ResponseTextDelta: TranscriptBook._on_delta,
    ResponseAudioTranscriptDelta: TranscriptBook._on_delta,
    ResponseTextText: TranscriptBook._on_confirmed,
    ResponseAudioTranscriptText: TranscriptBook._on_confirmed,
    ResponseTextDone: TranscriptBook._on_text_done,
    ResponseAudioTranscriptDone: TranscriptBook._on_text_done,
    ResponseDone: TranscriptBook._on_response_done,
}
