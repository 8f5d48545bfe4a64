"""Speaker and Microphone on a real PortAudio device: a tone out and back in through a loopback.

CI (``.ci/run``) starts a PipeWire null "Audio/Duplex" node (``.ci/audio-device.sh``),
so what the speaker plays comes back on the microphone, and sets
``DASHSCOPE_SYNC_REQUIRE_AUDIO_DEVICE=1``: there these tests fail rather than
skip when no device works. Elsewhere they skip with the reason.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

import dashscope_sync as ds

REQUIRE_ENV = "DASHSCOPE_SYNC_REQUIRE_AUDIO_DEVICE"

_PROBE = """
import sounddevice as sd
out = sd.RawOutputStream(samplerate=24000, blocksize=1200, channels=1, dtype="int16", latency=0.1)
inp = sd.RawInputStream(samplerate=16000, blocksize=1600, channels=1, dtype="int16", latency=0.1)
out.start(); inp.start(); out.write(bytes(4800)); inp.read(1600)
out.close(); inp.close()
"""


def _device_problem() -> str | None:
    """Why no duplex device works here, or None. In a subprocess: a broken
    sound server can hang PortAudio, and this must not hang the suite."""
    try:
        import sounddevice  # noqa: F401
    except ImportError:
        return "sounddevice is not installed (the [audio] extra)"
    except OSError as exc:
        return f"PortAudio is missing ({exc}); apt-get install libportaudio2"
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=20
        )
    except subprocess.TimeoutExpired:
        return (
            "opening the default PortAudio devices hung (a sound server without a session manager?)"
        )
    if proc.returncode:
        last = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return f"no working default input and output device ({last}); run .ci/audio-device.sh"
    return None


@pytest.fixture(scope="module")
def audio_device() -> None:
    problem = _device_problem()
    if problem is None:
        return
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{REQUIRE_ENV}=1 but {problem}")
    pytest.skip(f"no audio device: {problem}")


@pytest.fixture
def microphone(audio_device: None) -> Iterator[ds.Microphone]:
    with ds.Microphone(block_ms=50, max_blocks=200) as mic:
        yield mic


def record(mic: ds.Microphone, stop: threading.Event, into: bytearray) -> threading.Thread:
    def run() -> None:
        while not stop.is_set():
            with contextlib.suppress(ds.DashScopeTimeout):
                into.extend(mic.read(timeout=0.5))

    thread = threading.Thread(target=run, name="test-recorder", daemon=True)
    thread.start()
    return thread


def tone(seconds: float, freq: float = 1000.0, rate: int = 24000) -> bytes:
    import numpy as np

    t = np.arange(int(rate * seconds)) / rate
    return (8000 * np.sin(2 * np.pi * freq * t)).astype("<i2").tobytes()


def analyse(pcm: bytes, rate: int = 16000) -> tuple[float, float]:
    """Seconds of tone (10 ms frames above -40 dBFS) and its dominant frequency."""
    import numpy as np

    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    frame = rate // 100
    n = len(x) // frame
    rms = np.sqrt(np.mean(x[: n * frame].reshape(n, frame) ** 2, axis=1))
    loud = rms > 32768 * 10 ** (-40 / 20)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(loud.sum()) / 100, float(np.argmax(spectrum)) * rate / len(x)


class TestLoopback:
    def test_tone_comes_back_at_its_frequency_and_duration(self, microphone: ds.Microphone) -> None:
        """A 1 s 1 kHz tone written to the Speaker is recorded at 1 kHz for about 1 s, as played_seconds says."""
        recorded, stop = bytearray(), threading.Event()
        recorder = record(microphone, stop, recorded)
        try:
            with ds.Speaker() as speaker:
                speaker.write(tone(1.0))
                assert speaker.drain(timeout=5)
                played = speaker.played_seconds
                threading.Event().wait(0.3)  # the last samples travel through the loopback
        finally:
            stop.set()
            recorder.join(5)
        seconds, freq = analyse(bytes(recorded))
        print(
            f"loopback: played_seconds {played:.3f} s, recorded tone {seconds:.3f} s at {freq:.1f} Hz"
        )
        assert freq == pytest.approx(1000, abs=10)
        assert seconds == pytest.approx(1.0, abs=0.1)
        assert played == pytest.approx(seconds, abs=0.1)
        assert speaker.underruns == 0

    def test_interrupt_stops_the_sound_within_one_block(self, microphone: ds.Microphone) -> None:
        """interrupt() mid-tone: the recording holds what played_seconds said was heard, plus at most a block."""
        recorded, stop = bytearray(), threading.Event()
        recorder = record(microphone, stop, recorded)
        try:
            with ds.Speaker() as speaker:
                speaker.write(tone(3.0))
                waiter = threading.Event()
                while speaker.played_seconds < 0.6:
                    waiter.wait(0.01)
                speaker.interrupt()
                heard = speaker.played_seconds
                waiter.wait(0.5)
                block = speaker.block_ms / 1000
        finally:
            stop.set()
            recorder.join(5)
        seconds, freq = analyse(bytes(recorded))
        print(f"loopback interrupt: played_seconds {heard:.3f} s, recorded tone {seconds:.3f} s")
        assert freq == pytest.approx(1000, abs=10)
        assert seconds < 3.0 / 2  # it stopped
        assert heard - 0.1 <= seconds <= heard + block + 0.1
