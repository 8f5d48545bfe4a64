"""WAV helpers: the service speaks raw PCM16, people keep WAV files."""

from __future__ import annotations

import array
import io
import os
import sys
from collections.abc import Iterator
from os import PathLike
from typing import TYPE_CHECKING, Final

from .._constants import INPUT_SAMPLE_RATE, OUTPUT_SAMPLE_RATE
from .._errors import ConfigError, ConfigTypeError
from .inputs import pcm16_buffer

if TYPE_CHECKING:
    from pathlib import Path

    from typing_extensions import Buffer

__all__ = [
    "chunks",
    "decode_audio",
    "file_path",
    "load_audio",
    "load_wav",
    "pcm16_to_wav",
    "sample_wav_path",
]


def sample_wav_path() -> Path:
    """A bundled 3.8 s spoken question ("Hello! What is the weather like in
    Hangzhou today?"), 16 kHz mono PCM16: ready input for a first turn."""
    from importlib import resources  # imported on use: it is slow to import
    from pathlib import Path

    return Path(str(resources.files("dashscope_sync") / "_data" / "hello_16k.wav"))


def pcm16_to_wav(pcm: Buffer, sample_rate: int = OUTPUT_SAMPLE_RATE) -> bytes:
    """Wrap mono 16-bit little-endian PCM in a WAV container (24 kHz by default).

    ``pcm`` is any buffer `RealtimeSession.append_audio` takes (``bytes``, a
    numpy ``int16`` array...), possibly empty.

    Raises:
        ConfigError: ``sample_rate`` is not a positive whole number, or the
            audio is not mono 16-bit PCM (`ConfigTypeError` for float samples
            and other wrong types, saying how to convert).
    """
    import wave

    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate <= 0:
        raise ConfigError(f"sample_rate must be a positive whole number, got {sample_rate!r}")
    pcm = pcm16_buffer(pcm, "audio", allow_empty=True)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        wav.writeframes(pcm)
    return buffer.getvalue()


_WAVE_FORMAT_PCM = 0x0001
_WAVE_FORMAT_IEEE_FLOAT = 0x0003
_WAVE_FORMAT_EXTENSIBLE = 0xFFFE
# The tail shared by the KSDATAFORMAT_SUBTYPE_* GUIDs; the first two bytes
# are the format code (1 for PCM).
_GUID_TAIL = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"


class _WavFormat:
    __slots__ = ("bits", "block_align", "channels", "code", "rate")

    def __init__(self, code: int, channels: int, rate: int, bits: int, block_align: int) -> None:
        self.code = code
        self.channels = channels
        self.rate = rate
        self.bits = bits  # significant bits per sample
        self.block_align = block_align  # bytes per frame (all channels, with container padding)


def _parse_fmt(body: bytes) -> _WavFormat | str:
    """The ``fmt `` chunk's format, or what is wrong with it."""
    import struct

    if len(body) < 16:
        return f"its 'fmt ' chunk is {len(body)} bytes, shorter than the 16 a WAV header needs"
    code, channels, rate, _, block_align, bits = struct.unpack_from("<HHIIHH", body)
    if code == _WAVE_FORMAT_EXTENSIBLE:
        # WAVE_FORMAT_EXTENSIBLE (what many recorders and ffmpeg write for
        # more than 16 bits or 2 channels): the real format is the GUID's
        # first two bytes, the sample size its wValidBitsPerSample.
        if len(body) < 40:
            return "its WAVE_FORMAT_EXTENSIBLE 'fmt ' chunk is cut short"
        valid_bits = struct.unpack_from("<H", body, 18)[0]
        guid = body[24:40]
        if guid[2:] != _GUID_TAIL:
            return "its WAVE_FORMAT_EXTENSIBLE sub-format is not a standard one"
        code = struct.unpack_from("<H", guid)[0]
        if valid_bits and valid_bits != bits:
            bits = valid_bits
    return _WavFormat(code, channels, rate, bits, block_align)


def _read_riff(data: bytes) -> tuple[_WavFormat, bytes] | str:
    """Read a RIFF/WAVE file's format and samples, or say what is wrong with it."""
    import struct

    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        if not data:
            return "the file is empty"
        if data[:4] == b"RF64":
            return "an RF64 file (a WAV over 4 GiB), which is not supported"
        if data[:4] == b"RIFF" and len(data) < 12:
            return f"the file ends inside its RIFF header ({len(data)} bytes)"
        return f"not a WAV file (it starts with {data[:4]!r}, not b'RIFF'...b'WAVE')"
    fmt: _WavFormat | None = None
    pos = 12
    while pos + 8 <= len(data):
        chunk_id, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        body_start = pos + 8
        if chunk_id == b"fmt ":
            if body_start + size > len(data):
                return "the file ends inside its 'fmt ' chunk (a truncated header)"
            parsed = _parse_fmt(data[body_start : body_start + size])
            if isinstance(parsed, str):
                return parsed
            fmt = parsed
        elif chunk_id == b"data":
            if fmt is None:
                return "its 'data' chunk comes before any 'fmt ' chunk"
            available = len(data) - body_start
            if size == 0xFFFFFFFF:
                # A streamed WAV (ffmpeg to a pipe) leaves the size unset:
                # the samples run to the end of the file.
                size = available
            if size > available:
                return (
                    f"the file is truncated: its 'data' chunk declares {size} bytes of "
                    f"audio but only {available} are present"
                )
            return fmt, data[body_start : body_start + size]
        pos = body_start + size + (size & 1)  # chunks are padded to even sizes
    if fmt is None:
        return "the file ends before its 'fmt ' chunk (a truncated header)"
    return "the file has a header but no 'data' chunk (no audio: truncated?)"


def file_path(path: object) -> str:
    """``path`` as a file name: a ``str`` or ``os.PathLike``, never a file descriptor.

    Raises:
        ConfigTypeError: Anything else (``open(5)`` would read, then close,
            whatever file descriptor 5 is).
        ConfigError: An empty name.
    """
    name = os.fspath(path) if isinstance(path, (str, PathLike)) else None
    if not isinstance(name, str):
        raise ConfigTypeError(
            f"path must be a file name (str or pathlib.Path), got {type(path).__name__}"
        )
    if not name:
        raise ConfigError("path is empty")
    return name


def load_wav(path: str | PathLike[str], *, sample_rate: int = INPUT_SAMPLE_RATE) -> bytes:
    """Read a WAV file's PCM, checking it is what the service takes: mono PCM16 at 16 kHz.

    Plain PCM and WAVE_FORMAT_EXTENSIBLE files are read. A header-only,
    truncated or otherwise broken file is refused with what is wrong.

    Raises:
        ConfigError: The file is missing, a directory, unreadable, not a WAV
            file, cut short, or in another format; the message says what is
            wrong, and for a wrong format what is needed and how to convert it.
    """
    need = (
        f"the service needs {sample_rate // 1000} kHz mono 16-bit PCM WAV; convert with e.g. "
        f"`ffmpeg -i in.wav -ar {sample_rate} -ac 1 -sample_fmt s16 out.wav` or "
        f"`sox in.wav -r {sample_rate} -c 1 -b 16 out.wav`"
    )
    path = file_path(path)
    try:
        with open(path, "rb") as file:
            data = file.read()
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: no such file") from exc
    except IsADirectoryError as exc:
        raise ConfigError(f"{path}: is a directory, not a WAV file") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the file: {exc.strerror or exc}") from exc
    parsed = _read_riff(data)
    if isinstance(parsed, str):
        raise ConfigError(f"{path}: {parsed}; {need}")
    fmt, pcm = parsed
    problems = []
    if fmt.code == _WAVE_FORMAT_IEEE_FLOAT:
        problems.append(f"{fmt.bits}-bit float samples")
    elif fmt.code != _WAVE_FORMAT_PCM:
        problems.append(f"compressed audio (format code {fmt.code:#06x}), not PCM")
    if fmt.rate != sample_rate:
        problems.append(f"{fmt.rate} Hz")
    if fmt.channels != 1:
        problems.append(f"{fmt.channels} channels")
    if fmt.code == _WAVE_FORMAT_PCM and fmt.bits != 16:
        problems.append(f"{fmt.bits}-bit samples")
    if problems:
        raise ConfigError(f"{path}: {', '.join(problems)}; {need}")
    if not pcm:
        raise ConfigError(f"{path}: the file has no audio (a header with an empty 'data' chunk)")
    if len(pcm) % 2:
        raise ConfigError(
            f"{path}: the file is truncated in the middle of a sample ({len(pcm)} bytes of audio)"
        )
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


def _decode_wav(path: str, blob: bytes) -> _Decoded:
    """Decode a RIFF/WAVE file: PCM 8/16/24/32-bit, float 32/64-bit, extensible or not."""
    parsed = _read_riff(blob)
    if isinstance(parsed, str):
        raise ConfigError(f"{path}: {parsed}")
    fmt, data = parsed
    tag, channels, rate = fmt.code, fmt.channels, fmt.rate
    if channels < 1 or rate < 1:
        raise ConfigError(f"{path}: a WAV file with {channels} channels at {rate} Hz")
    # The container's size, not the significant bits: 20 or 24 valid bits in
    # 32-bit containers (extensible files) are read as 32-bit samples.
    width = fmt.block_align // channels if fmt.block_align else fmt.bits // 8
    if tag == _WAVE_PCM and width in (1, 2, 3, 4):
        kind = "int"
    elif tag == _WAVE_FLOAT and width in (4, 8):
        kind = "float"
    else:
        raise ConfigError(
            f"{path}: WAV format tag {tag} with {fmt.bits}-bit samples is not supported "
            "(only integer PCM of 8, 16, 24 or 32 bits and float of 32 or 64 bits); "
            "convert with e.g. `ffmpeg -i in.wav -ar 16000 -ac 1 -sample_fmt s16 out.wav`"
        )
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


def _convert_hint(path: str, sample_rate: int = INPUT_SAMPLE_RATE) -> str:
    """The ffmpeg command that converts this very file to what the service takes."""
    import shlex

    return f"`ffmpeg -i {shlex.quote(path)} -ar {sample_rate} -ac 1 out.wav`"


def _read_with_soundfile(path: str, found: str) -> _Decoded:
    """FLAC, OGG, MP3 (and the rest libsndfile reads) through the optional `soundfile`."""
    try:
        import soundfile
    except ImportError:
        raise ConfigError(
            f"{path}: {found}; reading it needs the `soundfile` package "
            f"(`pip install soundfile`), or convert it to WAV first ({_convert_hint(path)})"
        ) from None
    except OSError as exc:  # pragma: no cover - a wheel without its libsndfile
        raise ConfigError(f"{path}: the `soundfile` package cannot load libsndfile: {exc}") from exc
    try:
        samples, rate = soundfile.read(path, dtype="int16", always_2d=True)
    except Exception as exc:  # soundfile raises its own LibsndfileError, RuntimeError...
        raise ConfigError(
            f"{path}: {found}, but its content cannot be decoded ({_libsndfile_reason(exc)}); "
            f"is it really audio? Convert it with e.g. {_convert_hint(path)}"
        ) from exc
    channels = int(samples.shape[1])
    return _Decoded(samples.astype("<i2").tobytes(), int(rate), channels, 2, "int")


def _libsndfile_reason(exc: Exception) -> str:
    """libsndfile's reason without the path it repeats, and without its misleading guesses."""
    text = str(exc)
    if text.startswith("Error opening ") and ": " in text:
        text = text.split(": ", 1)[1]
    # libsndfile says this of a file it opened but could not parse (a
    # truncated or fake MP3): the file does exist.
    if text.startswith("File does not exist"):
        return "libsndfile found no valid audio stream in it"
    return f"libsndfile: {text.rstrip('.')}"


def _sniff(blob: bytes) -> str:
    """What a file's first bytes say it is, for messages."""
    if blob[:4] == b"fLaC":
        return "a FLAC file"
    if blob[:4] == b"OggS":
        return "an OGG file"
    if blob[:3] == b"ID3" or blob[:2] in (b"\xff\xfb", b"\xff\xf3", b"\xff\xf2"):
        return "an MP3 file"
    if blob[:4] == b"FORM" and blob[8:12] in (b"AIFF", b"AIFC"):
        return "an AIFF file"
    if blob[:4] == b"RIFF":
        return "a RIFF file that is not WAVE"
    return "not a WAV file"


def _text_start(blob: bytes) -> str | None:
    """The first line of a file that holds text (Markdown, JSON, a script...), else None."""
    head = blob[:4096]
    if not head or b"\x00" in head:
        return None
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:  # not just a character cut at the end of the sample
            return None
        text = head[: exc.start].decode("utf-8")
    if not all(c.isprintable() or c in "\r\n\t\f" for c in text):
        return None
    first = text.strip().split("\n", 1)[0].strip() if text.strip() else ""
    return first[:40] + ("..." if len(first) > 40 else "")


def decode_audio(path: str | PathLike[str]) -> tuple[bytes, int, str]:
    """Read an audio file as mono PCM16 at its own sample rate (no resampling).

    Returns:
        The samples, their rate in Hz, and what the file holds for messages
        (``"44100 Hz, 2 channels, 24-bit integer"``).

    Raises:
        ConfigError: As `load_audio`, except for the missing ``[audio]`` extra.
    """
    name = file_path(path)
    try:
        with open(name, "rb") as file:
            blob = file.read()
    except FileNotFoundError as exc:
        raise ConfigError(f"{name}: no such file") from exc
    except IsADirectoryError as exc:
        raise ConfigError(f"{name}: is a directory, not an audio file") from exc
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read the file: {exc.strerror or exc}") from exc
    if blob[:4] == b"RIFF" and blob[8:12] == b"WAVE":
        decoded = _decode_wav(name, blob)
    else:
        found = _sniff(blob)
        first = _text_start(blob) if found == "not a WAV file" else None
        if first is not None:
            # No audio library reads text: installing one would not help.
            raise ConfigError(
                f"{name}: not a WAV file, nor any audio: it holds text"
                + (f" (it starts {first!r})" if first else "")
            )
        decoded = _read_with_soundfile(name, found)
    pcm = _mono(_to_pcm16(decoded), decoded.channels)
    if not pcm:
        raise ConfigError(f"{name}: the file has no audio")
    return pcm, decoded.rate, decoded.describe()


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
    pcm, rate, what = decode_audio(path)
    if rate != sample_rate:
        from .resample import AUDIO_EXTRA_HINT, Resampler, audio_extra_missing

        missing = audio_extra_missing("numpy", "soxr")
        if missing:
            name = file_path(path)
            raise ConfigError(
                f"{name}: {what}; converting {rate} Hz to {sample_rate} Hz needs "
                f"{' and '.join(missing)} from the [audio] extra ({AUDIO_EXTRA_HINT}), "
                f"or convert the file first ({_convert_hint(name, sample_rate)})"
            )
        pcm = Resampler(rate, sample_rate).convert(pcm)
    return pcm


def chunks(pcm: Buffer, ms: int = 100, *, sample_rate: int = INPUT_SAMPLE_RATE) -> Iterator[bytes]:
    """Cut mono PCM16 into pieces of ``ms`` milliseconds (the last may be shorter).

    100 ms (3200 bytes at 16 kHz) is the pace the service wants for live audio.
    ``pcm`` is any buffer `RealtimeSession.append_audio` takes (``bytes``, a
    numpy ``int16`` array...); no audio gives no pieces.

    Raises:
        ConfigError: ``ms`` is not a positive whole number, or the audio is
            not mono 16-bit PCM (`ConfigTypeError` for float samples and
            other wrong types, saying how to convert).
    """
    if isinstance(ms, bool) or not isinstance(ms, int) or ms <= 0:
        raise ConfigError(f"ms must be a positive whole number of milliseconds, got {ms!r}")
    data = bytes(pcm16_buffer(pcm, "audio", allow_empty=True))
    size = max(2, sample_rate * ms // 1000 * 2)
    return (data[start : start + size] for start in range(0, len(data), size))
