"""WAV helpers: the service speaks raw PCM16, people keep WAV files."""

from __future__ import annotations

import io
from os import PathLike
from typing import TYPE_CHECKING

from ._constants import INPUT_SAMPLE_RATE, OUTPUT_SAMPLE_RATE
from ._errors import ConfigError

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["load_wav", "pcm16_to_wav", "sample_wav_path"]


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


_WAVE_FORMAT_PCM = 0x0001
_WAVE_FORMAT_IEEE_FLOAT = 0x0003
_WAVE_FORMAT_EXTENSIBLE = 0xFFFE
# The tail shared by the KSDATAFORMAT_SUBTYPE_* GUIDs; the first two bytes
# are the format code (1 for PCM).
_GUID_TAIL = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"


class _WavFormat:
    __slots__ = ("bits", "channels", "code", "rate")

    def __init__(self, code: int, channels: int, rate: int, bits: int) -> None:
        self.code = code
        self.channels = channels
        self.rate = rate
        self.bits = bits


def _parse_fmt(body: bytes) -> _WavFormat | str:
    """The ``fmt `` chunk's format, or what is wrong with it."""
    import struct

    if len(body) < 16:
        return f"its 'fmt ' chunk is {len(body)} bytes, shorter than the 16 a WAV header needs"
    code, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", body)
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
    return _WavFormat(code, channels, rate, bits)


def _parse_wav(data: bytes) -> tuple[_WavFormat, bytes] | str:
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
    try:
        with open(path, "rb") as file:
            data = file.read()
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: no such file") from exc
    except IsADirectoryError as exc:
        raise ConfigError(f"{path}: is a directory, not a WAV file") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the file: {exc.strerror or exc}") from exc
    parsed = _parse_wav(data)
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
