"""The session as a pure state machine: decoded events and intents in, decisions out.

No threads, sockets, locks, clocks or sleeps live here: callers pass the time
(``at``) with each input and hold whatever lock they need. That keeps every
protocol rule of the session in one place that tests drive with recorded frame
sequences, and keeps the I/O shell replaceable.

What it owns:

- the lifecycle, as one `Phase`;
- the requests waiting for an answer (``session.update``, ``session.finish``,
  ``response.create``) and the one rule that pairs answers and errors with them
  (`SessionState.receive`);
- response tracking: which `ResponseTrack` a ``response.created`` /
  ``response.done`` belongs to, a cancel asked for before ``response.created``,
  responses the server starts by itself under server VAD;
- interruptions (barge-in): the one record of which responses were
  interrupted, which every consumer (handlers, the pull buffer, response
  handles, an attached speaker) consults; their late ``response.audio.delta``
  frames are dropped (`DROP`) and counted. A response still being played by
  the handler thread (its ``response.done`` not yet handled) can be
  interrupted after the reader has seen it end;
- the configuration the server accepted, for a reconnect to replay;
- once a tool is registered, which function calls of a finished reply the
  library answers (`ToolBook`, fed every call event; `Effects.tool_calls`),
  and the handle of that reply, whose wait ends at `SessionState.tools_ran`;
- the end state (close code, reason, error).

Pairing rules (by identity, never by position, where the wire allows it). They
never depend on whether a caller still holds a handle (no weak references, so
no garbage-collection timing): a dropped handle keeps its place, and only stops
collecting text and audio (`ResponseTrack.unwatched`).

1. An ``error`` whose ``error.event_id`` names a waiting request fails that
   request only. One naming a request that was already paired with a
   ``response.created`` takes that pairing back (the server refused the request;
   the response was someone else's): the response goes to the next unanswered
   ``response.create`` (the request that asked for it), else to a follower.
2. An ``error`` naming no request fails one only when its ``param`` or ``code``
   says which kind it concerns: ``session.*`` the oldest waiting
   ``session.update``; ``response.*`` or
   ``conversation_already_has_active_response`` the oldest unanswered
   ``response.create``. Any other error fails no request.
3. ``session.updated`` and ``session.finished`` carry no client id: each answers
   the oldest request of its kind still waiting (a request whose caller gave up
   still waits, so its late answer is never given to a later request).
4. A ``response.created`` that follows the end of a server-VAD turn (with
   automatic responses on) is the server's own: it goes to the oldest handle from
   `SessionState.follow_next_response`. Otherwise it answers the oldest
   unanswered ``response.create``, else it goes to a follower, else to nobody.
5. Under server VAD with automatic responses the server answers a function
   output by itself: after `SessionState.function_output_sent` the next
   ``response.created`` is the server's own, and when nobody follows it yet it
   is kept for the next `SessionState.follow_next_response` (one at most). An
   ``error`` naming that output (or naming nothing, with an ``item.*``
   ``param``) means the server refused it: no answer is due any more, and the
   handles following that answer fail with the error.
6. ``conversation.item.retrieved``/``.deleted`` answer the oldest request of
   their kind for the same item id.

Family rules kept here: with ``server_error_ends`` (Qwen-Audio) a
``server_error`` ends the session with that `APIError`; LiveTranslate's
``text``/``stash`` events feed a response's confirmed text, and it starts every
response itself; Qwen-Audio's rules on a late ``session.update``
(`SessionState.late_update_warning`); Qwen-TTS-Realtime's speeches, in the
`SpeechBook` this state feeds every event first; Qwen-ASR-Realtime's VAD spans
(`TranscriptSpans`, fed the same way, so every reader of the session's
transcripts sees where each utterance started and ended, whoever consumed the
``speech_started``/``speech_stopped`` events), and which of its errors end
a transcript iteration (`ends_transcripts`).
"""

from __future__ import annotations

import collections
import copy
import enum
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from .._conversation.book import TranscriptBook
from .._conversation.latency import LatencyBook, ResponseTiming
from .._errors import (
    ActiveResponseError,
    APIError,
    DashScopeError,
    SessionClosedError,
    TransportError,
)
from .._wire.config import SessionUpdate
from .._wire.dialects import TurnPlan, check_late_update, plan_turn, takes_client_event
from .._wire.events import (
    ConversationItemDeleted,
    ConversationItemRetrieved,
    ErrorEvent,
    InputAudioBufferSpeechStarted,
    InputAudioBufferSpeechStopped,
    ResponseAudioDelta,
    ResponseAudioTranscriptDelta,
    ResponseAudioTranscriptDone,
    ResponseAudioTranscriptText,
    ResponseCreated,
    ResponseDone,
    ResponseFunctionCallArgumentsDone,
    ResponseTextDelta,
    ResponseTextDone,
    ResponseTextText,
    ServerEvent,
    SessionCreated,
    SessionFinished,
    SessionInfo,
    SessionUpdated,
)
from .._wire.families import ModelFamily
from .speech_state import SpeechBook
from .tool_book import DueCall, ToolAnswers, ToolBook
from .truncation import Replacement, Replacements

__all__ = [
    "CLOSE_NORMAL",
    "DROP",
    "End",
    "Phase",
    "Request",
    "RequestKind",
    "ResponseTrack",
    "SessionState",
    "TranscriptSpans",
    "ends_transcripts",
]

#: The normal close code (RFC 6455).
CLOSE_NORMAL: Final = 1000
#: How many interrupted response ids are remembered: the handler thread may
#: still be working through a response long after its response.done was read,
#: and ids are never reused, so keeping the latest few is enough.
_INTERRUPTED_KEPT: Final = 64
#: How many responses may be open for the handler thread at once (a
#: response.done lost to a full handler backlog must not keep its id forever).
_OPEN_KEPT: Final = 16
#: How many items' VAD spans `TranscriptSpans` keeps: a reader may be far
#: behind the socket (its events buffered), so a span outlives its item's
#: final transcript; item ids are never reused, so the latest few suffice.
_SPANS_KEPT: Final = 64
#: Qwen-ASR's error for a commit with nothing buffered (the local server's
#: code; SPEECH_FAMILIES.md B2 documents only the words below).
_COMMIT_EMPTY: Final = "input_audio_buffer_commit_empty"
#: The documented words of Qwen-ASR's errors for a refused commit.
_COMMIT_WORDS: Final = "error committing input audio buffer"
#: The close code recorded when a family's server_error ends the session (1011,
#: "internal error"): the server ends the connection, with its own code.
_CLOSE_SERVER_ERROR: Final = 1011


class TranscriptSpans:
    """Where Qwen-ASR's server VAD heard each item's speech start and end (ms of audio).

    The session's one record, fed every event by `SessionState.receive`
    under the session's lock, so a restarted ``transcripts()`` (or a
    handler, or a reader behind the socket) still finds the span of an item
    in progress. Pure: no I/O, no lock of its own.
    """

    __slots__ = ("_spans",)

    def __init__(self) -> None:
        # item id -> [speech start ms, speech end ms], oldest first, the latest _SPANS_KEPT.
        self._spans: dict[str, list[int | None]] = {}

    def receive(self, event: ServerEvent) -> None:
        """Take one event: a ``speech_started`` or ``speech_stopped`` records its time."""
        kind = type(event)
        if kind is InputAudioBufferSpeechStarted:
            assert isinstance(event, InputAudioBufferSpeechStarted)
            self._keep(event.item_id)[0] = event.audio_start_ms
        elif kind is InputAudioBufferSpeechStopped:
            assert isinstance(event, InputAudioBufferSpeechStopped)
            self._keep(event.item_id)[1] = event.audio_end_ms

    def of(self, item_id: str) -> tuple[int | None, int | None]:
        """The item's speech start and end, each None until heard (or never, manual mode)."""
        span = self._spans.get(item_id)
        return (None, None) if span is None else (span[0], span[1])

    def _keep(self, item_id: str) -> list[int | None]:
        span = self._spans.get(item_id)
        if span is None:
            span = self._spans[item_id] = [None, None]
            if len(self._spans) > _SPANS_KEPT:
                del self._spans[next(iter(self._spans))]
        return span


def ends_transcripts(event: ErrorEvent) -> bool:
    """Does this Qwen-ASR ``error`` end a transcript iteration?

    A refused commit does not: ``input_audio_buffer_commit_empty`` (nothing
    was buffered, as when a commit follows the server's own end of the
    turn), a ``param`` naming ``input_audio_buffer.commit``, or the
    documented words "error committing input audio buffer" (SPEECH_FAMILIES.md
    B2). The audio stream and the transcripts of what was appended go on; the
    error still reaches handlers and ``recv``. Every other error does (a
    refused append, the configuration, the server's own failure): what it
    concerns may never be transcribed, so the reader must hear of it.
    """
    info = event.error
    if info.code == _COMMIT_EMPTY or (info.param or "").startswith("input_audio_buffer.commit"):
        return False
    return _COMMIT_WORDS not in info.message.lower()


class Phase(enum.Enum):
    """Where the session is in its life."""

    CONNECTING = "connecting"  # upgraded, waiting for session.created
    OPEN = "open"  # session.created arrived; requests may be sent
    CLOSING = "closing"  # close() started; nothing more is sent
    CLOSED = "closed"  # the connection ended; End says how


class RequestKind(enum.Enum):
    """A client event that waits for an answer, by the wire type that answers it."""

    UPDATE = "session.updated"
    FINISH = "session.finished"
    RESPONSE = "response.created"
    RETRIEVE = "conversation.item.retrieved"
    DELETE = "conversation.item.deleted"


class End:
    """How the connection ended: the close code and reason, and the error if abnormal."""

    __slots__ = ("code", "error", "reason")

    def __init__(self, code: int, reason: str, error: DashScopeError | None) -> None:
        self.code = code
        self.reason = reason
        # None for a clean end (1000, or a close we asked for); a TransportError
        # for a lost connection; an APIError for a family whose server_error
        # ends the session (Qwen-Audio).
        self.error = error


class Request:
    """One request waiting for its answer (or its error)."""

    __slots__ = ("answer", "error", "event_id", "kind", "payload", "track")

    def __init__(
        self,
        kind: RequestKind,
        event_id: str,
        payload: dict[str, Any] | None = None,
        track: ResponseTrack | None = None,
    ) -> None:
        self.kind = kind
        self.event_id = event_id
        # For session.update: the fields sent, kept so that an accepted
        # update can be replayed by a reconnect.
        self.payload = payload
        # The track of a response.create, kept whether or not its handle is.
        self.track = track
        self.answer: ServerEvent | None = None
        self.error: DashScopeError | None = None

    def __repr__(self) -> str:
        return f"<Request {self.kind.name} {self.event_id}>"


class ResponseTrack:
    """Everything known of one response, for the handle that follows it.

    Mutated only by `SessionState` (under the caller's lock); read by the
    `Response` handle under the same lock.
    """

    __slots__ = (
        "__weakref__",  # a dropped handle's track must be seen to be freed (the leak tests)
        "_confirmed",
        "audio",
        "cancel_sent",
        "cancel_wanted",
        "done",
        "done_at",
        "error",
        "event_id",
        "first_audio_at",
        "first_text_at",
        "follow_up",
        "id",
        "interrupted",
        "requested_at",
        "sample_rate",
        "silent",
        "status",
        "text",
        "timing",
        "tool_calls",
        "tool_round",
        "tools_pending",
        "unwatched",
    )

    def __init__(self, event_id: str | None, requested_at: float) -> None:
        self.event_id = event_id  # the response.create's id; None when following VAD
        self.requested_at = requested_at
        self.id: str | None = None
        self.status: str | None = None
        self.text: list[str] = []
        self.audio: list[bytes] = []
        self.first_text_at: float | None = None
        self.first_audio_at: float | None = None
        self.done: ResponseDone | None = None
        self.done_at: float | None = None
        self.error: DashScopeError | None = None
        self.cancel_wanted = False
        self.cancel_sent = False
        # interrupt() cut its audio while it ran (the result says so).
        self.interrupted = False
        # The output audio's sample rate, from the session when it echoes one.
        self.sample_rate: int | None = None
        # The response called registered tools that have not run yet: its
        # handle's wait() goes on until they have (`SessionState.tools_ran`).
        self.tools_pending = False
        # The records of those calls, and the reply that answers their
        # outputs (the library asked for it, or follows the server's own).
        self.tool_calls: tuple[Any, ...] = ()
        self.follow_up: ResponseTrack | None = None
        # The replies before it in its turn that called registered tools (it
        # answers their outputs); 0 for a turn's first reply.
        self.tool_round = 0
        # Nobody may hear it (a tool answer superseded, past the loop's bound,
        # or asked for before an interrupt()): from its response.created its
        # audio reaches no one, and its calls are not run.
        self.silent = False
        # The latency book's record of the response, from response.created:
        # the figures that come after response.done (an attached speaker's
        # playback start) reach the result through it.
        self.timing: ResponseTiming | None = None
        # Characters of confirmed text taken from `text`/`stash` events
        # (LiveTranslate); None while the response streams plain deltas.
        self._confirmed: int | None = None
        # Set (once, by the handle's finalizer: a plain store, no lock) when
        # the caller dropped the handle: its text and audio are no longer
        # kept. It never changes which response the track is paired with.
        self.unwatched = False

    @property
    def finished(self) -> bool:
        return self.done is not None or self.error is not None

    def fail(self, error: DashScopeError) -> None:
        if not self.finished:
            self.error = error

    def _start(self, event: ResponseCreated) -> None:
        self.id = event.response.id
        self.status = event.response.status or "in_progress"

    def _take_over(self, other: ResponseTrack) -> None:
        """Continue a response that was wrongly given to ``other`` first."""
        self.id, self.status = other.id, other.status
        self.text, self.audio = other.text, other.audio
        self.first_text_at, self.first_audio_at = other.first_text_at, other.first_audio_at
        self.timing = other.timing
        other.text, other.audio = [], []

    def _feed(self, event: ServerEvent, at: float) -> None:
        if type(event) is ResponseAudioDelta:
            if self.first_audio_at is None:
                self.first_audio_at = at
            self.audio.append(event.delta)
        elif type(event) is ResponseAudioTranscriptDelta or type(event) is ResponseTextDelta:
            if self._confirmed is not None:
                return  # the confirmed text of the `text` events is the response's text
            if self.first_text_at is None:
                self.first_text_at = at
            self.text.append(event.delta)
        elif type(event) is ResponseTextText or type(event) is ResponseAudioTranscriptText:
            # `text` is everything confirmed so far: keep only what is new.
            self._take_confirmed(event.text, at)
        elif type(event) is ResponseTextDone:
            if self._confirmed is not None:
                self._take_confirmed(event.text, at)
        elif type(event) is ResponseAudioTranscriptDone:
            if self._confirmed is not None:
                self._take_confirmed(event.transcript, at)
        elif type(event) is ResponseDone:
            self.done = event
            self.done_at = at
            self.status = event.response.status or "completed"

    def _take_confirmed(self, confirmed: str, at: float) -> None:
        taken = self._confirmed or 0
        self._confirmed = taken
        if len(confirmed) > taken:
            if self.first_text_at is None:
                self.first_text_at = at
            self.text.append(confirmed[taken:])
            self._confirmed = len(confirmed)

    def __repr__(self) -> str:
        return f"<ResponseTrack id={self.id!r} status={self.status!r}>"


class Effects:
    """What the caller must do after an input: send these frames, stop the sound."""

    __slots__ = (
        "cancel",
        "cancel_interrupted",
        "close",
        "interrupted",
        "muted",
        "recreate",
        "tool_calls",
        "truncate",
    )

    def __init__(self) -> None:
        # Responses whose cancel was asked for before response.created: send
        # response.cancel for each, now that they run.
        self.cancel: list[ResponseTrack] = []
        # A barge-in interrupted this response: silence the speaker now.
        self.interrupted: str | None = None
        # ... and send response.cancel for it (the server will not cancel it itself).
        self.cancel_interrupted = False
        # A response nobody hears started (a silenced tool answer): its audio
        # stays off the recording, as a cut reply's does.
        self.muted: str | None = None
        # The state ended the session (a family's server_error): close the socket.
        self.close = False
        # A reply ended calling registered tools: run them and answer (the core's tool worker).
        self.tool_calls: tuple[DueCall, ...] = ()
        # A reply cut by interrupt(truncate=True) ended: replace its item with what was heard.
        self.truncate: Replacement | None = None
        # The server answered these replacements' deletes: send each re-create (or give up).
        self.recreate: tuple[Replacement, ...] = ()


#: What `SessionState.receive` returns for an event that must go nowhere: a
#: late audio frame of an interrupted response (not to the pull buffer, the
#: handlers, a response handle or a speaker).
DROP: Final = Effects()

#: Event types that change the session's books (the rest only feed responses).
_Handler = Callable[["SessionState", Any, float], "Effects | None"]

#: Event types a response handle collects.
_FED: Final = frozenset(
    {
        ResponseAudioDelta,
        ResponseAudioTranscriptDelta,
        ResponseTextDelta,
        # LiveTranslate's confirmed text, and the final forms that complete it.
        ResponseTextText,
        ResponseAudioTranscriptText,
        ResponseTextDone,
        ResponseAudioTranscriptDone,
    }
)

#: The events the tool book reads (once the program registered a tool).
_CALL_EVENTS: Final = frozenset({ResponseFunctionCallArgumentsDone, ResponseDone})
#: The events that answer a ``conversation.item.delete`` (a truncation's included).
_DELETE_ANSWERS: Final = frozenset({ConversationItemDeleted, ErrorEvent})

_ACTIVE_RESPONSE: Final = "conversation_already_has_active_response"


def _error_kind(error: ErrorEvent) -> RequestKind | None:
    """Which kind of request an error naming no request concerns, if it says."""
    info = error.error
    if info.code == _ACTIVE_RESPONSE:
        return RequestKind.RESPONSE
    param = info.param or ""
    if param.startswith("session."):
        return RequestKind.UPDATE
    if param.startswith("response."):
        return RequestKind.RESPONSE
    return None


#: Qwen-Audio's words for "one response at a time" (its code is a plain invalid_value).
_ANOTHER_IN_PROGRESS: Final = "another response is in progress"


def _request_error(kind: RequestKind, event: ErrorEvent) -> APIError:
    """The error for a refused request: Qwen-Audio's refusal of a second
    ``response.create`` is an `ActiveResponseError`, like every family's."""
    error = APIError.from_event(event)
    if kind is RequestKind.RESPONSE and _ANOTHER_IN_PROGRESS in event.error.message:
        return ActiveResponseError(
            error.message,
            code=error.code,
            type=error.type,
            param=error.param,
            event_id=error.event_id,
            event=event,
        )
    return error


def _auto_responds(info: SessionInfo | None) -> bool:
    """Does the server start responses itself (server VAD with automatic responses)?"""
    detection = None if info is None else info.turn_detection
    return detection is not None and detection.get("create_response", True) is not False


def _merge(into: dict[str, Any], update: Mapping[str, Any]) -> None:
    """Merge an accepted ``session.update`` into what was accepted before, deeply:
    objects merge key by key; anything else (a list, None, a value) replaces."""
    for key, value in update.items():
        old = into.get(key)
        if isinstance(value, Mapping) and isinstance(old, dict):
            _merge(old, value)
        else:
            into[key] = copy.deepcopy(value)


class SessionState:
    """The session's books; see the module docstring.

    Not thread-safe by itself: the caller serialises every call (the session
    holds one lock around it).
    """

    def __init__(self) -> None:
        self.phase = Phase.CONNECTING
        # close() was asked for (once): the first caller does the close work.
        self._close_asked = False
        self.session_id = ""
        self.info: SessionInfo | None = None
        #: An error that came before session.created: connect() fails with it.
        self.early_error: ErrorEvent | None = None
        self.end: End | None = None
        #: Every session field the server accepted, merged deeply (a nested
        #: ``audio.output.voice`` survives a later ``audio.output.format``),
        #: for a reconnect.
        self.accepted: dict[str, Any] = {}
        # Requests waiting for an answer, in the order they were sent.
        self._pending: list[Request] = []
        # response.create requests paired with a response.created, by request
        # event id -> response id, until response.done: an error naming one
        # takes the pairing back (rule 1).
        self._paired: dict[str, tuple[Request, ResponseCreated]] = {}
        # Running responses someone follows: response id -> track.
        self._running: dict[str, ResponseTrack] = {}
        # Tracks waiting for the next response the server starts by itself, in
        # the order they were asked for.
        self._followers: collections.deque[ResponseTrack] = collections.deque()
        # A server-VAD turn ended and its automatic response has not started.
        self._vad_turn_ended = False
        #: The response between its response.created and response.done, if any.
        self.active_response_id: str | None = None
        # The interrupted responses (the latest _INTERRUPTED_KEPT), oldest
        # first: response id -> its audio frames dropped since. Kept after
        # their response.done, as the handler thread may still hold their
        # audio. Empty almost always, so receive() pays one falsy check per
        # event for it.
        self._interrupted: dict[str, int] = {}
        # Responses not over for the handler thread yet, oldest first: from
        # their response.created until the handler thread takes their
        # response.done (or, with no handler thread, until it is read).
        self._open: dict[str, None] = {}
        #: A handler thread takes the events (set once, when it starts).
        self.handlers_follow = False
        # The latest response.created: a consumer may still be playing it
        # (an iter_audio() loop behind the socket), so interrupt() silences
        # it too, even when it is over for the reader and the handlers.
        self._latest: str | None = None
        # Running responses a response.cancel went out for with no handle to
        # record it (interrupt()), until their response.done.
        self._cancelled: set[str] = set()
        #: Late audio frames of interrupted responses dropped, in all.
        self.dropped_audio = 0
        #: Barge-in: ``speech_started`` during a response interrupts it at
        #: once, as `interrupt` does (set by ``session.attach(barge_in=True)``).
        self.barge_in = False
        # A function output was sent under server VAD with automatic
        # responses: the server answers it by itself (no response.create).
        self._answer_due = False
        # The event ids of those outputs, oldest first, until the answer
        # starts: an error naming one means the server refused it.
        self._outputs_due: list[str] = []
        # The tool worker's outputs whose answers have a track of their own
        # (`plan_tool_answers`), by output event id, until the answer starts.
        self._answer_tracks: dict[str, ResponseTrack] = {}
        # Tracks following that answer (create_response() right after the
        # output): they fail with the refusal, if it comes.
        self._answer_followers: list[ResponseTrack] = []
        # That answer, started before anyone asked to follow it: kept (one at
        # most) for the next follow_next_response().
        self._unclaimed: ResponseTrack | None = None
        #: The family rule "a ``server_error`` ends the session" (Qwen-Audio),
        #: set once by the owner before any event arrives.
        self.server_error_ends = False
        #: The model's wire family, for its rules; set once by the owner.
        self.family: ModelFamily | None = None
        #: For the family's rules on late updates (Qwen-Audio): has a
        #: ``session.update`` gone out, has audio?
        self.update_sent = False
        self.audio_sent = False
        # The error event that ended the session under that rule.
        self._fatal: ErrorEvent | None = None
        #: Qwen-TTS-Realtime's speeches (`SpeechBook`: which audio is whose),
        #: set once by the owner before any event arrives; None for the others.
        self.speech: SpeechBook | None = None
        #: Qwen-ASR-Realtime's VAD spans (`TranscriptSpans`), set once by the
        #: owner before any event arrives; None for the other families.
        self.spans: TranscriptSpans | None = None
        #: The function calls the library answers (`ToolBook`), set when the
        #: program registers its first tool; None until then.
        self.tools: ToolBook | None = None
        #: The conversation's transcript (`TranscriptBook`), set once by the
        #: owner before any event arrives; None when none is kept.
        self.transcript: TranscriptBook | None = None
        #: When each response's milestones happened (`session.metrics`).
        self.latency = LatencyBook()
        #: interrupt(truncate=True)'s item replacements under way.
        self.replacements = Replacements()

    # Intents ---------------------------------------------------------------------

    @property
    def can_send(self) -> bool:
        return self.phase is Phase.OPEN or self.phase is Phase.CONNECTING

    @property
    def is_closing(self) -> bool:
        """close() started or the connection ended: nothing more is sent or awaited."""
        return self.phase is Phase.CLOSING or self.phase is Phase.CLOSED

    def accepted_config(self) -> dict[str, Any]:
        """A copy of the configuration the server accepted, for a reconnect."""
        return copy.deepcopy(self.accepted)

    def late_update_warning(self, update: SessionUpdate) -> str | None:
        """The family's rules on a ``session.update`` after others or after audio:
        raises `ConfigError` for what it refuses; a warning for what it ignores."""
        if self.family is None:
            return None
        return check_late_update(
            update, self.family, updated_before=self.update_sent, audio_sent=self.audio_sent
        )

    def plan_turn(self, *, audio: bool, image: bool) -> TurnPlan:
        """How one `respond` turn goes under the accepted turn detection
        (`plan_turn` of the family's dialect: who commits, who responds); a
        state with no family follows the Omni rules."""
        detection = None if self.info is None else self.info.turn_detection
        family = ModelFamily.OMNI if self.family is None else self.family
        return plan_turn(family, detection, audio=audio, image=image)

    def commit_refusal(self) -> str | None:
        """Why ``input_audio_buffer.commit`` must not be sent now, or None.

        Qwen-ASR disables the commit under server VAD (SPEECH_FAMILIES.md B2).
        Its mode is the ``turn_detection`` of the accepted update (the
        transcription session always sends one), else the documented default,
        VAD: the server's echo is not relied on, as its documented examples
        disagree with its defaults (SPEECH_FAMILIES.md E10).
        """
        if self.family is not ModelFamily.QWEN_ASR:
            return None
        if self.accepted.get("turn_detection", {}) is None:
            return None
        return (
            f"{'this model' if self.family is None else self.family.title} takes "
            "input_audio_buffer.commit in manual mode only "
            "(turn_detection=None): under server VAD the server ends each turn itself"
        )

    def request(
        self,
        kind: RequestKind,
        event_id: str,
        payload: dict[str, Any] | None = None,
        track: ResponseTrack | None = None,
    ) -> Request:
        """Register a request before it is sent, so its answer cannot race it."""
        request = Request(kind, event_id, payload, track)
        if self.end is not None:
            request.error = self._closed_error("no answer")
        else:
            self._pending.append(request)
        return request

    def forget(self, request: Request) -> None:
        """Drop a request whose send failed: no answer will come."""
        if request in self._pending:
            self._pending.remove(request)

    def track_response(self, event_id: str, at: float) -> tuple[ResponseTrack, Request]:
        """Register a ``response.create`` and the track that will follow its response."""
        track = ResponseTrack(event_id, at)
        return track, self.request(RequestKind.RESPONSE, event_id, track=track)

    def function_output_sent(
        self,
        event_id: str = "",
        answer: ResponseTrack | None = None,
        call_id: str = "",
        at: float = 0.0,
    ) -> bool:
        """A ``function_call_output`` item is being sent (``event_id``): under
        server VAD with automatic responses the server answers it by itself, so
        its next response is its own (``answer``, if given, takes it: the tool
        worker's `plan_tool_answers`). Returns True if this call made an answer due.

        Each output gets an answer of its own, in order: the service (and the
        local server, which models it) starts a reply after every output. The
        program's output (``call_id``) of a reply whose registered tools still
        run is answered before the library's outputs go, by an answer that
        does not see them: it is silenced (`ToolBook.program_output`).
        """
        self.latency.output_sent()
        if not _auto_responds(self.info):
            return False
        tools = self.tools
        if answer is None and call_id and tools is not None and tools.program_output(call_id):
            answer = ResponseTrack(None, at)
            answer.silent = True
        self._outputs_due.append(event_id)
        if answer is not None:
            self._answer_tracks[event_id] = answer
        first = not self._answer_due
        self._answer_due = True
        return first

    def function_output_unsent(self, event_id: str = "") -> None:
        """The function output could not be sent: no answer will come for it."""
        self._output_gone(event_id, None)

    def _output_gone(self, event_id: str, error: APIError | None) -> None:
        """A function output will get no answer (unsent, or refused with ``error``)."""
        if event_id in self._outputs_due:
            self._outputs_due.remove(event_id)
        own = self._answer_tracks.pop(event_id, None)
        if own is not None and error is not None:
            own.fail(error)
        if self._outputs_due or not self._answer_due:
            return  # another output is still answered (or the answer started)
        self._answer_due = False
        followers, self._answer_followers = self._answer_followers, []
        for track in followers:
            if track in self._followers:
                self._followers.remove(track)
            if error is not None:
                track.fail(error)

    @property
    def answer_due(self) -> bool:
        """Will (or did) the server answer a function output by itself, unfollowed yet?

        Also while the program's output, answered first but silenced, waits
        for the library's outputs of the same reply (`ToolBook.answer_owed`).
        """
        tools = self.tools
        owed = tools is not None and tools.answer_owed
        return self._answer_due or self._unclaimed is not None or owed

    def follow_function_answer(self, at: float) -> ResponseTrack | None:
        """A track for the server's own answer to a function output, if one is due
        (see `follow_next_response`); failed if the server refuses the output."""
        if not self.answer_due:
            return None
        pending = self._answer_due
        track = self.follow_next_response(at)
        if pending:
            self._answer_followers.append(track)
        return track

    def plan_tool_answers(
        self, response_id: str, outputs: int, ask_next: bool, at: float
    ) -> ToolAnswers:
        """How the tool worker answers a reply's ``outputs`` outputs: `ToolBook.plan`."""
        tools = self.tools
        assert tools is not None, "the tool worker runs only once a ToolBook is set"
        plan = tools.plan(
            response_id,
            outputs,
            ask_next,
            _auto_responds(self.info),
            lambda: ResponseTrack(None, at),
        )
        if plan.stopped is not None and ask_next:
            # Nobody hears an answer in this turn (the program owes no output of its
            # own): its end of speech must not reach a later reply.
            self.latency.turn_stopped()
        return plan

    def follow_next_response(self, at: float) -> ResponseTrack:
        """A track for the next response the server starts by itself (server VAD).

        The server's answer to a function output that started before this call
        is adopted rather than missed.
        """
        if self._unclaimed is not None:
            track, self._unclaimed = self._unclaimed, None
            return track
        track = ResponseTrack(None, at)
        if self.end is not None:
            track.fail(self._closed_error("the session ended before the response started"))
        else:
            self._followers.append(track)
        return track

    def cancel(self, track: ResponseTrack) -> bool | None:
        """Decide a cancel: True to send ``response.cancel`` now, None to send it later
        (when the response starts), False when there is nothing to cancel."""
        if track.finished or track.cancel_wanted or self.end is not None:
            return False
        if not self._takes_cancel:
            return False  # the family's docs list no response.cancel
        track.cancel_wanted = True
        if track.id is None:
            return None
        track.cancel_sent = True
        return True

    def interrupt(self, cancel: bool = True) -> tuple[str | None, bool]:
        """The user interrupts what is playing: which response to stop, and whether to cancel it.

        Every response not over for the handler thread is interrupted (the
        running one, and one the handlers are still working through after the
        reader saw it end), and the latest one (a response handle's consumer
        may still be playing it): from now on none of their audio reaches anyone.
        Returns the running response's id (else the latest interrupted one;
        None when there is none) and True when a ``response.cancel`` should go
        out (``cancel``, the response runs, and no cancel was sent for it).
        With ``cancel`` False a later `cancel` still works.
        """
        cancel = cancel and self._takes_cancel
        # A tool turn still waiting for its answer gets none the user waits for.
        self.latency.turn_stopped()
        if self.tools is not None:
            requested = [r.track for r in self._pending if r.kind is RequestKind.RESPONSE]
            self.tools.cut_turns([t for t in requested if t is not None], cancel)
        rid = self.active_response_id
        for open_id in [*self._open, *(r for r in (rid, self._latest) if r is not None)]:
            self._mark_interrupted(open_id)
        if rid is None or self.end is not None:
            return (next(reversed(self._open), None) if self._open else None), False
        if self.transcript is not None:
            self.transcript.cut(rid)
        track = self._running.get(rid)
        if track is None:
            send = cancel and rid not in self._cancelled
        else:
            track.interrupted = track.interrupted or not track.finished
            send = cancel and not track.cancel_sent
            if cancel:
                # A later Response.cancel() has nothing left to do.
                track.cancel_wanted = track.cancel_sent = True
        if send:
            self._cancelled.add(rid)
        return rid, send

    @property
    def _takes_cancel(self) -> bool:
        """Whether the family takes ``response.cancel`` (LiveTranslate does not)."""
        return self.family is None or takes_client_event(self.family, "response.cancel")

    def interrupt_responses(self, response_ids: Iterable[str]) -> None:
        """Stop the audio of these responses from reaching anyone (a cancelled
        speech's): the same record `interrupt` keeps, which handlers, the pull
        buffer, ``iter_audio()`` and an attached speaker all follow."""
        for response_id in response_ids:
            self._mark_interrupted(response_id)

    def _mark_interrupted(self, response_id: str) -> bool:
        """Record an interrupted response; True if it was not interrupted before."""
        interrupted = self._interrupted
        if response_id in interrupted:
            return False
        interrupted[response_id] = 0
        while len(interrupted) > _INTERRUPTED_KEPT:
            del interrupted[next(iter(interrupted))]
        return True

    def interrupted(self, response_id: str) -> bool:
        """Whether a response was interrupted (its audio must reach nobody now)."""
        return response_id in self._interrupted

    def dropped_for(self, response_id: str) -> int:
        """Late audio frames of an interrupted response dropped so far."""
        return self._interrupted.get(response_id, 0)

    def handler_done(self, response_id: str) -> None:
        """The handler thread took a response's ``response.done``: it is over for it."""
        self._open.pop(response_id, None)

    def closing(self) -> bool:
        """close() started: nothing more is sent. True for the first call only
        (that caller does the close work; the others wait for it)."""
        first = not self._close_asked
        self._close_asked = True
        if self.phase is not Phase.CLOSED:
            self.phase = Phase.CLOSING
        return first

    # Events ----------------------------------------------------------------------

    def receive(self, event: ServerEvent, at: float) -> Effects | None:
        """Take one received event; returns what to send in answer, if anything.

        Returns `DROP` for a late audio frame of an interrupted response: the
        caller must deliver it nowhere.
        """
        speech = self.speech
        if speech is not None and speech.receive(event, at):
            return DROP  # audio of a cancelled speech
        spans = self.spans
        if spans is not None:
            spans.receive(event)
        interrupted = self._interrupted
        if interrupted and type(event) is ResponseAudioDelta:
            rid = event.response_id
            if rid in interrupted:
                interrupted[rid] += 1
                self.dropped_audio += 1
                return DROP
        handler = _HANDLERS.get(type(event))
        self.latency.receive(event, at)
        effects = handler(self, event, at) if handler is not None else None
        due: tuple[DueCall, ...] = ()
        tools = self.tools
        if tools is not None and type(event) in _CALL_EVENTS:
            due = tools.receive(event)
            if due:
                effects = Effects() if effects is None else effects
                effects.tool_calls = due
        if self.transcript is not None:
            truncation = self.transcript.receive(event, at)
            if truncation is not None:
                effects = effects or Effects()
                effects.truncate = self.replacements.open(truncation)
            if (
                type(event) is ResponseCreated
                and tools is not None
                and event.response.id in tools.silenced
            ):
                self.transcript.cut(event.response.id)  # a silenced answer: nothing was heard
        if self.replacements.under_way and type(event) in _DELETE_ANSWERS:
            answered = self.replacements.answered()
            if answered:
                effects = effects or Effects()
                effects.recreate = answered
        running = self._running
        ended: ResponseTrack | None = None
        if running:
            kind = type(event)
            if kind in _FED:
                track = running.get(event.response_id)  # type: ignore[attr-defined]
                if track is not None and not track.unwatched:
                    track._feed(event, at)
            elif kind is ResponseDone:
                assert isinstance(event, ResponseDone)
                track = ended = running.pop(event.response.id, None)
                if track is not None:
                    track._feed(event, at)
                    track.tools_pending = bool(due)
                if due:
                    assert tools is not None
                    tools.waiting[event.response.id] = track
        if due:
            assert tools is not None and isinstance(event, ResponseDone)
            # Its place in the turn's tool loop: one after the reply it answers.
            tools.rounds[event.response.id] = (0 if ended is None else ended.tool_round) + 1
        return effects

    def tools_ran(
        self, response_id: str, calls: tuple[Any, ...], follow_up: ResponseTrack | None
    ) -> None:
        """A reply's tool calls have run and been answered: its handle's wait
        returns now, with their records and the reply that answers them."""
        tools = self.tools
        track = None if tools is None else tools.waiting.pop(response_id, None)
        if tools is not None:
            tools.forget(response_id)
            tools.rounds.pop(response_id, None)
            tools.cut.discard(response_id)
        if track is not None:
            track.tool_calls = calls
            track.follow_up = follow_up
            track.tools_pending = False

    def _on_session_created(self, event: SessionCreated, at: float) -> None:
        self.session_id = event.session.id
        self.info = event.session
        if self.phase is Phase.CONNECTING:
            self.phase = Phase.OPEN

    def _on_session_updated(self, event: SessionUpdated, at: float) -> None:
        self.info = event.session
        request = self._answer(RequestKind.UPDATE, event)
        if request is not None and request.payload:
            _merge(self.accepted, request.payload)

    def _on_session_finished(self, event: SessionFinished, at: float) -> None:
        self._answer(RequestKind.FINISH, event)

    def _on_speech_started(self, event: InputAudioBufferSpeechStarted, at: float) -> Effects | None:
        """Barge-in, decided here rather than in a handler: by the time a
        handler ran, late audio would already have been delivered."""
        if not self.barge_in or (self.active_response_id is None and not self._open):
            return None
        fresh = [
            r
            for r in (*self._open, self.active_response_id)
            if r is not None and r not in self._interrupted
        ]
        if not fresh:
            return None
        rid, send = self.interrupt()
        effects = Effects()
        effects.interrupted = rid
        # Server VAD interrupts the response by itself unless told not to.
        detection = None if self.info is None else self.info.turn_detection
        effects.cancel_interrupted = send and (
            detection is not None and detection.get("interrupt_response", True) is False
        )
        return effects

    @property
    def truncating(self) -> bool:
        """Whether a truncating interrupt() still owes frames: a cut reply's
        replacement is due at its ``response.done``, or under way."""
        book = self.transcript
        return self.replacements.busy or (book is not None and book.owes_truncation)

    def abandon_truncations(self) -> None:
        """Stop holding anything back for the truncations owed or under way (their
        answers have not come): each still finishes if its answer comes later
        (a replacement's re-create, an owed one's at its reply's ``response.done``)."""
        self.replacements.abandon()
        if self.transcript is not None:
            self.transcript.forget_owed_truncations()

    def _on_item_retrieved(self, event: ConversationItemRetrieved, at: float) -> None:
        self._answer_item(RequestKind.RETRIEVE, event.item.id, event)

    def _on_item_deleted(self, event: ConversationItemDeleted, at: float) -> None:
        self._answer_item(RequestKind.DELETE, event.item_id, event)

    def _answer_item(self, kind: RequestKind, item_id: str, event: ServerEvent) -> None:
        """Answer the oldest request of ``kind`` for this item (by id; the oldest
        of the kind when the answer names no item)."""
        for request in self._pending:
            if request.kind is kind and (
                not item_id or (request.payload or {}).get("item_id") == item_id
            ):
                self._pending.remove(request)
                request.answer = event
                return

    def _on_speech_stopped(self, event: InputAudioBufferSpeechStopped, at: float) -> None:
        if _auto_responds(self.info):
            self._vad_turn_ended = True

    def _on_response_created(self, event: ResponseCreated, at: float) -> Effects | None:
        self.active_response_id = self._latest = event.response.id
        opened = self._open
        opened[event.response.id] = None
        while len(opened) > _OPEN_KEPT:
            del opened[next(iter(opened))]
        track: ResponseTrack | None = None
        answer_due = self._answer_due
        server_own = self._vad_turn_ended or answer_due
        self._vad_turn_ended = False
        self._unclaimed = None
        if answer_due:
            # The answer to the oldest output due: each gets one of its own.
            answered = self._outputs_due.pop(0) if self._outputs_due else ""
            track = self._answer_tracks.pop(answered, None)
            self._answer_due = bool(self._outputs_due)
            self._answer_followers.clear()
        if track is None and server_own:  # (else: the tool worker's own track for it)
            track = self._next_follower()
            if track is None and answer_due:
                # The answer to a function output: keep it for the caller who
                # follows it a moment later (send_function_output, then
                # next_response()), so it is never lost to that race.
                track = self._unclaimed = ResponseTrack(None, at)
        if track is None:
            request = self._answer(RequestKind.RESPONSE, event)
            if request is not None:
                self._paired[request.event_id] = (request, event)
                track = request.track
            elif not server_own:
                track = self._next_follower()
        timing = self.latency.created(
            event.response.id,
            at,
            None if track is None else track.requested_at,
            silent=track is not None and track.silent,
        )
        if track is None:
            return None
        track.timing = timing
        return self._start(track, event)

    def _start(self, track: ResponseTrack, event: ResponseCreated) -> Effects | None:
        track._start(event)
        effects = None
        if track.silent:
            self._mark_interrupted(event.response.id)  # its audio reaches no one
            track.interrupted = True
            if self.tools is not None:
                self.tools.silenced.add(event.response.id)
            effects = Effects()
            effects.muted = event.response.id
        if self.info is not None:
            track.sample_rate = self.info.output_sample_rate
        self._running[event.response.id] = track
        if track.cancel_wanted and not track.cancel_sent:
            track.cancel_sent = True
            effects = effects or Effects()
            effects.cancel.append(track)
        return effects

    def _on_response_done(self, event: ResponseDone, at: float) -> None:
        done_id = event.response.id
        if done_id == self.active_response_id:
            self.active_response_id = None
        self._cancelled.discard(done_id)
        if not self.handlers_follow:
            self._open.pop(done_id, None)
        if self._paired:
            for key in [k for k, (_, c) in self._paired.items() if c.response.id == done_id]:
                del self._paired[key]

    def _on_error(self, event: ErrorEvent, at: float) -> Effects | None:
        if self.phase is Phase.CONNECTING and self.early_error is None:
            self.early_error = event
        if self.server_error_ends and event.error.type == "server_error" and self.end is None:
            # The family ends the connection on a server_error: end the session
            # now with it, failing every request and response (the socket's
            # own end, when it comes, changes nothing more).
            self._fatal = event
            error = APIError.from_event(event)
            self._finish(End(_CLOSE_SERVER_ERROR, error.message, error))
            effects = Effects()
            effects.close = True
            return effects
        named = event.error.event_id
        if self._outputs_due:
            refused = self._refused_output(event)
            if refused is not None:
                self._output_gone(refused, APIError.from_event(event))
        target: Request | None = None
        if named:
            target = next((r for r in self._pending if r.event_id == named), None)
            if target is None and named in self._paired:
                return self._unpair(named, event)
        else:
            kind = _error_kind(event)
            if kind is not None:
                target = next((r for r in self._pending if r.kind is kind), None)
        if target is not None:
            self._pending.remove(target)
            target.error = _request_error(target.kind, event)
            if target.track is not None:
                target.track.fail(target.error)
        elif event.error.type == "server_error" and not named:
            # A server error during a response may mean it never finishes:
            # fail the running responses rather than leave them hanging.
            for track in self._running.values():
                track.fail(APIError.from_event(event))
            self._running.clear()
        return None

    def _refused_output(self, event: ErrorEvent) -> str | None:
        """The function output (awaiting its answer) an error refuses: the one it
        names; when it names none, the oldest, if its ``param`` is the item's."""
        named = event.error.event_id
        if named:
            return named if named in self._outputs_due else None
        param = event.error.param or ""
        if param == "item" or param.startswith("item."):
            return self._outputs_due[0]
        return None

    def _unpair(self, event_id: str, event: ErrorEvent) -> Effects | None:
        """The server refused a request already paired with a response.created:
        that response was not its answer (rule 1). It goes where it would have
        gone without the refused request: to the next ``response.create`` still
        waiting (the request that asked for it), else to a follower."""
        request, created = self._paired.pop(event_id)
        request.answer = None
        request.error = APIError.from_event(event)
        response_id = created.response.id
        wrong = self._running.pop(response_id, None)
        if wrong is None:
            wrong = request.track
        heir = self._answer(RequestKind.RESPONSE, created)
        if heir is not None:
            self._paired[heir.event_id] = (heir, created)
            owner = heir.track
        else:
            owner = self._next_follower()
        effects = None
        if owner is not None:
            if wrong is not None:
                owner._take_over(wrong)
            effects = self._start(owner, created)
        if wrong is not None:
            wrong.id = wrong.status = None
            wrong.text, wrong.audio = [], []
            wrong.fail(request.error)
        return effects

    def _answer(self, kind: RequestKind, event: ServerEvent) -> Request | None:
        for request in self._pending:
            if request.kind is kind:
                self._pending.remove(request)
                request.answer = event
                return request
        return None

    def _next_follower(self) -> ResponseTrack | None:
        return self._followers.popleft() if self._followers else None

    # The end ---------------------------------------------------------------------

    def ended(self, code: int, reason: str, error: TransportError | None) -> End:
        """The connection ended: record how, and fail everything still waiting.

        A close that `closing` announced, or a 1000 from the server, is clean
        whatever the code; anything else keeps (or makes) a `TransportError`.
        """
        if self.end is not None:
            return self.end
        clean = self.phase is Phase.CLOSING or (error is None and code == CLOSE_NORMAL)
        if clean:
            error = None
        elif error is None:
            error = TransportError(
                f"the server closed the session with code {code}"
                + (f": {reason}" if reason else ""),
                code=code,
                reason=reason,
            )
        return self._finish(End(code, reason, error))

    def _finish(self, end: End) -> End:
        """Record the end and fail every request and response still waiting."""
        self.end = end
        self.phase = Phase.CLOSED
        failure = self._closed_error("the session ended before the answer came")
        for request in self._pending:
            request.error = failure
            if request.track is not None:
                request.track.fail(failure)
        self._pending.clear()
        ended = self._closed_error("the session ended before the response finished")
        for track in [*self._running.values(), *self._followers, *self._answer_tracks.values()]:
            track.fail(ended)
        self._answer_tracks.clear()
        if self.tools is not None:
            for waiting in self.tools.waiting.values():
                if waiting is not None and waiting.tools_pending:
                    waiting.tools_pending = False
                    waiting.error = self._closed_error(
                        "the session ended before the reply's tool calls were answered"
                    )
            self.tools.waiting.clear()
        self._running.clear()
        self._followers.clear()
        self._paired.clear()
        self._cancelled.clear()
        self.active_response_id = None
        if self.speech is not None:
            self.speech.ended(self._closed_error("the session ended before the speech finished"))
        return self.end

    def closed_error(self, what: str) -> DashScopeError:
        """The error for using a session that has ended or is closing."""
        return self._closed_error(what)

    def _closed_error(self, what: str) -> DashScopeError:
        end = self.end
        if self._fatal is not None:
            # A fresh error per caller (raised on several threads), same class and code.
            fatal = APIError.from_event(self._fatal)
            fatal.message = f"{what}: the session ended with a server_error: {fatal.message}"
            fatal.args = (fatal.message,)
            return fatal
        if end is not None and isinstance(end.error, TransportError):
            error = TransportError(
                f"{what}: {end.error}", code=end.error.code, reason=end.error.reason
            )
            error.__cause__ = end.error
            return error
        return SessionClosedError(
            f"{what}: the session is closed",
            code=None if end is None else end.code,
            reason=None if end is None else end.reason,
        )

    # Introspection for tests and repr --------------------------------------------

    @property
    def pending(self) -> tuple[Request, ...]:
        return tuple(self._pending)

    @property
    def running(self) -> int:
        """How many running responses are followed by a handle still held."""
        return sum(1 for track in self._running.values() if not track.unwatched)


_HANDLERS: Final[dict[type[ServerEvent], _Handler]] = {
    SessionCreated: SessionState._on_session_created,
    SessionUpdated: SessionState._on_session_updated,
    SessionFinished: SessionState._on_session_finished,
    InputAudioBufferSpeechStarted: SessionState._on_speech_started,
    ConversationItemRetrieved: SessionState._on_item_retrieved,
    ConversationItemDeleted: SessionState._on_item_deleted,
    InputAudioBufferSpeechStopped: SessionState._on_speech_stopped,
    ResponseCreated: SessionState._on_response_created,
    ResponseDone: SessionState._on_response_done,
    ErrorEvent: SessionState._on_error,
}
