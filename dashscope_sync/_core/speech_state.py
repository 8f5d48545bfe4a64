"""Qwen-TTS-Realtime's rules, as a pure state machine: which audio is whose, when a speech ends.

No threads, sockets, locks or clocks: `SessionState` feeds every received
event to `SpeechBook.receive` under the session's one lock, and the speech
handles read their `SpeechTrack` under the same lock.

The wire gives responses no link to the text that made them (SPEECH_FAMILIES.md
§A4): the server synthesises its text buffer in order. So the rules are:

1. Speeches are kept in the order their text went out. A ``response.created``
   belongs to the oldest speech not finished yet (a response that starts when
   no speech is open belongs to nobody: raw `append_text` use).
2. A speech's commit pairs with the next ``input_text_buffer.committed`` (the
   wire order), or with an ``error`` naming the commit's event id. An error
   saying the buffer was empty means the server had cut all the text into
   responses of its own already (``server_commit``): the commit is answered,
   not failed. That error may come before those responses even start (the
   server queues them), so the speech then ends once nothing of it runs and
   the characters billed reach the characters sent (whitespace aside); a
   model that bills no characters (the legacy one bills tokens) ends it once
   nothing of it runs.
3. A speech is finished when its commit was answered, none of its responses
   runs, and a response started after the ``committed`` (or the commit found
   the buffer empty): responses that started before it were the server's own
   cuts of the text (``server_commit``), and the committed tail comes after
   them (the live trace, §A4). The docs also say a commit "does not create a
   response" (§E2): a response whose audio arrives without a
   ``response.created`` is taken as started by its first frame, so the speech
   still ends at its ``response.done``.
4. ``session.finished`` says every response is done: each committed speech is finished.
5. An ``error`` naming one of a speech's frames (an append or its commit)
   fails that speech only.
6. A cancelled speech's late audio is dropped (``receive`` returns True).
"""

from __future__ import annotations

import collections
from typing import Final

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
        "responses_after_committed",
        "running",
        "started_at",
    )

    def __init__(self, started_at: float) -> None:
        self.started_at = started_at
        self.first_sent_at: float | None = None
        self.audio: list[bytes] = []
        self.first_audio_at: float | None = None
        self.done_at: float | None = None
        self.characters = 0
        # Characters sent, whitespace aside (what the service bills, as far as known).
        self.chars_sent = 0
        # Did a response of it report billed characters (Qwen3; not the legacy model)?
        self.billed = False
        # The event ids of its appends: an error naming one fails it.
        self.frames: list[str] = []
        self.commit_id: str | None = None
        self.committed = False
        self.empty_commit = False
        self.responses_after_committed = 0
        self.running: set[str] = set()
        self.finished = False
        self.cancelled = False
        self.error: DashScopeError | None = None

    def __repr__(self) -> str:
        state = "finished" if self.finished else "open"
        return f"<SpeechTrack {state} chunks={len(self.audio)}>"


class SpeechBook:
    """The speeches of one session; see the module docstring.

    Not thread-safe by itself: the caller holds the session's lock.
    """

    def __init__(self) -> None:
        # Unfinished speeches, oldest first (rule 1).
        self._open: collections.deque[SpeechTrack] = collections.deque()
        # Commits waiting for their committed (or error), in wire order (rule 2).
        self._commits: collections.deque[SpeechTrack] = collections.deque()
        # Running responses -> the speech they belong to.
        self._owners: dict[str, SpeechTrack] = {}
        # Has any speech sent text (errors before that refuse the update)?
        self._sent_any = False
        #: The errors received so far while nothing but the update was sent (connect).
        self.errors: list[ErrorEvent] = []

    # Intents (the sender) ------------------------------------------------------

    def open(self, track: SpeechTrack) -> None:
        """A speech starts: its text goes out after every earlier speech's."""
        self._open.append(track)

    def sent(self, track: SpeechTrack, event_id: str, at: float) -> None:
        """One of the speech's appends is going out (registered first, as its error may race it)."""
        if track.first_sent_at is None:
            track.first_sent_at = at
            self._sent_any = True
        track.frames.append(event_id)

    def commit_sent(self, track: SpeechTrack, event_id: str, chars: int) -> None:
        """The speech's commit is going out (registered first: its answer cannot race it),
        after ``chars`` characters of text (whitespace aside)."""
        track.commit_id = event_id
        track.chars_sent = chars
        self._commits.append(track)

    def _track_of(self, event_id: str) -> SpeechTrack | None:
        """The unfinished speech that sent this frame (an error is rare: a scan is fine)."""
        for track in self._open:
            if not track.finished and (event_id == track.commit_id or event_id in track.frames):
                return track
        return None

    def fail(self, track: SpeechTrack, error: DashScopeError, at: float) -> None:
        """The speech failed on our side (its text source raised, a send failed)."""
        if track.finished:
            return
        track.error = error
        self._finish(track, at)

    def cancel(self, track: SpeechTrack, at: float) -> bool:
        """The user cancels the speech: its audio still to come is dropped. False if it was over."""
        if track.finished:
            return False
        track.cancelled = True
        self._finish(track, at)
        return True

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
            if track.cancelled:
                return True
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
                track = self._commits.popleft()
                track.committed = True
                self._check(track, at)
        elif kind is ErrorEvent:
            assert isinstance(event, ErrorEvent)
            self._error(event, at)
        elif kind is SessionFinished:
            for track in list(self._open):
                if track.commit_id is not None:
                    track.committed = True
                    track.running.clear()
                    self._finish(track, at)
        return False

    def _created(self, response_id: str) -> SpeechTrack | None:
        track = next((t for t in self._open if not t.cancelled), None)
        if track is None:
            # Nobody's (raw appends), or a cancelled speech's late response:
            # a cancelled speech keeps its late responses, to drop their audio.
            track = self._open[0] if self._open else None
            if track is None:
                return None
        self._owners[response_id] = track
        track.running.add(response_id)
        if track.committed and not track.empty_commit:
            track.responses_after_committed += 1
        return track

    def _done(self, event: ResponseDone, at: float) -> None:
        track = self._owners.pop(event.response.id, None)
        if track is None:
            return
        track.running.discard(event.response.id)
        if track.cancelled:
            if not track.running and track in self._open:
                self._open.remove(track)  # its late audio is over
            return
        usage = event.response.usage
        if usage is not None and usage.characters:
            track.characters += usage.characters
            track.billed = True
        self._check(track, at)

    def _error(self, event: ErrorEvent, at: float) -> None:
        named = event.error.event_id
        track = self._track_of(named) if named else None
        if track is None and not named and self._commits and is_empty_buffer_error(event):
            track = self._commits[0]  # the current docs' errors name no frame
        if track is None:
            if not self._sent_any:
                self.errors.append(event)  # before any text: the update's refusal
            return
        if track.commit_id is not None and is_empty_buffer_error(event):
            # Rule 2: everything was synthesised before the commit came.
            if track in self._commits:
                self._commits.remove(track)
            track.committed = track.empty_commit = True
            self._check(track, at)
            return
        if track in self._commits:
            self._commits.remove(track)
        if not track.finished:
            track.error = APIError.from_event(event)
            self._finish(track, at)

    def _check(self, track: SpeechTrack, at: float) -> None:
        if not track.committed or track.running:
            return
        if track.responses_after_committed or (
            track.empty_commit and (not track.billed or track.characters >= track.chars_sent)
        ):
            self._finish(track, at)

    def _finish(self, track: SpeechTrack, at: float) -> None:
        track.finished = True
        track.done_at = at
        if track.cancelled:
            # Its running responses stay owned (and it stays open for the ones
            # starting with no other speech open), so that their late audio is dropped.
            if track in self._commits:
                self._commits.remove(track)
            if not track.running and track in self._open:
                self._open.remove(track)
        else:
            if track in self._open:
                self._open.remove(track)
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
