"""Energy-based voice activity detection on the audio timeline, without I/O.

The local server's stand-in for DashScope's server VAD. It is deliberately
simple and fully deterministic: decisions depend only on the samples, never on
wall-clock time, so a test that appends one second of speech and one second of
silence always gets the same events at the same ``audio_*_ms``.

The rules:

* Audio is cut into 10 ms frames (160 samples at 16 kHz), aligned to the start
  of the session's audio timeline. A frame is *speech* when its RMS level is
  above the threshold, else *silence*. A trailing partial frame waits for the
  next append.
* ``turn_detection.threshold`` (-1.0 ... 1.0, lower is more sensitive) maps
  linearly onto an RMS level: ``dBFS = -45 + 25 * threshold``. So -1.0 is
  -70 dBFS (near the noise floor of a quiet microphone), 0.0 is -45 dBFS, the
  documented default 0.5 is -32.5 dBFS, the SDK's 0.2 is -40 dBFS and 1.0 is
  -20 dBFS (loud speech only). Digital silence never counts as speech.
* Speech starts at the first speech frame (its first sample is the onset).
* Speech stops once ``silence_duration_ms`` (rounded up to whole frames) of
  silence frames follow the last speech frame; the stop point is the end of
  that silence, i.e. last speech sample + silence duration.
"""

from __future__ import annotations

import math
import operator
import sys
from array import array
from dataclasses import dataclass
from typing import Literal

from ._audio import INPUT_SAMPLE_RATE

__all__ = [
    "FRAME_MS",
    "VadEvent",
    "EnergyVad",
    "contains_speech",
    "samples_to_ms",
    "threshold_to_dbfs",
]

FRAME_MS = 10
_FRAME_SAMPLES = INPUT_SAMPLE_RATE * FRAME_MS // 1000
_BIG_ENDIAN = sys.byteorder == "big"


def threshold_to_dbfs(threshold: float) -> float:
    """Map a ``turn_detection.threshold`` in [-1, 1] to an RMS level in dBFS.

    Example:
        >>> threshold_to_dbfs(0.5)
        -32.5
    """
    clamped = min(1.0, max(-1.0, float(threshold)))
    return -45.0 + 25.0 * clamped


def samples_to_ms(samples: int, sample_rate: int = INPUT_SAMPLE_RATE) -> int:
    """Convert a sample count on the 16 kHz timeline to whole milliseconds."""
    return samples * 1000 // sample_rate


@dataclass(frozen=True)
class VadEvent:
    """A speech boundary on the audio timeline.

    Attributes:
        kind: ``"start"`` (onset) or ``"stop"`` (end of the trailing silence).
        sample: Position on the session's audio timeline, in samples.
    """

    kind: Literal["start", "stop"]
    sample: int


class EnergyVad:
    """Frame-by-frame RMS voice activity detector (see the module docstring).

    Thread safety: not thread-safe; the owning protocol state serialises access.

    Args:
        threshold: ``turn_detection.threshold`` in [-1, 1].
        silence_duration_ms: Silence that ends speech, in milliseconds.
        position: Timeline sample at which the detector starts listening.
    """

    def __init__(self, *, threshold: float, silence_duration_ms: int, position: int = 0) -> None:
        self.threshold_dbfs = threshold_to_dbfs(threshold)
        amplitude = 32768.0 * 10.0 ** (self.threshold_dbfs / 20.0)
        # Compare sums of squares, so no frame needs a square root or a log.
        self._min_energy = amplitude * amplitude * _FRAME_SAMPLES
        self._silence_frames = max(1, math.ceil(silence_duration_ms / FRAME_MS))
        self._pending = bytearray()
        # Timeline sample of the first byte of _pending (always frame-aligned
        # relative to where the detector started).
        self._position = position
        self._in_speech = False
        self._quiet_frames = 0

    @property
    def in_speech(self) -> bool:
        """Whether speech has started and not yet stopped."""
        return self._in_speech

    @property
    def analysed_end(self) -> int:
        """Timeline sample up to which audio has been classified."""
        return self._position

    def reset(self) -> None:
        """Forget any speech in progress (no event); keep the timeline position."""
        self._in_speech = False
        self._quiet_frames = 0

    def feed(self, pcm: bytes | bytearray | memoryview) -> list[VadEvent]:
        """Analyse appended PCM16 and return the speech boundaries it completes."""
        self._pending.extend(pcm)
        frame_bytes = 2 * _FRAME_SAMPLES
        usable = len(self._pending) - len(self._pending) % frame_bytes
        if usable == 0:
            return []
        samples = array("h")
        samples.frombytes(self._pending[:usable])
        del self._pending[:usable]
        if _BIG_ENDIAN:
            samples.byteswap()
        events: list[VadEvent] = []
        for start in range(0, len(samples), _FRAME_SAMPLES):
            frame = samples[start : start + _FRAME_SAMPLES]
            energy = sum(map(operator.mul, frame, frame))
            frame_start = self._position + start
            if energy > self._min_energy:
                if not self._in_speech:
                    self._in_speech = True
                    events.append(VadEvent("start", frame_start))
                self._quiet_frames = 0
            elif self._in_speech:
                self._quiet_frames += 1
                if self._quiet_frames >= self._silence_frames:
                    self._in_speech = False
                    self._quiet_frames = 0
                    events.append(VadEvent("stop", frame_start + _FRAME_SAMPLES))
        self._position += len(samples)
        return events


def contains_speech(pcm: bytes | bytearray, threshold: float = 0.5) -> bool:
    """Whether any whole 10 ms frame of ``pcm`` is speech for ``threshold``.

    The same rule as `EnergyVad`, for audio no detector has followed (a
    LiveTranslate session without turn detection): its trailing partial frame
    is ignored.
    """
    vad = EnergyVad(threshold=threshold, silence_duration_ms=FRAME_MS)
    return any(event.kind == "start" for event in vad.feed(pcm))
