"""Synthetic speech-like PCM and loudness measurement for the local server.

Everything here is pure and deterministic: the same text always gives the same
samples, so tests can compare byte lengths and replies across runs. Only the
standard library is used (``array`` and ``math``) because numpy is not a
dependency of the package.

All PCM is signed 16-bit little-endian mono, the format of the DashScope
realtime API (16 kHz in, 24 kHz out).
"""

from __future__ import annotations

import math
import sys
from array import array
from functools import lru_cache

__all__ = [
    "INPUT_SAMPLE_RATE",
    "OUTPUT_SAMPLE_RATE",
    "pcm16_duration",
    "pcm16_peak",
    "pcm16_peak_dbfs",
    "peak_to_dbfs",
    "resample_pcm16",
    "speech_for_text",
    "speech_like_pcm16",
]

INPUT_SAMPLE_RATE = 16_000
OUTPUT_SAMPLE_RATE = 24_000

# A "syllable" is a voiced burst followed by a short pause; 200 + 60 ms is
# close to the syllable rate of conversational speech (about 4 per second).
_VOICED_MS = 200
_PAUSE_MS = 60
# Fundamental frequencies (Hz) in a typical adult speaking range. Picking one
# per syllable from the text gives an audible, deterministic "intonation".
_PITCHES_HZ = (118.0, 132.0, 147.0, 165.0, 181.0, 196.0, 210.0, 224.0)
# Peak amplitude as a fraction of full scale: loud enough to be clearly
# non-silent, with headroom so the harmonics never clip.
_AMPLITUDE = 0.35
# Relative amplitudes of harmonics 1..5; the falling slope mimics the spectral
# tilt of a human voice.
_HARMONICS = (1.0, 0.55, 0.35, 0.2, 0.1)

_BIG_ENDIAN = sys.byteorder == "big"


def _to_le_bytes(samples: array[int]) -> bytes:
    # array.tobytes() uses the machine byte order; the wire format is little-endian.
    if _BIG_ENDIAN:
        samples = array("h", samples)
        samples.byteswap()
    return samples.tobytes()


def _from_le_bytes(pcm: bytes | bytearray | memoryview) -> array[int]:
    samples = array("h")
    samples.frombytes(pcm)
    if _BIG_ENDIAN:
        samples.byteswap()
    return samples


@lru_cache(maxsize=64)
def _syllable(pitch_index: int, sample_rate: int) -> bytes:
    """Return one voiced burst plus its pause, as PCM16 bytes.

    Cached because a reply is built from a handful of distinct syllables, and
    per-sample ``math.sin`` calls are the only slow part of synthesis.
    """
    voiced = sample_rate * _VOICED_MS // 1000
    pause = sample_rate * _PAUSE_MS // 1000
    f0 = _PITCHES_HZ[pitch_index % len(_PITCHES_HZ)]
    norm = sum(_HARMONICS)
    scale = _AMPLITUDE * 32767.0 / norm
    two_pi = 2.0 * math.pi
    samples = array("h", bytes(2 * (voiced + pause)))
    phase = 0.0
    for i in range(voiced):
        progress = i / voiced
        # Pitch glides down by 12 % across the syllable, like a falling accent;
        # integrating the frequency keeps the phase continuous.
        phase += two_pi * f0 * (1.0 - 0.12 * progress) / sample_rate
        # Raised-sine envelope: a soft attack and decay, no clicks at the edges.
        envelope = math.sin(math.pi * progress) ** 2
        value = 0.0
        for k, weight in enumerate(_HARMONICS, start=1):
            value += weight * math.sin(k * phase)
        samples[i] = int(scale * envelope * value)
    return _to_le_bytes(samples)


def _speech(pitch_seed: str, total_samples: int, sample_rate: int) -> bytes:
    if total_samples <= 0:
        return b""
    seed = pitch_seed or "simulated"
    parts: list[bytes] = []
    produced = 0
    index = 0
    while produced < total_samples:
        pitch = ord(seed[index % len(seed)]) + index
        syllable = _syllable(pitch % len(_PITCHES_HZ), sample_rate)
        parts.append(syllable)
        produced += len(syllable) // 2
        index += 1
    return b"".join(parts)[: 2 * total_samples]


def speech_for_text(
    text: str,
    *,
    sample_rate: int = OUTPUT_SAMPLE_RATE,
    ms_per_char: float = 60.0,
    min_seconds: float = 0.5,
) -> bytes:
    """Synthesise deterministic speech-like PCM16 for a reply text.

    The length is ``ms_per_char`` per character of ``text``, but at least
    ``min_seconds``; the intonation follows the characters of the text.

    Args:
        text: The text being "spoken".
        sample_rate: Output sample rate in Hz.
        ms_per_char: Speaking rate, in milliseconds of audio per character.
        min_seconds: Minimum duration.

    Returns:
        Little-endian signed 16-bit mono PCM.
    """
    seconds = max(min_seconds, len(text) * ms_per_char / 1000.0)
    return _speech(text, round(seconds * sample_rate), sample_rate)


def speech_like_pcm16(seconds: float, *, sample_rate: int = INPUT_SAMPLE_RATE) -> bytes:
    """Generate ``seconds`` of deterministic speech-like PCM16 audio.

    Useful as client input for the local server: tone bursts with a speech-like
    rhythm, pitch and envelope, peaking at about -12 dBFS.

    Args:
        seconds: Duration of the audio.
        sample_rate: Sample rate in Hz; the realtime API takes 16 kHz input.

    Returns:
        Little-endian signed 16-bit mono PCM, ``round(seconds * sample_rate)``
        samples long.

    Example:
        >>> pcm = speech_like_pcm16(0.5)
        >>> len(pcm)
        16000
    """
    if seconds < 0:
        raise ValueError(f"seconds must be >= 0, got {seconds!r}")
    return _speech("speech", round(seconds * sample_rate), sample_rate)


def pcm16_duration(num_bytes: int, sample_rate: int = INPUT_SAMPLE_RATE) -> float:
    """Return the duration in seconds of ``num_bytes`` of mono PCM16."""
    return num_bytes / (2.0 * sample_rate)


def pcm16_peak(pcm: bytes | bytearray | memoryview) -> int:
    """Return the largest absolute sample value (0..32768) of PCM16 data.

    Args:
        pcm: Little-endian signed 16-bit samples; a trailing odd byte is ignored.
    """
    usable = len(pcm) - len(pcm) % 2
    if usable == 0:
        return 0
    samples = _from_le_bytes(memoryview(pcm)[:usable])
    return max(max(samples), -min(samples))


def pcm16_peak_dbfs(pcm: bytes | bytearray | memoryview) -> float:
    """Return the peak level of PCM16 data in dBFS (``-inf`` for silence).

    Example:
        >>> round(pcm16_peak_dbfs(speech_like_pcm16(0.5)), 1) < 0
        True
    """
    return peak_to_dbfs(pcm16_peak(pcm))


def peak_to_dbfs(peak: int) -> float:
    """Convert a peak sample magnitude to dBFS (full scale = 32768)."""
    if peak <= 0:
        return -math.inf
    return 20.0 * math.log10(peak / 32768.0)


def resample_pcm16(pcm: bytes | bytearray | memoryview, from_rate: int, to_rate: int) -> bytes:
    """Resample mono PCM16 by linear interpolation (no filtering).

    Output sample ``j`` sits at input position ``j * from_rate / to_rate``
    and is the straight-line blend of the two input samples around it,
    rounded to the nearest integer (halves away from zero). Computed in
    integer arithmetic, so the result is exact and portable. The output has
    ``n * to_rate // from_rate`` samples for ``n`` input samples. Good enough
    to echo a voice at another rate; not a studio resampler.

    Args:
        pcm: Little-endian signed 16-bit mono samples (a trailing odd byte
            is ignored).
        from_rate: Input sample rate in Hz.
        to_rate: Output sample rate in Hz.

    Example:
        >>> up = resample_pcm16(speech_like_pcm16(0.5), 16_000, 24_000)
        >>> len(up) // 2
        12000
    """
    if from_rate <= 0 or to_rate <= 0:
        raise ValueError(f"sample rates must be > 0, got {from_rate!r} and {to_rate!r}")
    usable = len(pcm) - len(pcm) % 2
    source = _from_le_bytes(memoryview(pcm)[:usable])
    count = len(source)
    if count == 0:
        return b""
    if from_rate == to_rate:
        return _to_le_bytes(source)
    out_count = count * to_rate // from_rate
    out = array("h", bytes(2 * out_count))
    last = count - 1
    half = to_rate // 2
    for j in range(out_count):
        index, frac = divmod(j * from_rate, to_rate)
        a = source[index]
        if frac == 0 or index >= last:
            out[j] = a
            continue
        blend = a * (to_rate - frac) + source[index + 1] * frac
        # Round half away from zero; the blend stays within the int16 range.
        out[j] = (blend + half) // to_rate if blend >= 0 else -((-blend + half) // to_rate)
    return _to_le_bytes(out)
