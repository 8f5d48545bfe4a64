"""Sample-rate conversion with soxr (the ``[audio]`` extra), chunk by chunk.

soxr's streaming mode keeps the filter state between chunks, so feeding a
signal in pieces gives the same output as converting it at once (bit-identical
for float, within 2 LSB for int16, as measured in AUDIO.md). Its output per
chunk varies in length and lags the input (about 10 ms at 48 kHz): consumers
must not expect one block out per block in, and must call `Resampler.flush`
at the end to get the tail.
"""

from __future__ import annotations

import importlib.util
import sys
from typing import Any, Final

from .._errors import ConfigError, ConfigTypeError

__all__ = ["AUDIO_EXTRA_HINT", "Resampler", "audio_extra_missing", "resampler_for"]

#: What to install for the `[audio]` extra, for messages.
#: Both forms: the published package, and a source checkout (where the first
#: fails until the package is on PyPI).
AUDIO_EXTRA_HINT: Final = (
    "pip install 'dashscope-sync[audio]' (from a source checkout: pip install -e '.[audio]')"
)

#: Sample formats: numpy dtype and bytes per sample.
_FORMATS: Final = {"int16": ("<i2", 2), "float32": ("<f4", 4)}
#: The struct item code of each sample format's buffers (``array('h')``, numpy ``<i2``...).
_ITEM_CODES: Final = {"int16": "h", "float32": "f"}
#: How a message says to convert samples of another kind (struct item code) to each format.
_SCALED: Final = {
    ("int16", "e"): "floats in [-1, 1] take `(x * 32767).astype('<i2')`",
    ("int16", "f"): "floats in [-1, 1] take `(x * 32767).astype('<i2')`",
    ("int16", "d"): "floats in [-1, 1] take `(x * 32767).astype('<i2')`",
    ("float32", "h"): "int16 samples take `(x / 32768).astype('<f4')`",
}

#: soxr's "high quality": about 135 dB SNR on a 1 kHz tone (AUDIO.md), 20-bit-plus.
_QUALITIES: Final = frozenset({"QQ", "LQ", "MQ", "HQ", "VHQ"})


def audio_extra_missing(*modules: str) -> list[str]:
    """Which of ``modules`` cannot be imported (without importing them)."""
    missing = []
    for name in modules:
        try:
            found = importlib.util.find_spec(name) is not None
        except ValueError:  # sys.modules[name] is None: imports of it are blocked
            found = False
        if not found:
            missing.append(name)
    return missing


def _sample_bytes(pcm: object, sample_format: str, channels: int) -> bytes:
    """``pcm`` as bytes, refused unless it holds bytes or samples of ``sample_format``.

    A float32 array read as PCM16 (or the reverse) would come out as loud
    noise, so the buffer's item type is checked, as ``append_audio`` does.
    """
    if isinstance(pcm, bytes):
        return pcm
    what = f"Resampler(sample_format={sample_format!r})"
    try:
        view = memoryview(pcm)  # type: ignore[arg-type]  # anything with the buffer protocol
    except TypeError:
        raise ConfigTypeError(
            f"{what} takes bytes or an array of {sample_format} samples, got {type(pcm).__name__}"
        ) from None
    fmt = view.format
    code = fmt.lstrip("@=<>!")
    if code not in ("B", "b", "c"):
        order = fmt[0] if fmt[0] in "@=<>!" else "@"
        little = order == "<" or (order in "@=" and sys.byteorder == "little")
        if code != _ITEM_CODES[sample_format] or not little:
            kind = {"e": "float16", "f": "float32", "d": "float64", "h": "int16"}.get(
                code, f"{view.itemsize}-byte items of format {fmt!r}"
            )
            if code in ("f", "h") and not little:
                kind = f"big-endian {kind}"
            how = _SCALED.get((sample_format, code), f"`x.astype('{_FORMATS[sample_format][0]}')`")
            raise ConfigTypeError(
                f"{what} takes little-endian {sample_format} samples, got {kind}: convert "
                f"them ({how}), or make a Resampler with the sample_format of your samples"
            )
        if view.ndim > 2 or (view.ndim == 2 and view.shape[1] != channels):  # type: ignore[index]
            raise ConfigError(
                f"{what} with {channels} channel(s) takes an array of shape (n, {channels}) "
                f"or flat interleaved samples, got shape {view.shape}"
            )
    return bytes(view)


def _import_soxr() -> tuple[Any, Any]:
    missing = audio_extra_missing("numpy", "soxr")
    if missing:
        raise ConfigError(
            f"resampling needs {' and '.join(missing)} from the [audio] extra: {AUDIO_EXTRA_HINT}"
        )
    import numpy
    import soxr

    return numpy, soxr


class Resampler:
    """Convert PCM16 between sample rates, as a stream or at once.

    ``process(pcm)`` takes interleaved little-endian samples of ``channels``
    channels at ``from_rate`` (PCM16, or float32 with
    ``sample_format="float32"``) and returns what is ready at ``to_rate``, in
    the same format (maybe nothing yet); ``flush()`` returns the rest at the end. ``convert(pcm)``
    does a whole signal in one call. Quality is soxr's ``"HQ"`` by default: a
    1 kHz tone keeps more than 100 dB SNR, and what lies above the new Nyquist
    frequency is suppressed by more than 100 dB.

    The input is ``bytes`` or any buffer of bytes or of samples in
    ``sample_format`` (``array('h')``, a numpy ``int16`` or ``float32``
    array); samples of another type are refused, never read as if they
    were the right one.

    Thread safety: one thread at a time (it carries filter state).

    Raises:
        ConfigError: A bad rate, channel count or quality, or the ``[audio]``
            extra (numpy, soxr) is not installed.
        ConfigTypeError: (from ``process``/``convert``) samples of another
            format than ``sample_format`` (a float32 array given to an int16
            resampler), or not a buffer at all.
    """

    def __init__(
        self,
        from_rate: int,
        to_rate: int,
        channels: int = 1,
        *,
        quality: str = "HQ",
        sample_format: str = "int16",
    ) -> None:
        for name, value in (("from_rate", from_rate), ("to_rate", to_rate), ("channels", channels)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"{name} must be a positive whole number, got {value!r}")
        if quality not in _QUALITIES:
            raise ConfigError(f"quality must be one of {sorted(_QUALITIES)}, got {quality!r}")
        if sample_format not in _FORMATS:
            raise ConfigError(
                f"sample_format must be one of {sorted(_FORMATS)}, got {sample_format!r}"
            )
        self._dtype, self._width = _FORMATS[sample_format]
        self._numpy, self._soxr = _import_soxr()
        self.from_rate = from_rate
        self.to_rate = to_rate
        self.channels = channels
        self.quality = quality
        self.sample_format = sample_format
        self._stream: Any = None  # the soxr stream, created by the first process()
        self._carry = b""  # a partial frame waiting for the rest of its bytes

    def __repr__(self) -> str:
        return f"<Resampler {self.from_rate} -> {self.to_rate} Hz, {self.channels} ch>"

    def _frames(self, pcm: bytes | bytearray | memoryview) -> Any:
        data = self._carry + _sample_bytes(pcm, self.sample_format, self.channels)
        frame = self._width * self.channels
        cut = len(data) - len(data) % frame
        self._carry = data[cut:]
        return self._numpy.frombuffer(data[:cut], dtype=self._dtype).reshape(-1, self.channels)

    def _bytes(self, samples: Any) -> bytes:
        return bytes(self._numpy.ascontiguousarray(samples, dtype=self._dtype).tobytes())

    def process(self, pcm: bytes | bytearray | memoryview) -> bytes:
        """Feed the next piece of the input; returns the output ready so far (maybe empty)."""
        if self.from_rate == self.to_rate:
            frames = self._frames(pcm)
            return self._bytes(frames)
        if self._stream is None:
            self._stream = self._soxr.ResampleStream(
                self.from_rate,
                self.to_rate,
                self.channels,
                dtype=self.sample_format,
                quality=self.quality,
            )
        return self._bytes(self._stream.resample_chunk(self._frames(pcm), last=False))

    def flush(self) -> bytes:
        """End the input; returns the output still held back, and resets for a new stream."""
        stream, self._stream, self._carry = self._stream, None, b""
        if stream is None:
            return b""
        empty = self._numpy.zeros((0, self.channels), dtype=self._dtype)
        return self._bytes(stream.resample_chunk(empty, last=True))

    def convert(self, pcm: bytes | bytearray | memoryview) -> bytes:
        """Convert a whole signal at once (a fresh stream: any earlier state is dropped)."""
        self._stream, self._carry = None, b""
        return self.process(pcm) + self.flush()


def resampler_for(from_rate: int, to_rate: int) -> Resampler | None:
    """A streaming `Resampler` between the rates, or None when they match.

    Raises:
        ConfigError: They differ and the ``[audio]`` extra (soxr) is missing.
    """
    return None if from_rate == to_rate else Resampler(from_rate, to_rate)
