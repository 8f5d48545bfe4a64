"""What a session's threads and response handles share: the wiring under `RealtimeSession`.

`SessionCore` connects the parts: the `Connection` (I/O shell) feeds decoded
events to the `Mailbox` (state machine, pull buffer, the one wait) and to the
`Dispatcher` (handler thread), and sends deferred cancels the state machine
asks for. It implements `ResponseHost` for the `Response` handles. It never
refers to the public `RealtimeSession`, so a session the program drops can be
collected while these threads run.

The public session talks to it only through intent methods (create a
response, follow the server's, send a function output, interrupt, the
accepted configuration...): the mailbox's lock and the state machine stay
behind this module.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeVar

from .._constants import OUTPUT_SAMPLE_RATE
from .._conversation.book import TranscriptBook
from .._conversation.metrics import Metrics, snapshot
from .._conversation.tools import ToolCall
from .._conversation.transcript import Transcript
from .._deadline import Deadline
from .._errors import (
    APIError,
    DashScopeError,
    DashScopeTimeout,
    SessionClosedError,
    ToolError,
    TransportError,
    UsageError,
)
from .._fmt import seconds
from .._wire.codec import (
    EventIds,
    encode_audio_append,
    encode_function_output,
    encode_item_replacement,
    encode_simple,
)
from .._wire.config import RealtimeConfig, SessionUpdate
from .._wire.dialects import TurnPlan, family_for
from .._wire.events import ResponseAudioDelta, ResponseDone, ServerEvent, SessionInfo
from .._wire.families import ModelFamily, server_error_ends_session
from .connection import Connection, FrameTap
from .dispatch import Dispatcher, HandlerHandle, Handlers
from .mailbox import Mailbox
from .response import Response
from .speech_state import SpeechBook
from .state import (
    CLOSE_NORMAL,
    DROP,
    End,
    Request,
    RequestKind,
    ResponseTrack,
    TranscriptSpans,
)
from .tool_book import DueCall, ToolBook
from .truncation import Replacement

if TYPE_CHECKING:
    from .._conversation.tools import ToolCall
    from .reactor import Reactor
    from .transport import WebSocketTransport

__all__ = ["OutputHook", "Recording", "SessionCore"]

logger = logging.getLogger("dashscope_sync")

_T = TypeVar("_T")

#: How long a failed connect waits for its reader thread to go.
_ABORT_JOIN: Final = 1.0
#: The longest `interrupt()` waits for an attached speaker to confirm the
#: silence (normally about a millisecond: its player thread's abort).
_SILENCE_WAIT: Final = 0.5
#: The most frames of a session's opening kept for a recording: a handful come.
_OPENING_MAX: Final = 32
#: The longest interrupt(truncate=True)'s replacement holds the program's frames
#: back in all when ``request_timeout`` is None (no limit for the program's own
#: waits): a server that never answers the delete must not stall every later
#: send. The default ``request_timeout``, so both configs hold alike.
TRUNCATION_HOLD_LIMIT: Final = 10.0


class OutputHook(Protocol):
    """What `RealtimeSession.interrupt` needs of an attached speaker."""

    def interrupt(self, response_id: str | None) -> tuple[str | None, float | None]:
        """Stop the sound now; the response that was playing (``response_id`` if
        given, else the one still sounding, if any) and the seconds of it heard."""

    def silenced_at(self, timeout: float) -> float | None:
        """When the sound the last `interrupt` stopped went silent (``time.monotonic()``
        seconds), waiting up to ``timeout`` seconds; None if it cannot say, or
        if nothing was sounding at that interrupt (no figure to count)."""


class ToolWorker(Protocol):
    """What the core needs of the tool worker (``_conversation/runner.py``)."""

    def submit(self, calls: tuple[DueCall, ...]) -> None:
        """Run one reply's due calls and answer them; never blocks."""

    def owns(self, name: str) -> bool:
        """Is a call of ``name`` the worker's to answer (a registered tool)?
        Called under the mailbox lock: a lookup, no lock of its own."""

    def stop(self) -> None:
        """Abandon what runs and end the worker; only signals."""

    def join(self, timeout: float | None) -> None:
        """Wait for the worker thread to end."""


class Recording(Protocol):
    """What the core feeds a recording (`RecordWriter` has it)."""

    def put(self, item: tuple[float, str, bytes | str, ServerEvent | None]) -> None:
        """Take one frame that crossed the socket (see `Connection.tap`); never blocks."""

    def interrupted(self, at: float, response_id: str | None) -> None:
        """The reply ``response_id`` was interrupted at monotonic time ``at``; never blocks."""

    def muted(self, response_id: str) -> None:
        """The reply ``response_id`` started silenced: nobody hears its audio; never blocks."""

    def finish(self) -> None:
        """The program dropped the session: complete the files without being waited for."""


class SessionCore:
    """What the session's threads and response handles share (never the public session).

    Implements `ResponseHost` for the `Response` handles.

    Thread safety: every method may be called from any thread.
    """

    def __init__(
        self,
        transport: WebSocketTransport,
        config: RealtimeConfig,
        reactor: Reactor | None = None,
    ) -> None:
        self.config = config
        # Reads the socket and runs the handlers in shared mode (None: this
        # session's own reader and handler threads).
        self._reactor = reactor
        self.ids = EventIds()
        self.mailbox = Mailbox(config.max_buffered_events, config.max_buffered_bytes)
        family = family_for(config)
        self.mailbox.state.family = family
        self.mailbox.state.server_error_ends = server_error_ends_session(family)
        self.connection = Connection(
            transport,
            on_event=self._on_event,
            on_end=self._on_end,
            ping_interval=config.ping_interval,
            ping_timeout=config.ping_timeout,
            send_timeout=config.send_timeout,
            reactor=reactor,
        )
        # Created by the first on(), under the mailbox lock.
        self.dispatcher: Dispatcher | None = None
        # Held while a request is registered and put on the wire, so that the
        # state's order of waiting requests is the order the server reads
        # them in (answers pair by that order). Taken before the mailbox lock
        # and the connection's send lock, never while holding either.
        self._request_lock = threading.Lock()
        # Set when close() has finished, so a second caller can wait for it.
        self.closed = threading.Event()
        # Where interrupt() stops the sound and learns what was heard: set by
        # attach(); read without a lock (one reference, replaced whole).
        self.output: OutputHook | None = None
        # Runs the registered tools the model calls: set once, by the first
        # session.tool(), under the mailbox lock; read by the reader without it.
        self.tools: ToolWorker | None = None
        # The recorder told of interrupts: set by record_frames(); read
        # without a lock (one reference, replaced whole).
        self._recording: Recording | None = None
        # The frames that cross while the session opens (session.created, a
        # connect-time session.update and its answer), so that a recording
        # holds the whole session: appended through the tap by the reader and
        # the senders (a list's append is atomic) until opened(); bounded, so
        # a core never told it opened keeps no more than a handful.
        self._opening: list[tuple[float, str, bytes | str, ServerEvent | None]] = []
        opening = self._opening
        # When the current truncation hold began to hold a frame back (None:
        # none held yet), so that the hold's bound spans every call it holds,
        # not each afresh (short caller timeouts would renew it forever).
        # Guarded by the mailbox lock.
        self._held_since: float | None = None

        def keep_opening(item: tuple[float, str, bytes | str, ServerEvent | None]) -> None:
            if len(opening) < _OPENING_MAX:
                opening.append(item)

        self._keep_opening: FrameTap = keep_opening
        self.connection.tap = keep_opening

    # Reader thread -------------------------------------------------------------

    def _on_event(self, event: ServerEvent, size: int) -> None:
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("received %s", event.type)
        effects = self.mailbox.deliver(event, time.monotonic(), size)
        if effects is DROP:
            return  # a late audio frame of an interrupted response: nowhere
        if effects is not None and effects.close:
            # The state machine ended the session (a family's server_error):
            # close the socket too, without waiting here on the reader thread.
            self.connection.close(self.config.close_timeout, wait=False)
        if effects is not None and effects.interrupted is not None:
            # A barge-in: silence the speaker before anything else is handled.
            playing, heard = self.stop_output(effects.interrupted)
            self._heard(playing, heard, truncate=False)
        if effects is not None and effects.muted is not None:
            recording = self._recording
            if recording is not None:
                # Before its first audio frame is read (this thread reads next).
                recording.muted(effects.muted)
        dispatcher = self.dispatcher
        if dispatcher is not None:
            dispatcher.put(event, size, self.mailbox.received - 1)
        if effects is None:
            return
        if effects.tool_calls:
            worker = self.tools
            if worker is not None:
                worker.submit(effects.tool_calls)  # after the handlers got response.done
        if effects.truncate is not None:
            self._send_truncation(effects.truncate)
        for replacement in effects.recreate:
            self._recreate(replacement)
        cancels = [track.id or "" for track in effects.cancel]
        if effects.cancel_interrupted:
            cancels.append(effects.interrupted or "")
        for response_id in cancels:
            # A cancel asked for before response.created (now it can go), or
            # a barge-in the server will not act on by itself. Not through
            # send(): a handler failure is for the user's thread.
            try:
                self.send_cancel()
            except DashScopeError as exc:
                logger.debug("sending a cancel of %s failed: %s", response_id, exc)

    def stop_output(self, response_id: str | None) -> tuple[str | None, float | None]:
        """Silence the attached speaker; which response it played, and how much of it."""
        recording = self._recording
        if recording is not None:
            # First: what the speaker still plays after this moment is not heard.
            recording.interrupted(time.monotonic(), response_id)
        output = self.output
        return (response_id, None) if output is None else output.interrupt(response_id)

    def _on_end(self, code: int, reason: str, error: TransportError | None) -> None:
        if self.connection.dropped:
            self.mailbox.closing()  # the program dropped the session: a clean end
        end = self.mailbox.ended(code, reason, error)
        if end.error is None:
            logger.debug("session %s ended (code %d)", self.mailbox.state.session_id, code)
        else:
            logger.warning(
                "session %s ended abnormally: %s", self.mailbox.state.session_id, end.error
            )
        dispatcher = self.dispatcher  # read after ended(): on() can no longer start one
        if dispatcher is not None:
            dispatcher.stop()  # handlers finish the events already queued
        worker = self.tools
        if worker is not None:
            worker.stop()  # nothing can be answered any more
        if self.connection.dropped:
            recording = self._recording
            if recording is not None:
                recording.finish()  # nobody will close it: it ends by itself
            self.closed.set()

    # What the session shows ------------------------------------------------------

    @property
    def session_id(self) -> str:
        return self.mailbox.state.session_id

    @property
    def info(self) -> SessionInfo | None:
        return self.mailbox.state.info

    @property
    def family(self) -> ModelFamily:
        """The wire dialect of the session's model."""
        return family_for(self.config)

    @property
    def end(self) -> End | None:
        return self.mailbox.state.end

    @property
    def is_closing(self) -> bool:
        """close() started or the connection ended (the state's one fact)."""
        return self.mailbox.state.is_closing

    @property
    def buffered(self) -> int:
        return len(self.mailbox.buffer)

    @property
    def dropped_audio(self) -> int:
        return self.mailbox.state.dropped_audio

    def accepted_config(self) -> dict[str, Any]:
        """The configuration the server accepted so far, for a reconnect to replay."""
        return self.mailbox.peek(self.mailbox.state.accepted_config)

    def output_rate_reader(self) -> Callable[[], int]:
        """A function reading the output sample rate; it refers to the state only, so
        what keeps it (an attachment) keeps neither the session nor this core."""
        state = self.mailbox.state

        def output_rate() -> int:
            info = state.info
            rate = None if info is None else info.output_sample_rate
            return rate or OUTPUT_SAMPLE_RATE

        return output_rate

    def raise_handler_error(self) -> None:
        self.mailbox.raise_handler_error()

    # Family rules, asked of the state ------------------------------------------------

    def late_update_warning(self, update: SessionUpdate) -> str | None:
        """The family's rules on a late ``session.update`` (raises what it refuses)."""
        return self.mailbox.peek(lambda: self.mailbox.state.late_update_warning(update))

    def plan_turn(self, *, audio: bool, image: bool) -> TurnPlan:
        """How a `respond` turn goes: who commits it and who starts its response."""
        return self.mailbox.peek(lambda: self.mailbox.state.plan_turn(audio=audio, image=image))

    def keep_speeches(self, book: SpeechBook) -> None:
        """Give the state Qwen-TTS-Realtime's books; before the connection starts."""
        with self.mailbox.lock:
            self.mailbox.state.speech = book

    def keep_transcript_spans(self) -> None:
        """Give the state Qwen-ASR-Realtime's VAD spans; before the connection starts."""
        with self.mailbox.lock:
            self.mailbox.state.spans = TranscriptSpans()

    def keep_transcript(self) -> None:
        """Keep the conversation's transcript (text only); before the connection starts.

        Its clock starts now: turn times are seconds since this call.
        """
        with self.mailbox.lock:
            self.mailbox.state.transcript = TranscriptBook(time.monotonic())

    def transcript(self) -> Transcript | None:
        """A consistent snapshot of the transcript (None when none is kept)."""
        state = self.mailbox.state

        def read() -> Transcript | None:
            book = state.transcript
            return None if book is None else book.snapshot()

        return self.mailbox.peek(read)

    def add_tool_call(self, call: ToolCall) -> None:
        """Attach a finished tool call to its response's turn in the transcript."""
        with self.mailbox.lock:
            book = self.mailbox.state.transcript
            if book is not None:
                book.add_tool_call(call)

    def _heard(self, response_id: str | None, played: float | None, *, truncate: bool) -> None:
        """Tell the transcript what the listener heard of a stopped reply; with
        ``truncate``, replace its item now if it has ended (else the state asks
        for that at its ``response.done``)."""
        with self.mailbox.lock:
            state = self.mailbox.state
            if not state.truncating:
                self._held_since = None  # any earlier hold is over: a new one starts afresh
            book = state.transcript
            cut = None if book is None else book.heard(response_id, played, truncate=truncate)
            replacement = None if cut is None else state.replacements.open(cut)
        if replacement is not None:
            self._send_truncation(replacement)

    def _send_truncation(self, replacement: Replacement) -> None:
        """Send the delete of a truncating interrupt()'s cut item; its re-create
        waits for the server's ``conversation.item.deleted`` (see `_recreate`).
        The library's own frames: a failure is logged, and the server's refusal
        reaches handlers as an ``error`` event.

        Not under ``_request_lock`` (the reader sends this): a DELETE request's
        answer pairs by the item's id, not by wire order."""
        cut = replacement.cut
        if cut.skip:
            logger.warning("interrupt(truncate=True): %s", cut.skip)
            self._close_replacement(replacement)
            return
        (delete_id, delete), *create = encode_item_replacement(
            self.ids, cut.item_id, cut.text, cut.previous_item_id
        )
        mailbox = self.mailbox
        with mailbox.lock:
            state = mailbox.state
            request = state.request(RequestKind.DELETE, delete_id, {"item_id": cut.item_id})
            state.replacements.deleting(replacement, request, create[0][1] if create else None)
        try:
            self.send_frame(delete, "conversation.item.delete")
        except DashScopeError as exc:
            logger.debug("replacing the cut item %s failed: %s", cut.item_id, exc)
            with mailbox.lock:
                mailbox.state.forget(request)
            self._close_replacement(replacement)

    def _recreate(self, replacement: Replacement) -> None:
        """The server answered a truncation's delete (reader): send the re-create,
        unless it refused (then the cut item stays whole, never doubled)."""
        cut = replacement.cut
        if replacement.refused is not None:
            logger.warning(
                "the server refused to delete the cut item %s (%s): it is left whole",
                cut.item_id,
                replacement.refused,
            )
        elif replacement.create is not None:
            if not replacement.holding:
                logger.warning(
                    "the server deleted the cut item %s after the hold gave it up: what "
                    "was heard is re-created at its place now, for the replies from now on",
                    cut.item_id,
                )
            try:
                self.send_frame(replacement.create, "conversation.item.create")
            except DashScopeError as exc:
                logger.debug("re-creating the cut item %s failed: %s", cut.item_id, exc)
        self._close_replacement(replacement)

    def _close_replacement(self, replacement: Replacement) -> None:
        """A replacement's frames are all out: what waited for them may go now."""
        mailbox = self.mailbox
        with mailbox.lock:
            mailbox.state.replacements.close(replacement)
        mailbox.notify()

    def await_truncations(self, deadline: Deadline | None = None, what: str = "") -> None:
        """Hold a frame that adds to the conversation or asks for a reply until
        the truncations under way are on the wire, so the next reply never
        builds on words the listener did not hear.

        A truncation is due from the truncating interrupt() (or the cut
        reply's ``response.done``) until its re-create went, one round trip
        after its delete. The hold is bounded by ``request_timeout`` (or
        `TRUNCATION_HOLD_LIMIT` when that is None), counted from the first
        frame it held: then a warning, the replacements stop holding (each
        still finishes if its answer comes later), and the frame goes.
        ``deadline``: the caller's own (``what`` names the call); when it ends
        first, `DashScopeTimeout` is raised and the frame is not sent. Not on
        the handler thread, which may not wait.
        """
        mailbox = self.mailbox
        state = mailbox.state
        if threading.current_thread() is mailbox.no_wait_thread:
            return

        def settled() -> bool:
            # Checked under the lock: a reply's owed truncation becomes one
            # under way within one delivery, never visible half-way.
            return not state.truncating or state.is_closing

        limit = self.config.request_timeout
        if limit is None:
            limit = TRUNCATION_HOLD_LIMIT
        with mailbox.lock:
            if settled():
                return
            now = time.monotonic()
            if self._held_since is None:
                self._held_since = now
            hold = Deadline(max(0.0, self._held_since + limit - now))
        left = None if deadline is None else deadline.remaining()
        hold_left = hold.remaining()
        assert hold_left is not None
        caller_first = left is not None and left < hold_left
        if mailbox.wait_quietly(settled, deadline if caller_first and deadline else hold):
            return
        if caller_first and deadline is not None:
            raise DashScopeTimeout(
                f"{what or 'the call'} timed out after {seconds(deadline.timeout)}: "
                "interrupt(truncate=True)'s item replacement was still under way "
                "(no conversation.item.deleted yet), so it sent nothing more",
                timeout=deadline.timeout,
            )
        with mailbox.lock:
            state.abandon_truncations()  # or every later send would wait as long
            self._held_since = None
        logger.warning(
            "interrupt(truncate=True)'s item replacement is not done after %s "
            "(no conversation.item.deleted yet): given up as a hold, the program's "
            "frames go now, so the next reply may see the cut reply whole or not at "
            "all; what was heard is re-created if the server's answer still comes",
            seconds(limit),
        )

    def speech_span(self, item_id: str) -> tuple[int | None, int | None]:
        """Where the server's VAD heard an item's speech start and end (None: not heard)."""
        state = self.mailbox.state

        def read() -> tuple[int | None, int | None]:
            spans = state.spans
            return (None, None) if spans is None else spans.of(item_id)

        return self.mailbox.peek(read)

    def change(self, change: Callable[[], _T]) -> _T:
        """Run ``change`` on the books under the lock, then wake every waiter
        (a speech failed or was cancelled on the user's side)."""
        mailbox = self.mailbox
        with mailbox.lock:
            result = change()
        mailbox.notify()
        return result

    def interrupt_responses(self, response_ids: list[str]) -> None:
        """Stop these responses' audio, as `interrupt` stops a reply's (see the state)."""
        mailbox = self.mailbox
        with mailbox.lock:
            mailbox.state.interrupt_responses(response_ids)
        mailbox.notify()

    def check_commit(self) -> None:
        """The family's rule on ``input_audio_buffer.commit`` (raises `UsageError`)."""
        reason = self.mailbox.peek(self.mailbox.state.commit_refusal)
        if reason is not None:
            raise UsageError(reason)

    def opened(self) -> None:
        """The session's connect is returning: the frames of its opening are all kept."""
        connection = self.connection
        # Unless a recording took the tap already (it has the opening).
        if connection.tap is self._keep_opening:
            connection.tap = None

    def opening(self) -> tuple[tuple[float, str, bytes | str, ServerEvent | None], ...]:
        """The frames that crossed while the session opened, as the tap saw them."""
        return tuple(self._opening)

    def record_frames(self, recording: Recording | None) -> None:
        """Start (or, with None, stop) handing every frame in and out to ``recording``,
        and telling it of interrupts. Frames that crossed before are not handed on
        (the opening's are in `opening`)."""
        self._recording = recording
        self.connection.tap = None if recording is None else recording.put

    # Sending ---------------------------------------------------------------------

    def send(
        self, text: str, wire_type: str, *, deadline: Deadline | None = None, what: str = ""
    ) -> None:
        """Send one client event's text for the user: a handler failure is raised first.

        An item the program adds waits for a truncation under way
        (`await_truncations`, with the caller's ``deadline``, if any).
        """
        self.mailbox.raise_handler_error()
        if wire_type == "conversation.item.create":
            self.await_truncations(deadline, what)
        self.send_frame(text, wire_type)

    def send_frame(self, text: str, wire_type: str) -> None:
        """Send one client event's text, unless the session is closing or over."""
        mailbox = self.mailbox
        if not mailbox.state.can_send or not self.connection.send(text):
            raise mailbox.peek(lambda: mailbox.state.closed_error(f"cannot send {wire_type}"))
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("sent %s (%d chars)", wire_type, len(text))

    def send_many(self, texts: Sequence[str], wire_type: str) -> None:
        """`send` for several client events' texts (each its own frame), in one write."""
        self.mailbox.raise_handler_error()
        mailbox = self.mailbox
        if not mailbox.state.can_send or not self.connection.send_many(texts):
            raise mailbox.peek(lambda: mailbox.state.closed_error(f"cannot send {wire_type}"))
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("sent %d %s", len(texts), wire_type)

    def send_simple(self, wire_type: str) -> str:
        event_id = self.ids.next()
        self.send(encode_simple(event_id, wire_type), wire_type)
        return event_id

    def send_cancel(self, *, for_user: bool = False) -> str:
        """Send ``response.cancel`` (the one place that frame is built).

        ``for_user``: a call of the user's (a pending handler failure is
        raised first); otherwise the library's own cancel, which leaves
        handler failures for the user's next call.
        """
        event_id = self.ids.next()
        text = encode_simple(event_id, "response.cancel")
        if for_user:
            self.send(text, "response.cancel")
        else:
            self.send_frame(text, "response.cancel")
        return event_id

    def send_audio(self, data: bytes | memoryview) -> str:
        """Send one ``input_audio_buffer.append``; the state notes that audio went out."""
        state = self.mailbox.state
        if not state.audio_sent:  # an unlocked peek: set once, never cleared
            with self.mailbox.lock:
                state.audio_sent = True
        event_id = self.ids.next()
        self.send(encode_audio_append(event_id, data), "input_audio_buffer.append")
        return event_id

    def request(
        self,
        kind: RequestKind,
        event_id: str,
        text: str,
        wire_type: str,
        payload: dict[str, Any] | None = None,
    ) -> Request:
        """Register a request and send it, in one step (see ``_request_lock``);
        forgotten if the send fails (no answer will come)."""
        self.mailbox.check_inherited("cannot send requests")
        with self._request_lock:
            with self.mailbox.lock:
                request = self.mailbox.state.request(kind, event_id, payload)
            self._send_request(request, text, wire_type)
        return request

    def _send_request(
        self, request: Request, text: str, wire_type: str, *, for_user: bool = True
    ) -> None:
        assert self._request_lock.locked()
        try:
            if for_user:
                self.send(text, wire_type)
            else:
                self.send_frame(text, wire_type)
        except BaseException:
            with self.mailbox.lock:
                self.mailbox.state.forget(request)
            raise
        if request.kind is RequestKind.UPDATE:
            with self.mailbox.lock:
                self.mailbox.state.update_sent = True

    def finish_session(self) -> Request:
        """Register and send ``session.finish``; the request its answer pairs with."""
        event_id = self.ids.next()
        return self.request(
            RequestKind.FINISH,
            event_id,
            encode_simple(event_id, "session.finish"),
            "session.finish",
        )

    # Responses ---------------------------------------------------------------------

    def create_response(
        self, event_id: str, text: str, *, deadline: Deadline | None = None, what: str = ""
    ) -> Response:
        """Register and send a checked ``response.create`` in one step; its handle.

        ``deadline``: the caller's, which a truncation's hold keeps to (``what``
        names the call in its `DashScopeTimeout`).
        """
        self.mailbox.check_inherited("create_response()")
        self.await_truncations(deadline, what or "create_response()")
        with self._request_lock:
            with self.mailbox.lock:
                track, request = self.mailbox.state.track_response(event_id, time.monotonic())
            self._send_request(request, text, "response.create")
        return Response(self, track)

    def follow_next_response(self) -> Response:
        """A handle on the next response the server starts by itself."""
        self.mailbox.check_inherited("next_response()")
        with self.mailbox.lock:
            track = self.mailbox.state.follow_next_response(time.monotonic())
        return Response(self, track)

    def follow_function_answer(self, with_fields: bool) -> Response | None:
        """A handle on the server's own answer to a function output, if one is due.

        ``with_fields``: the caller asked for per-response fields, which that
        answer cannot take (`UsageError`).
        """
        self.mailbox.check_inherited("respond()")
        with self.mailbox.lock:
            state = self.mailbox.state
            if not state.answer_due:
                return None
            if with_fields:
                raise UsageError(
                    "instructions/modalities/extra need manual mode: under server VAD the server "
                    "answers a function output by itself"
                )
            track = state.follow_function_answer(time.monotonic())
        return None if track is None else Response(self, track)

    def send_function_output(
        self,
        event_id: str,
        text: str,
        *,
        for_user: bool = True,
        answer: ResponseTrack | None = None,
        call_id: str = "",
    ) -> None:
        """Send a ``function_call_output`` item, booked first: under server VAD the
        server answers it by itself, and that answer must not arrive unbooked.

        ``for_user``: a call of the user's (a pending handler failure is raised
        first); otherwise the tool worker's, which leaves it for the user.
        ``answer``: the track that takes the server's own answer to it.
        ``call_id``: the program's call it answers (see `SessionState.function_output_sent`).
        """
        self.mailbox.check_inherited("send_function_output()")
        self.await_truncations()
        mailbox = self.mailbox
        with self._request_lock:  # in wire order with the requests, as the server reads them
            with mailbox.lock:
                mailbox.state.function_output_sent(event_id, answer, call_id, time.monotonic())
            try:
                if for_user:
                    self.send(text, "conversation.item.create")
                else:
                    self.send_frame(text, "conversation.item.create")
            except BaseException:
                with mailbox.lock:
                    mailbox.state.function_output_unsent(event_id)
                raise

    # Tools -------------------------------------------------------------------------

    def keep_tools(self, worker: ToolWorker) -> bool:
        """Have the state pick out the function calls of finished replies, and
        ``worker`` run them: True when it is the session's worker now (start
        it); False when another registration set one first.

        Raises:
            SessionClosedError: The session is closing or over.
        """
        with self.mailbox.lock:
            state = self.mailbox.state
            if state.is_closing:
                raise state.closed_error("cannot register a tool")
            if self.tools is not None:
                return False
            state.tools = ToolBook(worker.owns)
            self.tools = worker
            return True

    def tool_called(self, call: ToolCall, cause: BaseException | None = None) -> None:
        """Every finished tool call passes here, in each reply's order (tool worker).

        It goes to ``on(ToolCall)`` handlers; a failed one, with
        ``on_tool_error="raise"``, is kept as the `ToolError` the program's
        next call raises (``cause``: what the tool raised, as its ``__cause__``).
        The transcript's turn of the reply that made the call gets it first.
        """
        self.add_tool_call(call)
        dispatcher = self.dispatcher
        if dispatcher is not None:
            dispatcher.put_record(call)
        if call.error is not None and self.config.on_tool_error == "raise":

            def make_error() -> ToolError:
                error = ToolError(f"tool call {call.name} failed: {call.error}", call=call)
                error.__cause__ = cause
                return error

            self.mailbox.handler_failed(make_error)

    def answer_tools(
        self, response_id: str, outputs: Sequence[tuple[str, str]], *, ask_next: bool
    ) -> ResponseTrack | None:
        """Send the outputs of a reply's tool calls, in order, and get the next reply
        (tool worker), as `SessionState.plan_tool_answers` decides: under server
        VAD with automatic responses the server answers each output by itself,
        and the last answer is followed; otherwise ``response.create`` goes.
        Returns the next reply's track (None when the turn does not go on)."""
        with self.mailbox.lock:
            plan = self.mailbox.state.plan_tool_answers(
                response_id, len(outputs), ask_next, time.monotonic()
            )
        if plan.stopped == "limit" and ask_next:
            logger.warning(
                "the model was still calling tools after %d replies: their outputs were sent, "
                "but no further reply is asked for (or heard) in this turn",
                plan.round,
            )
        for (call_id, output), answer in zip(outputs, plan.answers, strict=True):
            event_id = self.ids.next()
            text = encode_function_output(event_id, call_id, output)
            self.send_function_output(event_id, text, for_user=False, answer=answer)
        if not plan.create:
            return plan.follow_up
        event_id = self.ids.next()
        self.await_truncations()
        with self._request_lock:
            with self.mailbox.lock:
                state = self.mailbox.state
                track, request = state.track_response(event_id, time.monotonic())
                track.tool_round = plan.round
                if response_id in (state.tools.cut if state.tools is not None else ()):
                    # interrupt() came while the outputs went: nobody may hear it.
                    track.silent = track.cancel_wanted = True
            self._send_request(
                request,
                encode_simple(event_id, "response.create"),
                "response.create",
                for_user=False,
            )
        return track

    def tools_ran(
        self, response_id: str, calls: tuple[ToolCall, ...], follow_up: ResponseTrack | None
    ) -> None:
        """A reply's tool calls were answered: its handle's wait returns now."""
        mailbox = self.mailbox
        with mailbox.lock:
            mailbox.state.tools_ran(response_id, calls, follow_up)
        mailbox.notify()

    def set_barge_in(self, on: bool) -> None:
        with self.mailbox.lock:
            self.mailbox.state.barge_in = on

    def await_request(self, request: Request, timeout: float | None, what: str) -> ServerEvent:
        """Wait for a request's answer, or raise the error that answered it."""

        def ready() -> ServerEvent | None:
            if request.error is not None:
                raise request.error
            return request.answer

        return self.mailbox.wait(ready, Deadline(timeout), what)

    # ResponseHost ------------------------------------------------------------------

    def wait(self, ready: Callable[[], _T | None], deadline: Deadline, what: str) -> _T:
        return self.mailbox.wait(ready, deadline, what)

    def peek(self, read: Callable[[], _T]) -> _T:
        return self.mailbox.peek(read)

    def check_can_block(self, what: str) -> None:
        self.mailbox.check_can_block(what)

    def cancel(self, track: ResponseTrack) -> bool:
        self.mailbox.check_inherited("Response.cancel()")
        with self.mailbox.lock:
            decision = self.mailbox.state.cancel(track)
        if decision is None:
            return True  # sent when the response starts
        if not decision:
            return False
        try:
            self.send_cancel(for_user=True)
        except SessionClosedError:
            return False
        return True

    # Handlers ----------------------------------------------------------------------

    def add_handler(
        self, handlers: Handlers, key: str, fn: Callable[[Any], object]
    ) -> HandlerHandle:
        mailbox = self.mailbox
        mailbox.check_inherited("cannot add a handler")
        with mailbox.lock:
            if mailbox.state.is_closing:
                raise mailbox.state.closed_error("cannot add a handler")
            handle = handlers.add(key, fn)
            if self.dispatcher is None:
                self.dispatcher = Dispatcher(
                    handlers,
                    mailbox.handler_failed,
                    self.config.max_handler_backlog,
                    max_backlog_bytes=self.config.max_buffered_bytes,
                    skip=self._stale,
                    taken=self._handler_took,
                    on_drop=mailbox.handlers_dropped,
                    pool=None if self._reactor is None else self._reactor.pool,
                    on_thread=None if self._reactor is None else self._handlers_on,
                )
                dispatcher = self.dispatcher
                mailbox.handlers_took = lambda: dispatcher.taken_seq
                mailbox.state.handlers_follow = True
                thread = self.dispatcher.start()
                if thread is not None:  # shared mode: set per batch (_handlers_on)
                    mailbox.no_wait_thread = thread
        return handle

    def _handlers_on(self, thread: threading.Thread | None) -> None:
        """Shared mode: the pool thread now running this session's handlers (None: none),
        where blocking calls are refused as on a handler thread of its own."""
        self.mailbox.no_wait_thread = thread

    def _stale(self, event: ServerEvent) -> bool:
        """For the handler thread: audio of a response interrupted since it was queued."""
        # An unlocked dict lookup: atomic, and interrupt() records the id
        # under the lock before it returns, so no handler starts on a frame
        # of it after that.
        return type(event) is ResponseAudioDelta and self.mailbox.state.interrupted(
            event.response_id
        )

    def _handler_took(self, event: ServerEvent) -> None:
        """For the handler thread: a response is over for handlers when they take its end."""
        if type(event) is ResponseDone:
            with self.mailbox.lock:
                self.mailbox.state.handler_done(event.response.id)

    def interrupted(self, response_id: str) -> bool:
        """Whether a response was interrupted: its audio must reach nobody now."""
        return self.mailbox.state.interrupted(response_id)

    def interrupt(
        self, cancel: bool, truncate: bool = False
    ) -> tuple[str | None, float | None, bool, float | None]:
        """Stop what is playing: the response, the seconds of it heard, whether a
        cancel went, and the seconds from the call until the speaker was silent.

        ``truncate``: replace the cut reply's item by what was heard, once it
        has ended (now, or from the reader at its ``response.done``).
        """
        called = time.monotonic()
        response_id, send_cancel, _ = self.mailbox.interrupt(cancel)
        playing, heard = self.stop_output(response_id)
        cancelled = False
        if send_cancel:
            try:
                self.send_cancel()
                cancelled = True
            except SessionClosedError:
                pass
        self._heard(playing, heard, truncate=truncate)
        # After the cancel went out: the server must not wait for the speaker.
        output = self.output
        silent = None if output is None else output.silenced_at(_SILENCE_WAIT)
        to_silence = None if silent is None else max(0.0, silent - called)
        if to_silence is not None:
            with self.mailbox.lock:
                self.mailbox.state.latency.interrupted(to_silence)
        return playing, heard, cancelled, to_silence

    def commit_audio(self, text: str) -> None:
        """Send ``input_audio_buffer.commit``: in manual mode the end of the user's speech."""
        with self.mailbox.lock:
            self.mailbox.state.latency.speech_ended(time.monotonic())
        self.send(text, "input_audio_buffer.commit")

    def playback_started(self, response_id: str, at: float) -> None:
        """An attached speaker played the response's first sample at ``at`` (its player thread)."""
        with self.mailbox.lock:
            self.mailbox.state.latency.played(response_id, at)

    def metrics(self) -> Metrics:
        """The latency figures so far, summarised (the numbers copied under the lock)."""
        responses, columns, interrupts = self.mailbox.peek(
            lambda: snapshot(self.mailbox.state.latency)
        )
        return Metrics.from_values(responses, columns, interrupts)

    def speech_metrics(self) -> Metrics:
        """A speech session's figures, one per finished speech: first audio and total time."""
        book = self.mailbox.state.speech
        timings = [] if book is None else self.mailbox.peek(lambda: list(book.timings))
        return Metrics.from_speeches(timings)

    @property
    def dropped_events(self) -> int:
        """Events lost by the pull buffer or the handler backlog, each once."""
        mailbox = self.mailbox
        return mailbox.dropped_events + self.dropped_for_handlers - mailbox.dropped_both

    @property
    def dropped_from_buffer(self) -> int:
        return self.mailbox.dropped_events

    @property
    def dropped_for_handlers(self) -> int:
        dispatcher = self.dispatcher
        return 0 if dispatcher is None else dispatcher.dropped

    # Pulling -------------------------------------------------------------------------

    def check_pull(self, what: str) -> None:
        """Raise `UsageError` where pulling cannot work: a handler, or the buffer off."""
        mailbox = self.mailbox
        mailbox.check_can_block(what)
        if not mailbox.buffer_max:
            raise UsageError(
                f"{what} reads the event buffer, which is off (max_buffered_events=0); "
                "use handlers, or set max_buffered_events"
            )

    def next_event(self, deadline: Deadline, what: str) -> ServerEvent | None:
        return self.mailbox.next_event(deadline, what)

    # Lifecycle ---------------------------------------------------------------------

    def wait_ready(self, deadline: Deadline, limit: float | None) -> None:
        """Wait for ``session.created`` (connect), or raise what came instead."""
        state = self.mailbox.state

        def ready() -> bool | None:
            if state.early_error is not None:
                raise APIError.from_event(state.early_error)
            if state.info is not None:  # session.created came, even if the end followed
                return True
            if state.end is not None:
                raise state.closed_error("the connection closed before session.created")
            return None

        try:
            self.mailbox.wait(ready, deadline, "connect()")
        except DashScopeTimeout:
            raise DashScopeTimeout(
                f"no session.created within {seconds(limit)} of connecting", timeout=limit
            ) from None

    def abort(self) -> None:
        """Drop the connection at once (a failed connect) and let the reader go."""
        self.mailbox.closing()
        self.connection.abort()
        self.connection.join(_ABORT_JOIN)
        self._finish_close()

    @property
    def inherited(self) -> bool:
        """True in a forked child: the session is its parent's (see ``_fork``)."""
        return self.connection.inherited

    def close(self, *, wait: bool = True) -> None:
        """Close the connection and stop the threads; idempotent, any thread.

        In a forked child it does nothing: the connection is the parent's.
        """
        if self.connection.inherited:
            return
        first = self.mailbox.closing()
        dispatcher = self.dispatcher
        in_handler = dispatcher is not None and threading.current_thread() is dispatcher.thread
        if not first:
            if wait and not in_handler:
                self.closed.wait(self._close_bound())
                # A close() from inside a handler could not join the handler
                # thread; a later close() from outside finishes that job.
                self._join_handlers()
            return
        self.connection.close(self.config.close_timeout, wait=wait)
        worker = self.tools
        if worker is not None:
            # A tool still running is abandoned, never waited for: the worker
            # itself ends at once (see _conversation/runner.py).
            worker.stop()
            if wait:
                worker.join(self.config.close_timeout)
        dispatcher = self.dispatcher
        if dispatcher is not None:
            dispatcher.stop()  # after the events already queued: handlers finish them
            if wait and not in_handler:
                self._join_handlers()
        self._finish_close()

    def drop(self) -> None:
        """The public session was collected unclosed: have the reader end it.

        For a finalizer: it takes no lock and sends nothing, so it cannot
        block the collecting thread, whatever that thread holds.
        """
        connection = self.connection
        if not connection.closing.is_set() and not connection.ended.is_set():
            connection.drop()

    def _join_handlers(self) -> None:
        dispatcher = self.dispatcher
        if dispatcher is None:
            return
        dispatcher.join(self.config.handler_timeout)
        stuck = dispatcher.stuck()
        if stuck is not None:
            logger.warning(
                "%s is still running after %s; leaving its thread behind",
                stuck,
                seconds(self.config.handler_timeout),
            )

    def _finish_close(self) -> None:
        if not self.connection.ended.is_set():
            # The reader never ran or could not be joined: record the end ourselves.
            self.mailbox.ended(CLOSE_NORMAL, "", None)
        self.mailbox.notify()
        self.closed.set()
        logger.debug("session %s closed", self.mailbox.state.session_id)

    def _close_bound(self) -> float | None:
        parts = (self.config.close_timeout, self.config.handler_timeout)
        if any(p is None for p in parts):
            return None
        return sum(p for p in parts if p is not None) + 5.0
