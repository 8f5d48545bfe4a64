"""Responses you can hold: a handle per ``response.create`` and its result.

A `Response` is paired with the ``response.created`` that answers it: the
server echoes no client id, so the session registers each handle before
sending and pairs requests with ``response.created`` frames in wire order.
The reader thread then routes every event carrying the response's id to
the handle, which collects text and audio and wakes whoever waits on it.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable, Iterator
from os import PathLike
from typing import TYPE_CHECKING, Any, Final

import attrs

from ._audio import pcm16_to_wav
from ._constants import OUTPUT_SAMPLE_RATE
from ._deadline import Deadline
from ._errors import (
    DashScopeError,
    DashScopeTimeout,
    ResponseCancelledError,
    ResponseError,
    ResponseFailedError,
    ResponseIncompleteError,
)
from ._events import (
    ConversationItem,
    ResponseAudioDelta,
    ResponseAudioTranscriptDelta,
    ResponseCreated,
    ResponseDone,
    ResponseTextDelta,
    ServerEvent,
)

if TYPE_CHECKING:
    from ._session import _SessionCore

__all__ = ["Response", "ResponseResult"]

_FAILURES: Final[dict[str, type[ResponseError]]] = {
    "failed": ResponseFailedError,
    "cancelled": ResponseCancelledError,
    "incomplete": ResponseIncompleteError,
}


@attrs.frozen(kw_only=True)
class ResponseResult:
    """What one response produced, returned by `Response.wait` and `RealtimeSession.respond`.

    In a notebook it shows itself: the text and an audio player of the reply.

    Attributes:
        response_id: The server's id of the response.
        status: ``"completed"`` for a result returned by ``wait()``; a
            `ResponseError`'s ``result`` carries the other statuses.
        text: The reply's text: the text deltas, or the spoken reply's transcript.
        audio: All the reply's audio: 24 kHz mono PCM16 bytes (empty in text mode).
        usage: The token usage as the server sent it, if it did.
        output: The output items of ``response.done``.
        status_details: The server's ``status_details``, if any.
        first_text_delay: Seconds from the request to the first text, or None.
        first_audio_delay: Seconds from the request to the first audio, or None.
        total_time: Seconds from the request to ``response.done``.
    """

    response_id: str
    status: str
    text: str
    audio: bytes = attrs.field(repr=lambda a: f"<{len(a)} bytes>")
    usage: dict[str, Any] | None = None
    output: list[ConversationItem] = attrs.Factory(list)
    status_details: dict[str, Any] | None = None
    first_text_delay: float | None = None
    first_audio_delay: float | None = None
    total_time: float | None = None

    @property
    def audio_seconds(self) -> float:
        """How long the reply's audio plays, in seconds."""
        return len(self.audio) / 2 / OUTPUT_SAMPLE_RATE

    def to_wav_bytes(self) -> bytes:
        """The reply's audio as a 24 kHz mono PCM16 WAV file."""
        return pcm16_to_wav(self.audio)

    def save_wav(self, path: str | PathLike[str]) -> None:
        """Write the reply's audio to ``path`` as a 24 kHz mono PCM16 WAV file."""
        with open(path, "wb") as file:
            file.write(self.to_wav_bytes())

    def _repr_html_(self) -> str:
        import html  # notebooks only

        parts = [f"<div><p>{html.escape(self.text) or '<i>(no text)</i>'}</p>"]
        if self.audio:
            data = base64.b64encode(self.to_wav_bytes()).decode("ascii")
            parts.append(f'<audio controls src="data:audio/wav;base64,{data}"></audio>')
        timing = ", ".join(
            f"{name} {value:.3f} s"
            for name, value in (
                ("first text", self.first_text_delay),
                ("first audio", self.first_audio_delay),
                ("total", self.total_time),
            )
            if value is not None
        )
        parts.append(f"<p><small>{html.escape(self.status)}; {timing}</small></p></div>")
        return "".join(parts)


class Response:
    """A handle on one response: its id, its streamed text and audio, its result.

    Returned by `RealtimeSession.create_response` (and `next_response`).
    The handle collects the response's text and audio as they arrive; drop
    it if you do not need them, and nothing is kept.

    Thread safety: every method may be called from any thread but a handler
    (they block); several threads may stream the same response, and each
    gets every chunk.

    Attributes:
        event_id: The id of the ``response.create`` that asked for it; None for
            a response the server started by itself (server VAD).
    """

    def __init__(
        self, core: _SessionCore, event_id: str | None, cancel: Callable[[], object]
    ) -> None:
        self._core = core
        self._cancel = cancel  # sends response.cancel on the session
        self.event_id = event_id
        # Woken (with the session's lock, which guards everything below) when
        # the response starts, grows, ends or fails.
        self._cond = threading.Condition(core._lock)
        self._requested_at = time.monotonic()
        self._id: str | None = None
        self._status: str | None = None
        self._text: list[str] = []
        self._audio: list[bytes] = []
        self._first_text_at: float | None = None
        self._first_audio_at: float | None = None
        self._done_event: ResponseDone | None = None
        self._done_at: float | None = None
        self._error: DashScopeError | None = None

    # Fed by the reader thread, holding the session's lock ---------------------------

    def _started(self, event: ResponseCreated) -> None:
        self._id = event.response.id
        self._status = event.response.status or "in_progress"
        self._cond.notify_all()

    def _feed(self, event: ServerEvent) -> None:
        if isinstance(event, ResponseAudioDelta):
            if self._first_audio_at is None:
                self._first_audio_at = time.monotonic()
            self._audio.append(event.delta)
        elif isinstance(event, (ResponseAudioTranscriptDelta, ResponseTextDelta)):
            if self._first_text_at is None:
                self._first_text_at = time.monotonic()
            self._text.append(event.delta)
        elif isinstance(event, ResponseDone):
            self._done_event = event
            self._done_at = time.monotonic()
            self._status = event.response.status or "completed"
        else:
            return
        self._cond.notify_all()

    def _fail(self, error: DashScopeError) -> None:
        if self._done_event is None and self._error is None:
            self._error = error
            self._cond.notify_all()

    @property
    def _finished(self) -> bool:
        return self._done_event is not None or self._error is not None

    # Public ---------------------------------------------------------------------

    @property
    def id(self) -> str | None:
        """The server's id of the response, once ``response.created`` arrived."""
        return self._id

    @property
    def status(self) -> str | None:
        """None until created, then ``in_progress``, then the final status."""
        return self._status

    @property
    def done(self) -> bool:
        """True once the response ended (``response.done``) or failed."""
        return self._finished

    def __repr__(self) -> str:
        state = self._status or ("failed" if self._error else "requested")
        return f"<Response id={self._id!r} {state}>"

    def cancel(self) -> bool:
        """Cancel this response if it is running (``response.cancel``), e.g. on barge-in.

        Returns:
            True if a cancel was sent; False if the response had already
            ended or not yet started (then there is nothing of it to cancel).
            ``wait()`` then raises `ResponseCancelledError` with what came.
        """
        with self._cond:
            running = self._id is not None and not self._finished
        if running:
            self._cancel()
        return running

    def wait(self, timeout: float | None = None) -> ResponseResult:
        """Wait for ``response.done`` and return the result.

        Args:
            timeout: The longest wait in seconds; None waits forever.

        Raises:
            ResponseFailedError, ResponseCancelledError, ResponseIncompleteError:
                The response ended with that status (``.result`` has what came).
            ActiveResponseError: Refused: another response was running.
            APIError: Another ``error`` answered the request, or a server error
                arrived while it ran (such responses may never finish).
            DashScopeTimeout: Not done in time.
            TransportError, SessionClosedError: The session ended first.
            HandlerError: A handler failed (raised first).
            UsageError: Called from inside a handler.
        """
        core = self._core
        core.check_can_block("Response.wait()")
        deadline = Deadline(timeout)
        with self._cond:
            while True:
                core.raise_handler_error_locked()
                if self._error is not None:
                    raise self._error
                if self._done_event is not None:
                    return self._result_locked()
                remaining = deadline.remaining()
                if remaining is not None and remaining <= 0:
                    raise DashScopeTimeout(
                        f"the response was not done within {timeout} s", timeout=timeout
                    )
                self._cond.wait(remaining)

    @property
    def result(self) -> ResponseResult | None:
        """The result once completed, else None (never raises)."""
        with self._cond:
            if self._done_event is None or self._status != "completed":
                return None
            return self._result_locked()

    def iter_text(self, timeout: float | None = None) -> Iterator[str]:
        """Yield the reply's text chunks as they arrive, until it is done.

        Args:
            timeout: The longest wait for each next chunk, in seconds.

        Raises:
            The same as `wait`, when the response ends badly.
        """
        return self._iterate(self._text, timeout)

    def iter_audio(self, timeout: float | None = None) -> Iterator[bytes]:
        """Yield the reply's PCM chunks (24 kHz mono PCM16) as they arrive, until it is done."""
        return self._iterate(self._audio, timeout)

    def _iterate(self, chunks: list[Any], timeout: float | None) -> Iterator[Any]:
        self._core.check_can_block("Response.iter_text()/iter_audio()")
        position = 0
        while True:
            with self._cond:
                deadline = Deadline(timeout)
                while position >= len(chunks) and not self._finished:
                    self._core.raise_handler_error_locked()
                    remaining = deadline.remaining()
                    if remaining is not None and remaining <= 0:
                        raise DashScopeTimeout(
                            f"no response chunk within {timeout} s", timeout=timeout
                        )
                    self._cond.wait(remaining)
                fresh = chunks[position:]
                position = len(chunks)
                finished = self._finished
            yield from fresh
            if finished and position >= len(chunks):
                with self._cond:
                    if self._error is not None:
                        raise self._error
                    if self._status != "completed":
                        self._result_locked()  # raises the status' error
                return

    def _result_locked(self) -> ResponseResult:
        done = self._done_event
        assert done is not None and self._done_at is not None
        info = done.response
        started = self._requested_at

        def delay(at: float | None) -> float | None:
            return None if at is None else at - started

        result = ResponseResult(
            response_id=info.id or self._id or "",
            status=self._status or "completed",
            text="".join(self._text),
            audio=b"".join(self._audio),
            usage=info.usage,
            output=info.output,
            status_details=info.status_details,
            first_text_delay=delay(self._first_text_at),
            first_audio_delay=delay(self._first_audio_at),
            total_time=self._done_at - started,
        )
        failure = _FAILURES.get(result.status)
        if failure is not None:
            reason = (info.status_details or {}).get("reason")
            raise failure(
                f"the response ended with status {result.status!r}"
                + (f" ({reason})" if reason else ""),
                response_id=result.response_id,
                status=result.status,
                status_details=info.status_details,
                result=result,
            )
        return result
