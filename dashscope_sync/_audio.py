"""WAV helpers: the service speaks raw PCM16, people keep WAV files."""

from __future__ import annotations

import array
import io
import sys
from collections.abc import Iterator
from os import PathLike
from typing import TYPE_CHECKING, Final

from ._constants import INPUT_SAMPLE_RATE, OUTPUT_SAMPLE_RATE
from ._errors import ConfigError

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["chunks", "load_audio", "load_wav", "pcm16_to_wav", "sample_wav_path"]


def sample_wav_path() -> Path:
    """A bundled 3.8 s spoken question ("Hello! What is the weather like in
    Hangzhou today?"), 16 kHz mono PCM16: ready input for a first turn."""
    from importlib import resources  # imported on use: it is slow to import
    from pathlib import Path

    return Path(str(resources.files("dashscope_sync") / "_data" / "hello_16k.wav"))


def pcm16_to_wav(pcm: bytes, sample_rate: int = OUTPUT_SAMPLE_RATE) -> bytes:
    """Wrap mono 16-bit little-endian PCM in a WAV container (24 kHz by default)."""
    import wave

    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        wav.writeframes(pcm)
    return buffer.getvalue()


def load_wav(path: str | PathLike[str], *, sample_rate: int = INPUT_SAMPLE_RATE) -> bytes:
    """Read a WAV file's PCM, checking it is what the service takes: mono PCM16 at 16 kHz.

    Raises:
        ConfigError: The file is missing, not a WAV file, or in another
            format; the message says what is needed and how to convert it.
    """
    import wave

    need = (
        f"the service needs {sample_rate // 1000} kHz mono 16-bit PCM WAV; convert with e.g. "
        f"`ffmpeg -i in.wav -ar {sample_rate} -ac 1 -sample_fmt s16 out.wav` or "
        f"`sox in.wav -r {sample_rate} -c 1 -b 16 out.wav`"
    )
    try:
        with wave.open(str(path), "rb") as wav:
            rate, channels, width = wav.getframerate(), wav.getnchannels(), wav.getsampwidth()
            pcm = wav.readframes(wav.getnframes())
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: no such file") from exc
    except (wave.Error, EOFError) as exc:
        raise ConfigError(f"{path}: not a PCM WAV file ({exc}); {need}") from exc
    problems = []
    if rate != sample_rate:
        problems.append(f"{rate} Hz")
    if channels != 1:
        problems.append(f"{channels} channels")
    if width != 2:
        problems.append(f"{8 * width}-bit samples")
    if problems:
        raise ConfigError(f"{path}: {', '.join(problems)}; {need}")
    if not pcm:
        raise ConfigError(f"{path}: the file has no audio")
    return pcm


# Reading any audio file ------------------------------------------------------------

#: WAV format tags (the fmt chunk's first field, or the sub-format of an extensible file).
_WAVE_PCM: Final = 1
_WAVE_FLOAT: Final = 3
_WAVE_EXTENSIBLE: Final = 0xFFFE


class _Decoded:
    """Interleaved samples as read from a file, before conversion."""

    __slots__ = ("channels", "data", "kind", "rate", "width")

    def __init__(self, data: bytes, rate: int, channels: int, width: int, kind: str) -> None:
        self.data = data
        self.rate = rate
        self.channels = channels
        self.width = width  # bytes per sample
        self.kind = kind  # "int" or "float"

    def describe(self) -> str:
        kind = "float" if self.kind == "float" else "integer"
        channels = "mono" if self.channels == 1 else f"{self.channels} channels"
        return f"{self.rate} Hz, {channels}, {8 * self.width}-bit {kind}"


def _parse_wav(path: str, blob: bytes) -> _Decoded:
    """Parse a RIFF/WAVE file: PCM 8/16/24/32-bit, float 32/64-bit, extensible or not."""
    if len(blob) < 12 or blob[:4] != b"RIFF" or blob[8:12] != b"WAVE":
        raise ConfigError(f"{path}: not a WAV file")
    fmt: tuple[int, int, int, int] | None = None
    data: bytes | None = None
    pos = 12
    while pos + 8 <= len(blob):
        chunk_id = blob[pos : pos + 4]
        size = int.from_bytes(blob[pos + 4 : pos + 8], "little")
        body = blob[pos + 8 : pos + 8 + size]
        if chunk_id == b"fmt " and len(body) >= 16:
            tag = int.from_bytes(body[0:2], "little")
            channels = int.from_bytes(body[2:4], "little")
            rate = int.from_bytes(body[4:8], "little")
            bits = int.from_bytes(body[14:16], "little")
            if tag == _WAVE_EXTENSIBLE and len(body) >= 26:
                tag = int.from_bytes(body[24:26], "little")  # the sub-format GUID's first field
            fmt = (tag, channels, rate, bits)
        elif chunk_id == b"data":
            data = body  # a truncated last chunk keeps what is there
        pos += 8 + size + (size & 1)  # chunks are padded to even sizes
    if fmt is None or data is None:
        raise ConfigError(
            f"{path}: a WAV file without {'a fmt' if fmt is None else 'a data'} chunk"
        )
    tag, channels, rate, bits = fmt
    if tag == _WAVE_PCM and bits in (8, 16, 24, 32):
        kind = "int"
    elif tag == _WAVE_FLOAT and bits in (32, 64):
        kind = "float"
    else:
        raise ConfigError(
            f"{path}: WAV format tag {tag} with {bits}-bit samples is not supported "
            "(only integer PCM of 8, 16, 24 or 32 bits and float of 32 or 64 bits); "
            "convert with e.g. `ffmpeg -i in.wav -ar 16000 -ac 1 -sample_fmt s16 out.wav`"
        )
    if channels < 1 or rate < 1:
        raise ConfigError(f"{path}: a WAV file with {channels} channels at {rate} Hz")
    width = bits // 8
    frame = width * channels
    return _Decoded(data[: len(data) - len(data) % frame], rate, channels, width, kind)


def _to_pcm16(decoded: _Decoded) -> bytes:
    """Any decoded sample format as interleaved little-endian PCM16 (standard library only)."""
    data, width = decoded.data, decoded.width
    if decoded.kind == "float":
        values = array.array("f" if width == 4 else "d", data)
        if sys.byteorder == "big":
            values.byteswap()
        scaled = array.array("h", (max(-32768, min(32767, round(v * 32767.0))) for v in values))
        if sys.byteorder == "big":
            scaled.byteswap()
        return scaled.tobytes()
    if width == 2:
        return bytes(data)
    out = bytearray(len(data) // width * 2)
    if width == 1:  # unsigned 8-bit: flip the sign bit and use it as the high byte
        out[1::2] = data.translate(_UNSIGNED_TO_SIGNED)
    else:  # 24 or 32 bits: keep the two most significant bytes (truncation, no dither)
        out[0::2] = data[width - 2 :: width]
        out[1::2] = data[width - 1 :: width]
    return bytes(out)


_UNSIGNED_TO_SIGNED: Final = bytes((v - 128) & 0xFF for v in range(256))


def _mono(pcm: bytes, channels: int) -> bytes:
    """Average interleaved PCM16 channels into one."""
    if channels == 1:
        return pcm
    samples = array.array("h", pcm)
    if sys.byteorder == "big":
        samples.byteswap()
    columns = [samples[c::channels] for c in range(channels)]
    mixed = array.array("h", (sum(frame) // channels for frame in zip(*columns, strict=True)))
    if sys.byteorder == "big":
        mixed.byteswap()
    return mixed.tobytes()


def _read_with_soundfile(path: str, found: str) -> _Decoded:
    """FLAC, OGG, MP3 (and the rest libsndfile reads) through the optional `soundfile`."""
    try:
        import soundfile
    except ImportError:
        raise ConfigError(
            f"{path}: {found}; reading it needs the `soundfile` package "
            "(`pip install soundfile`), or convert it to WAV first "
            "(`ffmpeg -i in.flac -ar 16000 -ac 1 out.wav`)"
        ) from None
    except OSError as exc:  # pragma: no cover - a wheel without its libsndfile
        raise ConfigError(f"{path}: the `soundfile` package cannot load libsndfile: {exc}") from exc
    try:
        samples, rate = soundfile.read(path, dtype="int16", always_2d=True)
    except Exception as exc:  # soundfile raises its own LibsndfileError, RuntimeError...
        raise ConfigError(f"{path}: {found}, and soundfile cannot read it: {exc}") from exc
    channels = int(samples.shape[1])
    return _Decoded(samples.astype("<i2").tobytes(), int(rate), channels, 2, "int")


def _sniff(blob: bytes) -> str:
    """What a file's first bytes say it is, for messages."""
    if blob[:4] == b"fLaC":
        return "a FLAC file"
    if blob[:4] == b"OggS":
        return "an OGG file"
    if blob[:3] == b"ID3" or blob[:2] in (b"\xff\xfb", b"\xff\xf3", b"\xff\xf2"):
        return "an MP3 file"
    if blob[:4] == b"RIFF":
        return "a RIFF file that is not WAVE"
    return "not a WAV file"


def load_audio(path: str | PathLike[str], *, sample_rate: int = INPUT_SAMPLE_RATE) -> bytes:
    """Read an audio file as the service takes it: mono PCM16 at ``sample_rate`` (16 kHz).

    Any WAV file is read with the standard library: any sample rate, any
    number of channels (averaged into one), 8/16/24/32-bit integer or
    32/64-bit float samples. A rate other than ``sample_rate`` is converted
    with the `Resampler` of the ``[audio]`` extra (soxr). With the
    `soundfile` package installed, FLAC, OGG and MP3 files are read too.

    Raises:
        ConfigError: The file is missing or empty, in a format that cannot be
            read, or needs resampling without the ``[audio]`` extra; the
            message says what was found and what fixes it.
    """
    name = str(path)
    try:
        with open(name, "rb") as file:
            blob = file.read()
    except FileNotFoundError as exc:
        raise ConfigError(f"{name}: no such file") from exc
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read it: {exc}") from exc
    if blob[:4] == b"RIFF" and blob[8:12] == b"WAVE":
        decoded = _parse_wav(name, blob)
    else:
        decoded = _read_with_soundfile(name, _sniff(blob))
    pcm = _mono(_to_pcm16(decoded), decoded.channels)
    if not pcm:
        raise ConfigError(f"{name}: the file has no audio")
    if decoded.rate != sample_rate:
        from ._resample import AUDIO_EXTRA_HINT, Resampler, audio_extra_missing

        missing = audio_extra_missing("numpy", "soxr")
        if missing:
            raise ConfigError(
                f"{name}: {decoded.describe()}; converting {decoded.rate} Hz to "
                f"{sample_rate} Hz needs {' and '.join(missing)} from the [audio] extra "
                f"(`{AUDIO_EXTRA_HINT}`), or convert the file first "
                f"(`ffmpeg -i in.wav -ar {sample_rate} -ac 1 out.wav`)"
            )
        pcm = Resampler(decoded.rate, sample_rate).convert(pcm)
    return pcm


def chunks(
    pcm: bytes | bytearray | memoryview, ms: int = 100, *, sample_rate: int = INPUT_SAMPLE_RATE
) -> Iterator[bytes]:
    """Cut mono PCM16 into pieces of ``ms`` milliseconds (the last may be shorter).

    100 ms (3200 bytes at 16 kHz) is the pace the service wants for live audio.

    Raises:
        ConfigError: ``ms`` is not a positive whole number, or the audio is
            not whole 16-bit samples.
    """
    if isinstance(ms, bool) or not isinstance(ms, int) or ms <= 0:
        raise ConfigError(f"ms must be a positive whole number of milliseconds, got {ms!r}")
    data = bytes(pcm)
    if len(data) % 2:
        raise ConfigError(f"audio must be whole 16-bit samples, got {len(data)} bytes")
    size = max(2, sample_rate * ms // 1000 * 2)
    return (data[start : start + size] for start in range(0, len(data), size))
