"""Text to speech (Qwen-TTS-Realtime): `SpeechService`, `SpeechSession`, `Speech`, `SpeechResult`.

A public session over a `SessionCore`, as `RealtimeSession` is, sharing its
state, receiving and lifecycle through `SessionBase` (base.py): the
family's rules live in the state (`SpeechBook`, fed by `SessionState`), its
configuration in `SpeechConfig`; this module only sends and waits. The
wire is SPEECH_FAMILIES.md §A.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import logging
import threading
import time
import wave
from collections.abc import Callable, Iterable, Iterator
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import attrs

from .._audio.attach import Attachment, SpeakerLike
from .._audio.resample import resampler_for
from .._conversation.metrics import Metrics
from .._core.core import SessionCore
from .._core.speech_state import SpeechBook, SpeechTrack
from .._core.state import RequestKind
from .._deadline import Deadline, check_timeout
from .._errors import (
    APIError,
    ConfigError,
    ConfigTypeError,
    DashScopeError,
    DashScopeTimeout,
    SessionClosedError,
    UsageError,
)
from .._fmt import seconds
from .._wire.codec import dumps, encode_simple, encode_text_append
from .._wire.config import NOT_GIVEN, NotGiven
from .._wire.events import (
    ResponseAudioDelta,
    ResponseAudioDone,
    ResponseCreated,
    SessionFinished,
    SessionUpdated,
)
from .._wire.families import ModelFamily
from .._wire.speech_config import SpeechConfig
from .base import OpenCore, SessionBase

if TYPE_CHECKING:
    pass

__all__ = ["Speech", "SpeechResult", "SpeechService", "SpeechSession"]

logger = logging.getLogger("dashscope_sync")

_MIME: Final = {"pcm": "audio/wav", "wav": "audio/wav", "mp3": "audio/mpeg", "opus": "audio/ogg"}


def _check_text(text: object, what: str = "text") -> str:
    if not isinstance(text, str):
        raise ConfigTypeError(f"{what} must be a string, got {type(text).__name__}")
    if not text:
        raise ConfigError(f"{what} must not be empty")
    return text


@attrs.frozen(kw_only=True)
class SpeechResult:
    """The audio of one `SpeechSession.speak` (or `SpeechService.synthesize`).

    Attributes:
        audio: The audio bytes in ``response_format`` (PCM: 16-bit mono
            little-endian at ``sample_rate``), concatenated.
        response_format: ``"pcm"``, ``"wav"``, ``"mp3"`` or ``"opus"``.
        sample_rate: The audio's sample rate in Hz.
        characters: Characters billed (``usage.characters`` of Qwen3; 0 when
            the server reported none).
        first_audio_delay: Seconds from the first text sent to the first audio, or None.
        total_time: Seconds from the first text sent to the end of the speech.
        text: The text that was spoken.
        cancelled: True if `Speech.cancel` stopped it (``audio`` is what came before).
    """

    audio: bytes = attrs.field(repr=lambda b: f"<{len(b)} bytes>")
    response_format: str
    sample_rate: int
    characters: int = 0
    first_audio_delay: float | None = None
    total_time: float | None = None
    text: str = ""
    cancelled: bool = False

    @property
    def duration(self) -> float | None:
        """Seconds of audio for PCM and WAV (None for the compressed formats)."""
        pcm = self.audio if self.response_format == "pcm" else None
        if self.response_format == "wav":
            pcm = _join_wav(self.audio)
        return None if pcm is None else len(pcm) / 2 / self.sample_rate

    def to_file_bytes(self) -> bytes:
        """The bytes of a playable file: WAV for PCM; for WAV, the responses' files joined
        into one (each response is a file of its own); MP3 and Ogg Opus as they are
        (their streams concatenate)."""
        if self.response_format == "wav":
            joined = _join_wav(self.audio)
            return self.audio if joined is None else _wav_file(joined, self.sample_rate)
        if self.response_format != "pcm":
            return self.audio
        return _wav_file(self.audio, self.sample_rate)

    def save(self, path: str | PathLike[str]) -> Path:
        """Write a playable file (WAV for PCM; the format's own file otherwise); its path."""
        target = Path(path)
        target.write_bytes(self.to_file_bytes())
        return target

    def _repr_html_(self) -> str:
        import html  # notebooks only

        data = base64.b64encode(self.to_file_bytes()).decode("ascii")
        mime = _MIME.get(self.response_format, "audio/wav")
        timing = ", ".join(
            f"{name} {seconds(value)}"
            for name, value in (("first audio", self.first_audio_delay), ("total", self.total_time))
            if value is not None
        )
        return (
            f"<div><p>{html.escape(self.text[:200])}</p>"
            f'<audio controls src="data:{mime};base64,{data}"></audio>'
            f"<p><small>{self.characters} characters; {timing}</small></p></div>"
        )


def _wav_file(pcm: bytes, rate: int) -> bytes:
    import io

    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm)
    return out.getvalue()


def _join_wav(blob: bytes) -> bytes | None:
    """The PCM of consecutive 16-bit mono WAV files (a streamed one may give no true
    sizes: its data runs to the end); None if ``blob`` is not such files."""
    pcm: list[bytes] = []
    at = 0
    while at < len(blob):
        if blob[at : at + 4] != b"RIFF" or blob[at + 8 : at + 12] != b"WAVE":
            return None
        end = min(len(blob), at + 8 + int.from_bytes(blob[at + 4 : at + 8], "little"))
        chunk = at + 12
        while chunk + 8 <= end:
            kind = blob[chunk : chunk + 4]
            size = int.from_bytes(blob[chunk + 4 : chunk + 8], "little")
            body = chunk + 8
            if kind == b"fmt " and blob[body + 2 : body + 4] != b"\x01\x00":
                return None  # not mono
            if kind == b"data":
                data_end = min(end, body + size)
                pcm.append(blob[body:data_end])
                chunk = data_end
                break
            chunk = body + size + (size & 1)
        at = max(end, chunk)
    return b"".join(pcm)


class Speech:
    """The audio of one `SpeechSession.speak`, as it comes: `iter_audio`, `wait`, `cancel`.

    Thread safety: any method from any thread (not `wait`/`iter_audio` from a handler).
    """

    def __init__(
        self, core: SessionCore, book: SpeechBook, config: SpeechConfig, track: SpeechTrack
    ) -> None:
        # Not the session: a speech kept does not keep its session from being collected.
        self._core = core
        self._book = book
        self._config = config
        self._track = track
        self._text: list[str] = []
        # The thread sending an iterable's pieces (None for one string).
        self._feeder: threading.Thread | None = None

    @property
    def done(self) -> bool:
        """True once the speech finished, failed or was cancelled."""
        return self._core.peek(lambda: self._track.finished)

    @property
    def text(self) -> str:
        """The text sent so far."""
        return "".join(self._text)

    def __repr__(self) -> str:
        track = self._track
        state = "done" if track.finished else "speaking"
        return f"<Speech {state} pieces={len(self._text)} chunks={len(track.audio)}>"

    def iter_audio(self, timeout: float | None = None) -> Iterator[bytes]:
        """Yield the audio chunks (in the session's format) as they arrive, until the speech ends.

        Args:
            timeout: The longest wait for each next chunk, in seconds; None forever.

        Raises:
            APIError: The server refused one of this speech's frames.
            DashScopeTimeout: No chunk within ``timeout``.
            SessionClosedError, TransportError: The session ended first.
        """
        self._core.check_can_block("Speech.iter_audio()")
        return self._chunks(check_timeout(timeout))

    def _chunks(self, timeout: float | None) -> Iterator[bytes]:
        track = self._track
        position = 0

        def ready() -> tuple[list[bytes], bool] | None:
            if position < len(track.audio):
                return track.audio[position:], False
            if track.finished:
                if track.error is not None:
                    raise track.error
                return [], True
            return None

        while True:
            fresh, finished = self._core.wait(ready, Deadline(timeout), "Speech.iter_audio()")
            if finished:
                return
            position += len(fresh)
            yield from fresh

    def wait(self, timeout: float | None = None) -> SpeechResult:
        """Wait until the speech is complete; its `SpeechResult`.

        Raises:
            APIError: The server refused one of this speech's frames (the
                session goes on), or the text source raised (its error).
            DashScopeTimeout: Not complete within ``timeout``.
            SessionClosedError, TransportError: The session ended first.
        """
        self._core.check_can_block("Speech.wait()")
        track = self._track

        def ready() -> bool | None:
            if not track.finished:
                return None
            if track.error is not None:
                raise track.error
            return True

        try:
            self._core.wait(ready, Deadline(check_timeout(timeout)), "Speech.wait()")
        except DashScopeTimeout:
            raise DashScopeTimeout(
                f"Speech.wait() timed out after {seconds(timeout)} before the speech was "
                "complete (speech.cancel() stops it)",
                timeout=timeout,
            ) from None
        return self._result()

    def _result(self) -> SpeechResult:
        def read() -> SpeechResult:
            track = self._track
            start = track.first_sent_at
            config = self._config
            return SpeechResult(
                audio=b"".join(track.audio),
                response_format=config.response_format,
                sample_rate=config.sample_rate,
                characters=track.characters,
                first_audio_delay=(
                    None
                    if start is None or track.first_audio_at is None
                    else track.first_audio_at - start
                ),
                total_time=None
                if start is None or track.done_at is None
                else track.done_at - start,
                text="".join(self._text),
                cancelled=track.cancelled,
            )

        return self._core.peek(read)

    def cancel(self) -> bool:
        """Stop this speech now: its text still buffered is cleared, its audio still to come
        is dropped, and an attached speaker stops at once. False if it was over already."""
        track = self._track
        core = self._core
        book = self._book

        def cancel() -> tuple[bool, list[str], bool]:
            running = sorted(track.running)
            # Read before the book lets go of it: the buffer is this speech's
            # only between its first append and its commit. Before (still
            # waiting for its turn) and after, it holds another speech's text,
            # which a clear would erase.
            owns_buffer = track.first_sent_at is not None and track.commit_id is None
            return book.cancel(track, time.monotonic()), running, owns_buffer

        cancelled, running, owns_buffer = core.change(cancel)
        if not cancelled:
            return False
        # Its audio already read but not yet handled (a blocking player's
        # backlog) must not play either: one record of interrupted responses.
        # Its responses still to come stay its own in the book, which drops their audio.
        core.interrupt_responses(running)
        core.stop_output(running[-1] if running else None)
        if owns_buffer:
            with contextlib.suppress(SessionClosedError):
                core.send_simple("input_text_buffer.clear")
        return True


class SpeechSession(SessionBase[SpeechConfig]):
    """A Qwen-TTS-Realtime session, returned ready (configured) by `SpeechService.connect`.

    `speak` text (a string, or an iterable of pieces as an LLM streams them)
    and get a `Speech` for its audio; or drive the wire yourself with
    `append_text`, `commit_text` and `clear_text`; `finish` ends the session
    after the audio still due. Receive every event with `on`, `recv`,
    `events`, iteration and `wait_for`, as on `RealtimeSession`. Use it as a
    context manager, or call `close` (speeches not finished then fail).

    Thread safety: every method may be called from any thread; speeches go
    out one after another, in call order.

    Attributes:
        config: The `SpeechConfig` the session was opened with.
    """

    def __init__(self, core: SessionCore, config: SpeechConfig, book: SpeechBook) -> None:
        super().__init__(core, config)
        # The same books the state feeds (read and changed under the core's lock).
        self._book = book
        self._attachment: Attachment | None = None
        # Guards _turns, _feeders and _shut; notified when a speech gives up the
        # wire and when close() starts, so every wait for a turn wakes then.
        self._turn_changed = threading.Condition()
        # The speeches whose text is still to be sent, in call order: the first
        # sends its text, from its first append to its commit, while the others
        # wait (the server synthesises its buffer in order, so speeches must not
        # interleave on the wire). A speech leaves once its text is sent or it failed.
        self._turns: collections.deque[SpeechTrack] = collections.deque()
        # The threads sending iterables' pieces and pulling their sources, still
        # running: close() joins them.
        self._feeders: set[threading.Thread] = set()
        # The text sources being pulled by their own threads: close() stops them.
        self._sources: set[_Source] = set()
        # close() started: speeches still waiting for the wire give up, a feeder
        # pulls no further piece, and no new speech starts.
        self._shut = False

    # State ---------------------------------------------------------------------

    @property
    def family(self) -> ModelFamily:
        """Always `ModelFamily.QWEN_TTS`."""
        return ModelFamily.QWEN_TTS

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        voice = self.config.voice
        return f"<SpeechSession id={self.id!r} model={self.model!r} voice={voice!r} {state}>"

    # Speaking --------------------------------------------------------------------

    def speak(self, text: str | Iterable[str]) -> Speech:
        """Speak ``text``; a `Speech` handle for its audio.

        ``text`` is a string, or an iterable of string pieces (an LLM's
        stream): then a thread of the speech appends each piece as it
        arrives (empty pieces are skipped), so the first audio can start
        before the last piece, and this call returns at once. (The source is
        pulled on a second thread, so pieces that come while the wire is
        busy leave together, one append each, in one write.) After the last
        piece the text is committed, in both modes, so the tail is never left
        waiting. A speech whose text source raises fails with that error
        (its text still buffered is cleared).

        Speeches reach the wire one after another, in call order: an iterable
        waits on its own thread, so this call never blocks on an earlier
        speech's source; a string waits here, up to ``config.request_timeout``.
        `close` stops them: a source is not pulled again, and `close` waits
        up to ``config.handler_timeout`` for one still producing a piece (then
        warns and leaves its thread behind).

        Raises:
            ConfigTypeError: ``text`` is neither a string nor an iterable of them.
            ConfigError: ``text`` is empty.
            SessionClosedError: The session is closed (or closes while a string
                waits for an earlier speech's text).
            DashScopeTimeout: A string waited longer than ``config.request_timeout``
                for an earlier speech's text source (nothing of it was sent).
        """
        core = self._core
        if isinstance(text, str):
            _check_text(text)
            pieces: Iterable[str] | None = None
        elif isinstance(text, (bytes, bytearray, memoryview)) or not isinstance(text, Iterable):
            raise ConfigTypeError(
                f"text must be a string or an iterable of strings, got {type(text).__name__}"
            )
        else:
            pieces = text
        track = SpeechTrack(time.monotonic())
        book = self._book
        speech = Speech(core, book, self.config, track)
        feeder: threading.Thread | None = None
        if pieces is not None:
            feeder = threading.Thread(
                target=self._feed, args=(speech, pieces), name="dashscope_sync-speak", daemon=True
            )
            speech._feeder = feeder
        with self._turn_changed:
            if self._shut or core.is_closing:
                raise SessionClosedError("cannot speak: the session is closed")
            # Queued and opened together, under the turn lock: the book sees the
            # speeches in the order they will reach the wire, the call order.
            core.change(lambda: book.open(track))
            self._turns.append(track)
            if feeder is not None:
                self._feeders.add(feeder)
        if feeder is not None:
            try:
                feeder.start()
            except BaseException as exc:
                self._fail(track, _start_error(exc))
                self._end_turn(track)
                with self._turn_changed:
                    self._feeders.discard(feeder)
                raise
            return speech  # at once: the feeder waits for its turn, not the caller
        assert isinstance(text, str)
        try:
            self._await_turn(track, Deadline(self.config.request_timeout))
            if core.peek(lambda: track.finished):
                return speech  # cancelled while it waited: nothing of it goes out
            self._send_piece(speech, text)
            self._commit(speech)
        except DashScopeError as exc:
            self._fail(track, exc)
            raise
        finally:
            self._end_turn(track)  # whatever happened, the next speech may send
        return speech

    def _await_turn(self, track: SpeechTrack, deadline: Deadline) -> None:
        """Wait until ``track`` is first in line for the wire (the speeches before it
        sent their text), woken by each turn passing on and by close().

        Raises:
            SessionClosedError: close() started first.
            DashScopeTimeout: Not its turn by ``deadline``.
        """
        with self._turn_changed:
            while self._turns[0] is not track:
                if self._shut:
                    raise SessionClosedError("cannot speak: the session closed first")
                left = deadline.remaining()
                if left is not None and left <= 0:
                    raise DashScopeTimeout(
                        f"speak() timed out after {seconds(deadline.timeout)} waiting for an "
                        "earlier speech's text source (config.request_timeout)",
                        timeout=deadline.timeout,
                    )
                self._turn_changed.wait(left)
            if self._shut:
                raise SessionClosedError("cannot speak: the session closed first")

    def _end_turn(self, track: SpeechTrack) -> None:
        """``track`` sent its text (or gave up): the next speech may send."""
        with self._turn_changed:
            with contextlib.suppress(ValueError):
                self._turns.remove(track)
            self._turn_changed.notify_all()

    def _fail(self, track: SpeechTrack, error: DashScopeError) -> None:
        """Fail a speech that could not send its text (waking its waiters)."""
        book = self._book
        self._core.change(lambda: book.fail(track, error, time.monotonic()))

    def _feed(self, speech: Speech, pieces: Iterable[str]) -> None:
        """The speech thread: wait for the wire, append each piece as it comes, then commit."""
        core = self._core
        track = speech._track
        try:
            self._await_turn(track, Deadline(None))  # unbounded, but close() wakes it
            if core.peek(lambda: track.finished):
                return  # cancelled while it waited: its source is never started
            source = _Source(pieces, lambda: not self._shut and not track.finished)
            self._start_source(source)
            try:
                while True:
                    batch = source.take()
                    if self._shut:
                        # close() came while the source was producing a piece: send
                        # it nothing more and pull no further piece.
                        raise SessionClosedError("the session closed while the text source ran")
                    if track.finished:
                        break  # cancelled, or the server refused one of its frames
                    if batch is None:
                        if source.error is not None:
                            raise source.error
                        break
                    self._send_pieces(speech, batch)
            finally:
                source.stop()
                with self._turn_changed:
                    self._sources.discard(source)
            if track.finished:
                if not track.cancelled and not core.is_closing:
                    # Refused: its text still buffered would be spoken with the next speech.
                    with contextlib.suppress(DashScopeError):
                        core.send_simple("input_text_buffer.clear")
                return
            if not speech._text:
                raise ConfigError("the text pieces were all empty: nothing to speak")
            self._commit(speech)
        except BaseException as exc:
            error = exc if isinstance(exc, DashScopeError) else _source_error(exc)
            book = self._book
            core.change(lambda: book.fail(track, error, time.monotonic()))
            if speech._text and not core.is_closing and not self._shut:
                with contextlib.suppress(DashScopeError):
                    core.send_simple("input_text_buffer.clear")
        finally:
            self._end_turn(track)
            with self._turn_changed:
                self._feeders.discard(threading.current_thread())

    def _start_source(self, source: _Source) -> None:
        """Start the thread pulling ``source`` (the feeder's turn came)."""
        puller = threading.Thread(
            target=self._pull, args=(source,), name="dashscope_sync-speak-source", daemon=True
        )
        with self._turn_changed:
            if self._shut:
                raise SessionClosedError("the session closed before the text source started")
            self._feeders.add(puller)
            self._sources.add(source)
        try:
            puller.start()
        except BaseException as exc:
            with self._turn_changed:
                self._feeders.discard(puller)
                self._sources.discard(source)
            raise _start_error(exc) from exc

    def _pull(self, source: _Source) -> None:
        """The source's thread: pull its pieces for the feeder (see `_Source`)."""
        try:
            source.run()
        finally:
            with self._turn_changed:
                self._feeders.discard(threading.current_thread())

    def _send_pieces(self, speech: Speech, batch: list[object]) -> None:
        """Append the pieces already pulled with one write, each its own frame (empty
        ones skipped); each is registered with its speech before any goes out."""
        core = self._core
        frames: list[str] = []
        sent: list[tuple[str, str]] = []
        wrong: type | None = None
        for piece in batch:
            if not isinstance(piece, str):
                wrong = type(piece)  # the pieces before it still go out, as they came
                break
            if piece:
                event_id = core.ids.next()
                frames.append(encode_text_append(event_id, piece))
                sent.append((event_id, piece))
        if frames:
            book = self._book
            track = speech._track
            now = time.monotonic()

            def register() -> None:
                for event_id, piece in sent:
                    book.sent(track, event_id, now, piece)

            core.peek(register)
            speech._text.extend(piece for _, piece in sent)
            core.send_many(frames, "input_text_buffer.append")
        if wrong is not None:
            raise ConfigTypeError(f"text pieces must be strings, got {wrong.__name__}")

    def _send_piece(self, speech: Speech, piece: str) -> None:
        core = self._core
        event_id = core.ids.next()
        frame = encode_text_append(event_id, piece)
        book = self._book
        track = speech._track
        core.peek(lambda: book.sent(track, event_id, time.monotonic(), piece))
        speech._text.append(piece)
        core.send(frame, "input_text_buffer.append")

    def _commit(self, speech: Speech) -> None:
        core = self._core
        event_id = core.ids.next()
        book = self._book
        track = speech._track
        if not core.peek(lambda: book.commit_sent(track, event_id)):
            return  # cancelled meanwhile: its cancel clears its text instead
        core.send(encode_simple(event_id, "input_text_buffer.commit"), "input_text_buffer.commit")

    # The wire operations -----------------------------------------------------------

    def append_text(self, text: str) -> str:
        """Send one ``input_text_buffer.append`` (no answer comes); its event id.

        Audio the server makes of it goes to no `Speech` (read it as events).

        Raises:
            ConfigTypeError, ConfigError: ``text`` is not a non-empty string.
        """
        _check_text(text)
        event_id = self._core.ids.next()
        self._core.send(encode_text_append(event_id, text), "input_text_buffer.append")
        return event_id

    def commit_text(self) -> str:
        """Send ``input_text_buffer.commit``: synthesise what is buffered now; its event id."""
        return self._core.send_simple("input_text_buffer.commit")

    def clear_text(self) -> str:
        """Send ``input_text_buffer.clear``: drop the text not synthesised yet; its event id."""
        return self._core.send_simple("input_text_buffer.clear")

    @property
    def metrics(self) -> Metrics:
        """The latency figures of the session's speeches so far: a `Metrics` snapshot.

        One value per speech that finished whole (not cancelled or failed):
        ``first_audio_delay`` (from its first text sent to its first audio)
        and ``total_time`` (to its end), as its `SpeechResult` has them.
        May be read from any thread: each read copies them under the
        session's lock.
        """
        return self._core.speech_metrics()

    def interrupt(self) -> int:
        """Cancel every speech still speaking (`Speech.cancel`); how many were."""
        core = self._core
        book = self._book
        tracks = core.peek(book.speaking)
        count = 0
        for track in tracks:
            if Speech(core, book, self.config, track).cancel():
                count += 1
        return count

    def finish(self, timeout: float | NotGiven | None = NOT_GIVEN) -> SessionFinished | None:
        """End the session: ``session.finish``, then wait for ``session.finished``.

        The server sends the audio still due before ``session.finished``, so
        every committed `Speech` is complete when this returns. The
        connection is then closed, whoever closes first (the docs disagree on
        whether the server or the client does). Returns the
        ``session.finished`` event, or None if the server closed without it.

        Raises:
            DashScopeTimeout: No answer within ``timeout`` (default
                ``config.request_timeout``).
            APIError: The server refused ``session.finish``.
        """
        core = self._core
        limit = self.config.request_timeout if timeout is NOT_GIVEN else check_timeout(timeout)
        core.check_can_block("finish()")
        deadline = Deadline(limit)
        try:
            self._await_sent(deadline, limit)
            request = core.finish_session()
            result = core.await_request(request, deadline.remaining(), "finish()")
        except SessionClosedError:
            self.close()
            return None
        except DashScopeTimeout:
            raise
        except BaseException:
            self.close()
            raise
        self.close()
        assert isinstance(result, SessionFinished)
        return result

    def _await_sent(self, deadline: Deadline, limit: float | None) -> None:
        """Wait until every speech started before has sent its text (woken by each
        turn passing on, and by close()).

        Raises:
            SessionClosedError: close() started first.
            DashScopeTimeout: A text source still running at ``deadline``.
        """
        with self._turn_changed:
            earlier = set(map(id, self._turns))
            while earlier.intersection(map(id, self._turns)):
                if self._shut:
                    raise SessionClosedError("finish(): the session closed first")
                left = deadline.remaining()
                if left is not None and left <= 0:
                    raise DashScopeTimeout(
                        f"finish() timed out after {seconds(limit)} waiting for a speech's "
                        "text source",
                        timeout=limit,
                    )
                self._turn_changed.wait(left)

    # Audio output ------------------------------------------------------------------

    def attach(self, *, speaker: SpeakerLike, barge_in: bool = True) -> None:
        """Play every speech through ``speaker`` (a `Speaker`) as its audio arrives.

        With ``barge_in``, `Speech.cancel` and `interrupt` stop the speaker at
        once (what it had queued is dropped); without, the audio already
        written plays out.

        Raises:
            ConfigError: The session's format is not PCM, or the speaker's
                rate needs the ``[audio]`` extra's resampler.
            UsageError: A speaker is attached already.
        """
        core = self._core
        if self.config.response_format != "pcm":
            raise ConfigError(
                f"a speaker plays PCM; this session's response_format is "
                f"{self.config.response_format!r}"
            )
        if core.output is not None:
            raise UsageError("a speaker is attached already: detach() first")
        rate = self.config.sample_rate
        resampler_for(rate, speaker.rate)  # no resampler: refused now, not mid-speech
        attachment = Attachment(speaker, None, lambda: rate)
        attachment.handles = [
            self.on(ResponseCreated, attachment.on_created),
            self.on(ResponseAudioDelta, attachment.on_audio),
            self.on(ResponseAudioDone, attachment.on_audio_done),
        ]
        self._attachment = attachment
        core.output = attachment if barge_in else None
        self._speaker_attached()

    def detach(self) -> None:
        """Undo `attach`; the speaker stays open (it is yours)."""
        attachment = self._attachment
        if attachment is None:
            return
        self._attachment = None
        self._core.output = None
        attachment.detach()
        self._speaker_detached(attachment)

    def _attachment_for_recording(self) -> Attachment | None:
        return self._attachment

    def _recording_rates(self) -> tuple[Callable[[], int | None], Callable[[], int | None]]:
        # Text in; the speech's audio out, when it is PCM.
        rate = self.config.sample_rate if self.config.response_format == "pcm" else None
        return (lambda: None), (lambda: rate)

    def _before_close(self) -> None:
        self.detach()
        self._stop_feeders()

    def _stop_feeders(self) -> None:
        """Tell the speeches still to send that the session is closing, and join the
        feeder threads within ``config.handler_timeout`` (one deadline for all); a
        feeder still inside the user's text source then is named in a warning and
        left behind (it sends nothing more when the source returns)."""
        with self._turn_changed:
            self._shut = True
            self._turn_changed.notify_all()
            for source in self._sources:
                source.stop()
            feeders = [t for t in self._feeders if t is not threading.current_thread()]
        limit = self.config.handler_timeout
        deadline = Deadline(limit)
        for feeder in feeders:
            left = deadline.remaining()
            feeder.join(None if left is None else max(left, 0.0))
        stuck = [feeder.name for feeder in feeders if feeder.is_alive()]
        if stuck:
            logger.warning(
                "%d speak() text source(s) still running after %s (waiting for the next "
                "piece); leaving %s behind: it sends nothing more",
                len(stuck),
                seconds(limit),
                ", ".join(stuck),
            )


# How many pieces a text source's thread pulls ahead of the feeder sending them.
_PULL_AHEAD: Final = 256


class _Source:
    """A speech's text source, pulled on a thread of its own into a bounded queue.

    The feeder takes every piece pulled so far at once and sends them with one
    write: a piece that comes alone goes out alone, at once, and pieces that
    come faster than the wire takes them share a system call. The source is
    not pulled again once ``may_pull`` says no (close, cancel, refusal) or the
    feeder stopped it; the pull under way when that happens runs to its end.
    """

    def __init__(self, pieces: Iterable[object], may_pull: Callable[[], bool]) -> None:
        self._pieces = pieces
        self._may_pull = may_pull
        # Guards what follows; notified when pieces come, are taken, or it ends.
        self._changed = threading.Condition()
        self._queue: collections.deque[object] = collections.deque()
        self._ended = False
        self._stopped = False
        # What the source raised (read by the feeder once it ended).
        self.error: BaseException | None = None

    def run(self) -> None:
        changed = self._changed
        queue = self._queue
        try:
            pieces = iter(self._pieces)
            while True:
                with changed:
                    while len(queue) >= _PULL_AHEAD and not self._stopped:
                        changed.wait()
                    if self._stopped:
                        return
                if not self._may_pull():
                    return
                try:
                    piece = next(pieces)
                except StopIteration:
                    return
                with changed:
                    queue.append(piece)
                    if len(queue) == 1:
                        changed.notify_all()
        except BaseException as exc:
            self.error = exc
        finally:
            with changed:
                self._ended = True
                changed.notify_all()

    def take(self) -> list[object] | None:
        """Wait for pieces: every one pulled and not yet taken, or None once the
        source ended (see ``error``) or was stopped with nothing left."""
        changed = self._changed
        queue = self._queue
        with changed:
            while not queue and not self._ended and not self._stopped:
                changed.wait()
            if not queue:
                return None
            batch = list(queue)
            queue.clear()
            changed.notify_all()
            return batch

    def stop(self) -> None:
        """Pull no further piece, and wake the feeder waiting for one."""
        with self._changed:
            self._stopped = True
            self._changed.notify_all()


def _start_error(exc: BaseException) -> DashScopeError:
    error = UsageError(f"speak() could not start its thread: {type(exc).__name__}: {exc}")
    error.__cause__ = exc
    return error


def _source_error(exc: BaseException) -> DashScopeError:
    error = UsageError(f"the text source of speak() raised {type(exc).__name__}: {exc}")
    error.__cause__ = exc
    return error


class SpeechService:
    """``client.speech``: opens Qwen-TTS-Realtime sessions, or speaks one text.

    Thread safety: stateless beyond its client; use from any thread.
    """

    def __init__(self, open_core: OpenCore) -> None:
        self._open_core = open_core

    def connect(
        self,
        config: SpeechConfig | str | None = None,
        *,
        model: str | None = None,
        voice: str | None = None,
        timeout: float | NotGiven | None = NOT_GIVEN,
        **options: Any,
    ) -> SpeechSession:
        """Open a session, send its configuration, and return it once the server accepted it.

        Args:
            config: The session's options; or the model's name (as ``model=``);
                or give ``model=``, ``voice=`` and any other `SpeechConfig`
                field as keywords.
            timeout: Seconds for the upgrade, ``session.created`` and
                ``session.updated`` together; None for no limit; default the
                client's ``connect_timeout``.

        Returns:
            A ready `SpeechSession` (``session.info`` is the accepted configuration).

        Raises:
            ConfigError: A bad option (before any network traffic).
            APIError: The server refused the connection or the configuration.
            AuthenticationError, RateLimitError, TransportError, DashScopeTimeout:
                as `RealtimeService.connect`.
        """
        if isinstance(config, str):
            if model is not None:
                raise ConfigError("give the model once: as the first argument or as model=")
            config, model = None, config
        if config is None:
            fields = dict(options)
            if model is not None:
                fields["model"] = model
            if voice is not None:
                fields["voice"] = voice
            # Unknown keywords refused by name, not by catching TypeError: that
            # would also turn a field's ConfigTypeError into a plain ConfigError.
            unknown = sorted(set(fields) - {field.name for field in attrs.fields(SpeechConfig)})
            if unknown:
                raise ConfigError(f"bad SpeechConfig option: {', '.join(unknown)}")
            config = SpeechConfig(**fields)
        elif not isinstance(config, SpeechConfig):
            raise ConfigError(f"config must be a SpeechConfig, got {config!r}")
        elif model is not None or voice is not None or options:
            raise ConfigError("give the options either in config or as keywords, not both")
        realtime = config.realtime_config()
        started = time.monotonic()
        book = SpeechBook(config.mode)
        core, deadline, limit = self._open_core(realtime, timeout, lambda c: c.keep_speeches(book))
        try:
            _configure(core, book, config, deadline, limit)
        except BaseException:
            core.abort()
            raise
        core.opened()
        session = SpeechSession(core, config, book)
        logger.debug(
            "speech session %s ready in %.3f s (model %s)",
            session.id,
            time.monotonic() - started,
            config.model,
        )
        return session

    def synthesize(
        self,
        text: str | Iterable[str],
        *,
        model: str | None = None,
        voice: str | None = None,
        timeout: float | None = None,
        **options: Any,
    ) -> SpeechResult:
        """Speak one text in a session of its own: connect, speak, finish; the `SpeechResult`.

        Args:
            text: The text (or an iterable of pieces).
            timeout: The longest time for the whole call; None for no limit.
            options: Any other `SpeechConfig` field (``response_format``...).

        Raises:
            DashScopeError: The errors of `connect`, `SpeechSession.speak` and
                `Speech.wait`.
        """
        if isinstance(text, str):
            _check_text(text)
        deadline = Deadline(check_timeout(timeout))
        connect_in: float | NotGiven | None = NOT_GIVEN if timeout is None else deadline.remaining()
        with self.connect(model=model, voice=voice, timeout=connect_in, **options) as session:
            speech = session.speak(text)
            session.finish(timeout=deadline.remaining())
            return speech.wait(deadline.remaining())


def _configure(
    core: SessionCore,
    book: SpeechBook,
    config: SpeechConfig,
    deadline: Deadline,
    limit: float | None,
) -> None:
    """Send the ``session.update`` and wait for ``session.updated`` (or the error refusing it).

    The current docs' errors name no event and no field: any error before
    any text is the update's refusal.
    """
    event_id = core.ids.next()
    session = config.session()
    text = dumps({"event_id": event_id, "type": "session.update", "session": session})
    request = core.request(RequestKind.UPDATE, event_id, text, "session.update", session)

    def ready() -> SessionUpdated | None:
        if request.error is not None:
            raise request.error
        if request.answer is not None:
            assert isinstance(request.answer, SessionUpdated)
            return request.answer
        if book.errors:
            raise APIError.from_event(book.errors[0])
        return None

    try:
        core.wait(ready, deadline, "connect()")
    except DashScopeTimeout:
        raise DashScopeTimeout(
            f"no session.updated within {seconds(limit)} of connecting", timeout=limit
        ) from None
