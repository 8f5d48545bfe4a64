"""Responses you can hold: a handle per ``response.create`` and its result.

A `Response` is a view of one `ResponseTrack`, which the session's state
machine fills (which ``response.created`` answers which request is decided
there, see ``_core/state.py``). The handle depends only on `ResponseHost`: a lock
to read the track under, the session's one wait, and a way to cancel.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from os import PathLike
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeVar

import attrs

from .._audio.files import file_path, pcm16_to_wav
from .._constants import OUTPUT_SAMPLE_RATE
from .._deadline import Deadline, check_timeout
from .._errors import (
    DashScopeError,
    HandlerError,
    ResponseCancelledError,
    ResponseError,
    ResponseFailedError,
    ResponseIncompleteError,
)
from .._fmt import seconds
from .._wire.events import ConversationItem, Usage

if TYPE_CHECKING:
    from .._conversation.tools import ToolCall
    from .state import ResponseTrack

__all__ = ["Interruption", "Response", "ResponseHost", "ResponseResult"]

_T = TypeVar("_T")

#: The longest a Ctrl-C'd wait waits for the ``response.done`` of the response
#: it cancelled (the server's round trip, normally tens of milliseconds).
_CANCEL_GRACE: Final = 2.0

_FAILURES: Final[dict[str, type[ResponseError]]] = {
    "failed": ResponseFailedError,
    "cancelled": ResponseCancelledError,
    "incomplete": ResponseIncompleteError,
}


#: How much of the reply's text a `ResponseResult`'s repr shows.
_REPR_TEXT: Final = 24
#: The fields `ResponseResult.__repr__` writes its own way (or leaves out:
#: the id, and the output, which repeats the text).
_REPR_OWN: Final = frozenset(
    {"response_id", "status", "text", "audio", "usage", "output", "status_details"}
    | {"first_text_delay", "first_audio_delay", "total_time"}
    | {"first_audible_delay", "end_of_speech_to_first_audio", "playback_start"}
    | {"tool_calls", "tool_rounds"}
)


@attrs.frozen(kw_only=True, repr=False)
class ResponseResult:
    """What one response produced, returned by `Response.wait` and `RealtimeSession.respond`.

    In a notebook it shows itself: the text and an audio player of the reply.
    Its ``repr`` (and ``str``) is one line: the status, the start of the
    text, the audio's length, the tokens and the timings, e.g.
    ``<ResponseResult completed 'Hello! How can I help y…', 5.64 s of audio,
    98 tokens, first audio 0.049 s, total 0.056 s>``.

    Attributes:
        response_id: The server's id of the response.
        status: ``"completed"`` for a result returned by ``wait()``; a
            `ResponseError`'s ``result`` carries the other statuses.
        text: The reply's text: the text deltas, or the spoken reply's transcript.
        audio: All the reply's audio: mono PCM16 bytes at ``sample_rate``
            (empty in text mode).
        usage: The token usage (`Usage`), if the server sent it.
        output: The output items of ``response.done``.
        status_details: The server's ``status_details``, if any.
        first_text_delay: Seconds from the request to the first text, or None.
        first_audio_delay: Seconds from the request to the first audio, or None.
            For the reply that answers tool outputs (the final reply
            `RealtimeSession.respond` returns after tool calls, a
            ``follow_up``), "the request" is its own: the ``response.create``
            sent after the outputs (under server VAD, when the library began
            following the server's answer), so the tools' time is not in it;
            ``end_of_speech_to_first_audio`` covers the whole turn.
        total_time: Seconds from the request to ``response.done``.
        first_audible_delay: Seconds from the request to the first audio
            chunk that is not silence (a sample at -50 dBFS or louder), or
            None (no audio, or only silence). Later than
            ``first_audio_delay`` when the reply starts with silence.
        end_of_speech_to_first_audio: Seconds from the end of the user's
            speech to the first audio: from the arrival of
            ``input_audio_buffer.speech_stopped`` under server VAD, or from
            the `commit_audio` call in manual mode (`respond` commits for
            you). None for a turn with no speech (text) or no audio. In a
            turn whose reply calls tools without a sound, it is the answer's
            (the first audio the user hears in the turn), and None on the
            calling reply; a calling reply that speaks ("let me check") has
            it, and the answer then has None. A tool turn in which no answer
            is heard (``interrupt()`` while its tools run, the tool loop's
            limit, a call left unanswered) has it on no reply, later ones
            included.
        playback_start: With a `Speaker` attached, seconds from the request
            to the moment the reply's first sample sounded out of the device
            (the speaker's estimate: when the block holding it was given to
            the device, plus what the device still held ahead of it). None
            without a speaker, or while it has not played yet (read
            ``Response.result`` again later: the value arrives then).
        sample_rate: The audio's sample rate: the session's output sample rate
            when the server echoes one, else 24 kHz.
        interrupted: True when `RealtimeSession.interrupt` (or barge-in) cut
            the reply while it ran: ``audio`` (and perhaps ``text``) is only
            what came before, even with a ``"completed"`` status.
        tool_calls: The calls this reply made of tools registered with
            `RealtimeSession.tool`, each a `ToolCall` (how it ended), in the
            reply's order; empty when it called none.
        tool_rounds: For the final reply `RealtimeSession.respond` returns:
            the earlier replies of the same turn that called tools, oldest
            first (each with its ``tool_calls``); `turn_tool_calls` lists
            their calls. Empty otherwise.
    """

    response_id: str
    status: str
    text: str
    audio: bytes
    usage: Usage | None = None
    output: list[ConversationItem] = attrs.Factory(list)
    status_details: dict[str, Any] | None = None
    first_text_delay: float | None = None
    first_audio_delay: float | None = None
    total_time: float | None = None
    sample_rate: int = OUTPUT_SAMPLE_RATE
    interrupted: bool = False
    tool_calls: tuple[ToolCall, ...] = ()
    tool_rounds: tuple[ResponseResult, ...] = ()

    @property
    def turn_tool_calls(self) -> tuple[ToolCall, ...]:
        """Every tool call of the turn, in order: those of `tool_rounds`, then this reply's."""
        earlier = tuple(call for result in self.tool_rounds for call in result.tool_calls)
        return earlier + self.tool_calls

    first_audible_delay: float | None = None
    end_of_speech_to_first_audio: float | None = None
    playback_start: float | None = None

    @property
    def audio_seconds(self) -> float:
        """How long the reply's audio plays, in seconds."""
        return len(self.audio) / 2 / self.sample_rate

    def __repr__(self) -> str:
        status = self.status
        reason = (self.status_details or {}).get("reason")
        if reason:
            status += f" ({reason})"
        parts = [status]
        text = self.text
        if text:
            shown = text if len(text) <= _REPR_TEXT else text[: _REPR_TEXT - 1] + "…"
            parts[0] += f" {shown!r}"
        calls = [item.name or item.type for item in self.output if item.type == "function_call"]
        if calls:
            parts.append(f"function call {', '.join(calls)}")
        if self.tool_rounds:
            parts.append(f"after {len(self.turn_tool_calls)} tool call(s)")
        if self.audio:
            parts.append(f"{seconds(self.audio_seconds)} of audio")
        if self.usage is not None:
            parts.append(f"{self.usage.total_tokens} tokens")
        # The first audio is the delay a listener hears; the first text stands
        # in for it in text mode.
        first = ("first audio", self.first_audio_delay)
        if first[1] is None:
            first = ("first text", self.first_text_delay)
        for name, value in (first, *self._latencies(), ("total", self.total_time)):
            if value is not None:
                parts.append(f"{name} {seconds(value)}")
        for field in attrs.fields(ResponseResult):
            value = getattr(self, field.name)
            if field.name in _REPR_OWN or value == field.default:
                continue
            parts.append(field.name if value is True else f"{field.name}={value!r}")
        return f"<ResponseResult {', '.join(parts)}>"

    def _latencies(self) -> tuple[tuple[str, float | None], ...]:
        """The listener's figures the repr adds: each only where it says something new."""
        audible = self.first_audible_delay
        return (
            ("first audible", None if audible == self.first_audio_delay else audible),
            ("speech end to audio", self.end_of_speech_to_first_audio),
            ("playback", self.playback_start),
        )

    def to_wav_bytes(self) -> bytes:
        """The reply's audio as a mono PCM16 WAV file at ``sample_rate``."""
        return pcm16_to_wav(self.audio, self.sample_rate)

    def save_wav(self, path: str | PathLike[str]) -> None:
        """Write the reply's audio to ``path`` as a mono PCM16 WAV file at ``sample_rate``.

        Raises:
            ConfigTypeError: ``path`` is not a file name (``str`` or ``os.PathLike``).
            OSError: The file cannot be written (as `open` raises it).
        """
        with open(file_path(path), "wb") as file:
            file.write(self.to_wav_bytes())

    def _repr_html_(self) -> str:
        import html  # notebooks only

        parts = [f"<div><p>{html.escape(self.text) or '<i>(no text)</i>'}</p>"]
        if self.audio:
            data = base64.b64encode(self.to_wav_bytes()).decode("ascii")
            parts.append(f'<audio controls src="data:audio/wav;base64,{data}"></audio>')
        timing = ", ".join(
            f"{name} {seconds(value)}"
            for name, value in (
                ("first text", self.first_text_delay),
                ("first audio", self.first_audio_delay),
                *self._latencies(),
                ("total", self.total_time),
            )
            if value is not None
        )
        parts.append(f"<p><small>{html.escape(self.status)}; {timing}</small></p></div>")
        return "".join(parts)


@attrs.frozen(kw_only=True, repr=False)
class Interruption:
    """What `RealtimeSession.interrupt` stopped.

    Attributes:
        response_id: The response that was running; else, with a speaker
            attached, the one it was still playing; None if neither (an
            interrupt while nothing runs or sounds stopped nothing).
        played_seconds: Seconds of that response the listener heard, from the
            attached `Speaker` (device latency accounted for); None without one.
        cancelled: Whether a ``response.cancel`` was sent for it.
        interrupt_to_silence: With a `Speaker` attached, seconds from the
            ``interrupt()`` call to the last sample played: until the
            speaker's player thread aborted the output stream (PortAudio
            drops what the device buffer held; with a stream that cannot say
            its room, it first finishes the 10 ms piece it is writing), or
            until it played out if that came first. A sound server's own period past
            PortAudio (PipeWire's quantum, about 20 ms) is not reported by
            PortAudio, so not included. None without a speaker, when nothing
            was queued or sounding at the call (it silenced nothing, and
            `RealtimeSession.metrics` does not count it), or when the speaker
            did not confirm its abort within half a second.
    """

    response_id: str | None
    played_seconds: float | None
    cancelled: bool
    interrupt_to_silence: float | None = None

    def __repr__(self) -> str:
        def shown(value: float | None) -> str:
            return "None" if value is None else seconds(value)

        silence = self.interrupt_to_silence
        return (
            f"Interruption(response_id={self.response_id!r}, "
            f"played_seconds={shown(self.played_seconds)}, cancelled={self.cancelled!r}"
            + ("" if silence is None else f", interrupt_to_silence={shown(silence)}")
            + ")"
        )


class ResponseHost(Protocol):
    """What a `Response` needs of its session, and nothing more."""

    def wait(self, ready: Callable[[], _T | None], deadline: Deadline, what: str) -> _T:
        """Wait until ``ready()`` (called under the session's lock) returns a value."""

    def peek(self, read: Callable[[], _T]) -> _T:
        """Run ``read`` under the session's lock."""

    def cancel(self, track: ResponseTrack) -> bool:
        """Cancel the response (now, or as soon as it starts); False if nothing to cancel."""

    def check_can_block(self, what: str) -> None:
        """Raise `UsageError` on a thread that must not wait."""

    def interrupted(self, response_id: str) -> bool:
        """Whether the response was interrupted: none of its audio goes out now."""


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

    def __init__(self, host: ResponseHost, track: ResponseTrack) -> None:
        self._host = host
        self._track = track
        self.event_id = track.event_id
        # The one handle `follow_up` gives out (a second handle on the same
        # track, dropped, would stop the track collecting for the first).
        self._follow_up: Response | None = None

    def __del__(self) -> None:
        # Only a signal, as finalizers must be (no lock, nothing sent): the
        # session stops keeping this response's text and audio. Which
        # response the handle was paired with does not change.
        track = getattr(self, "_track", None)
        if track is not None:
            track.unwatched = True

    @property
    def id(self) -> str | None:
        """The server's id of the response, once ``response.created`` arrived."""
        return self._track.id

    @property
    def status(self) -> str | None:
        """None until created, then ``in_progress``, then the final status."""
        return self._track.status

    @property
    def done(self) -> bool:
        """True once the response ended (``response.done``) or failed."""
        return self._track.finished

    def __repr__(self) -> str:
        track = self._track
        state = track.status or ("failed" if track.error else "requested")
        return f"<Response id={track.id!r} {state}>"

    def cancel(self) -> bool:
        """Cancel this response (``response.cancel``), e.g. on barge-in.

        A cancel asked for before the response started (before
        ``response.created``) is remembered and sent as soon as it starts.

        Returns:
            True if a cancel was sent or will be; False if the response had
            already ended (or the session is closed), leaving nothing to cancel.
            ``wait()`` then raises `ResponseCancelledError` with what came.
        """
        return self._host.cancel(self._track)

    def wait(self, timeout: float | None = None) -> ResponseResult:
        """Wait for ``response.done`` and return the result.

        When the response called tools registered with
        `RealtimeSession.tool`, it returns once they have run and their
        outputs went back, with their records in ``tool_calls`` (`follow_up`
        is then the reply that answers them).

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
            ConfigError: A bad timeout.

        A ``KeyboardInterrupt`` (Ctrl-C, or a notebook's interrupt) during the
        wait cancels the response (``response.cancel``), if this session asked
        for it or it is running, before it propagates: the next turn can start.
        """
        track = self._track

        def ready() -> ResponseResult | None:
            if track.error is not None:
                raise track.error
            if track.done is None or track.tools_pending:
                return None  # registered tools it called have not run yet
            return _result(track)

        deadline = Deadline(check_timeout(timeout))
        try:
            return self._host.wait(ready, deadline, "Response.wait()")
        except KeyboardInterrupt:
            self._abandon()
            raise

    def _abandon(self) -> None:
        """Cancel the response whose wait Ctrl-C stopped, so the next turn can start.

        Left running, the reply would hold the conversation, and the next
        ``response.create`` would be refused with `ActiveResponseError`.
        Only a response this session asked for, or one already running: a
        server-VAD response that has not started may never come, and a
        cancel kept for it would hit a later one.
        """
        track = self._track
        if track.event_id is None and track.id is None:
            return
        try:
            if not self._host.cancel(track):
                return
            # The server ends a cancelled response asynchronously, and refuses
            # a response.create until then: wait (briefly) for its
            # response.done, so that the very next respond() is accepted.
            self._host.wait(
                lambda: True if track.finished else None,
                Deadline(_CANCEL_GRACE),
                "the cancel of an interrupted wait",
            )
        except KeyboardInterrupt:
            pass  # a second Ctrl-C: stop waiting, the first one propagates
        except HandlerError:
            raise  # raised once and then cleared: it must not be lost here
        except DashScopeError:
            # The session may be closing or broken, or the answer slow: the
            # KeyboardInterrupt is what the caller must see.
            pass

    @property
    def result(self) -> ResponseResult | None:
        """The result once completed and its registered tools ran, else None (never raises)."""
        track = self._track

        def read() -> ResponseResult | None:
            if track.done is None or track.status != "completed" or track.tools_pending:
                return None
            return _result(track)

        return self._host.peek(read)

    @property
    def follow_up(self) -> Response | None:
        """The reply that answers this one's tool calls, once they have run.

        When this reply called tools registered with `RealtimeSession.tool`,
        the library sent their outputs and asked for the next reply (or, under
        server VAD, follows the one the server starts by itself): a handle on
        it, once ``wait()`` has returned. None when it called no registered
        tool, or before its tools have run.
        """
        if self._follow_up is not None:
            return self._follow_up
        track = self._track
        follow_up = self._host.peek(lambda: None if track.tools_pending else track.follow_up)
        if follow_up is not None:
            self._follow_up = Response(self._host, follow_up)
        return self._follow_up

    def iter_text(self, timeout: float | None = None) -> Iterator[str]:
        """Yield the reply's text chunks as they arrive, until it is done.

        Args:
            timeout: The longest wait for each next chunk, in seconds.

        Raises:
            ResponseError: As `wait`, when the response ends badly: after a
                cancel, `ResponseCancelledError` once the chunks that came are
                yielded. Ctrl-C while it waits for the next chunk cancels the
                response, as for `wait`.
            DashScopeError: The other errors of `wait`.
        """
        return self._iterate(lambda track: track.text, timeout, "Response.iter_text()")

    def iter_audio(self, timeout: float | None = None) -> Iterator[bytes]:
        """Yield the reply's PCM chunks (24 kHz mono PCM16) as they arrive, until it is done.

        Once `RealtimeSession.interrupt` has returned, no chunk of an
        interrupted reply is yielded, even one that arrived before it and was
        not taken yet (a consumer that blocks on each chunk, as a player does).

        Raises:
            DashScopeError: The same as `iter_text`.
        """
        track = self._track
        host = self._host

        def stale() -> bool:
            return track.id is not None and host.interrupted(track.id)

        return self._iterate(lambda t: t.audio, timeout, "Response.iter_audio()", stale)

    def _iterate(
        self,
        chunks_of: Callable[[ResponseTrack], list[Any]],
        timeout: float | None,
        what: str,
        stale: Callable[[], bool] | None = None,
    ) -> Iterator[Any]:
        self._host.check_can_block(what)
        timeout = check_timeout(timeout)
        return self._chunks(chunks_of, timeout, what, stale)

    def _chunks(
        self,
        chunks_of: Callable[[ResponseTrack], list[Any]],
        timeout: float | None,
        what: str,
        stale: Callable[[], bool] | None,
    ) -> Iterator[Any]:
        track = self._track
        position = 0

        def ready() -> tuple[list[Any], bool] | None:
            nonlocal position
            chunks = chunks_of(track)
            if stale is not None and stale():
                position = len(chunks)  # interrupted: what is left is not given out
            if position < len(chunks):
                return chunks[position:], False
            if track.finished:
                if track.error is not None:
                    raise track.error
                _result(track)  # raises the error of a status other than completed
                return [], True
            return None

        while True:
            try:
                fresh, finished = self._host.wait(ready, Deadline(timeout), what)
            except KeyboardInterrupt:
                self._abandon()
                raise
            if finished:
                return
            for chunk in fresh:
                if stale is not None and stale():
                    break  # interrupted while the consumer held the last chunk
                position += 1
                yield chunk


def _result(track: ResponseTrack) -> ResponseResult:
    """The result of a finished response; raises the error of a failed status."""
    done = track.done
    assert done is not None and track.done_at is not None
    info = done.response
    started = track.requested_at
    timing = track.timing

    def delay(at: float | None) -> float | None:
        return None if at is None else at - started

    result = ResponseResult(
        response_id=info.id or track.id or "",
        status=track.status or "completed",
        text="".join(track.text),
        audio=b"".join(track.audio),
        usage=info.usage,
        output=info.output,
        status_details=info.status_details,
        first_text_delay=delay(track.first_text_at),
        first_audio_delay=delay(track.first_audio_at),
        total_time=track.done_at - started,
        sample_rate=track.sample_rate or OUTPUT_SAMPLE_RATE,
        interrupted=track.interrupted,
        tool_calls=tuple(track.tool_calls),
        first_audible_delay=None if timing is None else delay(timing.first_audible_at),
        end_of_speech_to_first_audio=(
            None if timing is None else timing.end_of_speech_to_first_audio
        ),
        playback_start=None if timing is None else delay(timing.playback_at),
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
