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
