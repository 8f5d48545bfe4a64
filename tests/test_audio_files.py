"""Files in: load_audio, chunks, the Resampler, and stream_file's pacing over a real socket."""

from __future__ import annotations

import array
import math
import random
import struct
import sys
import time
from pathlib import Path

import pytest

import dashscope_sync as ds
from dashscope_sync.testing import LocalRealtimeServer

from .conftest import need

# Both modes (issue 18) for the tests marked both_modes one by one: those that
# open sessions; the others open none.

MODEL = ds.MODEL_QWEN3_OMNI_FLASH_REALTIME


def tone(rate: int, seconds: float, freq: float = 440.0, amp: float = 0.5) -> list[float]:
    return [amp * math.sin(2 * math.pi * freq * i / rate) for i in range(int(rate * seconds))]


def riff(
    fmt_tag: int, channels: int, rate: int, bits: int, data: bytes, *, extensible: bool = False
) -> bytes:
    """A WAV file's bytes, written by hand so every format can be made."""
    block = channels * bits // 8
    if extensible:
        guid_tail = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
        fmt = struct.pack(
            "<HHIIHHHHI", 0xFFFE, channels, rate, rate * block, block, bits, 22, bits, 0
        )
        fmt += struct.pack("<H", fmt_tag) + guid_tail
    else:
        fmt = struct.pack("<HHIIHH", fmt_tag, channels, rate, rate * block, block, bits)
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt
    chunks += b"LIST" + struct.pack("<I", 3) + b"abc\x00"  # an odd-sized chunk to skip (padded)
    chunks += b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks


def encode(samples: list[float], bits: int, kind: str = "int") -> bytes:
    if kind == "float":
        return array.array("f" if bits == 32 else "d", samples).tobytes()
    if bits == 8:
        return bytes(max(0, min(255, round(s * 127) + 128)) for s in samples)
    scale = 2 ** (bits - 1) - 1
    ints = [max(-scale - 1, min(scale, round(s * scale))) for s in samples]
    return b"".join(i.to_bytes(bits // 8, "little", signed=True) for i in ints)


def pcm16(data: bytes) -> list[int]:
    return list(array.array("h", data))


def assert_close(got: list[int], want: list[float], tolerance: int) -> None:
    assert len(got) == len(want)
    worst = max(abs(g - w * 32767) for g, w in zip(got, want, strict=True))
    assert worst <= tolerance, worst


class TestLoadAudio:
    @pytest.mark.parametrize(
        ("bits", "kind", "extensible", "tolerance"),
        [
            (8, "int", False, 300),
            (16, "int", False, 1),
            (24, "int", False, 2),
            (32, "int", False, 2),
            (32, "float", False, 1),
            (64, "float", False, 1),
            (24, "int", True, 2),
            (32, "float", True, 1),
        ],
    )
    def test_every_sample_format_becomes_pcm16(
        self, tmp_path: Path, bits: int, kind: str, extensible: bool, tolerance: int
    ) -> None:
        """8/16/24/32-bit integer and 32/64-bit float WAV (plain or extensible) read as PCM16."""
        samples = tone(16000, 0.05)
        path = tmp_path / "in.wav"
        path.write_bytes(
            riff(
                3 if kind == "float" else 1,
                1,
                16000,
                bits,
                encode(samples, bits, kind),
                extensible=extensible,
            )
        )
        assert_close(pcm16(ds.load_audio(path)), samples, tolerance)

    def test_channels_are_averaged(self, tmp_path: Path) -> None:
        """A stereo file becomes the average of its channels."""
        left, right = tone(16000, 0.02, amp=0.5), tone(16000, 0.02, amp=0.1)
        interleaved = [v for pair in zip(left, right, strict=True) for v in pair]
        path = tmp_path / "stereo.wav"
        path.write_bytes(riff(1, 2, 16000, 16, encode(interleaved, 16)))
        want = [(a + b) / 2 for a, b in zip(left, right, strict=True)]
        assert_close(pcm16(ds.load_audio(path)), want, 2)

    def test_other_rates_are_resampled(self, tmp_path: Path) -> None:
        """A 44.1 kHz stereo 24-bit file comes out as 16 kHz mono of the same length and tone."""
        samples = tone(44100, 1.0, freq=1000.0)
        path = tmp_path / "cd.wav"
        path.write_bytes(riff(1, 2, 44100, 24, encode([v for s in samples for v in (s, s)], 24)))
        out = pcm16(ds.load_audio(path))
        assert abs(len(out) - 16000) <= 2
        assert_close(out[1000:15000], tone(16000, 1.0, freq=1000.0)[1000:15000], 40)

    def test_resampling_without_the_extra_says_what_fixes_it(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Without soxr, a file needing resampling raises ConfigError naming what was found and the extra."""
        monkeypatch.setitem(sys.modules, "soxr", None)
        path = tmp_path / "cd.wav"
        path.write_bytes(riff(1, 2, 44100, 24, encode(tone(44100, 0.01) * 2, 24)))
        with pytest.raises(ds.ConfigError) as info:
            ds.load_audio(path)
        message = str(info.value)
        assert "44100 Hz, 2 channels, 24-bit integer" in message
        assert "dashscope-sync[audio]" in message and "ffmpeg" in message

    def test_flac_reads_with_soundfile(self, tmp_path: Path) -> None:
        """With soundfile present, a FLAC file (48 kHz) is read and resampled to 16 kHz."""
        soundfile = need("soundfile")
        import numpy

        path = tmp_path / "in.flac"
        soundfile.write(path, numpy.array(tone(48000, 0.5), dtype="float32"), 48000)
        out = pcm16(ds.load_audio(path))
        assert abs(len(out) - 8000) <= 2
        assert max(out) > 15000

    def test_compressed_without_soundfile_says_what_fixes_it(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Without soundfile, a FLAC file raises ConfigError naming the format and the package."""
        monkeypatch.setitem(sys.modules, "soundfile", None)
        path = tmp_path / "in.flac"
        path.write_bytes(b"fLaC" + bytes(100))
        with pytest.raises(ds.ConfigError, match=r"a FLAC file; reading it needs the `soundfile`"):
            ds.load_audio(path)

    @pytest.mark.parametrize(
        ("content", "match"),
        [
            (None, "no such file"),
            (b"hello, not audio at all", "not a WAV file"),
            (riff(1, 1, 16000, 16, b""), "has no audio"),
            (riff(2, 1, 16000, 4, b"\x00" * 10), "format tag 2"),
        ],
    )
    def test_bad_files_raise_config_error(
        self, tmp_path: Path, content: bytes | None, match: str
    ) -> None:
        """Missing, unreadable, empty and unsupported files raise ConfigError saying which."""
        path = tmp_path / "bad.wav"
        if content is not None:
            path.write_bytes(content)
        with pytest.raises(ds.ConfigError, match=match):
            ds.load_audio(path)

    def test_bundled_sample_reads_unchanged(self) -> None:
        """The bundled 16 kHz mono sample reads the same through load_audio and load_wav."""
        assert ds.load_audio(ds.sample_wav_path()) == ds.load_wav(ds.sample_wav_path())


class TestChunks:
    def test_cuts_100_ms_pieces(self) -> None:
        """chunks() cuts 16 kHz PCM16 into 3200-byte pieces, the last one shorter."""
        pieces = list(ds.chunks(bytes(3200 * 3 + 10)))
        assert [len(p) for p in pieces] == [3200, 3200, 3200, 10]

    @pytest.mark.parametrize("ms", [0, -5, 1.5, True])
    def test_bad_ms_raises_at_once(self, ms: object) -> None:
        """A bad ms raises ConfigError when called, not when iterated."""
        with pytest.raises(ds.ConfigError):
            ds.chunks(b"\x00\x00", ms)  # type: ignore[arg-type]

    def test_odd_bytes_raise(self) -> None:
        """Audio that is not whole 16-bit samples raises ConfigError."""
        with pytest.raises(ds.ConfigError, match="whole 16-bit"):
            ds.chunks(b"\x00\x00\x00")

    def test_takes_what_append_audio_takes(self) -> None:
        """A numpy int16 array or an array('h') is cut as its bytes are; no audio gives no pieces."""
        np = need("numpy")
        samples = np.arange(-4000, 4000, dtype="<i2")
        expected = list(ds.chunks(samples.tobytes()))
        assert list(ds.chunks(samples)) == expected
        assert list(ds.chunks(array.array("h", samples.tolist()))) == expected
        assert list(ds.chunks(b"")) == []

    def test_float_samples_are_refused_with_the_fix(self) -> None:
        """Float samples are a ConfigTypeError that says how to convert, not noise."""
        np = need("numpy")
        with pytest.raises(ds.ConfigTypeError, match="astype"):
            ds.chunks(np.zeros(1600, dtype=np.float32))

    def test_a_wav_file_is_refused(self) -> None:
        """A WAV file's bytes are refused (the header would be cut into the audio)."""
        with pytest.raises(ds.ConfigError, match="load_wav"):
            ds.chunks(ds.pcm16_to_wav(bytes(3200), 16000))


class RecordingSink:
    """Anything with append_audio: records what a feed appends."""

    def __init__(self) -> None:
        self.appended: list[bytes] = []

    def append_audio(self, pcm: bytes | bytearray | memoryview) -> str:
        self.appended.append(bytes(pcm))
        return "e"


class TestStreamPcmInputs:
    def test_a_numpy_array_is_one_signal(self) -> None:
        """A numpy int16 array streams as 100 ms appends of its bytes, not one append per sample."""
        np = need("numpy")
        samples = np.arange(16000, dtype="<i2")
        sink = RecordingSink()
        assert ds.stream_pcm(sink, samples, realtime=False).wait(timeout=10)
        assert [len(p) for p in sink.appended] == [3200] * 10
        assert b"".join(sink.appended) == samples.tobytes()

    def test_chunks_already_cut_are_checked(self) -> None:
        """Pieces given already cut are checked as append_audio checks them, before the thread."""
        np = need("numpy")
        sink = RecordingSink()
        with pytest.raises(ds.ConfigTypeError, match="astype"):
            ds.stream_pcm(sink, [bytes(3200), np.zeros(1600, dtype=np.float32)])
        assert sink.appended == []
        assert ds.stream_pcm(sink, [bytes(3200), bytearray(3200)], realtime=False).wait(10)
        assert [len(p) for p in sink.appended] == [3200, 3200]


def snr_db(signal: object, rate: int, freq: float) -> float:
    """SNR of a tone: its power over the power of what a least-squares fit leaves."""
    import numpy as np

    x = np.asarray(signal, dtype=np.float64)
    t = np.arange(len(x)) / rate
    basis = np.stack([np.sin(2 * np.pi * freq * t), np.cos(2 * np.pi * freq * t)], axis=1)
    coef, *_ = np.linalg.lstsq(basis, x, rcond=None)
    fit = basis @ coef
    return float(10 * np.log10(np.sum(fit**2) / np.sum((x - fit) ** 2)))


class TestResampler:
    def test_tone_keeps_over_100_db_snr(self) -> None:
        """A 1 kHz tone taken from 48 kHz to 16 kHz keeps more than 100 dB SNR."""
        np = need("numpy")
        need("soxr")
        t = np.arange(48000 * 2) / 48000
        x = (0.5 * np.sin(2 * np.pi * 1000 * t)).astype("<f4")
        resampler = ds.Resampler(48000, 16000, sample_format="float32")
        out = np.frombuffer(resampler.convert(x.tobytes()), dtype="<f4")
        snr = snr_db(out[2000:-2000], 16000, 1000.0)
        print(f"resampler 1 kHz SNR: {snr:.1f} dB")
        assert snr > 100

    def test_tone_above_new_nyquist_is_suppressed(self) -> None:
        """A 9 kHz tone (above 16 kHz's Nyquist) is suppressed by more than 100 dB."""
        np = need("numpy")
        need("soxr")
        t = np.arange(48000 * 2) / 48000
        x = (0.5 * np.sin(2 * np.pi * 9000 * t)).astype("<f4")
        out = np.frombuffer(
            ds.Resampler(48000, 16000, sample_format="float32").convert(x.tobytes()), dtype="<f4"
        )
        leak = 10 * np.log10(
            np.mean(out[2000:-2000].astype(np.float64) ** 2) / np.mean(x.astype(np.float64) ** 2)
        )
        print(f"resampler 9 kHz leak: {leak:.1f} dB")
        assert leak < -100

    @pytest.mark.parametrize(
        ("from_rate", "to_rate", "fmt", "tolerance"),
        [(48000, 16000, "float32", 0), (8000, 24000, "int16", 2), (44100, 16000, "int16", 2)],
    )
    def test_streaming_equals_one_shot(
        self, from_rate: int, to_rate: int, fmt: str, tolerance: int
    ) -> None:
        """Random-sized chunks give the one-shot output (identical for float, within 2 LSB for int16)."""
        np = need("numpy")
        need("soxr")
        rng = random.Random(7)
        dtype = "<f4" if fmt == "float32" else "<i2"
        scale = 0.3 if fmt == "float32" else 10000
        x = (
            (scale * np.sin(2 * np.pi * 440 * np.arange(from_rate) / from_rate))
            .astype(dtype)
            .tobytes()
        )
        width = np.dtype(dtype).itemsize
        streamed = ds.Resampler(from_rate, to_rate, sample_format=fmt)
        out, pos = b"", 0
        while pos < len(x):
            step = rng.randrange(1, 5000) * width + (1 if pos == 0 else 0)  # a split sample too
            out += streamed.process(x[pos : pos + step])
            pos += step
        out += streamed.flush()
        whole = ds.Resampler(from_rate, to_rate, sample_format=fmt).convert(x)
        a, b = np.frombuffer(out, dtype=dtype), np.frombuffer(whole, dtype=dtype)
        assert len(a) == len(b)
        assert np.max(np.abs(a.astype(np.float64) - b)) <= tolerance

    def test_stereo_keeps_channels(self) -> None:
        """Interleaved stereo stays interleaved stereo."""
        need("soxr")
        out = ds.Resampler(32000, 16000, 2).convert(bytes(32000 * 4))
        assert len(out) == 16000 * 4

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"from_rate": 0, "to_rate": 16000},
            {"from_rate": 16000, "to_rate": 8000, "channels": 0},
            {"from_rate": 8000, "to_rate": 16000, "quality": "best"},
            {"from_rate": 8000, "to_rate": 16000, "sample_format": "int8"},
        ],
    )
    def test_bad_arguments_raise(self, kwargs: dict[str, object]) -> None:
        """Bad rates, channels, quality or format raise ConfigError."""
        with pytest.raises(ds.ConfigError):
            ds.Resampler(**kwargs)  # type: ignore[arg-type]

    @pytest.mark.parametrize(
        ("fmt", "dtype", "named"),
        [("int16", "<f4", "float32"), ("int16", "<f8", "float64"), ("int16", ">i2", "big-endian"),
         ("float32", "<i2", "int16"), ("float32", "<f8", "float64")],
    )  # fmt: skip
    def test_samples_of_another_format_are_refused(self, fmt: str, dtype: str, named: str) -> None:
        """Samples that are not the resampler's sample_format raise ConfigTypeError naming them, as append_audio does."""
        np = need("numpy")
        need("soxr")
        samples = (0.25 * np.sin(np.arange(4800) / 10)).astype(dtype)
        for resampler in (ds.Resampler(48000, 16000, sample_format=fmt),
                          ds.Resampler(16000, 16000, sample_format=fmt)):  # fmt: skip
            with pytest.raises(ds.ConfigTypeError, match=named):
                resampler.process(samples)
            with pytest.raises(ds.ConfigTypeError, match=named):
                resampler.convert(samples)

    def test_samples_of_its_format_equal_their_bytes(self) -> None:
        """An array of the resampler's own format (numpy or array('h')) converts as its bytes do."""
        np = need("numpy")
        need("soxr")
        wave = np.sin(np.arange(4800) / 10)
        for fmt, samples in (("int16", (8000 * wave).astype("<i2")),
                             ("float32", (0.25 * wave).astype("<f4"))):  # fmt: skip
            expected = ds.Resampler(48000, 16000, sample_format=fmt).convert(samples.tobytes())
            assert ds.Resampler(48000, 16000, sample_format=fmt).convert(samples) == expected
        pcm = array.array("h", (8000 * wave).astype("<i2").tolist())
        expected = ds.Resampler(48000, 16000).convert(pcm.tobytes())
        assert ds.Resampler(48000, 16000).convert(pcm) == expected

    def test_not_samples_are_refused(self) -> None:
        """A list, or an array whose channel count differs from the resampler's, is refused."""
        np = need("numpy")
        need("soxr")
        with pytest.raises(ds.ConfigTypeError, match="list"):
            ds.Resampler(48000, 16000).process([1, 2, 3])  # type: ignore[arg-type]
        with pytest.raises(ds.ConfigError, match=r"shape \(n, 1\)"):
            ds.Resampler(48000, 16000).process(np.zeros((480, 2), dtype="<i2"))

    def test_missing_extra_names_it(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without soxr, the Resampler raises ConfigError naming the [audio] extra."""
        monkeypatch.setitem(sys.modules, "soxr", None)
        with pytest.raises(ds.ConfigError, match=r"soxr from the \[audio\] extra"):
            ds.Resampler(48000, 16000)


@pytest.mark.both_modes
class TestStreamFile:
    def test_realtime_pacing_holds(self, tmp_path: Path) -> None:
        """1.5 s of audio streams in no less than its own duration, and not far behind it."""
        path = tmp_path / "q.wav"
        path.write_bytes(ds.pcm16_to_wav(bytes(16000 * 3), 16000))
        with LocalRealtimeServer() as server:
            client = ds.Client(server.api_key, base_url=server.url)
            with client.realtime.connect(model=MODEL) as session:
                started = time.monotonic()
                feed = ds.stream_file(session, path)
                assert feed.wait(timeout=30)
                elapsed = time.monotonic() - started
                connection = server.connections[0]
        appends = [f for f in connection.received if f["type"] == "input_audio_buffer.append"]
        print(f"pacing: 1.5 s of audio took {elapsed:.3f} s; max lag {feed.max_lag * 1000:.1f} ms")
        assert len(appends) == 15 and feed.sent_seconds == pytest.approx(1.5)
        # The schedule's last chunk is due 1.4 s after the first: never earlier.
        assert elapsed >= 1.4
        # A generous bound: a loaded machine may be late, but the schedule does not drift.
        assert elapsed < 1.4 + 2.0

    def test_as_fast_as_allowed(self, session: ds.RealtimeSession) -> None:
        """realtime=False sends 10 s of audio well under its duration."""
        feed = ds.stream_pcm(session, bytes(16000 * 2 * 10), realtime=False)
        assert feed.wait(timeout=8)
        assert feed.sent_seconds == pytest.approx(10.0)

    def test_stop_ends_the_feed(self, session: ds.RealtimeSession) -> None:
        """stop() ends a real-time feed early and its thread goes."""
        feed = ds.stream_pcm(session, bytes(16000 * 2 * 30))
        feed.stop(timeout=5)
        assert feed.done and feed.sent_seconds < 30
        feed.stop()  # idempotent

    def test_send_failure_is_raised_by_wait(self, client: ds.Client) -> None:
        """A feed into a session that closes raises SessionClosedError from wait()."""
        session = client.realtime.connect(model=MODEL)
        feed = ds.stream_pcm(session, bytes(16000 * 2 * 30))
        session.close()
        with pytest.raises(ds.SessionClosedError):
            feed.wait(timeout=5)

    def test_bad_file_raises_before_the_thread(
        self, session: ds.RealtimeSession, tmp_path: Path
    ) -> None:
        """A missing file raises ConfigError at once."""
        with pytest.raises(ds.ConfigError, match="no such file"):
            ds.stream_file(session, tmp_path / "missing.wav")

    def test_a_stall_restarts_the_schedule_instead_of_bursting(self) -> None:
        """After a 0.8 s stall the feed restarts its schedule (one slip) rather than bursting."""
        import threading

        class StallingSink:
            def __init__(self) -> None:
                self.times: list[float] = []
                self.hold = threading.Event()

            def append_audio(self, pcm: bytes | bytearray | memoryview) -> str:
                self.times.append(time.monotonic())
                if len(self.times) == 3:
                    self.hold.wait(0.8)  # a loaded machine: this append took 0.8 s
                return "e"

        sink = StallingSink()
        feed = ds.stream_pcm(sink, bytes(16000 * 2), chunk_ms=100)
        assert feed.wait(timeout=10)
        assert feed.slips == 1 and len(sink.times) == 10
        # Paced again after the stall: the 6 chunks after the restart follow the
        # new schedule (the last is due 0.6 s after it), not a burst.
        assert sink.times[-1] - sink.times[3] >= 0.6 - 0.01
