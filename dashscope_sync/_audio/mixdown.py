"""A two-party recording's audio: one channel per party on one clock, mixed at the end.

Each `Channel` spools its PCM16 to a temporary file as it comes, so a long
call is never held in memory. A chunk goes at ``max(its time, the end of
the channel's previous chunk)``: audio streamed faster than real time stays
contiguous, and a pause becomes silence (a hole in the file, which reads as
zeros). `Channel.cut` drops what lies after a moment (a reply interrupted
there). `write_stereo_wav` interleaves two channels into one WAV, a block at
a time.

Thread safety: a channel is used by one thread at a time (the recorder's).
"""

from __future__ import annotations

import logging
import os
import sys
from array import array
from collections.abc import Sequence
from typing import TYPE_CHECKING, BinaryIO, Final

from .resample import resampler_for

if TYPE_CHECKING:
    from os import PathLike

    from .resample import Resampler

__all__ = ["Channel", "write_buffers", "write_stereo_wav"]

logger = logging.getLogger("dashscope_sync")

#: A chunk that starts this much (seconds) after the channel's end follows a
#: pause: the resampler's held-back tail is flushed before it, where it belongs.
_PAUSE: Final = 0.05
#: Frames interleaved per step at the end (10 s at 24 kHz: under 2 MB in memory).
_MIX_FRAMES: Final = 240_000


def write_buffers(fd: int, buffers: Sequence[bytes | memoryview]) -> None:
    """Write ``buffers`` to ``fd`` in order, joined into one system call.

    Joining first measured cheaper than ``os.writev`` over thousands of small
    buffers (a round of frames), and no slower for large ones.

    Raises:
        OSError: The write failed (a full disk).
    """
    data = memoryview(b"".join(buffers))
    while data:
        data = data[os.write(fd, data) :]


class Channel:
    """One party's audio on the recording's clock, spooled to a temporary file.

    Args:
        rate: The recording's sample rate; audio at another rate is resampled.
        directory: Where the temporary file goes (it is deleted when closed).
    """

    def __init__(self, rate: int, directory: str | PathLike[str] | None = None) -> None:
        import tempfile  # on use: it costs start-up time

        self.rate = rate
        # Closed by close(): it lives as long as the recording.
        self._file: BinaryIO = tempfile.TemporaryFile(  # noqa: SIM115
            prefix=".channel-", dir=directory, buffering=0
        )
        #: Where the next chunk may start, in frames: the end of the last one.
        self.end = 0
        self._resampler: Resampler | None = None
        self._from_rate = rate
        # Chunks placed but not written yet, contiguous from _pending_at (frames).
        self._pending: list[bytes | memoryview] = []
        self._pending_at = 0

    def add(self, at: float, pcm: bytes | memoryview, rate: int) -> None:
        """Place mono PCM16 at ``rate`` at ``at`` seconds (or right after the previous chunk)."""
        position = round(at * self.rate)
        if rate != self._from_rate:
            self._flush()
            self._from_rate = rate
            self._resampler = resampler_for(rate, self.rate)
        elif self._resampler is not None and position > self.end + _PAUSE * self.rate:
            self._flush()
        resampler = self._resampler
        data = pcm if resampler is None else resampler.process(pcm)
        self._place(position, data)

    def _flush(self) -> None:
        resampler = self._resampler
        if resampler is not None:
            self._place(self.end, resampler.flush())

    def _place(self, position: int, data: bytes | memoryview) -> None:
        if not data:
            return
        if position > self.end:
            self.write()  # a pause: the next run starts further on
            self._pending_at = self.end = position
        self._pending.append(data)  # a reference: copied once, when written
        self.end += len(data) // 2

    def write(self) -> None:
        """Write the chunks placed since the last call (one system call)."""
        pending = self._pending
        if pending:
            self._file.seek(self._pending_at * 2)
            write_buffers(self._file.fileno(), pending)
            self._pending = []
        self._pending_at = self.end

    def cut(self, at: float) -> None:
        """Drop what lies after ``at`` seconds (the rest of an interrupted reply)."""
        position = round(at * self.rate)
        if position < self.end:
            self.write()
            self._file.truncate(position * 2)
            self._pending_at = self.end = position
            if self._resampler is not None:
                self._resampler.flush()  # its held-back tail is of the cut audio

    def finish(self) -> None:
        """Place what the resampler still holds, and write everything."""
        self._flush()
        self.write()

    def read(self, start: int, frames: int) -> bytes:
        """``frames`` frames from ``start`` (zeros past the end, and in pauses)."""
        self._file.seek(start * 2)
        data = self._file.read(frames * 2)
        return data + bytes(frames * 2 - len(data))

    def close(self) -> None:
        """Delete the temporary file."""
        self._file.close()


def write_stereo_wav(
    path: str | PathLike[str], left: Channel, right: Channel, frames: int | None = None
) -> int:
    """Write ``left`` and ``right`` as one stereo PCM16 WAV at their rate; frames written.

    ``frames``: the length (default: the longer channel's).
    """
    import wave  # on use: it costs start-up time

    left.write()
    right.write()
    rate = left.rate
    total = max(left.end, right.end) if frames is None else frames
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(rate)
        for start in range(0, total, _MIX_FRAMES):
            count = min(_MIX_FRAMES, total - start)
            both = array("h", bytes(count * 4))
            both[0::2] = _samples(left.read(start, count))
            both[1::2] = _samples(right.read(start, count))
            if sys.byteorder == "big":  # pragma: no cover - WAV is little-endian
                both.byteswap()
            out.writeframes(both.tobytes())
    return total


def _samples(data: bytes) -> array[int]:
    samples = array("h", data)
    if sys.byteorder == "big":  # pragma: no cover - the channel holds little-endian PCM
        samples.byteswap()
    return samples
