"""The latency book: when each response's milestones happened, on one clock.

Pure bookkeeping (no threads, locks or clocks): `SessionState` feeds it every
received event with its arrival time, and the core feeds it the intents that
carry a time of their own (a manual commit, the first sample an attached
speaker played, how long an interrupt took to silence it), all under the
session's lock. Every time is the core's ``time.monotonic()`` reading, the
one clock the state machine is given.

Where a user's turn ends (the start of ``end_of_speech_to_first_audio``):
under server VAD, the arrival of ``input_audio_buffer.speech_stopped``; in
manual mode, the ``input_audio_buffer.commit`` intent. The latest one is
given to the next ``response.created``. A turn goes on through its tool
calls: when a reply that got the end of speech finishes (``completed``)
having called functions without a sound, the user is still waiting, so the
same end of speech is given to the replies created after it (the answers to
the calls' outputs: a response created after a function output went, the
library's or the program's) until one of them sounds or finishes without
calling more; a new end of speech replaces it. So
``end_of_speech_to_first_audio`` of a tool turn is measured to the first
audio the user hears in it: the follow-up's. A turn whose tools get no
answer stops waiting, so that its end of speech never lands on a later,
unrelated reply: at an ``interrupt()``, when the tool loop stops with no
next reply (`turn_stopped`), and at the first reply created with no output
sent since (a call the program left unanswered). A silenced response (the
state's: an answer to some of a reply's outputs under server VAD,
superseded by the answer to the last one; an answer nobody may hear after
``interrupt()``) is heard by no one, so it neither takes an end of speech
nor ends a turn: its audio never reaches the book, and a turn it "ended"
would leave the answer the user hears without its figure.

What "the request" is (the start of the other delays): for a response a
handle follows, the handle's own start (the ``response.create`` intent, or
the ``next_response()`` call), as `ResponseResult` has always counted; for a
response nobody follows (a server-VAD reply heard through handlers or an
attached speaker), the user's end of speech, else its ``response.created``.
The answer to a tool turn's outputs is a response of its own: its delays
start at its own request (the ``response.create`` after the outputs), and
only ``end_of_speech_to_first_audio`` spans the whole turn.
"""

from __future__ import annotations

import collections
from typing import Final

from .._audio.level import audible
from .._wire.events import (
    InputAudioBufferSpeechStopped,
    ResponseAudioDelta,
    ResponseAudioTranscriptDelta,
    ResponseAudioTranscriptText,
    ResponseDone,
    ResponseFunctionCallArgumentsDone,
    ResponseInfo,
    ResponseTextDelta,
    ResponseTextText,
    ServerEvent,
)

__all__ = ["FIGURES", "KEPT", "LatencyBook", "ResponseTiming"]

#: How many responses (and interrupts) the book keeps for `session.metrics`:
#: a few floats each, so a long session costs at most a few megabytes.
KEPT: Final = 10_000

#: The per-response figures, in the order a summary shows them.
FIGURES: Final = (
    "end_of_speech_to_first_audio",
    "first_audio_delay",
    "first_audible_delay",
    "first_text_delay",
    "playback_start",
    "total_time",
)

_TEXT: Final = frozenset(
    {ResponseTextDelta, ResponseAudioTranscriptDelta, ResponseTextText, ResponseAudioTranscriptText}
)


class ResponseTiming:
    """The clock readings of one response (monotonic seconds; None: not yet, or never).

    Mutated only by `LatencyBook` (under the session's lock); a
    `ResponseTrack` holds the same object, so its result sees a speaker's
    playback start that arrives after ``response.done``.
    """

    __slots__ = (
        "calls_tools",
        "created_at",
        "done_at",
        "first_audible_at",
        "first_audio_at",
        "first_text_at",
        "playback_at",
        "requested_at",
        "silent",
        "speech_ended_at",
    )

    def __init__(
        self,
        requested_at: float,
        created_at: float,
        speech_ended_at: float | None,
        silent: bool = False,
    ):
        self.requested_at = requested_at
        self.created_at = created_at
        self.speech_ended_at = speech_ended_at
        self.first_audio_at: float | None = None
        self.first_audible_at: float | None = None
        self.first_text_at: float | None = None
        self.playback_at: float | None = None
        self.done_at: float | None = None
        # Whether the response called a function (its arguments' done event).
        self.calls_tools = False
        # Nobody hears the response (a silenced tool answer): `session.metrics`
        # leaves it out, as its early, soundless figures would skew the summary.
        self.silent = silent

    def since_request(self, at: float | None) -> float | None:
        return None if at is None else at - self.requested_at

    @property
    def end_of_speech_to_first_audio(self) -> float | None:
        if self.speech_ended_at is None or self.first_audio_at is None:
            return None
        return self.first_audio_at - self.speech_ended_at

    def figures(self) -> tuple[float | None, ...]:
        """The values of `FIGURES`, in order."""
        since = self.since_request
        return (
            self.end_of_speech_to_first_audio,
            since(self.first_audio_at),
            since(self.first_audible_at),
            since(self.first_text_at),
            since(self.playback_at),
            since(self.done_at),
        )


class LatencyBook:
    """The session's `ResponseTiming` records and interrupt figures; see the module docstring.

    Not thread-safe by itself: the session's lock serialises every call.
    """

    def __init__(self) -> None:
        # The latest end of the user's speech not yet given to a response.
        self._speech_ended_at: float | None = None
        # The end of speech of a turn still waiting for a sound after a reply
        # that only called tools: given to every response created until one
        # sounds or ends the turn (see the module docstring).
        self._turn_end: float | None = None
        # A function output went since that turn began waiting: the next
        # response is its answer (else the turn was left unanswered).
        self._answered = False
        # response id -> its timing, oldest first (the latest KEPT).
        self.responses: collections.OrderedDict[str, ResponseTiming] = collections.OrderedDict()
        # The responses still waiting for their first audible chunk / first
        # text: every other delta costs one dict miss (the hot path).
        self._unheard: dict[str, ResponseTiming] = {}
        self._untold: dict[str, ResponseTiming] = {}
        #: Seconds from each `interrupt()` with a speaker to its silence (the latest KEPT).
        self.interrupts: collections.deque[float] = collections.deque(maxlen=KEPT)

    def speech_ended(self, at: float) -> None:
        """The user's turn ended at ``at`` (a manual commit; VAD's comes as an event)."""
        self._speech_ended_at = at
        self.turn_stopped()  # a new turn: the old one's tool answers no longer count

    def output_sent(self) -> None:
        """A ``function_call_output`` is going out: the next response answers it."""
        if self._turn_end is not None:
            self._answered = True

    def turn_stopped(self) -> None:
        """The tool turn waiting for an answer gets none (``interrupt()``, the loop's
        limit): no later response takes its end of speech."""
        self._turn_end = None
        self._answered = False

    def created(
        self, response_id: str, at: float, requested_at: float | None, *, silent: bool = False
    ) -> ResponseTiming:
        """A ``response.created`` arrived at ``at``; ``requested_at`` is its handle's start.

        ``silent``: nobody will hear the response (see the module docstring).
        """
        timing = self.responses.get(response_id)
        if timing is not None:
            return timing  # a duplicate created: the first one counts
        speech_end: float | None = None
        if not silent:
            speech_end, self._speech_ended_at = self._speech_ended_at, None
            if speech_end is None and self._turn_end is not None:
                if self._answered:
                    speech_end = self._turn_end  # an answer to a tool turn's outputs
                    self._answered = False  # (its own calls, if any, wait anew)
                else:
                    self.turn_stopped()  # a reply to something else: the calls went unanswered
        if requested_at is None:
            requested_at = at if speech_end is None else speech_end
        timing = ResponseTiming(requested_at, at, speech_end, silent)
        responses = self.responses
        responses[response_id] = timing
        while len(responses) > KEPT:
            oldest, _ = responses.popitem(last=False)
            self._unheard.pop(oldest, None)
            self._untold.pop(oldest, None)
        self._unheard[response_id] = self._untold[response_id] = timing
        return timing

    def receive(self, event: ServerEvent, at: float) -> None:
        """Take one received event (every one: only the few that matter are looked at)."""
        kind = type(event)
        if kind is ResponseAudioDelta:
            assert isinstance(event, ResponseAudioDelta)
            timing = self._unheard.get(event.response_id)
            if timing is None:
                return  # heard already (or nobody's): nothing to check
            if timing.first_audio_at is None:
                timing.first_audio_at = at
                if timing.speech_ended_at is not None and timing.speech_ended_at == self._turn_end:
                    self._turn_end = None  # the tool turn's answer sounds: it has its figure
            # Checked only until the first audible chunk: free afterwards.
            if audible(event.delta):
                timing.first_audible_at = at
                del self._unheard[event.response_id]
        elif kind in _TEXT:
            timing = self._untold.pop(event.response_id, None)  # type: ignore[attr-defined]
            if timing is not None:
                timing.first_text_at = at
        elif kind is ResponseDone:
            assert isinstance(event, ResponseDone)
            rid = event.response.id
            self._unheard.pop(rid, None)
            self._untold.pop(rid, None)
            timing = self.responses.get(rid)
            if timing is not None and timing.done_at is None:
                timing.done_at = at
                self._turn_goes_on(timing, event.response)
        elif kind is InputAudioBufferSpeechStopped:
            assert isinstance(event, InputAudioBufferSpeechStopped)
            if event.reason != "turn_invalid":  # a filler: no response follows it
                self.speech_ended(at)
        elif kind is ResponseFunctionCallArgumentsDone:
            assert isinstance(event, ResponseFunctionCallArgumentsDone)
            timing = self.responses.get(event.response_id)
            if timing is not None:
                timing.calls_tools = True

    def _turn_goes_on(self, timing: ResponseTiming, info: ResponseInfo) -> None:
        """A response of a user's turn ended: does the turn wait on for its tools' answer?"""
        speech_end = timing.speech_ended_at
        if speech_end is None or timing.first_audio_at is not None:
            return  # no user's turn, or the user heard this one
        if (info.status or "completed") != "completed":
            return  # cut or failed: what comes next is up to the program
        if timing.calls_tools or any(item.type == "function_call" for item in info.output):
            if self._speech_ended_at is None:  # unless the user has spoken again since
                self._turn_end = speech_end
                self._answered = False
        elif speech_end == self._turn_end:
            self.turn_stopped()  # the turn's last reply, silent (a text reply)

    def played(self, response_id: str, at: float) -> None:
        """An attached speaker played the response's first sample at ``at``."""
        timing = self.responses.get(response_id)
        if timing is not None and timing.playback_at is None:
            timing.playback_at = at

    def interrupted(self, to_silence: float) -> None:
        """An ``interrupt()`` silenced the speaker ``to_silence`` seconds after the call."""
        self.interrupts.append(to_silence)
