"""Qwen-TTS-Realtime's rules, as a pure state machine: which audio is whose, when a speech ends.

No threads, sockets, locks or clocks: `SessionState` feeds every received
event to `SpeechBook.receive` under the session's one lock, and the speech
handles read their `SpeechTrack` under the same lock.

The wire gives responses no link to the text that made them (SPEECH_FAMILIES.md
§A4): the server synthesises its text buffer in order. So the rules are:

1. Speeches are kept in the order their text went out. A ``response.created``
   belongs to the oldest speech whose text is not all spoken yet, a cancelled
   one included (a response that starts when no speech is open belongs to
   nobody: raw `append_text` use).
2. A speech's commit pairs with the next ``input_text_buffer.committed`` (the
   wire order, cancelled speeches' commits included), or with an ``error``
   naming the commit's event id. An error saying the buffer was empty (or, in
   ``server_commit``, any error answering the commit once the server has cut
   that speech's text into responses of its own, whatever its wording) means
   the server had synthesised all the text already: the commit is answered,
   not failed.
3. A speech is finished when its commit was answered, none of its responses
   runs, and: in ``commit`` mode, a response started after the ``committed``
   (the live trace, §A4); in ``server_commit``, the characters billed reach
   the characters sent, as the server announces each queued cut only when
   the one before ends, so cuts still start after the ``committed``. A model
   that bills no characters (the legacy one bills tokens) falls back to the
   ``commit`` rule. Should the service bill fewer characters than sent, the
   speech ends at ``session.finished`` (rule 4; `finish()`): no other event
   marks its end, as a later commit's answer may come between two of its
   cuts. The docs also say a commit "does not create a
   response" (§E2): a response whose audio arrives without a
   ``response.created`` is taken as started by its first frame, so the speech
   still ends at its ``response.done``.
4. ``session.finished`` says every response is done: each committed speech is finished.
5. An ``error`` naming one of a speech's frames (an append or its commit)
   fails that speech only, and is its commit's answer: nothing more of its
   text will be spoken but the responses of it already running. It is
   silenced (rule 6) until they are done.
6. A cancelled speech is finished at once, but keeps its place by rules 1-3
   until its text is spoken out: its later responses stay its own, and their
   audio is dropped (``receive`` returns True), so nothing of it plays after
   the cancel and the next speech gets only its own audio. A speech failed by
   an error (rule 5) is silenced the same way: it ends for the user at once,
   yet its running responses stay its own, their audio dropped.
"""

from __future__ import annotations

import collections
from typing import Final

from .._conversation.latency import KEPT
from .._errors import APIError, DashScopeError
from .._wire.events import (
    ErrorEvent,
    InputTextBufferCommitted,
    ResponseAudioDelta,
    ResponseCreated,
    ResponseDone,
    ServerEvent,
    SessionFinished,
)

__all__ = ["SpeechBook", "SpeechTrack", "is_empty_buffer_error"]

#: Words of the service's error for a commit with nothing buffered.
_EMPTY_WORDS: Final = ("empty", "no text")


def is_empty_buffer_error(event: ErrorEvent) -> bool:
    """Does this error say a commit found the text buffer empty?"""
    info = event.error
    text = f"{info.code or ''} {info.message}".lower()
    return any(word in text for word in _EMPTY_WORDS)


class SpeechTrack:
    """Everything known of one `speak()`: its text, audio, timings and end.

    Mutated only by `SpeechBook` (and the speech's own sender, for the text it
    appended), under the session's lock.
    """

    __slots__ = (
        "__weakref__",
        "audio",
        "billed",
        "cancelled",
        "characters",
        "chars_sent",
        "commit_id",
        "committed",
        "done_at",
        "empty_commit",
        "error",
        "finished",
        "first_audio_at",
        "first_sent_at",
        "frames",
        "heard",
        "refused",
        "responses",
        "responses_after_committed",
        "running",
        "sent_length",
        "started_at",
        "trailing_space",
    )

    def __init__(self, started_at: float) -> None:
        self.started_at = started_at
        self.first_sent_at: float | None = None
        self.audio: list[bytes] = []
        self.first_audio_at: float | None = None
        self.done_at: float | None = None
        self.characters = 0
        # Characters sent but the trailing whitespace (what the service bills, as far as known).
        self.chars_sent = 0
        self.sent_length = 0
        self.trailing_space = 0
        # Did a response of it report billed characters (Qwen3; not the legacy model)?
        self.billed = False
        # The event ids of its appends: an error naming one fails it.
        self.frames: list[str] = []
        self.commit_id: str | None = None
        self.committed = False
        self.empty_commit = False
        # Its responses so far, and those started after its commit was answered.
        self.responses = 0
        self.responses_after_committed = 0
        # Characters billed for it, a cancelled speech's too (rule 3 ends it by them).
        self.heard = 0
        self.running: set[str] = set()
        self.finished = False
        self.cancelled = False
        # Did an error name one of its frames (rule 5: only its running responses are to come)?
        self.refused = False
        self.error: DashScopeError | None = None

    def __repr__(self) -> str:
        state = "finished" if self.finished else "open"
        return f"<SpeechTrack {state} chunks={len(self.audio)}>"


class SpeechBook:
    """The speeches of one session; see the module docstring.

    Not thread-safe by itself: the caller holds the session's lock.
    """

    def __init__(self, mode: str = "server_commit") -> None:
        # In ``commit`` mode the server synthesises only what a commit sends, so the
        # response after the committed is the speech's last; ``server_commit`` cuts
        # the text itself and announces each queued cut only when the one before
        # ends, so only the characters billed tell the last cut (rule 3).
        self._server_cuts = mode != "commit"
        # Speeches whose responses may still come, oldest first (rule 1): the
        # unfinished ones, and the cancelled ones until their text is spoken out.
        self._open: collections.deque[SpeechTrack] = collections.deque()
        # Commits waiting for their committed (or error), in wire order (rule 2),
        # cancelled speeches' included: the server answers them all the same.
        self._commits: collections.deque[SpeechTrack] = collections.deque()
        # Running responses -> the speech they belong to.
        self._owners: dict[str, SpeechTrack] = {}
        # Has any speech sent text (errors before that refuse the update)?
        self._sent_any = False
        # Has any response reported billed characters (Qwen3; the legacy model bills tokens)?
        self._bills_characters = False
        #: The errors received so far while nothing but the update was sent (connect).
        self.errors: list[ErrorEvent] = []
        #: (first audio delay, total time) of each speech that finished whole,
        #: from its first text sent, in seconds (the latest KEPT): `session.metrics`.
        self.timings: collections.deque[tuple[float | None, float]] = collections.deque(maxlen=KEPT)

    # Intents (the sender) ------------------------------------------------------

    def open(self, track: SpeechTrack) -> None:
        """A speech starts: its text goes out after every earlier speech's."""
        self._open.append(track)

    def sent(self, track: SpeechTrack, event_id: str, at: float, text: str = "") -> None:
        """One of the speech's appends (of ``text``) is going out (registered first, as its
        error may race it)."""
        if track.first_sent_at is None:
            track.first_sent_at = at
            self._sent_any = True
        track.frames.append(event_id)
        # What the service bills, as far as known: every character sent but the
        # whitespace at the end, which no cut takes (the local server's rule).
        # Counting less (all whitespace aside) would end a speech before its last
        # cut whenever the service bills inner whitespace; if it bills less than
        # this, the speech ends at session.finished (rule 3).
        track.sent_length += len(text)
        stripped = text.rstrip()
        track.trailing_space = (
            track.trailing_space + len(text) if not stripped else len(text) - len(stripped)
        )
        track.chars_sent = track.sent_length - track.trailing_space

    def commit_sent(self, track: SpeechTrack, event_id: str) -> bool:
        """The speech's commit is going out (registered first: its answer cannot race it).

        False for a cancelled speech: its commit must not go out, as its cancel
        clears the buffer it still owns (a commit racing that clear would speak it).
        """
        if track.cancelled:
            return False
        track.commit_id = event_id
        self._commits.append(track)
        return True

    def _track_of(self, event_id: str) -> SpeechTrack | None:
        """The speech still open that sent this frame (an error is rare: a scan is fine)."""
        for track in self._open:
            if event_id == track.commit_id or event_id in track.frames:
                return track
        return None

    def fail(self, track: SpeechTrack, error: DashScopeError, at: float) -> None:
        """The speech failed on our side (its text source raised, a send failed)."""
        if track.finished:
            return
        track.error = error
        # Nothing more of it goes out (its buffered text is cleared): like a
        # refused speech, its running responses stay its own, their audio dropped.
        track.refused = True
        self._silence(track, at)

    def cancel(self, track: SpeechTrack, at: float) -> bool:
        """The user cancels the speech: its audio still to come is dropped. False if it was over.

        It keeps its place (rules 1, 2) until its text is spoken out, so that
        its later responses are still its own (their audio dropped), not the
        next speech's.
        """
        if track.finished:
            return False
        track.cancelled = True
        self._silence(track, at)
        return True

    def _silence(self, track: SpeechTrack, at: float) -> None:
        """Rule 6: the speech ends for the user now, but keeps its place in the books
        until its text is spoken out (`_settle`); its audio meanwhile is dropped."""
        track.finished = True
        track.done_at = at
        self._settle(track, at)

    def speaking(self) -> list[SpeechTrack]:
        """The speeches not finished yet, oldest first."""
        return [track for track in self._open if not track.finished]

    # Events ----------------------------------------------------------------------

    def receive(self, event: ServerEvent, at: float) -> bool:
        """Take one event; True when it must go nowhere (audio of a cancelled speech)."""
        kind = type(event)
        if kind is ResponseAudioDelta:
            assert isinstance(event, ResponseAudioDelta)
            track = self._owners.get(event.response_id)
            if track is None:
                # Audio of a response never announced (§E2): it starts here.
                track = self._created(event.response_id)
                if track is None:
                    return False
            if track.finished:
                return True  # silenced (rule 6): cancelled, or failed by an error
            if track.first_audio_at is None:
                track.first_audio_at = at
            track.audio.append(event.delta)
        elif kind is ResponseCreated:
            assert isinstance(event, ResponseCreated)
            self._created(event.response.id)
        elif kind is ResponseDone:
            assert isinstance(event, ResponseDone)
            if event.response.id not in self._owners:
                self._created(event.response.id)  # never announced, and no audio
            self._done(event, at)
        elif kind is InputTextBufferCommitted:
            if self._commits:
                self._answered(self._commits.popleft(), at, empty=False)
        elif kind is ErrorEvent:
            assert isinstance(event, ErrorEvent)
            self._error(event, at)
        elif kind is SessionFinished:
            for track in list(self._open):
                if track.commit_id is not None or track.cancelled:
                    track.committed = True
                    track.running.clear()
                    self._release(track, at)
        return False

    def _created(self, response_id: str) -> SpeechTrack | None:
        # Rule 1: the oldest speech whose text is not all spoken, a cancelled one
        # included (its audio is then dropped); nobody's with none (raw appends).
        track = self._open[0] if self._open else None
        if track is None:
            return None
        self._owners[response_id] = track
        track.running.add(response_id)
        track.responses += 1
        if track.committed and not track.empty_commit:
            track.responses_after_committed += 1
        return track

    def _done(self, event: ResponseDone, at: float) -> None:
        track = self._owners.pop(event.response.id, None)
        if track is None:
            return
        track.running.discard(event.response.id)
        usage = event.response.usage
        if usage is not None and usage.characters:
            track.heard += usage.characters
            self._bills_characters = True
            if not track.finished:
                track.characters += usage.characters
                track.billed = True
        self._settle(track, at)

    def _answered(self, track: SpeechTrack, at: float, *, empty: bool) -> None:
        """Rule 2: the speech's commit is answered (``empty``: the buffer was empty)."""
        track.committed = True
        track.empty_commit = track.empty_commit or empty
        # No earlier speech ends here, though one may wait for characters it will
        # not be billed: the server answers a commit at once, so this answer can
        # fall between two cuts of an earlier speech still speaking (rule 3).
        self._settle(track, at)

    def _error(self, event: ErrorEvent, at: float) -> None:
        named = event.error.event_id
        track = self._track_of(named) if named else None
        if track is None and not named and self._commits:
            oldest = self._commits[0]
            # The current docs' errors name no frame. An error while a commit waits is
            # its answer if it says the buffer was empty, or, in server_commit, once
            # the server has cut that speech's text into responses of its own:
            # the only thing the commit can then find is an empty buffer.
            if is_empty_buffer_error(event) or (self._server_cuts and oldest.responses):
                track = oldest
        if track is None:
            if not self._sent_any:
                self.errors.append(event)  # before any text: the update's refusal
            return
        answers_commit = named == track.commit_id or not named
        if (
            answers_commit
            and track in self._commits
            and (is_empty_buffer_error(event) or (self._server_cuts and track.responses))
        ):
            # Rule 2: everything was synthesised before the commit came.
            self._commits.remove(track)
            self._answered(track, at, empty=True)
            return
        # Rule 5: the error answers its commit; only its running responses are to come.
        if track in self._commits:
            self._commits.remove(track)
        track.refused = True
        if track.finished:
            self._settle(track, at)  # cancelled (or failed before): still silenced
        else:
            track.error = APIError.from_event(event)
            self._silence(track, at)

    def _settle(self, track: SpeechTrack, at: float) -> None:
        """Ends the speech (rule 3) once all its text is spoken out."""
        if track.running:
            return
        if track.refused or (track.cancelled and track.commit_id is None):
            # Refused (rule 5), or cancelled before its commit (its buffered text
            # was cleared): nothing of it comes once its running responses are done.
            self._release(track, at)
            return
        if not track.committed:
            return
        if track.empty_commit and not self._bills_characters:
            # A model that bills no characters: nothing of it runs, so it is over.
            self._release(track, at)
        elif self._server_cuts and self._bills_characters:
            if track.heard >= track.chars_sent:
                self._release(track, at)
        elif track.responses_after_committed or track.empty_commit:
            self._release(track, at)

    def _release(self, track: SpeechTrack, at: float) -> None:
        """No response of the speech will come any more: it leaves the books."""
        if not track.finished:
            self._finish(track, at)
            return
        if track in self._open:
            self._open.remove(track)
        if track in self._commits:
            self._commits.remove(track)
        for rid in [r for r, t in self._owners.items() if t is track]:
            del self._owners[rid]

    def _finish(self, track: SpeechTrack, at: float) -> None:
        track.finished = True
        track.done_at = at
        start = track.first_sent_at
        if start is not None and not track.cancelled and track.error is None:
            first = None if track.first_audio_at is None else track.first_audio_at - start
            self.timings.append((first, at - start))
        if track in self._open:
            self._open.remove(track)
        if track in self._commits:
            self._commits.remove(track)
        for rid in [r for r, t in self._owners.items() if t is track]:
            del self._owners[rid]

    def ended(self, error: DashScopeError) -> None:
        """The session ended: every unfinished speech fails with ``error``."""
        for track in list(self._open):
            if not track.finished:
                track.error = error
                track.finished = True
        self._open.clear()
        self._commits.clear()
        self._owners.clear()
