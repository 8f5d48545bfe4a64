"""Acoustic echo cancellation for ``attach(echo="aec")``: WebRTC's AEC3 (``pywebrtc-audio``).

Chosen by measurement (AUDIO.md, section 5): among the cancellers with a Linux
wheel it removes the most echo early (25 dB) while attenuating the user's
voice the least (0.6 dB alone, 7.7 dB in double talk), with numpy as its only
dependency. It comes with the ``[aec]`` extra.

The far end (what the speaker plays) is tapped by the `Speaker` as it hands
each block to the device, resampled to 16 kHz and queued; each 10 ms of
microphone audio takes the same amount from that queue. Both run in real time,
so the offset between them stays constant (the output latency plus up to a
block), which AEC3's delay estimator finds and follows.
"""

from __future__ import annotations

import threading
from typing import Any, Final

from .._constants import INPUT_SAMPLE_RATE
from .._errors import ConfigError
from .resample import audio_extra_missing, resampler_for

__all__ = ["AEC_EXTRA_HINT", "EchoCanceller"]

#: Both forms, as for the [audio] extra: the published package, and a source checkout.
AEC_EXTRA_HINT: Final = (
    "pip install 'dashscope-sync[aec]' (from a source checkout: pip install -e '.[aec]')"
)
#: AEC3 works on 10 ms frames.
_FRAME: Final = INPUT_SAMPLE_RATE // 100 * 2
#: The most far-end audio kept waiting for the microphone (bytes, 1 s at 16 kHz).
_MAX_FAR: Final = INPUT_SAMPLE_RATE * 2


class EchoCanceller:
    """Removes the speaker's sound from the microphone's (see the module docstring).

    Thread safety: `far` from the speaker's player thread, `near` from the
    microphone's feed thread, concurrently.

    Raises:
        ConfigError: ``pywebrtc-audio`` (the ``[aec]`` extra) is not installed.
    """

    def __init__(self, speaker_rate: int) -> None:
        missing = audio_extra_missing("pywebrtc_audio", "numpy")
        if missing:
            raise ConfigError(
                f'echo="aec" needs {" and ".join(missing)} from the [aec] extra: {AEC_EXTRA_HINT}'
            )
        import numpy
        import pywebrtc_audio

        self._numpy: Any = numpy
        self._aec: Any = pywebrtc_audio.EchoCanceller(INPUT_SAMPLE_RATE, 1, 0)
        self._far_resampler = resampler_for(speaker_rate, INPUT_SAMPLE_RATE)
        # Guards _far: the speaker's output at 16 kHz, not yet matched with
        # microphone audio (oldest dropped past _MAX_FAR).
        self._lock = threading.Lock()
        self._far = bytearray()
        self._near = bytearray()  # a partial 10 ms frame of microphone audio (feed thread only)

    def far(self, pcm: bytes) -> None:
        """The speaker handed ``pcm`` (at its rate) to the device."""
        resampler = self._far_resampler
        data = pcm if resampler is None else resampler.process(pcm)
        with self._lock:
            self._far += data
            if len(self._far) > _MAX_FAR:
                del self._far[: len(self._far) - _MAX_FAR]

    def near(self, pcm: bytes) -> bytes:
        """Microphone audio (16 kHz PCM16) with the speaker's echo removed (whole 10 ms frames)."""
        np = self._numpy
        self._near += pcm
        usable = len(self._near) - len(self._near) % _FRAME
        if not usable:
            return b""
        near = bytes(self._near[:usable])
        del self._near[:usable]
        with self._lock:
            far = bytes(self._far[:usable])
            del self._far[:usable]
        far += bytes(usable - len(far))  # the speaker was quiet: silence
        out = bytearray()
        for start in range(0, usable, _FRAME):
            n = np.frombuffer(near, dtype="<i2", count=_FRAME // 2, offset=start)
            f = np.frombuffer(far, dtype="<i2", count=_FRAME // 2, offset=start)
            out += self._aec.process(n, f).astype("<i2").tobytes()
        return bytes(out)
