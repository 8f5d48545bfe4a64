"""Feeding audio into a session from a background thread, at real-time pace.

Pacing follows a schedule of deadlines from one start time (chunk ``i`` is due
at ``start + i * chunk_seconds``), so a late wake-up never accumulates into
drift: the next chunk is simply due sooner. A machine so loaded that the feed
falls more than `MAX_LAG` behind restarts the schedule from now instead of
bursting the backlog (counted in `AudioFeed.slips`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from os import PathLike
from typing import TYPE_CHECKING, Final, Protocol, TypeGuard, cast

from .._constants import INPUT_SAMPLE_RATE
from .._deadline import check_timeout
from .._errors import ConfigError, DashScopeError
from .._fmt import seconds
from .files import chunks, load_audio
from .inputs import pcm16_buffer

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = ["MAX_LAG", "AudioFeed", "AudioSink", "stream_file", "stream_pcm"]

logger = logging.getLogger("dashscope_sync")

#: How far behind its schedule a real-time feed may fall before it restarts the
#: schedule rather than sending the backlog at once.
MAX_LAG: Final = 0.5


class AudioSink(Protocol):
    """What a feed needs of a session: ``append_audio``."""

    def append_audio(self, pcm: bytes | bytearray | memoryview) -> str: ...


class AudioFeed:
    """A running feed of audio into a session, from `stream_file` or `stream_pcm`.

    Attributes:
        sent_seconds: Audio appended so far, in seconds.
        max_lag: The latest any chunk went out after its deadline, in seconds
            (0 when not real-time): how well the pacing held.
        slips: Times the feed fell more than `MAX_LAG` behind and restarted its schedule.

    Thread safety: every method may be called from any thread.
    """

    def __init__(
        self,
        sink: AudioSink,
        pieces: list[bytes],
        *,
        realtime: bool,
        sample_rate: int = INPUT_SAMPLE_RATE,
    ) -> None:
        self._sink = sink
        self._pieces = pieces
        self._realtime = realtime
        self._rate = sample_rate
        # The stop flag, and what the feed thread waits on between chunks.
        self._stop = threading.Event()
        # Set when the feed thread has ended (all sent, stopped, or failed).
        self._finished = threading.Event()
        self.sent_seconds = 0.0
        self.max_lag = 0.0
        self.slips = 0
        self.error: DashScopeError | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        state = "done" if self.done else "running"
        return f"<AudioFeed {seconds(self.sent_seconds)} sent, {state}>"

    def start(self) -> AudioFeed:
        """Start the feed thread (once); returns the feed."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run,
                name="dashscope_sync-feed",
                # Daemon: a feed blocked on a dead session must not hold the
                # interpreter open; stop() and the session's close end it.
                daemon=True,
            )
            self._thread.start()
        return self

    @property
    def done(self) -> bool:
        """True once everything was sent, or the feed was stopped or failed."""
        return self._finished.is_set()

    def stop(self, timeout: float | None = 5.0) -> None:
        """Stop sending (after the chunk being sent, if any) and wait for the thread; idempotent."""
        self._stop.set()
        self.wait(timeout)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the feed to end; True if it did within ``timeout`` seconds.

        Raises:
            DashScopeError: The send that failed (for example `SessionClosedError`).
        """
        timeout = check_timeout(timeout)
        ended = self._finished.wait(timeout)
        thread = self._thread
        if ended and thread is not None and thread is not threading.current_thread():
            thread.join()
        if self.error is not None:
            raise self.error
        return ended

    def _run(self) -> None:
        try:
            self._feed()
        except DashScopeError as exc:
            self.error = exc
            logger.debug("audio feed stopped: %s", exc)
        except BaseException:  # pragma: no cover - last resort: never die silently
            logger.exception("unexpected internal error in the audio feed")
            self.error = DashScopeError("the audio feed failed; see the log")
        finally:
            self._finished.set()

    def _feed(self) -> None:
        stop, append, rate = self._stop, self._sink.append_audio, self._rate
        start = time.monotonic()
        scheduled = 0.0  # seconds of audio since `start`: when the next chunk is due
        for piece in self._pieces:
            if self._realtime:
                due = start + scheduled
                early = due - time.monotonic()
                if early > 0 and stop.wait(early):
                    return
                lag = time.monotonic() - due
                self.max_lag = max(self.max_lag, lag)
                if lag > MAX_LAG:
                    self.slips += 1
                    start, scheduled = time.monotonic(), 0.0
            if stop.is_set():
                return
            append(piece)
            seconds = len(piece) / 2 / rate
            scheduled += seconds
            self.sent_seconds += seconds


def stream_pcm(
    session: AudioSink,
    pcm: Buffer | Iterable[Buffer],
    *,
    realtime: bool = True,
    chunk_ms: int = 100,
) -> AudioFeed:
    """Append 16 kHz mono PCM16 to a session from a background thread; returns the running feed.

    Args:
        session: The session (anything with ``append_audio``).
        pcm: The audio (any buffer `chunks` takes: ``bytes``, a numpy
            ``int16`` array...), or an iterable of such chunks already cut.
        realtime: Send at the pace the audio plays (as a microphone would);
            False sends as fast as the socket takes it.
        chunk_ms: The length of each ``input_audio_buffer.append``.
    """
    if _is_buffer(pcm):
        # One signal, even when iterable: a numpy array iterates sample by sample.
        pieces = list(chunks(pcm, chunk_ms))
    else:  # chunks already cut
        cut = cast("Iterable[Buffer]", pcm)
        pieces = [bytes(pcm16_buffer(piece, "a chunk", allow_empty=True)) for piece in cut]
    if not pieces or not any(pieces):
        raise ConfigError("there is no audio to stream")
    return AudioFeed(session, [p for p in pieces if p], realtime=realtime).start()


def _is_buffer(value: object) -> TypeGuard[Buffer]:
    try:
        memoryview(value)  # type: ignore[arg-type]
    except TypeError:
        return False
    return True


def stream_file(
    session: AudioSink,
    path: str | PathLike[str],
    *,
    realtime: bool = True,
    chunk_ms: int = 100,
) -> AudioFeed:
    """Stream an audio file into a session from a background thread; returns the running feed.

    The file is read with `load_audio` (any WAV; FLAC/OGG/MP3 with
    `soundfile`) before the thread starts, so a bad file raises here. Chunks
    of ``chunk_ms`` go out with ``append_audio``, at real-time pace by default
    (a deadline schedule that does not drift). ``feed.stop()`` stops it,
    ``feed.wait()`` waits for the end and raises the send error, if any.

    Raises:
        ConfigError: The file cannot be read (see `load_audio`).
    """
    return stream_pcm(session, load_audio(path), realtime=realtime, chunk_ms=chunk_ms)
