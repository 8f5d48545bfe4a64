"""load_wav on the WAV files users really have: extensible headers, cut-short files, directories."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

import dashscope_sync as ds

from .conftest import need

PCM = bytes(range(256)) * 4  # 512 samples


def fmt_chunk(
    *, code: int = 1, channels: int = 1, rate: int = 16000, bits: int = 16, extensible_of: int = 0
) -> bytes:
    """A 'fmt ' chunk; with ``extensible_of`` set, WAVE_FORMAT_EXTENSIBLE wrapping that code."""
    block = channels * bits // 8
    body = struct.pack("<HHIIHH", code, channels, rate, rate * block, block, bits)
    if extensible_of:
        guid = struct.pack("<H", extensible_of) + bytes.fromhex("000000001000800000aa00389b71")
        body = (
            struct.pack("<HHIIHH", 0xFFFE, channels, rate, rate * block, block, bits)
            + struct.pack("<HHI", 22, bits, 0x4)
            + guid
        )
    return b"fmt " + struct.pack("<I", len(body)) + body


def riff(*chunks: bytes) -> bytes:
    body = b"WAVE" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def data_chunk(pcm: bytes, declared: int | None = None) -> bytes:
    return b"data" + struct.pack("<I", len(pcm) if declared is None else declared) + pcm


def load(tmp_path: Path, content: bytes) -> bytes:
    path = tmp_path / "in.wav"
    path.write_bytes(content)
    return ds.load_wav(path)


class TestAccepted:
    def test_extensible_pcm16(self, tmp_path: Path) -> None:
        """A WAVE_FORMAT_EXTENSIBLE file holding 16 kHz mono PCM16 is read."""
        wav = riff(fmt_chunk(extensible_of=1), data_chunk(PCM))
        assert load(tmp_path, wav) == PCM

    def test_plain_pcm16_with_extra_chunks(self, tmp_path: Path) -> None:
        """Chunks before the audio (LIST metadata, odd-sized and padded) are skipped."""
        wav = riff(fmt_chunk(), b"LIST" + struct.pack("<I", 3) + b"abc\x00", data_chunk(PCM))
        assert load(tmp_path, wav) == PCM

    @pytest.mark.parametrize("rate", [0, -1, 1.5, True, "16000"])
    def test_pcm16_to_wav_refuses_a_bad_rate(self, rate: object) -> None:
        """pcm16_to_wav() with a rate that is not a positive whole number is a ConfigError."""
        with pytest.raises(ds.ConfigError, match="sample_rate"):
            ds.pcm16_to_wav(b"\x00\x00", rate)  # type: ignore[arg-type]

    def test_pcm16_to_wav_checks_the_audio(self) -> None:
        """pcm16_to_wav() takes an int16 array, and refuses float samples and odd bytes."""
        np = need("numpy")
        samples = np.arange(100, dtype="<i2")
        assert ds.pcm16_to_wav(samples, 16000) == ds.pcm16_to_wav(samples.tobytes(), 16000)
        with pytest.raises(ds.ConfigTypeError, match="astype"):
            ds.pcm16_to_wav(samples.astype(np.float32), 16000)
        with pytest.raises(ds.ConfigError, match="whole 16-bit"):
            ds.pcm16_to_wav(b"\x00", 16000)

    def test_what_pcm16_to_wav_writes(self, tmp_path: Path) -> None:
        """The library's own WAV files read back exactly."""
        assert load(tmp_path, ds.pcm16_to_wav(PCM, 16000)) == PCM

    def test_streamed_size(self, tmp_path: Path) -> None:
        """A streamed WAV (data size 0xFFFFFFFF, as ffmpeg writes to a pipe) runs to the end."""
        wav = riff(fmt_chunk(), data_chunk(PCM, declared=0xFFFFFFFF))
        assert load(tmp_path, wav) == PCM


class TestRefused:
    @pytest.mark.parametrize(
        ("fmt", "problem"),
        [
            (fmt_chunk(extensible_of=3, bits=32), "32-bit float samples"),
            (fmt_chunk(extensible_of=1, bits=24), "24-bit samples"),
            (fmt_chunk(extensible_of=1, channels=2), "2 channels"),
            (fmt_chunk(code=3, bits=32), "32-bit float samples"),
            (fmt_chunk(code=0x55), "compressed audio"),
        ],
    )
    def test_wrong_format_is_explained(self, tmp_path: Path, fmt: bytes, problem: str) -> None:
        """Float, 24-bit, stereo and compressed files name the problem and how to convert."""
        with pytest.raises(ds.ConfigError) as info:
            load(tmp_path, riff(fmt, data_chunk(PCM)))
        assert problem in str(info.value) and "ffmpeg" in str(info.value)

    def test_header_only(self, tmp_path: Path) -> None:
        """A 44-byte header with an empty data chunk says the file has no audio."""
        with pytest.raises(ds.ConfigError, match="no audio"):
            load(tmp_path, riff(fmt_chunk(), data_chunk(b"")))

    def test_truncated_audio(self, tmp_path: Path) -> None:
        """A data chunk shorter than its declared size says the file is truncated, with sizes."""
        wav = riff(fmt_chunk(), data_chunk(PCM[:100], declared=32000))
        with pytest.raises(ds.ConfigError, match=r"truncated.*32000 bytes.*only 100"):
            load(tmp_path, wav)

    def test_truncated_mid_sample(self, tmp_path: Path) -> None:
        """An odd number of audio bytes says the file ends inside a sample."""
        with pytest.raises(ds.ConfigError, match="middle of a sample"):
            load(tmp_path, riff(fmt_chunk(), data_chunk(PCM[:101])))

    @pytest.mark.parametrize(
        ("content", "says"),
        [
            (b"", "empty"),
            (b"RIFF\x00\x00", "ends inside its RIFF header"),
            (riff()[:12], "ends before its 'fmt ' chunk"),
            (riff(fmt_chunk()), "no 'data' chunk"),
            (riff(fmt_chunk())[:30], "ends inside its 'fmt ' chunk"),
            (b"ID3\x04 an mp3", "not a WAV file"),
        ],
    )
    def test_cut_short_header(self, tmp_path: Path, content: bytes, says: str) -> None:
        """Files that end in or right after the header say what is missing."""
        with pytest.raises(ds.ConfigError) as info:
            load(tmp_path, content)
        assert says in str(info.value)
        assert "()" not in str(info.value)  # not "not a PCM WAV file ()"

    def test_directory(self, tmp_path: Path) -> None:
        """A directory is a ConfigError, as documented, not an IsADirectoryError."""
        with pytest.raises(ds.ConfigError, match="is a directory"):
            ds.load_wav(tmp_path)


class TestPaths:
    @pytest.mark.parametrize("reader", [ds.load_wav, ds.load_audio])
    def test_a_file_descriptor_is_not_a_path(self, reader: object, tmp_path: Path) -> None:
        """An int is refused as a path: open(fd) would read, then close, someone else's file."""
        import os

        fd = os.open(tmp_path / "mine", os.O_RDWR | os.O_CREAT)
        try:
            with pytest.raises(ds.ConfigTypeError, match="file name"):
                reader(fd)  # type: ignore[operator]
            os.fstat(fd)  # still open
        finally:
            os.close(fd)

    @pytest.mark.parametrize("path", [None, b"q.wav", 1.5])
    def test_other_types_are_refused(self, path: object) -> None:
        """Anything but a str or os.PathLike is a ConfigTypeError naming its type."""
        with pytest.raises(ds.ConfigTypeError, match=type(path).__name__):
            ds.load_audio(path)  # type: ignore[arg-type]

    def test_empty_name(self) -> None:
        """An empty file name is a ConfigError, not an attempt to open ''."""
        with pytest.raises(ds.ConfigError, match="empty"):
            ds.load_wav("")

    def test_save_wav_refuses_a_file_descriptor(self, tmp_path: Path) -> None:
        """ResponseResult.save_wav() refuses an int instead of writing to and closing that fd."""
        import os

        result = ds.ResponseResult(response_id="r", status="completed", text="", audio=bytes(480))
        fd = os.open(tmp_path / "mine", os.O_RDWR | os.O_CREAT)
        try:
            with pytest.raises(ds.ConfigTypeError):
                result.save_wav(fd)  # type: ignore[arg-type]
            os.fstat(fd)
        finally:
            os.close(fd)
        result.save_wav(tmp_path / "ok.wav")
        assert ds.load_wav(tmp_path / "ok.wav", sample_rate=24000) == bytes(480)
