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

from ._ear import Ear
from ._proc import INTERRUPTIBLE
from .conftest import need

# Both modes (issue 18) for the two tests that open a session on the device
# (marked both_modes one by one); the others open no session, and the live
# conversation runs the command as a child process.


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


class TestLatencyOnTheLoopback:
    @pytest.mark.both_modes
    def test_interrupt_silences_the_reply_within_the_device_bound(
        self, microphone: ds.Microphone
    ) -> None:
        """A reply played through a Speaker, interrupted mid-way: no sample of it is captured
        later than the call plus 50 ms plus the devices' latencies (and a margin for a loaded
        machine), and interrupt_to_silence and playback_start are set and plausible."""
        import time

        from dashscope_sync.testing import LocalRealtimeServer

        blocks: list[tuple[float, bytes]] = []  # (arrival, block), by the recorder thread
        stop = threading.Event()

        def run() -> None:
            while not stop.is_set():
                with contextlib.suppress(ds.DashScopeTimeout):
                    block = microphone.read(timeout=0.5)
                    blocks.append((time.monotonic(), block))

        recorder = threading.Thread(target=run, name="test-recorder", daemon=True)
        recorder.start()
        try:
            with (
                LocalRealtimeServer() as server,
                ds.Client(server.api_key, base_url=server.url).realtime.connect() as session,
                ds.Speaker() as speaker,
            ):
                session.update_session(ds.SessionUpdate(turn_detection=None))
                session.attach(speaker=speaker)
                sounding = threading.Event()
                speaker.notify_playback(lambda at: sounding.set())
                session.append_text("Tell me a long story.")  # about 5 s of speech
                handle = session.create_response()
                assert sounding.wait(10)
                threading.Event().wait(0.6)  # some of the reply plays
                called = time.monotonic()
                stopped = session.interrupt()
                try:
                    result = handle.wait(timeout=10)
                except ds.ResponseError as exc:
                    assert exc.result is not None
                    result = exc.result
                threading.Event().wait(0.5)  # a tail would travel through the loopback
                session.detach()
                bound = called + 0.05 + speaker.device_latency + microphone.latency
        finally:
            stop.set()
            recorder.join(5)
        first, last = loud_span(blocks)
        assert first is not None and last is not None, "the reply was not captured"
        assert first < called  # it played before the interrupt
        print(
            f"loopback: last reply sample captured {last - called:.3f} s after interrupt() "
            f"(upper bound); interrupt_to_silence {stopped.interrupt_to_silence}; "
            f"playback_start {result.playback_start}"
        )
        # Margin for a loaded machine: the reply would otherwise sound for seconds more.
        assert last <= bound + 0.3
        assert stopped.interrupt_to_silence is not None
        assert 0 <= stopped.interrupt_to_silence <= 0.5
        assert result.playback_start is not None
        assert result.first_audio_delay is not None
        assert result.first_audio_delay <= result.playback_start <= 5.0


def loud_span(
    blocks: list[tuple[float, bytes]], rate: int = 16000
) -> tuple[float | None, float | None]:
    """Upper bounds of when the first and the last loud sample (-40 dBFS) were captured.

    A sample is captured before the block holding it, and every later block,
    arrives, by at least the audio between it and that block's end (95 % of
    it: the device's clock may run a little slow): the least such bound over
    the next blocks leaves out a late read by the test's thread.
    """
    from array import array

    ends: list[tuple[float, int]] = []
    total = 0
    for arrival, block in blocks:
        total += len(block) // 2
        ends.append((arrival, total))
    first = last = None
    start = 0
    for number, (_, block) in enumerate(blocks):
        samples = array("h", block)
        loud = [k for k, v in enumerate(samples) if abs(v) >= 328]
        for k in (loud[:1] + loud[-1:]) if loud else []:
            index = start + k
            at = min(a - 0.95 * (end - 1 - index) / rate for a, end in ends[number : number + 20])
            first = at if first is None else first
            last = at
        start += len(samples)
    return first, last


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
                with ds.Speaker() as user, Ear() as ear:
                    user.write(question)
                    assert user.drain(timeout=5)
                    started = time.monotonic()
                    assert wait_line("[completed]", 20) or wait_line("[cancelled]", 1), lines
                    print(
                        f"talk --mic: reply done {time.monotonic() - started:.2f} s "
                        "after the question"
                    )
                    # Its playback start is reported only if it sounded before Ctrl-C: the
                    # reply plays after [completed], later on a loaded machine.
                    assert ear.sounded_since(ear.mark(), 20), "talk played no reply"
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


class TestTranscriptOnTheLoopback:
    @pytest.mark.both_modes
    def test_a_cut_reply_keeps_the_words_the_device_played(self, microphone: ds.Microphone) -> None:
        """interrupt() on a real device: heard_text holds the words of the seconds played, and no
        reply sound is captured after the cut beyond a block and the loopback's delay."""
        need("numpy")
        from dashscope_sync.testing import LocalRealtimeServer

        recorded, stop = bytearray(), threading.Event()
        recorder = record(microphone, stop, recorded)
        try:
            with (
                LocalRealtimeServer(delta_delay=0.005) as server,
                ds.Client(server.api_key, base_url=server.url).realtime.connect(
                    model=ds.MODEL_QWEN3_OMNI_FLASH_REALTIME
                ) as session,
                ds.Speaker() as speaker,
            ):
                session.update_session(ds.SessionUpdate(turn_detection=None), timeout=10)
                session.attach(speaker=speaker)
                session.append_text("Tell me a long story, with very many words in it, please.")
                response = session.create_response()
                waiter = threading.Event()
                while speaker.played_seconds < 1.5:
                    waiter.wait(0.01)
                stopped = session.interrupt()
                with contextlib.suppress(ds.ResponseCancelledError):
                    response.wait(timeout=10)
                waiter.wait(0.5)  # the last samples travel through the loopback
                reply = session.transcript[-1]
                block = speaker.block_ms / 1000
        finally:
            stop.set()
            recorder.join(5)
        played = stopped.played_seconds
        assert played is not None and reply.interrupted
        assert reply.heard_text and reply.text.startswith(reply.heard_text)
        # The local server speaks 60 ms of audio per character of the reply:
        # the words kept are those of the seconds played, give or take a word or two.
        chars = played / 0.060
        print(
            f"loopback transcript: played {played:.3f} s (~{chars:.0f} chars), heard_text "
            f"{len(reply.heard_text)} of {len(reply.text)} chars: {reply.heard_text!r}"
        )
        assert chars - 20 <= len(reply.heard_text) <= chars + 5
        sound = _sound_span(bytes(recorded))
        assert sound <= played + block + 0.3


def _sound_span(pcm: bytes, rate: int = 16000) -> float:
    """Seconds from the first to the last 10 ms frame above -40 dBFS (speech has pauses)."""
    import numpy as np

    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    frame = rate // 100
    n = len(x) // frame
    rms = np.sqrt(np.mean(x[: n * frame].reshape(n, frame) ** 2, axis=1))
    loud = np.flatnonzero(rms > 32768 * 10 ** (-40 / 20))
    return 0.0 if not len(loud) else float(loud[-1] - loud[0] + 1) / 100
