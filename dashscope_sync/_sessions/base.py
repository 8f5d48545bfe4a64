"""What every public session shares: `SessionBase`.

`RealtimeSession` (conversation), `SpeechSession` (Qwen-TTS-Realtime) and
`TranscriptionSession` (Qwen-ASR-Realtime) are public facades over one
`SessionCore` each. What they have in common lives here, once: the state
every session shows (``id``, ``closed``, the close code and reason, the drop
counts), receiving (`on` and the pull API over the one buffer), and the
lifecycle (`close`, the context manager, the finalizer that only signals).
A session subclasses it and adds its family's sending; none wraps another.

Like the sessions, this reaches the core only through `SessionCore`'s
intent methods (never the mailbox's lock or state).
"""

from __future__ import annotations

import logging
import threading
import warnings
import weakref
from collections.abc import Callable, Iterator
from os import PathLike
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Generic, Protocol, TypeVar, overload

from .._audio.attach import Attachment
from .._audio.files import file_path
from .._audio.resample import AUDIO_EXTRA_HINT, audio_extra_missing
from .._constants import OUTPUT_SAMPLE_RATE
from .._conversation.record_writer import RecordWriter
from .._conversation.recorder import Recorder
from .._conversation.tools import ToolCall
from .._core.core import SessionCore
from .._core.dispatch import TOOL_CALL_KEY, UNKNOWN_KEY, HandlerHandle, Handlers
from .._deadline import Deadline, check_timeout
from .._errors import ConfigError, ConfigTypeError, DashScopeError, SessionClosedError, UsageError
from .._wire.config import NotGiven, RealtimeConfig
from .._wire.events import EVENT_TYPES, InvalidFrame, ServerEvent, SessionInfo, UnknownEvent

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["OpenCore", "SessionBase"]

logger = logging.getLogger("dashscope_sync")

_E = TypeVar("_E", bound=ServerEvent)
_F = TypeVar("_F", bound=Callable[..., object])


class _Configured(Protocol):
    """What a session's configuration has, whatever its family."""

    @property
    def model(self) -> str: ...


_C = TypeVar("_C", bound=_Configured)


class OpenCore(Protocol):
    """How a service opens its sessions' cores: the client's ``open_core``, bound
    to the client (so the sessions never import the client module)."""

    def __call__(
        self,
        config: RealtimeConfig,
        timeout: float | NotGiven | None,
        prepare: Callable[[SessionCore], None] | None = None,
        /,
    ) -> tuple[SessionCore, Deadline, float | None]: ...


class SessionBase(Generic[_C]):
    """What every session has: its state, receiving events, and closing.

    Receive either with callbacks (`on`) or by pulling (`recv`, `events`,
    iteration, `wait_for`), or both: every event goes to both. Use a session
    as a context manager, or call `close`.

    Thread safety: every method may be called from any thread. Several
    threads may pull events; each event goes to exactly one of them.
    Handlers run one at a time on the session's own handler thread, never on
    the thread that reads the socket; from inside a handler you may send and
    call `close`, but not wait (that raises `UsageError`).

    Attributes:
        config: The configuration the session was opened with.
    """

    def __init__(self, core: SessionCore, config: _C) -> None:
        self._core = core
        self.config = config
        # The handler registry. Only the session holds it strongly (the
        # handler thread holds it weakly), so a session the program drops is
        # collected, closed and warned about even when a handler's closure
        # refers to it.
        self._handlers = Handlers()
        # Guards _recorder and _writer: one recording at a time.
        self._record_lock = threading.Lock()
        self._recorder: Recorder | None = None
        # The running recording's writer, fed the attached speaker's playback.
        self._writer: RecordWriter | None = None

    # State ---------------------------------------------------------------------

    @property
    def id(self) -> str:
        """The server's session id, from ``session.created``."""
        return self._core.session_id

    @property
    def info(self) -> SessionInfo:
        """The effective configuration: from ``session.created``, then each
        ``session.updated`` (a session whose connect sends the configuration
        returns once the server echoed it)."""
        info = self._core.info
        assert info is not None  # connect() returns only after session.created
        return info

    @property
    def model(self) -> str:
        """The model this session talks to."""
        return self.config.model

    @property
    def closed(self) -> bool:
        """True once the connection has ended or `close` has been called."""
        return self._core.is_closing

    @property
    def close_code(self) -> int | None:
        """The WebSocket close code once the connection has ended (1006: lost)."""
        end = self._core.end
        return None if end is None else end.code

    @property
    def close_reason(self) -> str | None:
        """The close reason once the connection has ended."""
        end = self._core.end
        return None if end is None else end.reason

    @property
    def dropped_events(self) -> int:
        """Received events that a full pull buffer or a full handler backlog dropped
        (oldest first), each counted once: one lost by both is one dropped event.

        It never exceeds the events received. Audio of an interrupted response
        is not in it (see `RealtimeSession.dropped_audio`). Each consumer's own
        count is `dropped_from_buffer` and `dropped_for_handlers`; see
        ``max_buffered_events``, ``max_handler_backlog`` and ``max_buffered_bytes``.
        """
        return self._core.dropped_events

    @property
    def dropped_from_buffer(self) -> int:
        """Events the pull buffer (`recv`, `events`, `wait_for`) dropped, oldest first,
        because it held ``max_buffered_events`` events (or ``max_buffered_bytes``)."""
        return self._core.dropped_from_buffer

    @property
    def dropped_for_handlers(self) -> int:
        """Events that never reached handlers because the handler backlog held
        ``max_handler_backlog`` undelivered events (or ``max_buffered_bytes``): the
        oldest were dropped. Events skipped as stale interrupted audio are not in it."""
        return self._core.dropped_for_handlers

    # Receiving: callbacks ----------------------------------------------------------

    @overload
    def on(self, event_type: type[_E], handler: Callable[[_E], object]) -> HandlerHandle: ...

    @overload
    def on(
        self, event_type: type[ToolCall], handler: Callable[[ToolCall], object]
    ) -> HandlerHandle: ...

    @overload
    def on(self, event_type: str, handler: Callable[[ServerEvent], object]) -> HandlerHandle: ...

    @overload
    def on(self, event_type: type[ServerEvent] | type[ToolCall] | str) -> Callable[[_F], _F]: ...

    def on(
        self,
        event_type: type[ServerEvent] | type[ToolCall] | str,
        handler: Callable[[Any], object] | None = None,
    ) -> HandlerHandle | Callable[[_F], _F]:
        """Call ``handler(event)`` for every event of a type, from now on.

        ``event_type`` is a wire type (``"response.audio.delta"``), an event
        class (`ResponseAudioDelta`; `UnknownEvent` matches every unknown
        type), or ``"*"`` for every event; or `ToolCall` for every finished
        call of a tool registered with `RealtimeSession.tool` (in each
        reply's order, after that reply's ``response.done``; ``"*"`` handlers
        get none). Handlers run one at a time, in
        arrival order, on the session's handler thread (never the one that
        reads the socket); for one event, handlers of its type run first, then
        `UnknownEvent` handlers, then ``"*"`` handlers, each in registration
        order. A handler that raises is logged with its traceback and raised
        as `HandlerError` on your thread at its next call into the session.

        Used as ``@session.on(ds.ResponseTextDelta)``, it returns the
        function unchanged; called with a handler, it returns a `HandlerHandle`
        whose ``remove()`` unsubscribes.
        """
        key = _handler_key(event_type)
        if handler is None:

            def decorator(fn: _F) -> _F:
                self._on(key, fn)
                return fn

            return decorator
        return self._on(key, handler)

    def _on(self, key: str, handler: Callable[[Any], object]) -> HandlerHandle:
        if not callable(handler):
            raise ConfigError(f"handler must be callable, got {handler!r}")
        return self._core.add_handler(self._handlers, key, handler)

    # Receiving: pulling ------------------------------------------------------------

    def recv(self, timeout: float | None = None) -> ServerEvent | None:
        """Return the next event, waiting at most ``timeout`` seconds for it.

        Events come in arrival order, each once, including those that arrived
        before the first call (since connect). None blocks until one comes; 0
        or less only takes one already there.

        Returns:
            The next event, or None once the session closed cleanly (code
            1000, or by `close`) and every event has been read.

        Raises:
            DashScopeTimeout: No event within ``timeout``.
            TransportError: The connection ended abnormally (after the events
                received before it were read); carries ``code`` and ``reason``.
            HandlerError: A handler failed.
            UsageError: Called from a handler, or the buffer is off.
        """
        self._core.check_pull("recv()")
        return self._core.next_event(Deadline(check_timeout(timeout)), "recv()")

    def events(self, timeout: float | None = None) -> Iterator[ServerEvent]:
        """Iterate over events until the session closes cleanly.

        Args:
            timeout: The longest wait for each next event, in seconds; its
                expiry raises `DashScopeTimeout`. None waits forever.

        Raises:
            The same as `recv`.
        """
        self._core.check_pull("events()")
        return _iterate(self._core, check_timeout(timeout))

    def __iter__(self) -> Iterator[ServerEvent]:
        return self.events()

    @overload
    def wait_for(self, event_type: type[_E], timeout: float | None = None) -> _E: ...

    @overload
    def wait_for(self, event_type: str, timeout: float | None = None) -> ServerEvent: ...

    def wait_for(
        self, event_type: type[ServerEvent] | str, timeout: float | None = None
    ) -> ServerEvent:
        """Consume events up to and including the first of a type, and return it.

        The events before it are skipped for `recv`/`events` (handlers still
        see everything). Because it reads the same buffer, it never misses an
        event that came before the call.

        Args:
            event_type: A wire type, an event class (matched with isinstance),
                or ``"*"``.
            timeout: The longest wait for the match, in seconds; None forever.

        Raises:
            DashScopeTimeout: No match in time.
            SessionClosedError: The session closed cleanly before a match.
            TransportError, HandlerError, UsageError: as `recv`.
        """
        key = _handler_key(event_type)
        if key == TOOL_CALL_KEY:
            raise ConfigError(
                "wait_for(ToolCall): tool calls are not events of the buffer; read them with "
                "on(ToolCall, ...) or ResponseResult.tool_calls"
            )
        what = f"wait_for({key if key != UNKNOWN_KEY else 'UnknownEvent'})"
        core = self._core
        core.check_pull(what)
        deadline = Deadline(check_timeout(timeout))
        while True:
            event = core.next_event(deadline, what)
            if event is None:
                raise SessionClosedError(
                    f"{what}: the session closed first",
                    code=self.close_code,
                    reason=self.close_reason,
                )
            if _matches(key, event):
                return event

    # Recording ----------------------------------------------------------------------

    def record(self, path: str | PathLike[str], *, audio: bool = True) -> Recorder:
        """Record the session into the folder ``path``: its opening, then from now on.

        Writes ``frames.jsonl`` (every frame in and out, with its time and
        direction; never the URL, the API key or a header) and, with
        ``audio``, ``conversation.wav``: stereo PCM16 at the output rate, the
        user's appended audio on the left, the assistant's on the right, on
        one clock (with a speaker attached, what it played: an interrupted
        reply stops where playback stopped; a tool answer nobody hears is
        never on it). With ``audio=False`` each audio
        and image payload in the frames is replaced by ``""`` and its decoded
        length noted, and no audio is kept. The recording opens with the
        frames of the session's opening (``session.created``, and the
        ``session.update`` that ``connect`` sent and its answer, if it sent
        one), at offset 0, then holds every frame from this call on: one
        started right after ``connect`` holds the whole session. Recording
        runs until the `Recorder` is closed (a ``with`` block) or the session
        is. The folder is created if missing.

        Returns:
            The `Recorder`.

        Raises:
            ConfigError: ``path`` is a file, or cannot be created or written
                into (a folder named ``frames.jsonl`` in it, a read-only
                folder, a full disk; the `OSError` is the ``__cause__``); or
                ``audio`` needs resampling and the ``[audio]`` extra is missing.
            ConfigTypeError: ``path`` is not a path, or ``audio`` not a bool.
            UsageError: A recording of this session is running already, or
                this is a forked child's copy of the session.
            SessionClosedError: The session is closed.
        """
        folder = Path(file_path(path))
        if not isinstance(audio, bool):
            raise ConfigTypeError(f"audio must be True or False, got {audio!r}")
        core = self._core
        if core.inherited:
            raise UsageError("cannot record in a forked child: the connection is the parent's")
        if core.is_closing:
            raise SessionClosedError("cannot record: the session is closed")
        input_rate, output_rate = self._recording_rates()
        wav_rate = output_rate() or OUTPUT_SAMPLE_RATE
        if audio and any(rate() not in (None, wav_rate) for rate in (input_rate, output_rate)):
            missing = audio_extra_missing("numpy", "soxr")
            if missing:
                raise ConfigError(
                    f"recording audio resamples it, which needs {' and '.join(missing)} from "
                    f"the [audio] extra: {AUDIO_EXTRA_HINT}; or record(audio=False)"
                )
        with self._record_lock:
            # Again under the lock: close() takes it after the session is
            # closing, so a recording it does not see is refused here.
            if core.is_closing:
                raise SessionClosedError("cannot record: the session is closed")
            running = self._recorder
            if running is not None and not running.closed:
                raise UsageError(
                    f"this session is being recorded already (to {str(running.path)!r}): "
                    "close that recorder first"
                )
            if folder.exists() and not folder.is_dir():
                raise ConfigError(f"{str(folder)!r} is a file, not a folder to record into")
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigError(f"cannot create the folder {str(folder)!r}: {exc}") from exc
            # The recorder refers to the session weakly: the core holds the
            # recorder, and a dropped session must still be collected.
            this = weakref.ref(self)

            def stopped(recorder: Recorder) -> None:
                core.record_frames(None)
                session = this()
                if session is not None:
                    session._recording_stopped()

            def transcript() -> str:
                # On the recorder thread, at the end: the conversation as it stands then.
                snapshot = core.transcript()
                return "" if snapshot is None else snapshot.to_json()

            kept = core.transcript() is not None  # a book is set before the session starts
            writer = RecordWriter(
                folder,
                audio=audio,
                header={"model": self.model, "family": core.family.value, "session_id": self.id},
                input_rate=input_rate,
                output_rate=output_rate,
                wav_rate=wav_rate,
                transcript=transcript if kept else None,
                opening=core.opening(),
            )
            writer.start()
            recorder = Recorder(writer, stopped, exit_timeout=core.config.close_timeout)
            self._recorder, self._writer = recorder, writer
            core.record_frames(writer)
            self._recording_started(writer)
        return recorder

    def _recording_rates(self) -> tuple[Callable[[], int | None], Callable[[], int | None]]:
        """Readers of the rates of the audio appended and received (None: no PCM that way)."""
        return (lambda: None), (lambda: None)

    def _attachment_for_recording(self) -> Attachment | None:
        """The attached speaker's `Attachment`, whose playback a recording keeps."""
        return None

    def _recording_started(self, writer: RecordWriter) -> None:
        """Feed the recording what the attached speaker plays, if one is."""
        attachment = self._attachment_for_recording()
        if not writer.audio or attachment is None or attachment.speaker is None:
            return
        rate = attachment.speaker.rate
        writer.speaker(rate)
        attachment.set_tap("recorder", lambda block: writer.played(block, rate))

    def _recording_stopped(self) -> None:
        attachment = self._attachment_for_recording()
        if attachment is not None:
            attachment.set_tap("recorder", None)

    def _running_writer(self) -> RecordWriter | None:
        recorder, writer = self._recorder, self._writer
        return None if recorder is None or recorder.closed else writer

    def _speaker_attached(self) -> None:
        """For ``attach``: a running recording keeps what the new speaker plays."""
        writer = self._running_writer()
        if writer is not None:
            self._recording_started(writer)

    def _speaker_detached(self, attachment: Attachment) -> None:
        """For ``detach``: a running recording keeps the reply's own audio again."""
        writer = self._running_writer()
        if writer is not None and attachment.speaker is not None:
            writer.speaker(None)

    def _close_recorder(self) -> None:
        with self._record_lock:
            recorder = self._recorder
        if recorder is None:
            return
        try:
            # Bounded: a stuck disk must not hang close() (the writer warns).
            recorder.close(self._core.config.close_timeout)
        except DashScopeError as exc:
            # close() never raises: the recorder thread logged the failure.
            logger.debug("closing the recorder: %s", exc)

    # Lifecycle ----------------------------------------------------------------------

    def close(self) -> None:
        """Close the session: idempotent, thread-safe, never raises a handler error.

        Undoes `attach` first. Sends a normal close frame (1000), waits up to
        ``config.close_timeout`` for the server's answer, lets handlers finish
        the events already received (up to ``config.handler_timeout``; a
        handler still stuck then is named in a warning and its thread left
        behind), and joins the threads. Called from a handler, it does not
        wait for the handler thread. Events already buffered can still be
        read afterwards; work still waiting for the server (a `Speech` not
        finished) fails with `SessionClosedError`. In a process forked after
        the session opened, it does nothing: the connection is the parent's,
        which keeps working. A recording (`record`) is completed last, within
        ``config.close_timeout`` more (files still being written then, on a
        stuck disk, are left to a daemon thread; the recorder's ``error`` says so).
        """
        if self._core.inherited:
            return
        self._before_close()
        self._core.close()
        self._close_recorder()

    def _before_close(self) -> None:
        """What the session undoes before its connection closes (an attachment)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
        if exc_type is None:
            self._core.raise_handler_error()

    def __del__(self) -> None:
        # Only signals: the collector may run here on any thread holding any
        # lock (the reader inside the mailbox lock, a sender inside the send
        # lock), so the close work is the reader's (see SessionCore.drop).
        core = getattr(self, "_core", None)
        if core is None or core.inherited or core.connection.closing.is_set():
            return  # closed, or a forked child's copy of its parent's session
        try:
            core.drop()
            warnings.warn(
                f"unclosed {self!r}: use it in a 'with' block or call close()",
                ResourceWarning,
                stacklevel=2,
                source=self,
            )
        except Exception:
            pass  # at interpreter exit, modules may already be torn down


def _iterate(core: SessionCore, timeout: float | None) -> Iterator[ServerEvent]:
    # A generator over the core only, so an abandoned iterator keeps no session alive.
    while (event := core.next_event(Deadline(timeout), "events()")) is not None:
        yield event


_KNOWN_KEYS: Final = frozenset({*EVENT_TYPES, InvalidFrame.type, "*"})


def _handler_key(event_type: object) -> str:
    """Map what `on`/`wait_for` accept to one registry key."""
    if isinstance(event_type, str):
        if event_type not in _KNOWN_KEYS:
            warnings.warn(
                f"{event_type!r} is not an event type this library knows: it matches only "
                "if the server sends that type (check the spelling)",
                UserWarning,
                stacklevel=3,
            )
        return event_type
    if event_type is ToolCall:
        return TOOL_CALL_KEY
    if isinstance(event_type, type) and issubclass(event_type, ServerEvent):
        if event_type is UnknownEvent:
            return UNKNOWN_KEY
        if event_type is ServerEvent:
            return "*"
        if event_type.type:
            return event_type.type
    raise ConfigError(
        f"event type must be a wire type string, an event class or '*', got {event_type!r}"
    )


def _matches(key: str, event: ServerEvent) -> bool:
    if key == "*":
        return True
    if key == UNKNOWN_KEY:
        return isinstance(event, UnknownEvent)
    return event.type == key
