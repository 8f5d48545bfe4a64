"""Speaker and Microphone on a real PortAudio device: a tone out and back in through a loopback.

CI (``.ci/run``) starts a PipeWire null "Audio/Duplex" node (``.ci/audio-device.sh``),
so what the speaker plays comes back on the microphone; see the ``audio_device``
fixture (conftest.py) for when these tests skip and when they fail instead.
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

from ._proc import INTERRUPTIBLE
from .conftest import need


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
    # 48000: the device is opened at 48 kHz and the 24 kHz audio resampled on
    # the way, as for a device that refuses 24 kHz (PipeWire itself takes any).
    @pytest.mark.parametrize("device_rate", [None, 48000], ids=["24k", "resampled-to-48k"])
    def test_tone_comes_back_at_its_frequency_and_duration(
        self, microphone: ds.Microphone, device_rate: int | None
    ) -> None:
        """A 1 s 1 kHz tone written to the Speaker is recorded at 1 kHz for about 1 s, as played_seconds says."""
        recorded, stop = bytearray(), threading.Event()
        recorder = record(microphone, stop, recorded)
        try:
            with ds.Speaker(device_rate=device_rate) as speaker:
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
        # Measured here: 40-90 ms after the estimate (the block being written
        # plus what PipeWire holds); the bound leaves room for a loaded machine.
        assert heard - 0.1 <= seconds <= heard + block + 0.2


class TestTalkMic:
    def test_live_conversation_on_the_loopback(self, audio_device: None) -> None:
        """``talk --mic`` hears speech played into the loopback, replies, and ends cleanly on Ctrl-C."""
        import signal
        import time

        from dashscope_sync.testing import LocalRealtimeServer, resample_pcm16, speech_like_pcm16

        with LocalRealtimeServer(server_vad=True) as server:
            env = {**os.environ, ds.API_KEY_ENV: server.api_key}
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "dashscope_sync",
                    "talk",
                    "--mic",
                    "--echo",
                    "gate",
                    "--url",
                    server.url,
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
                **INTERRUPTIBLE,
            )
            lines: list[str] = []
            seen = threading.Condition()

            def pump(stream: object) -> None:
                for line in stream:  # type: ignore[attr-defined]
                    with seen:
                        lines.append(line)
                        seen.notify_all()

            pumps = [
                threading.Thread(target=pump, args=(s,), daemon=True)
                for s in (proc.stdout, proc.stderr)
            ]
            for thread in pumps:
                thread.start()

            def wait_line(text: str, timeout: float) -> bool:
                with seen:
                    return seen.wait_for(lambda: any(text in line for line in lines), timeout)

            try:
                assert wait_line("talk now", 20), lines
                # The user speaks: played into the loopback, heard by talk's microphone.
                question = resample_pcm16(speech_like_pcm16(1.0), 16000, 24000)
                with ds.Speaker() as user:
                    user.write(question)
                    assert user.drain(timeout=5)
                started = time.monotonic()
                assert wait_line("[completed]", 20) or wait_line("[cancelled]", 1), lines
                print(
                    f"talk --mic: reply done {time.monotonic() - started:.2f} s after the question"
                )
            finally:
                proc.send_signal(signal.SIGINT)
                code = proc.wait(15)
                for thread in pumps:
                    thread.join(5)
                for stream in (proc.stdout, proc.stderr):
                    if stream is not None:
                        stream.close()
        output = "".join(lines)
        assert code == 0, output
        assert "turns: 1; first audio after you stopped:" in output
        assert "latency over 1 response:" in output
        assert "end of speech to first audio: p50" in output
        assert "playback start: p50" in output
        assert "Traceback" not in output


class TestEchoOnTheLoopback:
    def test_aec_removes_the_speaker_from_the_microphone(self, microphone: ds.Microphone) -> None:
        """Through the loopback (a perfect echo), echo="aec"'s canceller removes most of the speaker's sound."""
        need("pywebrtc_audio")
        from dashscope_sync._audio.echo import EchoCanceller
        from dashscope_sync.testing import resample_pcm16, speech_like_pcm16

        raw, cleaned = bytearray(), bytearray()

        class Sink:
            def append_audio(self, pcm: bytes | bytearray | memoryview) -> str:
                cleaned.extend(pcm)
                return "e"

        with ds.Speaker() as speaker:
            aec = EchoCanceller(speaker.rate)

            def process(block: bytes) -> bytes:
                raw.extend(block)
                return aec.near(block)

            speaker.set_tap(aec.far)
            microphone.stream_to(Sink(), process=process)
            speaker.write(resample_pcm16(speech_like_pcm16(4.0), 16000, 24000))
            assert speaker.drain(timeout=10)
            microphone.stop_streaming()

        import numpy as np

        def db(pcm: bytes) -> float:
            x = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
            return float(10 * np.log10(np.mean(x**2) + 1e-9))

        settled = slice(2 * 32000, 4 * 32000)  # after 2 s to converge
        reduction = db(bytes(raw[settled])) - db(bytes(cleaned[settled]))
        print(f"loopback aec: echo reduced by {reduction:.1f} dB")
        assert reduction > 10
