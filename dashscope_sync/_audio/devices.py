"""A speaker and a microphone over PortAudio (``sounddevice``, the ``[audio]`` extra).

Both take an explicit block size and latency (PortAudio's defaults are
unusable on some hosts, AUDIO.md), and an injectable stream: ``stream=`` is any
object with the methods of a ``sounddevice`` raw stream that they use, so the
jitter buffer, interrupt, played-sample accounting and queue bounds run in
tests with no device, through the same code as with one.

`Speaker` writes from its own thread to a write-mode (blocking) output stream:
callback-mode players underrun whenever the GIL is busy (PEERS.md, pain G).
`Microphone` captures in PortAudio's callback, which only copies the block
into a bounded queue and never blocks.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, Protocol

from .._constants import INPUT_SAMPLE_RATE, OUTPUT_SAMPLE_RATE
from .._deadline import Deadline, check_timeout
from .._errors import AudioDeviceError, ConfigError, DashScopeError, DashScopeTimeout
from .._fmt import seconds
from .inputs import pcm16_buffer
from .resample import AUDIO_EXTRA_HINT, resampler_for

if TYPE_CHECKING:
    from typing_extensions import Buffer

    from .attach import SpeakerLike
    from .feed import AudioSink
    from .resample import Resampler

__all__ = ["Microphone", "OutputStreamLike", "InputStreamLike", "Speaker", "import_sounddevice"]

logger = logging.getLogger("dashscope_sync")

#: PortAudio's system library, by the Debian/Ubuntu package that ships it.
PORTAUDIO_PACKAGE: Final = "libportaudio2"
#: The speaker gives each block to the device in pieces this long, checking
#: for an interrupt between them: how long an interrupt may wait for a write.
_WRITE_PIECE_MS: Final = 10


def import_sounddevice() -> Any:
    """Import sounddevice, or say exactly what to install."""
    try:
        import sounddevice
    except ImportError:
        raise ConfigError(
            f"the microphone and speaker need the [audio] extra: {AUDIO_EXTRA_HINT}"
        ) from None
    except OSError as exc:  # "PortAudio library not found"
        raise ConfigError(
            f"sounddevice cannot load the PortAudio system library ({exc}); install it: "
            f"`apt-get install {PORTAUDIO_PACKAGE}` on Debian/Ubuntu, "
            "`brew install portaudio` on macOS"
        ) from exc
    return sounddevice


class OutputStreamLike(Protocol):
    """What `Speaker` uses of an output stream (``sounddevice.RawOutputStream``)."""

    @property
    def latency(self) -> float: ...

    def start(self) -> None: ...

    def write(self, data: bytes) -> object: ...

    def abort(self) -> None: ...

    def close(self) -> None: ...


class InputStreamLike(Protocol):
    """What `Microphone` uses of an input stream (``sounddevice.RawInputStream``)."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def close(self) -> None: ...


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{name} must be a positive whole number, got {value!r}")
    return value


def _positive_seconds(name: str, value: object) -> float:
    checked = check_timeout(value, name)
    if checked is None or checked <= 0:
        raise ConfigError(f"{name} must be a positive number of seconds, got {value!r}")
    return checked


def capture_rate(sd: Any, device: int | str | None, rate: int) -> int:
    """``rate`` if the input device can capture at it, else the device's native rate."""
    return _device_rate(sd, device, rate, "input")


def playback_rate(sd: Any, device: int | str | None, rate: int) -> int:
    """``rate`` if the output device can play at it, else the device's native rate."""
    return _device_rate(sd, device, rate, "output")


def _device_rate(sd: Any, device: int | str | None, rate: int, kind: str) -> int:
    # A sound server (PipeWire, PulseAudio, CoreAudio) converts any rate; a
    # bare ALSA hw device often takes only 44.1 or 48 kHz.
    check = sd.check_input_settings if kind == "input" else sd.check_output_settings
    try:
        check(device=device, samplerate=rate, channels=1, dtype="int16")
        return rate
    except Exception as exc:  # sounddevice.PortAudioError: invalid sample rate, no device
        try:
            native = int(sd.query_devices(device, kind)["default_samplerate"])
        except Exception:
            raise AudioDeviceError(f"cannot open the {kind} device {device!r}: {exc}") from exc
        logger.debug("%s device %r cannot take %d Hz; using %d Hz", kind, device, rate, native)
        return native


class Speaker:
    """Plays 24 kHz mono PCM16 as it arrives, with a jitter buffer; stops at once on demand.

    ``write(pcm)`` queues audio and returns at once (it waits only when
    ``max_buffer_seconds`` are already queued). A player thread writes
    ``block_ms`` blocks to a write-mode PortAudio stream. Playback starts
    once ``jitter_ms`` of audio is queued (or `mark_end` says no more is
    coming), so network jitter does not become clicks; when the queue runs
    dry mid-stream (not after `mark_end`), the device would play a gap:
    that is counted in `underruns`, and the jitter buffer refills before
    playback resumes.

    `interrupt` drops everything queued and aborts the stream, discarding
    what sits in the device buffer: sound stops at once (the player thread
    waits for room in the device where an interrupt wakes it, never inside a
    blocking write, when the stream says its room, as sounddevice's do).
    `played_seconds` counts what reached the listener: audio written to the
    device, less what is still inside it (the output latency PortAudio
    reports), less what an interrupt discarded.

    A device that cannot play at ``rate`` is opened at ``device_rate`` and
    the audio is resampled on the player thread (soxr, streaming); the
    accounting stays in seconds of the audio written.

    Opening the device happens in `start` (or ``with Speaker() as speaker``),
    never in the constructor.

    Thread safety: every method may be called from any thread.

    Args:
        rate: Sample rate of the audio written (24000: the service's output).
        device: A PortAudio device (index or name); None for the default.
        device_rate: Play at this rate, resampling from ``rate``. By default
            ``rate`` if the device supports it, else the device's native rate.
        block_ms: The block the player writes; bounds how late `interrupt` stops sound.
        latency: PortAudio's suggested output latency, in seconds.
        jitter_ms: Audio to queue before playback starts or resumes.
        max_buffer_seconds: The most audio queued; `write` waits for room past it.
        stream: An output stream to use instead of opening a device (tests).
    """

    def __init__(
        self,
        rate: int = OUTPUT_SAMPLE_RATE,
        device: int | str | None = None,
        *,
        block_ms: int = 50,
        latency: float = 0.1,
        jitter_ms: int = 100,
        max_buffer_seconds: float = 300.0,
        device_rate: int | None = None,
        stream: OutputStreamLike | None = None,
    ) -> None:
        self.rate = _positive_int("rate", rate)
        self.device = device
        # None: play at `rate` if the device can, else at its native rate (start()).
        self._asked_rate = (
            None if device_rate is None else _positive_int("device_rate", device_rate)
        )
        self.device_rate = self.rate if self._asked_rate is None else self._asked_rate
        # Converts each block to device_rate; used by the player thread only.
        self._resampler: Resampler | None = None
        self.block_ms = _positive_int("block_ms", block_ms)
        self.latency = _positive_seconds("latency", latency)
        if isinstance(jitter_ms, bool) or not isinstance(jitter_ms, int) or jitter_ms < 0:
            raise ConfigError(f"jitter_ms must be a whole number >= 0, got {jitter_ms!r}")
        self._block_bytes = max(2, self.rate * self.block_ms // 1000 * 2)
        self._jitter_bytes = self.rate * jitter_ms // 1000 * 2
        self._max_bytes = (
            int(_positive_seconds("max_buffer_seconds", max_buffer_seconds) * self.rate) * 2
        )
        self._stream: OutputStreamLike | None = stream
        self._owns_stream = stream is None
        # Guards everything below; the condition wakes the player thread (new
        # audio, an interrupt, close) and the waiters of write() and drain().
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._queue = bytearray()  # the jitter buffer: audio not yet given to the device
        self._prebuffering = True  # waiting for jitter_ms before (re)starting playback
        self._ended = False  # mark_end(): a dry queue now is the end, not an underrun
        self._active = False  # audio is playing (or queued in the device)
        self._abort = False  # interrupt(): the player must abort the device buffer
        self._generation = 0  # bumped by interrupt(): a block written across it is not heard
        self._closed = False
        # The device timeline: (start, end, frames) of each block written, in
        # monotonic seconds; blocks wholly heard are folded into _heard_frames.
        self._timeline: collections.deque[tuple[float, float, int]] = collections.deque()
        self._heard_frames = 0
        self._play_end = 0.0  # when everything given to the device will have been heard
        # A block taken off the queue whose write has not reached _play_end yet: the queue
        # is empty and _play_end stale meanwhile, yet that block is still to be heard.
        self._writing = False
        self._written_frames = 0  # accepted by write(), less what interrupt() discarded
        self.underruns = 0
        self.interrupts = 0
        self._thread: threading.Thread | None = None
        self._device_latency = self.latency
        self._ask_room = False  # set by start(): see there
        # Called with each block as it goes to the device (the echo canceller's
        # far end); replaced whole, read by the player thread without a lock.
        self._tap: Callable[[bytes], None] | None = None
        # notify_playback(): (position in written frames, callback) to call
        # when that sample is given to the device, oldest first.
        self._watches: collections.deque[tuple[int, Callable[[float], None]]] = collections.deque()
        # When the sound the latest interrupt() stopped went silent (monotonic
        # seconds); None while the player thread has yet to abort the stream.
        self._silent_at: float | None = None

    def __repr__(self) -> str:
        device = "" if self.device_rate == self.rate else f" (device {self.device_rate} Hz)"
        return (
            f"<Speaker {self.rate} Hz{device} played={seconds(self.played_seconds)} "
            f"queued={seconds(self.queued_seconds)} underruns={self.underruns}>"
        )

    # Lifecycle -------------------------------------------------------------------

    def start(self) -> Speaker:
        """Open the device (unless a stream was given) and start the player; idempotent.

        Raises:
            ConfigError: The ``[audio]`` extra or PortAudio is missing.
            AudioDeviceError: The device cannot be opened.
        """
        with self._lock:
            if self._closed:
                raise DashScopeError("this Speaker is closed")
            if self._thread is not None:
                return self
        stream = self._stream
        if stream is None:
            sd = import_sounddevice()
            if self._asked_rate is None:
                self.device_rate = playback_rate(sd, self.device, self.rate)
        self._resampler = resampler_for(self.rate, self.device_rate)
        if stream is None:
            try:
                stream = sd.RawOutputStream(
                    samplerate=self.device_rate,
                    blocksize=self.device_rate * self.block_ms // 1000,
                    channels=1,
                    dtype="int16",
                    latency=self.latency,
                    device=self.device,
                )
            except Exception as exc:  # sounddevice.PortAudioError, ValueError
                raise AudioDeviceError(
                    f"cannot open the output device {self.device!r}: {exc}"
                ) from exc
            self._stream = stream
        try:
            stream.start()
        except Exception as exc:
            raise AudioDeviceError(f"cannot start the output stream: {exc}") from exc
        reported = getattr(stream, "latency", None)
        if isinstance(reported, (int, float)) and reported > 0:
            self._device_latency = float(reported)
        # sounddevice's streams say how much room they have (a stand-in may
        # not): the player thread then waits for room where an interrupt
        # wakes it, never inside a blocking write. Player thread only after this.
        self._ask_room = hasattr(type(stream), "write_available")
        thread = threading.Thread(target=self._run, name="dashscope_sync-speaker", daemon=True)
        with self._lock:
            self._thread = thread
        thread.start()
        return self

    def close(self) -> None:
        """Stop playing at once, end the player thread and close the device; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.clear()
            self._changed.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(5.0)
        stream = self._stream
        if stream is not None and self._owns_stream:
            try:
                stream.abort()
                stream.close()
            except Exception as exc:  # pragma: no cover - a device gone at close
                logger.debug("closing the output stream failed: %s", exc)

    def __enter__(self) -> Speaker:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # Writing ---------------------------------------------------------------------

    def write(self, pcm: Buffer, timeout: float | None = 10.0) -> None:
        """Queue audio to play; returns at once unless ``max_buffer_seconds`` are queued.

        ``pcm`` is mono PCM16 at ``rate``, as any buffer
        `RealtimeSession.append_audio` takes (``bytes``, a numpy ``int16``
        array...); no samples is nothing to do.

        Raises:
            ConfigError: Not mono 16-bit PCM (`ConfigTypeError` for float
                samples and other wrong types, saying how to convert).
            DashScopeTimeout: No room within ``timeout`` seconds.
            DashScopeError: The speaker is closed.
        """
        data = pcm16_buffer(pcm, "audio", allow_empty=True)
        if not len(data):
            return
        deadline = Deadline(check_timeout(timeout))
        with self._changed:
            while len(self._queue) + len(data) > self._max_bytes and not self._closed:
                remaining = deadline.remaining()
                if remaining is not None and remaining <= 0:
                    raise DashScopeTimeout(
                        f"the speaker's buffer stayed full for {seconds(timeout)}", timeout=timeout
                    )
                self._changed.wait(remaining)
            if self._closed:
                raise DashScopeError("this Speaker is closed")
            self._queue += data
            self._written_frames += len(data) // 2
            self._ended = False
            self._changed.notify_all()

    def mark_end(self) -> None:
        """Say no more audio is coming for now: what is queued plays out, and the
        queue running dry afterwards is the end, not an underrun."""
        with self._changed:
            self._ended = True
            self._changed.notify_all()

    def drain(self, timeout: float | None = None) -> bool:
        """Play out everything queued (implies `mark_end`).

        Returns:
            True if it was all heard within ``timeout`` seconds.
        """
        deadline = Deadline(check_timeout(timeout))
        with self._changed:
            self._ended = True
            self._changed.notify_all()
            while True:
                now = time.monotonic()
                if self._closed or (
                    not self._queue and not self._writing and now >= self._play_end
                ):
                    return True
                if self._thread is None:
                    return False  # never started: nothing will play
                remaining = deadline.remaining()
                if remaining is not None and remaining <= 0:
                    return False
                idle = not self._queue and not self._writing
                wake = max(0.001, self._play_end - now) if idle else None
                if remaining is not None:
                    wake = remaining if wake is None else min(wake, remaining)
                self._changed.wait(wake)

    def interrupt(self) -> None:
        """Stop the sound now: drop what is queued and what sits in the device buffer.

        Never blocks: the player thread aborts the device stream at once, or,
        with a stream that cannot say its room, once the 10 ms piece it is
        writing is accepted. `wait_silent` says when that happened.
        """
        with self._changed:
            now = time.monotonic()
            # Nothing sounding (the device played out at _play_end): silent
            # already; else silent once the player thread aborts the stream.
            self._silent_at = self._play_end if self._play_end <= now else None
            self._watches.clear()  # their samples were queued: they never play now
            discarded = len(self._queue) // 2
            self._queue.clear()
            # What the device holds but has not played is discarded too.
            kept: collections.deque[tuple[float, float, int]] = collections.deque()
            for start, end, frames in self._timeline:
                if start >= now:
                    discarded += frames
                elif end > now:
                    heard = int(frames * (now - start) / (end - start))
                    discarded += frames - heard
                    kept.append((start, now, heard))
                else:
                    kept.append((start, end, frames))
            self._timeline = kept
            self._written_frames -= discarded
            self._play_end = min(self._play_end, now)
            self._generation += 1
            self._abort = True
            self._prebuffering = True
            self._active = False
            self._ended = False
            self.interrupts += 1
            self._changed.notify_all()

    def wait_silent(self, timeout: float | None = 0.5) -> float | None:
        """Wait until the sound the latest `interrupt` stopped is silent.

        Returns:
            When it went silent (``time.monotonic()`` seconds): when the
            player thread's abort of the output stream returned, or when the
            device had played everything out if that was earlier. None if
            that did not happen within ``timeout`` seconds, or `interrupt`
            was never called.
        """
        deadline = Deadline(check_timeout(timeout))
        with self._changed:
            while self._silent_at is None and self.interrupts and not self._closed:
                remaining = deadline.remaining()
                if remaining is not None and remaining <= 0:
                    return None
                self._changed.wait(remaining)
            return self._silent_at

    def notify_playback(self, callback: Callable[[float], None]) -> None:
        """Call ``callback(at)`` once the next sample written reaches the device.

        ``at`` is when that sample sounds (``time.monotonic()`` seconds): when
        the block holding it was given to the device, plus what the device
        still held ahead of it. Called on the player thread; it must not
        block. Forgotten by `interrupt` (that sample never plays then).
        """
        with self._lock:
            self._watches.append((self._written_frames, callback))

    def set_tap(self, tap: Callable[[bytes], None] | None) -> None:
        """Call ``tap(block)`` on the player thread with each block given to the device
        (for an echo canceller's reference); None removes it. It must not block."""
        self._tap = tap

    # Accounting --------------------------------------------------------------------

    @property
    def played_seconds(self) -> float:
        """Seconds of audio that reached the listener (device latency accounted for)."""
        with self._lock:
            return self._heard_locked(time.monotonic()) / self.rate

    @property
    def device_latency(self) -> float:
        """The output latency the device reported when it opened (``latency`` until then), seconds:
        how long a sample given to it takes to sound when its buffer is full."""
        return self._device_latency

    @property
    def written_seconds(self) -> float:
        """Seconds of audio written, less what `interrupt` discarded: played + still to play."""
        return self._written_frames / self.rate

    @property
    def queued_seconds(self) -> float:
        """Seconds of audio waiting in the jitter buffer (not yet given to the device)."""
        return len(self._queue) / 2 / self.rate

    @property
    def closed(self) -> bool:
        """True once `close` was called (or the player thread ended)."""
        return self._closed

    @property
    def playing(self) -> bool:
        """Whether audio is queued or still sounding."""
        with self._lock:
            return bool(self._queue) or self._writing or time.monotonic() < self._play_end

    def _heard_locked(self, now: float) -> int:
        assert self._lock.locked()
        timeline = self._timeline
        while timeline and timeline[0][1] <= now:
            self._heard_frames += timeline.popleft()[2]
        heard = self._heard_frames
        for start, end, frames in timeline:
            if start >= now:
                break
            heard += int(frames * (now - start) / (end - start))
        return heard

    # The player thread ---------------------------------------------------------------

    def _due_watches_locked(self, given: int) -> list[tuple[int, Callable[[float], None]]]:
        """The watches whose sample is among the first ``given`` frames written."""
        assert self._lock.locked()
        watches = self._watches
        due = []
        while watches and watches[0][0] < given:
            due.append(watches.popleft())
        return due

    def _write_pieces(self, stream: OutputStreamLike, out: bytes, generation: int) -> None:
        """Write a block in pieces of `_WRITE_PIECE_MS`, never blocking inside PortAudio
        when the stream can say how much room it has; stop at an interrupt.

        A blocking write into a full device returns only at the device's next
        period (measured on PipeWire: up to 85 ms), and an interrupt would wait
        for it before the abort. Waiting for room here instead, on the
        condition `interrupt` notifies, the abort follows the interrupt at once
        (``interrupt_to_silence``).
        """
        step = max(2, self.device_rate * _WRITE_PIECE_MS // 1000 * 2)
        for start in range(0, len(out), step):
            piece = out[start : start + step]
            frames = len(piece) // 2
            while self._ask_room:
                try:
                    available = int(stream.write_available)  # type: ignore[attr-defined]
                except Exception as exc:  # a host API that cannot say: blocking writes
                    logger.debug("the output stream cannot say its room (%s)", exc)
                    self._ask_room = False
                    break
                if available >= frames:
                    break
                with self._changed:
                    if self._generation != generation or self._closed:
                        return
                    self._changed.wait((frames - available) / self.device_rate)
            # An unlocked read of an int: at worst one more piece is written,
            # and the abort that follows drops it.
            if self._generation != generation:
                return
            stream.write(piece)

    @staticmethod
    def _call_watch(callback: Callable[[float], None], at: float) -> None:
        try:
            callback(at)
        except Exception:
            logger.exception("a playback callback of the speaker failed")

    def _next_block_locked(self) -> tuple[bytes | None, float | None]:
        """The block to write now, or how long to wait (None: until notified)."""
        assert self._lock.locked()
        queue_, now = self._queue, time.monotonic()
        if queue_ and (not self._prebuffering or len(queue_) >= self._jitter_bytes or self._ended):
            self._prebuffering = False
            self._active = True
            block = bytes(queue_[: self._block_bytes])
            del queue_[: self._block_bytes]
            return block, None
        if self._active and now >= self._play_end:
            # The device ran out of audio.
            self._active = False
            self._prebuffering = True
            if not self._ended:
                self.underruns += 1
                logger.debug("speaker underrun (%d so far)", self.underruns)
            self._changed.notify_all()
            return None, None
        if self._active:
            return None, self._play_end - now
        return None, None

    def _run(self) -> None:
        stream = self._stream
        assert stream is not None
        try:
            self._play(stream)
        except Exception:
            logger.exception("unexpected internal error in the speaker's player thread")
        finally:
            with self._changed:
                self._closed = True
                self._changed.notify_all()

    def _play(self, stream: OutputStreamLike) -> None:
        while True:
            with self._changed:
                while True:
                    if self._closed:
                        return
                    if self._abort:
                        self._abort = False
                        block = None
                        break
                    block, wait = self._next_block_locked()
                    if block is not None:
                        break
                    self._changed.wait(wait)
                generation = self._generation
                self._writing = block is not None
                # Where the block starts among the frames written (the queue
                # holds the frames written after it).
                offset = self._written_frames - len(self._queue) // 2 - len(block or b"") // 2
                # The end of what was written: the resampler's held-back tail must play too.
                last = self._ended and not self._queue
            resampler = self._resampler
            if block is None:
                # interrupt(): drop what the device holds, and start afresh.
                if resampler is not None:
                    resampler.flush()  # the interrupted audio's tail is not played
                stream.abort()
                with self._changed:
                    if self._silent_at is None:
                        self._silent_at = time.monotonic()
                        self._changed.notify_all()
                stream.start()
                continue
            out = block
            if resampler is not None:
                out = resampler.process(block) + (resampler.flush() if last else b"")
            called = time.monotonic()
            if out:
                self._write_pieces(stream, out, generation)
            returned = time.monotonic()
            frames = len(block) // 2
            duration = frames / self.rate
            with self._changed:
                self._writing = False
                if generation != self._generation:
                    # Interrupted while writing: the block is discarded with the rest.
                    self._written_frames -= frames
                    if out:
                        # The device took it and sounds it until the abort
                        # the interrupt asked for (next round of the loop).
                        self._silent_at = None
                    continue
                if returned - called > duration / 4:
                    # The write waited for room: the device buffer is full, so
                    # this block ends playing one output latency from now.
                    end = max(self._play_end + duration, returned + self._device_latency)
                else:
                    # There was room: it plays right after what is queued
                    # (right away if the device had run dry).
                    end = max(self._play_end, returned) + duration
                self._timeline.append((end - duration, end, frames))
                self._play_end = end
                self._changed.notify_all()
                due = self._due_watches_locked(offset + frames)
            for position, callback in due:
                # When the watched sample sounds: the block's start, plus the
                # frames ahead of it in the block.
                self._call_watch(callback, end - duration + max(0, position - offset) / self.rate)
            tap = self._tap
            if tap is not None:
                try:
                    tap(block)
                except Exception:
                    logger.exception("the speaker's tap failed; removing it")
                    self._tap = None


class Microphone:
    """Captures mono PCM16 blocks at ``rate`` (16 kHz: what the service takes).

    PortAudio's callback only copies each block into a bounded queue; when
    the reader falls ``max_blocks`` behind, new blocks are dropped and
    counted in `overflows` (the callback never blocks). A device that
    cannot capture at ``rate`` is opened at ``device_rate`` and resampled
    (on the reader's side, never in the callback).

    Read blocks with `read`, or feed a session with `stream_to` (a thread
    appending each block as it comes). Opening the device happens in
    `start` (or ``with Microphone() as mic``), never in the constructor.

    Thread safety: every method may be called from any thread; one reader at a time.

    Args:
        rate: The rate of the blocks returned.
        block_ms: The block length.
        device: A PortAudio device (index or name); None for the default.
        device_rate: Capture at this rate and resample to ``rate``. By default
            ``rate`` if the device supports it, else the device's native rate.
        latency: PortAudio's suggested input latency, in seconds.
        max_blocks: The bound of the queue between the callback and the reader.
        stream: A factory ``stream(callback)`` returning an input stream to
            use instead of a device (tests); it calls
            ``callback(data, frames, time, status)`` as PortAudio does.
    """

    def __init__(
        self,
        rate: int = INPUT_SAMPLE_RATE,
        block_ms: int = 100,
        device: int | str | None = None,
        *,
        device_rate: int | None = None,
        latency: float = 0.1,
        max_blocks: int = 50,
        stream: Callable[[Callable[..., None]], InputStreamLike] | None = None,
    ) -> None:
        self.rate = _positive_int("rate", rate)
        self.block_ms = _positive_int("block_ms", block_ms)
        self.device = device
        # None: capture at `rate` if the device can, else at its native rate (start()).
        self._asked_rate = (
            None if device_rate is None else _positive_int("device_rate", device_rate)
        )
        self.device_rate = self.rate if self._asked_rate is None else self._asked_rate
        self.latency = _positive_seconds("latency", latency)
        self.max_blocks = _positive_int("max_blocks", max_blocks)
        self._factory = stream
        # Blocks from the callback to the reader; put_nowait only (the callback never waits).
        self._blocks: queue.Queue[bytes] = queue.Queue(self.max_blocks)
        self.overflows = 0  # blocks dropped because the reader fell behind
        self.status_flags = 0  # PortAudio input overflows reported to the callback
        self._stream: InputStreamLike | None = None
        self._resampler: Resampler | None = None
        # Guards _stream, _closed and the feed below.
        self._lock = threading.Lock()
        self._closed = False
        self._feed_thread: threading.Thread | None = None
        # The feed thread's stop flag.
        self._stop_feed = threading.Event()
        self.feed_error: DashScopeError | None = None

    def __repr__(self) -> str:
        return f"<Microphone {self.rate} Hz {self.block_ms} ms blocks overflows={self.overflows}>"

    def _callback(self, data: Any, frames: int, time_info: Any, status: Any) -> None:
        """PortAudio's callback: copy the block, never block."""
        if status:
            self.status_flags += 1
        try:
            self._blocks.put_nowait(bytes(data))
        except queue.Full:
            self.overflows += 1

    def start(self) -> Microphone:
        """Open the device (or the given stream) and start capturing; idempotent.

        Raises:
            ConfigError: The ``[audio]`` extra or PortAudio is missing.
            AudioDeviceError: The device cannot be opened.
        """
        with self._lock:
            if self._closed:
                raise DashScopeError("this Microphone is closed")
            if self._stream is not None:
                return self
            sd = None if self._factory is not None else import_sounddevice()
            if sd is not None and self._asked_rate is None:
                self.device_rate = capture_rate(sd, self.device, self.rate)
            self._resampler = resampler_for(self.device_rate, self.rate)
            if sd is None:
                assert self._factory is not None
                stream = self._factory(self._callback)
            else:
                try:
                    stream = sd.RawInputStream(
                        samplerate=self.device_rate,
                        blocksize=self.device_rate * self.block_ms // 1000,
                        channels=1,
                        dtype="int16",
                        latency=self.latency,
                        device=self.device,
                        callback=self._callback,
                    )
                except Exception as exc:  # sounddevice.PortAudioError, ValueError
                    raise AudioDeviceError(
                        f"cannot open the input device {self.device!r}: {exc}"
                    ) from exc
            try:
                stream.start()
            except Exception as exc:
                raise AudioDeviceError(f"cannot start the input stream: {exc}") from exc
            self._stream = stream
        return self

    def read(self, timeout: float | None = None) -> bytes:
        """The next block of PCM16 at ``rate`` (resampled blocks vary in length; may be empty).

        Raises:
            DashScopeTimeout: No block within ``timeout`` seconds.
        """
        try:
            block = self._blocks.get(timeout=check_timeout(timeout))
        except queue.Empty:
            raise DashScopeTimeout(
                f"no audio block within {seconds(timeout)}", timeout=timeout
            ) from None
        resampler = self._resampler
        return block if resampler is None else resampler.process(block)

    def stream_to(
        self,
        session: AudioSink,
        *,
        gate: SpeakerLike | None = None,
        process: Callable[[bytes], bytes] | None = None,
    ) -> Microphone:
        """Append every block to ``session`` from a thread, until `stop_streaming` or `close`.

        With ``gate`` (a `Speaker`), blocks captured while it plays are sent
        as silence: the model does not hear itself (no barge-in then).
        ``process`` transforms each block first (the echo canceller).
        A send error ends the thread and is kept in `feed_error`.
        """
        self.start()
        with self._lock:
            if self._feed_thread is not None:
                raise DashScopeError("this Microphone is already streaming")
            self._stop_feed.clear()
            thread = threading.Thread(
                target=self._feed,
                args=(session, gate, process),
                name="dashscope_sync-microphone",
                daemon=True,
            )
            self._feed_thread = thread
        thread.start()
        return self

    def _feed(
        self,
        session: AudioSink,
        gate: SpeakerLike | None,
        process: Callable[[bytes], bytes] | None,
    ) -> None:
        stop = self._stop_feed
        while not stop.is_set():
            block = self._blocks.get()  # stop_streaming() wakes it with an empty block
            if not block:
                continue
            resampler = self._resampler
            if resampler is not None:
                block = resampler.process(block)
            if process is not None:
                block = process(block)
            if not block:
                continue
            if gate is not None and gate.playing:
                block = bytes(len(block))
            try:
                session.append_audio(block)
            except DashScopeError as exc:
                self.feed_error = exc
                logger.debug("microphone feed stopped: %s", exc)
                return

    def stop_streaming(self) -> None:
        """Stop the `stream_to` thread (capture goes on); idempotent."""
        self._stop_feed.set()
        with contextlib.suppress(queue.Full):  # when full, the thread is not waiting anyway
            self._blocks.put_nowait(b"")
        with self._lock:
            thread, self._feed_thread = self._feed_thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(5.0)

    def close(self) -> None:
        """Stop streaming and capturing and close the device; idempotent."""
        self.stop_streaming()
        with self._lock:
            if self._closed:
                return
            self._closed = True
            stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.stop()
                stream.close()
            except Exception as exc:  # pragma: no cover - a device gone at close
                logger.debug("closing the input stream failed: %s", exc)

    def __enter__(self) -> Microphone:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()
