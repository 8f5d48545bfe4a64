"""The public session: `RealtimeSession`, the API only, delegating to the parts below it.

How a session is put together::

    socket ──► Connection (_core/connection.py: reader thread, keepalive, sends, close)
                   │ on_event                         on_end
                   ▼                                    ▼
               SessionCore (_core/core.py) ──► Mailbox (_core/mailbox.py: SessionState from
                   │                        _core/state.py + pull buffer + the one wait)
                   └──► Dispatcher (_core/dispatch.py: handler thread) ──► on() handlers

`SessionCore` is what the threads and the `Response` handles share; it never
refers to the public `RealtimeSession`, and the handler thread reaches the
handler registry only weakly, so a session the program drops is collected,
closed and warned about even when a handler's closure refers to it.

What every session shares (its state, `on`, the pull API, `close`, the
context manager, the finalizer) is `SessionBase`'s (base.py); this module
adds the conversation's sending.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, Literal, TypeVar, overload

import attrs

from .._audio.attach import Attachment, MicrophoneLike, SpeakerLike
from .._audio.inputs import image_buffer, pcm16_buffer
from .._audio.resample import resampler_for
from .._constants import INPUT_SAMPLE_RATE, Modality
from .._conversation.metrics import Metrics
from .._conversation.registry import ToolRegistry
from .._conversation.runner import ToolRunner
from .._conversation.tools import Tool
from .._conversation.transcript import Transcript
from .._core.core import SessionCore
from .._core.dispatch import HandlerHandle
from .._core.response import Interruption, Response, ResponseResult
from .._core.state import RequestKind
from .._deadline import Deadline, check_timeout
from .._errors import (
    APIError,
    ConfigError,
    ConfigTypeError,
    DashScopeTimeout,
    SessionClosedError,
    UsageError,
)
from .._fmt import seconds
from .._wire.codec import (
    check_audio_append,
    dumps,
    encode_function_output,
    encode_image_append,
    encode_simple,
)
from .._wire.config import NOT_GIVEN, NotGiven, RealtimeConfig, SessionUpdate, check_modalities
from .._wire.dialects import (
    check_client_event,
    encode_session,
    family_for,
)
from .._wire.events import (
    ConversationItem,
    ConversationItemRetrieved,
    ResponseAudioDelta,
    ResponseAudioDone,
    ResponseCreated,
    ServerEvent,
    SessionFinished,
    SessionInfo,
    SessionUpdated,
)
from .._wire.families import FinishRule, ModelFamily, finish_rule, replaces_items, takes_tools
from .base import SessionBase

if TYPE_CHECKING:
    # Type-checking only (typeshed has it for every Python): any object with
    # the buffer protocol, as `pcm16_buffer` accepts at run time.
    from typing_extensions import Buffer


__all__ = ["HandlerHandle", "RealtimeSession"]

logger = logging.getLogger("dashscope_sync")

#: The most audio one ``input_audio_buffer.append`` may carry (the service's limit).
#: The largest image the service accepts, before base64.
MAX_IMAGE_BYTES: Final = 500 * 1024
#: Audio a `respond` call appends per event: 100 ms at 16 kHz, the pace the service wants.
RESPOND_CHUNK: Final = 3200
#: How long a registered tool's call may run by default, in seconds.
TOOL_TIMEOUT: Final = 30.0

_Fn = TypeVar("_Fn", bound=Callable[..., object])


class RealtimeSession(SessionBase[RealtimeConfig]):
    """A connected realtime session, returned ready by `RealtimeService.connect`.

    Use it as a context manager, or call `close`. Send with the methods below;
    receive either with callbacks (`on`) or by pulling (`recv`, `events`,
    iteration, `wait_for`), or both: every event goes to both.

    Thread safety: every method may be called from any thread. Sends are
    serialised in call order. Several threads may pull events; each event
    goes to exactly one of them. Handlers run one at a time on the session's
    own handler thread, never on the thread that reads the socket; from
    inside a handler you may send and call `close`, but not wait (that
    raises `UsageError`).

    Attributes:
        config: The `RealtimeConfig` the session was opened with.
    """

    def __init__(
        self,
        core: SessionCore,
        reopen: Callable[[float | NotGiven | None], RealtimeSession] | None = None,
    ) -> None:
        super().__init__(core, core.config)
        # Opens a fresh session like this one (the client's connect), for reconnect().
        self._reopen = reopen
        # The tools registered with tool(): the session's only strong reference
        # (the tool worker holds it weakly, as the handler thread does handlers).
        self._tool_registry = ToolRegistry()

    # State ---------------------------------------------------------------------

    @property
    def family(self) -> ModelFamily:
        """The wire dialect of the model: ``config.family``, else chosen from the model name."""
        return family_for(self.config)

    @property
    def transcript(self) -> Transcript:
        """The conversation so far, as heard: a `Transcript` snapshot, kept by the session.

        User turns (the input transcription where enabled, else the text
        sent) and assistant turns (the reply's text or audio transcript; on
        LiveTranslate the translations), in conversation order, with what the
        listener heard of a reply cut by `interrupt`. Text only: no audio is
        kept. Each read is a consistent copy; it does not change afterwards.
        """
        transcript = self._core.transcript()
        return Transcript() if transcript is None else transcript

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return (
            f"<RealtimeSession id={self.id!r} model={self.config.model!r} {state} "
            f"buffered={self._core.buffered}>"
        )

    # Sending -------------------------------------------------------------------

    @overload
    def update_session(
        self,
        update: SessionUpdate | Mapping[str, Any],
        *,
        wait: Literal[True] = ...,
        timeout: float | NotGiven | None = ...,
    ) -> SessionInfo: ...

    @overload
    def update_session(
        self,
        update: SessionUpdate | Mapping[str, Any],
        *,
        wait: Literal[False],
        timeout: float | NotGiven | None = ...,
    ) -> None: ...

    def update_session(
        self,
        update: SessionUpdate | Mapping[str, Any],
        *,
        wait: bool = True,
        timeout: float | NotGiven | None = NOT_GIVEN,
    ) -> SessionInfo | None:
        """Send ``session.update`` and, by default, wait for the server's verdict.

        Args:
            update: The fields to change: a `SessionUpdate` (only the fields
                set are sent), or a dict sent as the ``session`` object as is.
            wait: Wait for ``session.updated`` and return its configuration.
                With False, return at once; the answer still arrives as events.
            timeout: The longest wait in seconds; None waits forever; default
                ``config.request_timeout``.

        Returns:
            The effective `SessionInfo` (with ``wait=True``), else None.

        Raises:
            APIError: The server answered with an ``error`` (the one naming this
                request, else the first that names no request).
            DashScopeTimeout: No answer in time.
            SessionClosedError: The session is closed.
            UsageError: ``wait=True`` from inside a handler.
            HandlerError: A handler failed earlier (raised first).
        """
        core = self._core
        if isinstance(update, SessionUpdate):
            warning = core.late_update_warning(update)
            session = encode_session(update, self.family, self.config.model)
            if warning is not None:
                logger.warning("%s", warning)
        elif isinstance(update, Mapping):
            session = dict(update)
        else:
            raise ConfigError(f"update must be a SessionUpdate or a dict, got {update!r}")
        limit = self._timeout(timeout)
        if wait:
            core.check_can_block("update_session(wait=True)")
        event_id, text = self._event_text("session.update", {"session": session})
        # Registered even without waiting, before sending (no race): answers
        # pair with requests in order, and an accepted update is replayed by
        # reconnect().
        request = core.request(RequestKind.UPDATE, event_id, text, "session.update", session)
        if not wait:
            return None
        result = core.await_request(request, limit, "update_session()")
        assert isinstance(result, SessionUpdated)
        return result.session

    def append_audio(self, pcm: Buffer) -> str:
        """Append 16 kHz mono PCM16 (little-endian) audio to the input buffer.

        Any C-contiguous buffer of it is taken as it is, without a copy:
        ``bytes``, ``bytearray``, ``memoryview``, ``array('h')``, a numpy
        ``int16`` array. The server sends no acknowledgement. Send about
        100 ms (3200 bytes) at a time for live audio. Returns the event id it
        sent.

        Raises:
            ConfigTypeError: Not a buffer, float samples (the message says how
                to convert), or another sample type or byte order.
            ConfigError: Empty, an odd number of bytes (not whole 16-bit
                samples), several channels, a WAV file's bytes (use
                `load_wav`), or over the service's 15 MiB per append.
        """
        data = _audio_bytes(pcm)
        check_audio_append(data)
        return self._append_audio(data)

    def _append_audio(self, data: bytes | memoryview) -> str:
        return self._core.send_audio(data)

    def commit_audio(self) -> str:
        """Commit the input buffer as a user turn (``input_audio_buffer.commit``).

        In manual mode follow it with `create_response`. Returns the event id.
        """
        check_client_event(self.family, self.config.model, "input_audio_buffer.commit")
        event_id = self._core.ids.next()
        # Through the core: the end of the user's speech, for the latency figures.
        self._core.commit_audio(encode_simple(event_id, "input_audio_buffer.commit"))
        return event_id

    def clear_audio(self) -> str:
        """Drop the uncommitted input audio (``input_audio_buffer.clear``)."""
        return self._send_simple("input_audio_buffer.clear")

    def append_image(self, jpeg: Buffer) -> str:
        """Append a JPEG video frame (``input_image_buffer.append``).

        The service wants audio appended before the first image, at most
        about one image a second, and commits images with the audio.

        Raises:
            ConfigError: Not JPEG bytes, or over the service's 500 KB limit.
        """
        return self._append_image(_image_bytes(jpeg))

    def _append_image(self, data: bytes | memoryview) -> str:
        check_client_event(self.family, self.config.model, "input_image_buffer.append")
        event_id = self._core.ids.next()
        self._core.send(encode_image_append(event_id, data), "input_image_buffer.append")
        return event_id

    def append_text(self, text: str) -> str:
        """Add a user text message to the conversation (``conversation.item.create``).

        Follow it with `create_response` for a reply. Returns the event id.
        """
        _check_text(text)
        return self._append_text(text)

    def _append_text(self, text: str, deadline: Deadline | None = None) -> str:
        """`append_text` of a checked text (``deadline``: respond()'s, which a
        truncation's hold keeps to)."""
        item = {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": text}],
        }
        check_client_event(self.family, self.config.model, "conversation.item.create")
        event_id, frame = self._event_text("conversation.item.create", {"item": item})
        self._core.send(frame, "conversation.item.create", deadline=deadline, what="respond()")
        return event_id

    def create_response(
        self,
        *,
        instructions: str | None = None,
        modalities: Sequence[Modality] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> Response:
        """Ask for a response (``response.create``) and return a handle on it.

        The handle is paired with the ``response.created`` that answers this
        request (the server echoes no id, so requests pair with those frames
        in wire order); ``handle.wait()`` returns the `ResponseResult`, and
        ``iter_text()``/``iter_audio()`` stream it. Events flow to handlers
        and the iterator as always. If you drop the handle, nothing is kept.

        Under server VAD with automatic responses the server also starts
        responses itself, so an explicit request can race it (and be refused
        with `ActiveResponseError`): use manual mode (``turn_detection=None``)
        to create every response yourself, or `next_response` to follow the
        server's.

        Args:
            instructions: Instructions for this response only.
            modalities: ``["text"]`` or ``["text", "audio"]`` for this response only.
            extra: More fields of the ``response`` object (any the family's
                docs list for one response), sent as given, merged last.
        """
        self._check_creates_responses()
        fields = self._response_fields(instructions, modalities, extra)
        # Under server VAD the server answers a function output by itself:
        # follow that answer instead of racing it with a second response.create.
        followed = self._core.follow_function_answer(bool(fields))
        if followed is not None:
            return followed
        return self._create_response(fields)

    def _check_creates_responses(self) -> None:
        if self.family in (ModelFamily.LIVETRANSLATE, ModelFamily.LIVETRANSLATE_V38):
            raise UsageError(
                f"{self.config.model} ({self.family.title}) translates as the audio streams in, "
                "without response.create: follow its responses with next_response(), or "
                "read the ResponseTextText / ResponseAudioTranscriptText events "
                "(send_raw() sends a response.create anyway)"
            )
        check_client_event(self.family, self.config.model, "response.create")

    def _create_response(
        self, fields: dict[str, Any], deadline: Deadline | None = None
    ) -> Response:
        """Register and send a checked ``response.create``; its handle.
        ``deadline``: respond()'s, which a truncation's hold keeps to."""
        core = self._core
        event_id, text = self._event_text("response.create", fields)
        if deadline is None:
            return core.create_response(event_id, text)
        return core.create_response(event_id, text, deadline=deadline, what="respond()")

    @staticmethod
    def _response_fields(
        instructions: str | None,
        modalities: Sequence[Modality] | None,
        extra: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Check a ``response.create``'s arguments; its fields."""
        response: dict[str, Any] = {}
        if instructions is not None:
            if not isinstance(instructions, str):
                raise ConfigError(f"instructions must be a string, got {instructions!r}")
            response["instructions"] = instructions
        if modalities is not None:
            response["modalities"] = list(check_modalities(modalities))
        if extra is not None:
            if not isinstance(extra, Mapping) or not all(isinstance(k, str) for k in extra):
                raise ConfigError(f"extra must be a dict with string keys, got {extra!r}")
            response.update(extra)
        return {"response": response} if response else {}

    def next_response(self) -> Response:
        """A handle on the next response the server starts by itself (server VAD).

        Register it before the audio that will trigger the response; it is
        adopted by the next ``response.created`` that answers no request of yours.
        Handles take those responses in the order they were asked for; one you
        drop keeps its place (it only stops collecting text and audio).
        """
        return self._core.follow_next_response()

    def respond(
        self,
        audio: Buffer | None = None,
        *,
        text: str | None = None,
        image: Buffer | None = None,
        instructions: str | None = None,
        timeout: float | None = None,
    ) -> ResponseResult:
        """Hold one whole turn: send the input, get the reply. What a notebook cell calls.

        Appends ``audio`` (16 kHz mono PCM16) in 100 ms chunks, then the
        ``image`` (JPEG; the service wants audio first), then ``text`` as a
        user message; commits and asks for a response; and waits for it.
        Under server turn detection with automatic responses (and always on
        LiveTranslate) the server ends the turn and starts the reply itself:
        then it sends no commit, appends silence a little longer than the
        detection's ``silence_duration_ms`` after the audio, so a clip that
        ends on speech still ends its turn, and follows the server's reply.
        (On LiveTranslate without turn detection it raises `UsageError`:
        there only `finish_session` ends the speech.)

        With no input right after `send_function_output` under server VAD,
        it waits for the answer the server gives that output by itself.

        Args:
            audio: The user's speech.
            text: A user text message (with or without audio).
            image: A JPEG frame, sent after the audio.
            instructions: Instructions for this response only (manual mode
                only: under automatic server VAD the server creates the response).
            timeout: The longest time for the whole turn, in seconds.

        When the reply calls tools registered with `tool`, they run, their
        outputs go back, and respond() follows the model's next reply, until
        one calls no tool (within the one ``timeout``): it returns that final
        reply, whose ``tool_rounds`` are the replies that called tools before
        it and ``turn_tool_calls`` every `ToolCall` of the turn. The loop
        itself stops after ``MAX_TOOL_ROUNDS`` (8) replies that call tools:
        the last one's outputs go, no reply is asked for (or heard) after
        them, and respond() returns that reply with nothing left running.

        Returns:
            The `ResponseResult` (text, audio, usage, timings).

        Raises:
            ConfigError: Nothing to send, or a bad input.
            UsageError: ``instructions`` under automatic server VAD, or called
                from a handler.
            ResponseError, APIError, DashScopeTimeout, TransportError: as
                `Response.wait`.
        """
        core = self._core
        core.check_can_block("respond()")
        if audio is None and text is None and image is None:
            # After send_function_output under server VAD the server answers by
            # itself: respond() with no input waits for that answer.
            followed = core.follow_function_answer(bool(self._response_fields(instructions, None)))
            if followed is not None:
                return _follow_tools(followed, Deadline(check_timeout(timeout)))
            raise ConfigError("respond() needs audio, text or an image")
        deadline = Deadline(check_timeout(timeout))
        # Every argument is checked before the first frame goes out.
        pcm = None if audio is None else _audio_bytes(audio)
        jpeg = None if image is None else _image_bytes(image)
        if text is not None:
            _check_text(text)
        fields = self._response_fields(instructions, None)
        plan = core.plan_turn(audio=pcm is not None, image=jpeg is not None)
        for wire_type, given in (
            ("input_image_buffer.append", jpeg),
            ("conversation.item.create", text),
        ):
            if given is not None:  # refused now, not after the audio went out
                check_client_event(self.family, self.config.model, wire_type)
        server_creates = plan.server_creates
        if server_creates and instructions is not None:
            raise UsageError(
                "instructions= needs manual mode: under server VAD the server creates the "
                "response itself (update_session(SessionUpdate(turn_detection=None)))"
            )
        handle = self.next_response() if server_creates else None
        if pcm is not None:
            for start in range(0, len(pcm), RESPOND_CHUNK):
                self._append_audio(pcm[start : start + RESPOND_CHUNK])
        if jpeg is not None:
            self._append_image(jpeg)
        if text is not None:
            self._append_text(text, deadline)
        silence = bytes(plan.trailing_silence_ms * 32)  # 16 kHz PCM16: 32 bytes a millisecond
        for start in range(0, len(silence), RESPOND_CHUNK):
            self._append_audio(silence[start : start + RESPOND_CHUNK])
        if plan.commit:
            self.commit_audio()
        if handle is None:
            handle = self._create_response(fields, deadline)
        return _follow_tools(handle, deadline)

    # Tools that run themselves ------------------------------------------------------

    @overload
    def tool(
        self,
        fn: _Fn,
        /,
        *,
        name: str | None = ...,
        description: str | None = ...,
        timeout: float | None = ...,
    ) -> _Fn: ...

    @overload
    def tool(
        self,
        fn: None = ...,
        /,
        *,
        name: str | None = ...,
        description: str | None = ...,
        timeout: float | None = ...,
    ) -> Callable[[_Fn], _Fn]: ...

    def tool(
        self,
        fn: _Fn | None = None,
        /,
        *,
        name: str | None = None,
        description: str | None = None,
        timeout: float | None = TOOL_TIMEOUT,
    ) -> _Fn | Callable[[_Fn], _Fn]:
        """Register a Python function the model may call; the library runs it.

        Use it as ``@session.tool``, ``@session.tool(name=..., timeout=...)``,
        or call ``session.tool(fn, ...)``; each returns the function unchanged.
        The tool's description is the docstring's first paragraph, and its
        parameters' JSON Schema comes from the type hints (str, int, float,
        bool, Literal, enums, lists, tuples, ``X | None``, TypedDict, attrs
        classes and dataclasses; a parameter with a default, or that may be
        None, is not required), with each parameter's description from a
        Google-style ``Args:`` section.

        Registering declares the whole list at once: one ``session.update``
        carrying every registered tool and the tools declared by hand with
        `update_session` (kept), and waits for the server's acceptance. From
        then on, when a reply calls a registered tool, the library parses
        and checks the arguments, runs the function on its tool worker thread
        (never the socket reader's or the handlers'; a reply's calls run
        concurrently), sends each result as a ``function_call_output`` (a
        string as is, anything else as JSON), and asks for the next reply as
        the turn mode wants (under server VAD the server answers each output
        by itself: the last answer, the one that saw every output, is
        followed, and the earlier ones are silenced: never heard, never
        followed).
        An unknown tool, bad arguments, an exception, a timeout: the model
        gets ``{"error": "..."}``, a warning is logged, and with
        ``RealtimeConfig(on_tool_error="raise")`` the program's next call
        raises `ToolError`. Each call is a `ToolCall`, given to
        ``on(ToolCall, ...)`` handlers and on the reply's
        ``ResponseResult.tool_calls``; that reply's ``wait()`` returns once
        its tools have run, and `respond` follows the loop to the final answer.

        A call that overruns its ``timeout`` is abandoned, not stopped (Python
        cannot stop a thread): it runs on by itself, its result is thrown
        away, and `close` does not wait for it.

        Args:
            fn: The function (positional only).
            name: The name the model calls it by (default ``fn.__name__``):
                letters, digits, ``_`` and ``-``, at most 64.
            description: What it does, for the model (default: the docstring's
                first paragraph).
            timeout: The longest a call may run, in seconds (None: no limit).

        Raises:
            ConfigError: The family takes no tools (LiveTranslate, the legacy
                Omni models), a bad name or timeout, a name already taken, or
                a parameter whose type hint cannot be described.
            APIError: The server refused the update (the tool is not registered).
            DashScopeTimeout: No answer within ``config.request_timeout``.
            UsageError: Called from inside a handler (it waits).
        """

        def register(function: _Fn) -> _Fn:
            family = self.family
            if not takes_tools(family, self.config.model):
                raise ConfigError(
                    f"{self.config.model} ({family.title}) takes no tools: function calling "
                    "needs Qwen-Omni 3.5 or newer, Omni 3.8 or Qwen-Audio"
                )
            self._start_tool_worker()
            self._tool_registry.register(
                function,
                name,
                description,
                timeout,
                accepted=self._accepted_tools,
                declare=self._declare,
            )
            return function

        return register if fn is None else register(fn)

    def _start_tool_worker(self) -> None:
        """Have the core pick out the calls of registered tools, and start their worker."""
        core = self._core
        if core.tools is None:
            runner = ToolRunner(core, self._tool_registry)
            if core.keep_tools(runner):  # refused on a closed session: no thread is left
                runner.start()

    @property
    def tools(self) -> Mapping[str, Tool]:
        """The registered tools, read-only: name -> `Tool` (a snapshot)."""
        return self._tool_registry.tools()

    def remove_tool(self, name: str) -> None:
        """Unregister a tool: one ``session.update`` declaring the rest, waited for.

        Raises:
            ConfigError: No tool of that name is registered.
            APIError, DashScopeTimeout, UsageError: as `tool`.
        """
        self._tool_registry.remove(name, accepted=self._accepted_tools, declare=self._declare)

    def _accepted_tools(self) -> list[Any]:
        accepted = self._core.accepted_config().get("tools")
        return accepted if isinstance(accepted, list) else []

    def _declare(self, tools: list[dict[str, Any]]) -> None:
        self.update_session(SessionUpdate(tools=tools))

    def interrupt(self, *, cancel: bool = True, truncate: bool = False) -> Interruption:
        """Barge-in in one call: stop the reply that is playing, now.

        Cancels the running response (``response.cancel``, unless ``cancel``
        is False: under server VAD the server cancels by itself on
        ``speech_started``), tells an attached `Speaker` to stop at once, and
        drops the cancelled response's audio: frames still in the pull buffer
        or queued for handlers, and every late ``response.audio.delta`` until
        its ``response.done``, so no stale audio reaches handlers,
        ``iter_audio()``, `recv` or the speaker. A reply the server already
        finished but handlers are still working through (a blocking player)
        is interrupted too: once this returns, no handler starts on any of its
        audio, however far behind they are. The late frames and the unread
        ones removed from the pull buffer are counted in `dropped_audio` (a
        frame also queued for handlers is skipped there without counting it
        twice). With ``cancel=False`` a later `Response.cancel` still sends
        its cancel. A handle's `ResponseResult` says ``interrupted=True``.
        Works from any thread, handlers included. It never waits for the
        server; with a `Speaker` attached it waits for the speaker to confirm
        the silence (normally within one block, at most half a second) to
        report ``interrupt_to_silence``.

        The `transcript` records the cut reply as ``interrupted`` with its
        ``heard_text``: the part whose audio the attached speaker played
        (without a speaker: the part whose audio had arrived).

        Registered tools still running are not stopped (Python cannot stop a
        thread): they finish and their outputs go back, so the model's
        history stays whole, but their answer never plays. In manual mode no
        reply is asked for after them; under server VAD the server's own
        answer is silenced (its audio reaches no one) and cancelled as it
        starts; an answer asked for already but not started is silenced and
        cancelled the same way. The calling reply's ``follow_up`` is then
        None (or that cancelled answer).

        Args:
            cancel: Send ``response.cancel`` for the running response.
            truncate: Make the model's history match what was heard: once the
                cut reply's ``response.done`` has arrived (now, or later from
                the session's reader), its item is deleted and, once the
                server answers ``conversation.item.deleted``, an assistant
                message holding ``heard_text`` is created at its place
                (``conversation.item.create`` with ``previous_item_id``), so
                the next reply does not build on words the listener never
                heard: until then, what the program sends next that adds an
                item or asks for a reply waits (at most ``request_timeout``,
                or 10 s when that is None, in all, and never past the call's
                own timeout: `respond` raises `DashScopeTimeout` at its
                deadline, the held frames unsent; not on the handler thread).
                A delete answered after that still gets its re-create. Needs
                a family whose docs list both item operations (Qwen-Audio). A
                reply with no heard text is only deleted; one that is the
                conversation's first item is left whole (no documented way to
                create an item there; logged).

        Returns:
            An `Interruption`: the response that was running (or, with a
            speaker attached, the one it was still playing; None if neither:
            a reply that finished playing is not what this stopped) and the
            seconds of it the listener heard, from the attached speaker, and
            how long the speaker took to fall silent (``interrupt_to_silence``;
            None when nothing was sounding, and then not in `metrics`).

        Raises:
            UsageError: ``truncate`` on a family without the item operations
                (raised before anything is stopped or sent).
        """
        if truncate and not replaces_items(self.family):
            raise UsageError(
                f"{self.config.model} ({self.family.title}) does not document "
                "conversation.item.delete with conversation.item.create, which "
                "interrupt(truncate=True) needs: interrupt() without truncate, then "
                "session.transcript's heard_text says what was heard (delete_item() and "
                "create_item() replace the item by hand where the model takes them)"
            )
        playing, heard, cancelled, to_silence = self._core.interrupt(cancel, truncate)
        return Interruption(
            response_id=playing,
            played_seconds=heard,
            cancelled=cancelled,
            interrupt_to_silence=to_silence,
        )

    def attach(
        self,
        *,
        speaker: SpeakerLike | None = None,
        microphone: MicrophoneLike | None = None,
        barge_in: bool = True,
        echo: str | None = None,
    ) -> None:
        """Wire a speaker and a microphone to the session: a voice conversation in one call.

        The speaker plays every ``response.audio.delta`` (from the handler
        thread); the microphone streams 16 kHz PCM16 into the session. With
        ``barge_in`` (server VAD), ``input_audio_buffer.speech_started``
        during a response interrupts it at once, as `interrupt` does: the
        decision is taken as the event is read, before any later frame.

        Args:
            speaker: A `Speaker` (or anything with its methods).
            microphone: A `Microphone` (or anything with its methods).
            barge_in: Interrupt the reply when the user starts talking.
            echo: None (headphones: the microphone does not hear the speaker);
                ``"gate"``: the microphone sends silence while the speaker
                plays, so the model never hears itself (safe with loudspeakers,
                but then the user cannot barge in); or ``"aec"``: WebRTC's
                acoustic echo canceller removes the speaker's sound from the
                microphone's (the ``[aec]`` extra), keeping barge-in.

        Raises:
            ConfigError: A bad ``echo``, ``"gate"``/``"aec"`` without both
                devices, or ``"aec"`` without the ``[aec]`` extra.
            UsageError: Something is attached already.
        """
        if echo not in (None, "gate", "aec"):
            raise ConfigError(f'echo must be None, "gate" or "aec", got {echo!r}')
        if echo is not None and (speaker is None or microphone is None):
            raise ConfigError(f"echo={echo!r} needs both a speaker and a microphone")
        core = self._core
        if core.output is not None:
            raise UsageError("a speaker or microphone is attached already: detach() first")
        canceller = None
        if echo == "aec":
            assert speaker is not None
            from .._audio.echo import EchoCanceller

            canceller = EchoCanceller(speaker.rate)
        # Not through the session: the attachment must not keep the session
        # alive (it is collected when dropped).
        output_rate = core.output_rate_reader()
        if speaker is not None:
            resampler_for(output_rate(), speaker.rate)  # no soxr: refused now, not mid-reply
        attachment = Attachment(
            speaker, microphone, output_rate, core.interrupted, on_playback=core.playback_started
        )
        if speaker is not None:
            attachment.handles = [
                self.on(ResponseCreated, attachment.on_created),
                self.on(ResponseAudioDelta, attachment.on_audio),
                self.on(ResponseAudioDone, attachment.on_audio_done),
            ]
        core.output = attachment
        core.set_barge_in(bool(barge_in))
        if canceller is not None:
            attachment.set_tap("echo", canceller.far)
        self._speaker_attached()
        if microphone is not None:
            microphone.stream_to(
                self,
                gate=speaker if echo == "gate" else None,
                process=None if canceller is None else canceller.near,
            )

    def detach(self) -> None:
        """Undo `attach`: stop the microphone's stream, stop feeding the speaker; idempotent."""
        core = self._core
        attachment, core.output = core.output, None
        core.set_barge_in(False)
        if isinstance(attachment, Attachment):
            attachment.detach()
            self._speaker_detached(attachment)

    @property
    def metrics(self) -> Metrics:
        """The latency figures of the session's responses so far, summarised: a `Metrics`.

        A snapshot (read it again for fresh figures): per figure of
        `ResponseResult` (``end_of_speech_to_first_audio``,
        ``first_audio_delay``, ``first_audible_delay``, ``first_text_delay``,
        ``playback_start``, ``total_time``) and for `interrupt`'s
        ``interrupt_to_silence``, a `LatencySummary` (count, p50, p95, max)
        over every response it applied to, followed by a handle or not.
        May be read from any thread, handlers included: each read copies the
        figures under the session's lock.
        """
        return self._core.metrics()

    @property
    def dropped_audio(self) -> int:
        """Audio frames of interrupted responses dropped: late ones (which reached
        nobody), and unread ones removed from the pull buffer (see `interrupt`).
        Frames only skipped for handlers are not counted; none is in `dropped_events`."""
        return self._core.dropped_audio

    # Conversation items ----------------------------------------------------------

    def create_item(self, item: Mapping[str, Any], previous_item_id: str | None = None) -> str:
        """Add an item to the conversation (``conversation.item.create``).

        Args:
            item: The item as the service takes it: a ``message`` (roles
                ``system``/``user``/``assistant``), a ``function_call`` or a
                ``function_call_output``. An ``id`` must be new (a duplicate is
                an ``error``).
            previous_item_id: Insert after this item (default: at the end).

        Returns:
            The event id it sent.

        Raises:
            ConfigError: Not a dict with a string ``type``, or not JSON-serialisable.
        """
        if not isinstance(item, Mapping) or not isinstance(item.get("type"), str):
            raise ConfigError(f"item must be a dict with a string 'type', got {item!r}")
        fields: dict[str, Any] = {"item": dict(item)}
        if previous_item_id is not None:
            fields["previous_item_id"] = _item_id(previous_item_id, "previous_item_id")
        return self._send_event("conversation.item.create", fields)

    def send_function_output(self, call_id: str, output: object) -> str:
        """Answer a function call: a ``function_call_output`` item for ``call_id``.

        Under server VAD with automatic responses the service answers the
        output by itself, with no ``response.create``: get that answer with
        ``create_response()`` or `next_response` (either follows it, even if it
        started already, instead of sending a second request that would race
        it). If the server refuses the output (an ``error`` naming it), no
        answer is due: a handle following it raises that `APIError`, and the
        next `create_response` sends ``response.create``. In manual mode,
        `create_response` asks for the answer as usual.

        Args:
            call_id: The ``call_id`` of the function call.
            output: A string, sent as is, or any JSON-serialisable value, sent
                as its JSON text.

        Returns:
            The event id it sent.

        Raises:
            ConfigError: An empty call id, or an output that is not JSON-serialisable.
        """
        _item_id(call_id, "call_id")
        if not isinstance(output, str):
            try:
                output = dumps(output)  # type: ignore[arg-type]
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"output is not JSON-serialisable: {exc}") from exc
        event_id = self._core.ids.next()
        self._core.send_function_output(
            event_id, encode_function_output(event_id, call_id, output), call_id=call_id
        )
        return event_id

    def retrieve_item(
        self, item_id: str, *, timeout: float | NotGiven | None = NOT_GIVEN
    ) -> ConversationItem:
        """Fetch one conversation item (``conversation.item.retrieve``) and wait for it.

        Qwen-Audio returns audio content as its transcript only.

        Args:
            item_id: The item's id.
            timeout: The longest wait in seconds; None waits forever; default
                ``config.request_timeout``.

        Returns:
            The retrieved `ConversationItem`.

        Raises:
            APIError: The server refused (e.g. no such item).
            DashScopeTimeout: No answer in time.
        """
        answer = self._item_request(
            RequestKind.RETRIEVE, "conversation.item.retrieve", item_id, timeout
        )
        assert isinstance(answer, ConversationItemRetrieved)
        return answer.item

    def delete_item(self, item_id: str, *, timeout: float | NotGiven | None = NOT_GIVEN) -> None:
        """Delete a conversation item (``conversation.item.delete``) and wait for the answer.

        Raises:
            APIError: The server refused (e.g. no such item).
            DashScopeTimeout: No answer in time.
        """
        self._item_request(RequestKind.DELETE, "conversation.item.delete", item_id, timeout)

    def _item_request(
        self,
        kind: RequestKind,
        wire_type: str,
        item_id: str,
        timeout: float | NotGiven | None,
    ) -> ServerEvent:
        _item_id(item_id, "item_id")
        check_client_event(self.family, self.config.model, wire_type)
        core = self._core
        limit = self._timeout(timeout)
        core.check_can_block(f"{wire_type}")
        event_id, text = self._event_text(wire_type, {"item_id": item_id})
        request = core.request(kind, event_id, text, wire_type, {"item_id": item_id})
        return core.await_request(request, limit, f"{wire_type}({item_id!r})")

    def cancel_response(self) -> str:
        """Cancel the running response (``response.cancel``); the server errors if none runs."""
        check_client_event(self.family, self.config.model, "response.cancel")
        return self._core.send_cancel(for_user=True)

    def finish_session(
        self, *, timeout: float | NotGiven | None = NOT_GIVEN
    ) -> SessionFinished | None:
        """Ask the server to flush and finish (``session.finish``), as the model's family does.

        - LiveTranslate (and the legacy Omni models, best effort): sends it and
          waits for ``session.finished``, after the last transcripts and
          translations.
        - Omni 3.8: the server accepts it without an answer: returns None right
          after sending.
        - Omni 3.5 (which rejects it) and Qwen-Audio (which has none): raises
          `UsageError` without sending; `close` ends the session.

        Call `close` after.

        Args:
            timeout: The longest wait in seconds; None waits forever; default
                ``config.request_timeout``.

        Returns:
            The `SessionFinished` event, or None when the family sends none, the
            model rejected the request, or the session closed without answering.

        Raises:
            DashScopeTimeout: No answer in time.
            UsageError: The family has no ``session.finish``.
        """
        core = self._core
        limit = self._timeout(timeout)
        rule = finish_rule(self.family, self.config.model)
        if rule is FinishRule.UNSUPPORTED:
            raise UsageError(
                f"{self.config.model} ({self.family.title}) has no session.finish (the service "
                "rejects it or lacks it): close() ends the session (send_raw() sends one anyway)"
            )
        if rule is FinishRule.SEND_ONLY:
            core.send_simple("session.finish")
            return None
        core.check_can_block("finish_session()")
        request = core.finish_session()
        try:
            result = core.await_request(request, limit, "finish_session()")
        except APIError as exc:
            logger.info("the model rejected session.finish: %s", exc)
            return None
        except SessionClosedError:
            return None
        assert isinstance(result, SessionFinished)
        return result

    def send_raw(self, event: Mapping[str, Any]) -> str:
        """Send any client event as given, adding an ``event_id`` if it has none.

        Returns:
            The event's ``event_id``.

        Raises:
            ConfigError: Not a dict with a string ``type``, or not JSON-serialisable.
        """
        if not isinstance(event, Mapping) or not isinstance(event.get("type"), str):
            raise ConfigError(f"event must be a dict with a string 'type', got {event!r}")
        payload = dict(event)
        event_id = payload.get("event_id")
        if not isinstance(event_id, str):
            event_id = self._core.ids.next()
            payload = {"event_id": event_id, **payload}
        self._core.send(self._dumps(payload), payload["type"])
        return event_id

    def _send_simple(self, wire_type: str) -> str:
        check_client_event(self.family, self.config.model, wire_type)
        return self._core.send_simple(wire_type)

    def _send_event(self, wire_type: str, fields: Mapping[str, Any]) -> str:
        check_client_event(self.family, self.config.model, wire_type)
        event_id, text = self._event_text(wire_type, fields)
        self._core.send(text, wire_type)
        return event_id

    def _event_text(self, wire_type: str, fields: Mapping[str, Any]) -> tuple[str, str]:
        """A new event id and the client event's JSON text: every frame with fields
        is built here (the audio and image appends and the id-only frames aside)."""
        event_id = self._core.ids.next()
        return event_id, self._dumps({"event_id": event_id, "type": wire_type, **fields})

    @staticmethod
    def _dumps(payload: Mapping[str, Any]) -> str:
        try:
            return dumps(payload)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"the event is not JSON-serialisable: {exc}") from exc

    def _timeout(self, timeout: float | NotGiven | None) -> float | None:
        if timeout is NOT_GIVEN:
            return self.config.request_timeout
        return check_timeout(timeout)

    # Recording ----------------------------------------------------------------------

    def _recording_rates(self) -> tuple[Callable[[], int | None], Callable[[], int | None]]:
        core = self._core
        output_rate = core.output_rate_reader()

        def input_rate() -> int | None:
            info = core.info
            rate = None if info is None else info.input_sample_rate
            return rate or INPUT_SAMPLE_RATE

        return input_rate, output_rate

    def _attachment_for_recording(self) -> Attachment | None:
        attachment = self._core.output
        return attachment if isinstance(attachment, Attachment) else None

    # Lifecycle ----------------------------------------------------------------------

    def _before_close(self) -> None:
        self.detach()

    def reconnect(
        self, *, timeout: float | NotGiven | None = NOT_GIVEN, restore: bool = True
    ) -> RealtimeSession:
        """Open a new server session like this one, after a drop or the session cap.

        Realtime state lives on the server, so nothing is resent blindly: the
        new session gets the configuration the server accepted from
        `update_session` (all fields, merged deeply: a nested voice from one
        update and a nested format from a later one are both kept; skip with
        ``restore=False``), and the tools registered with `tool` (the same
        `Tool` records, declared by that one restoring update, run by the new
        session's tool worker; not with ``restore=False``, which starts with
        none), but not the conversation, pending audio or handlers. This
        session is closed if it was not already, and with it what belongs to
        it: its recording (`record`) is completed and the new session is not
        recorded (call ``record`` on it, with a new folder, to go on); an
        attached speaker and microphone are detached (`attach` them to the
        new session); its `transcript` and `metrics` stay readable on this
        object, and the new session's start empty. Register handlers on the
        new session.

        Args:
            timeout: For the connect and the restoring update together, as
                `RealtimeService.connect`'s ``timeout``.
            restore: Replay the configuration sent so far.

        Returns:
            The new, ready session (its own ``id``).

        Raises:
            DashScopeError: The errors of `RealtimeService.connect` and
                `update_session`.
        """
        core = self._core
        core.check_can_block("reconnect()")
        if self._reopen is None:
            raise UsageError("this session was not opened by a Client, so it cannot reconnect")
        if timeout is not NOT_GIVEN:
            timeout = check_timeout(timeout)
        self.close()
        # Only what the server accepted: a field it refused is not replayed.
        restored = core.accepted_config()
        deadline = Deadline(None if isinstance(timeout, NotGiven) else timeout)
        fresh = self._reopen(timeout)
        try:
            if restore and self._tool_registry.entries:
                # Before the restoring update declares them: the tools answer
                # from the new session's first reply on.
                fresh._start_tool_worker()
                fresh._tool_registry.adopt(self._tool_registry)
            if restore and restored:
                left = NOT_GIVEN if isinstance(timeout, NotGiven) else deadline.remaining()
                fresh.update_session(restored, timeout=left)
        except BaseException:
            fresh.close()
            raise
        logger.info("reconnected: session %s replaced by %s", self.id, fresh.id)
        return fresh


def _audio_bytes(value: object) -> bytes | memoryview:
    """Check audio for an append (see `pcm16_buffer`): no copy of the caller's buffer."""
    return pcm16_buffer(value, "audio")


def _image_bytes(value: object) -> bytes | memoryview:
    """Check an image for an append: JPEG bytes within the service's limit."""
    data = image_buffer(value, "image")
    if len(data) > MAX_IMAGE_BYTES:
        raise ConfigError(
            f"images are limited to {MAX_IMAGE_BYTES} bytes by the service, got {len(data)}"
        )
    return data


def _item_id(value: object, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{name} must be a non-empty string, got {value!r}")
    return value


def _check_text(text: object) -> None:
    if not isinstance(text, str):
        raise ConfigTypeError(f"text must be a string, got {type(text).__name__}")
    if not text:
        raise ConfigError("text must not be empty")


def _follow_tools(handle: Response, deadline: Deadline) -> ResponseResult:
    """Wait for a turn's reply, following the tool loop to the final answer (`respond`)."""
    rounds: list[ResponseResult] = []
    while True:
        result = _wait_for_reply(handle, deadline)
        follow_up = handle.follow_up
        # The loop itself stops after MAX_TOOL_ROUNDS replies that call tools
        # (no follow-up then: see SessionState.plan_tool_answers).
        if follow_up is None:
            break
        rounds.append(result)
        handle = follow_up
    if not rounds:
        return result
    return attrs.evolve(result, tool_rounds=tuple(rounds))


def _wait_for_reply(handle: Response, deadline: Deadline) -> ResponseResult:
    """``handle.wait()`` for `RealtimeSession.respond`, whose time-out names respond().

    The caller gave respond() its timeout for the whole turn, and never saw a
    `Response`: a message naming ``Response.wait()`` and the time left
    would point at neither.
    """
    try:
        return handle.wait(deadline.remaining())
    except DashScopeTimeout:
        limit = deadline.timeout
        raise DashScopeTimeout(
            f"respond() timed out after {seconds(limit)} before the reply was complete "
            "(it may still be running: session.interrupt() stops it)",
            timeout=limit,
        ) from None
