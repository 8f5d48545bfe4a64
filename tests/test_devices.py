"""Speaker and Microphone logic on simulated devices: jitter buffer, interrupt, played-sample
accounting, underruns and queue bounds, through the same code that drives PortAudio."""

from __future__ import annotations

import base64
import contextlib
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import dashscope_sync as ds
from dashscope_sync.testing import LocalRealtimeServer

from .audio_fakes import VirtualInput, VirtualOutput, wait_until
from .conftest import need

# Both modes (issue 18) for the tests marked both_modes one by one: those that
# open sessions; the others open none.

MODEL = ds.MODEL_QWEN3_OMNI_FLASH_REALTIME
# A model that takes an output sample rate (audio.output.format): qwen3-flash has the flat shape only.
RATE_MODEL = ds.MODEL_QWEN3_8_OMNI_FLASH_REALTIME
RATE = 24000
# played_seconds is an estimate from the write times and the reported
# latency; on a loaded machine a write may return late. The bound is loose.
TOLERANCE = 0.15
#: How long the player thread may take to act on interrupt() on a loaded machine:
#: the block being written, plus scheduling.
REACTION = 0.15


def seconds(s: float, value: int = 1000) -> bytes:
    return value.to_bytes(2, "little", signed=True) * int(RATE * s)


@pytest.fixture
def device() -> VirtualOutput:
    return VirtualOutput(RATE, latency=0.1)


@pytest.fixture
def speaker(device: VirtualOutput) -> Iterator[ds.Speaker]:
    with ds.Speaker(stream=device) as spk:
        yield spk


class HeldOutput(VirtualOutput):
    """A device whose writes wait until the test lets them through."""

    def __init__(self) -> None:
        super().__init__(RATE, latency=0.1)
        self.entered = threading.Event()  # set once a write() waits on release
        self.release = threading.Event()  # lets every write through

    def write(self, data: bytes) -> None:
        self.entered.set()
        self.release.wait(10)
        super().write(data)


class TestSpeaker:
    def test_played_seconds_follows_the_listener(
        self, speaker: ds.Speaker, device: VirtualOutput
    ) -> None:
        """played_seconds tracks what the device actually played, during playback and at the end."""
        speaker.write(seconds(1.0))
        assert wait_until(lambda: device.heard() > 0.4)
        estimate, truth = speaker.played_seconds, device.heard()
        assert abs(estimate - truth) < TOLERANCE, (estimate, truth)
        started = time.monotonic()
        assert speaker.drain(timeout=5)
        assert time.monotonic() - started < 3.0
        assert speaker.played_seconds == pytest.approx(1.0, abs=1e-3)
        assert device.total() == pytest.approx(1.0, abs=1e-3)
        assert speaker.underruns == 0

    def test_interrupt_stops_within_one_block(self) -> None:
        """interrupt() drops the queue and aborts the device: at most one more block sounds."""
        # A deep device buffer (0.5 s): without the abort, all of it would still play.
        device = VirtualOutput(RATE, latency=0.5)
        with ds.Speaker(stream=device) as speaker:
            self._interrupt_mid_tone(speaker, device)

    def _interrupt_mid_tone(self, speaker: ds.Speaker, device: VirtualOutput) -> None:
        speaker.write(seconds(3.0))
        assert wait_until(lambda: device.heard() > 0.3)
        at = time.monotonic()
        speaker.interrupt()
        took = time.monotonic() - at
        heard_then = device.heard(at)
        assert wait_until(lambda: len(device.aborts) == 1, timeout=2)
        block = speaker.block_ms / 1000
        assert device.aborts[0] - at <= block + REACTION  # the abort came within about one block
        assert device.total() - heard_then <= block + REACTION
        assert speaker.played_seconds == pytest.approx(heard_then, abs=TOLERANCE)
        assert speaker.written_seconds == pytest.approx(speaker.played_seconds, abs=1e-3)
        assert speaker.queued_seconds == 0 and not speaker.playing
        print(
            f"speaker.interrupt() took {took * 1000:.2f} ms; device aborted after "
            f"{(device.aborts[0] - at) * 1000:.1f} ms"
        )

    def test_plays_again_after_an_interrupt(
        self, speaker: ds.Speaker, device: VirtualOutput
    ) -> None:
        """After interrupt() new audio plays, and the accounting goes on from what was heard."""
        speaker.write(seconds(2.0))
        assert wait_until(lambda: device.heard() > 0.2)
        speaker.interrupt()
        before = speaker.played_seconds
        speaker.write(seconds(0.3))
        assert speaker.drain(timeout=5)
        assert speaker.played_seconds == pytest.approx(before + 0.3, abs=TOLERANCE)

    def test_drain_waits_for_the_block_being_written(self) -> None:
        """drain() counts a block the player took off the queue but has not written yet as unheard."""
        device = HeldOutput()
        with ds.Speaker(stream=device) as spk:
            try:
                spk.write(seconds(0.02))  # one block: the queue is empty while it is written
                spk.mark_end()
                assert device.entered.wait(5)
                assert spk.playing
                assert not spk.drain(timeout=0.2)  # the block is still in write()
            finally:
                device.release.set()
            assert spk.drain(timeout=5)
        assert device.total() == pytest.approx(0.02, abs=1e-3)

    def test_dry_queue_mid_stream_is_an_underrun(self, speaker: ds.Speaker) -> None:
        """The queue running dry before mark_end() counts one underrun; after it, none."""
        speaker.write(seconds(0.2))
        assert wait_until(lambda: speaker.underruns == 1, timeout=3)
        speaker.write(seconds(0.2))
        speaker.mark_end()
        assert speaker.drain(timeout=3)
        assert speaker.underruns == 1

    def test_jitter_buffer_waits_before_starting(self, device: VirtualOutput) -> None:
        """Playback starts only once jitter_ms is queued (or mark_end says no more comes)."""
        with ds.Speaker(stream=device, jitter_ms=200) as spk:
            spk.write(seconds(0.1))
            assert not wait_until(lambda: device.total() > 0, timeout=0.2)
            spk.write(seconds(0.15))
            assert wait_until(lambda: device.total() > 0, timeout=2)
            spk.write(seconds(0.05))
            spk.mark_end()
            assert spk.drain(timeout=3)
        assert device.total() == pytest.approx(0.3, abs=1e-3)

    def test_write_waits_for_room_then_times_out(self, device: VirtualOutput) -> None:
        """write() past max_buffer_seconds waits for room, and raises DashScopeTimeout if none comes."""
        spk = ds.Speaker(stream=device, max_buffer_seconds=0.5)  # not started: nothing drains
        spk.write(seconds(0.4))
        with pytest.raises(ds.DashScopeTimeout):
            spk.write(seconds(0.2), timeout=0.05)
        spk.close()

    def test_timeouts_say_how_long_rounded(self, device: VirtualOutput) -> None:
        """A Speaker's and a Microphone's timeout messages give the timeout rounded, not 0.30000000000000004."""
        timeout = 0.1 + 0.2
        spk = ds.Speaker(stream=device, max_buffer_seconds=0.5)  # not started: nothing drains
        spk.write(seconds(0.4))
        with pytest.raises(ds.DashScopeTimeout, match=r"stayed full for 0\.3 s$"):
            spk.write(seconds(0.2), timeout=timeout)
        spk.close()
        with (
            ds.Microphone(stream=VirtualInput) as mic,
            pytest.raises(ds.DashScopeTimeout, match=r"no audio block within 0\.3 s$"),
        ):
            mic.read(timeout=timeout)

    def test_repr_rounds_durations_by_the_one_rule(self, device: VirtualOutput) -> None:
        """A Speaker's repr shows its durations as every message does (0.4 s, not 0.40 s)."""
        spk = ds.Speaker(stream=device)  # not started: nothing plays
        spk.write(seconds(0.4))
        assert "played=0 s queued=0.4 s" in repr(spk)
        spk.close()

    def test_close_is_idempotent_and_stops(self, device: VirtualOutput) -> None:
        """close() twice is fine; write() after it raises."""
        spk = ds.Speaker(stream=device).start()
        spk.write(seconds(1.0))
        spk.close()
        spk.close()
        with pytest.raises(ds.DashScopeError):
            spk.write(seconds(0.1))

    def test_constructor_opens_nothing(self) -> None:
        """Constructing a Speaker or Microphone opens no device and starts no thread."""
        import threading

        before = threading.active_count()
        ds.Speaker()
        ds.Microphone()
        assert threading.active_count() == before

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"rate": 0},
            {"block_ms": 0},
            {"latency": 0},
            {"jitter_ms": -1},
            {"max_buffer_seconds": 0},
        ],
    )
    def test_bad_arguments(self, kwargs: dict[str, object]) -> None:
        """Bad rates, blocks, latencies and bounds raise ConfigError."""
        with pytest.raises(ds.ConfigError):
            ds.Speaker(**kwargs)  # type: ignore[arg-type]


class TestMicrophone:
    def test_queue_is_bounded_and_counts_overflows(self) -> None:
        """Blocks past max_blocks are dropped in the callback and counted, never blocking it."""
        streams: list[VirtualInput] = []

        def factory(callback):  # type: ignore[no-untyped-def]
            streams.append(VirtualInput(callback))
            return streams[-1]

        with ds.Microphone(max_blocks=3, stream=factory) as mic:
            for i in range(5):
                streams[0].push(bytes([i, 0]) * 1600)
            assert mic.overflows == 2
            assert [mic.read(timeout=1)[0] for _ in range(3)] == [0, 1, 2]
            with pytest.raises(ds.DashScopeTimeout):
                mic.read(timeout=0.01)
        assert streams[0].closed

    def test_resamples_from_the_device_rate(self) -> None:
        """A 48 kHz device is resampled to 16 kHz blocks, outside the callback."""
        need("soxr")
        streams: list[VirtualInput] = []
        mic = ds.Microphone(
            device_rate=48000, stream=lambda cb: streams.append(VirtualInput(cb)) or streams[-1]
        )
        with mic:
            for _ in range(10):
                streams[0].push(bytes(4800 * 2))
            total = sum(len(mic.read(timeout=1)) for _ in range(10))
        assert abs(total - 16000 * 2) <= 16000 * 2 * 0.05  # minus soxr's lag, held until flush

    @pytest.mark.both_modes
    def test_streams_to_a_session_and_gates_on_the_speaker(
        self, session: ds.RealtimeSession, server: LocalRealtimeServer, device: VirtualOutput
    ) -> None:
        """stream_to() appends each block; with a gate, blocks captured while the speaker plays are silence."""
        streams: list[VirtualInput] = []
        mic = ds.Microphone(stream=lambda cb: streams.append(VirtualInput(cb)) or streams[-1])
        with ds.Speaker(stream=device) as spk, mic:
            mic.stream_to(session, gate=spk)
            streams[0].push(b"\x01\x02" * 1600)  # speaker quiet: passes
            assert wait_until(lambda: len(appends(server)) == 1)
            spk.write(seconds(1.0))
            assert wait_until(lambda: spk.playing)
            streams[0].push(b"\x01\x02" * 1600)  # speaker playing: gated
            assert wait_until(lambda: len(appends(server)) == 2)
            mic.stop_streaming()
        import base64

        first, second = (base64.b64decode(f["audio"]) for f in appends(server))
        assert first == b"\x01\x02" * 1600 and second == bytes(3200)


def appends(server: LocalRealtimeServer) -> list[dict[str, object]]:
    return [f for f in server.connections[0].received if f["type"] == "input_audio_buffer.append"]


class TestMissingPortAudio:
    def test_missing_library_names_the_package(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """sounddevice failing to load PortAudio becomes a ConfigError naming libportaudio2."""
        (tmp_path / "sounddevice.py").write_text("raise OSError('PortAudio library not found')\n")
        monkeypatch.syspath_prepend(str(tmp_path))
        monkeypatch.delitem(sys.modules, "sounddevice", raising=False)
        with pytest.raises(ds.ConfigError, match=r"apt-get install libportaudio2"):
            ds.Speaker().start()

    def test_missing_extra_names_it(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without sounddevice, opening a device raises ConfigError naming the [audio] extra."""
        monkeypatch.setitem(sys.modules, "sounddevice", None)
        with pytest.raises(ds.ConfigError, match=r"dashscope-sync\[audio\]"):
            ds.Microphone().start()


@pytest.mark.both_modes
class TestAttachedSpeaker:
    def test_interrupt_reports_what_was_heard(self, device: VirtualOutput) -> None:
        """session.interrupt() with a speaker attached stops it and returns the seconds heard of that reply."""
        with LocalRealtimeServer(delta_delay=0.005) as server:
            client = ds.Client(server.api_key, base_url=server.url)
            with client.realtime.connect(model=MODEL) as session, ds.Speaker(stream=device) as spk:
                session.update_session(ds.SessionUpdate(turn_detection=None))
                session.attach(speaker=spk)
                session.append_text("Tell me a long story, please, with many words in it.")
                response = session.create_response()
                assert wait_until(lambda: device.heard() > 0.4, timeout=10)
                at = time.monotonic()
                stopped = session.interrupt()
                heard = device.heard(at)
                assert stopped.response_id == response.id and stopped.cancelled
                assert stopped.played_seconds is not None
                assert stopped.played_seconds == pytest.approx(heard, abs=TOLERANCE)
                with pytest.raises(ds.ResponseCancelledError):
                    response.wait(timeout=10)
                assert wait_until(lambda: len(device.aborts) >= 1, timeout=2)
                assert device.total() - heard <= spk.block_ms / 1000 + REACTION
                print(
                    f"interrupt: heard {heard:.3f} s, played_seconds {stopped.played_seconds:.3f} s"
                )

    def test_speaker_closed_before_the_session_is_not_a_handler_error(
        self, device: VirtualOutput
    ) -> None:
        """A speaker closed while the reply still streams (an exit order) drops the audio quietly."""
        with LocalRealtimeServer(delta_delay=0.005) as server:
            client = ds.Client(server.api_key, base_url=server.url)
            with client.realtime.connect(model=MODEL) as session:
                spk = ds.Speaker(stream=device).start()
                session.attach(speaker=spk)
                session.update_session(ds.SessionUpdate(turn_detection=None))
                session.append_text("Say something long.")
                response = session.create_response()
                assert wait_until(lambda: device.total() > 0, timeout=10)
                spk.close()
                response.wait(timeout=10)  # no HandlerError raised here or at exit


class TestSpeakerInputs:
    def test_takes_a_numpy_int16_array(self, speaker: ds.Speaker, device: VirtualOutput) -> None:
        """write() takes what append_audio takes: a numpy int16 array plays as its bytes."""
        np = need("numpy")
        samples = np.full(RATE // 2, 1000, dtype="<i2")
        speaker.write(samples)
        assert speaker.drain(timeout=5)
        assert bytes(device.data) == samples.tobytes()

    def test_float_samples_are_refused(self, speaker: ds.Speaker) -> None:
        """Float samples are a ConfigTypeError saying how to convert, not noise on the speaker."""
        np = need("numpy")
        with pytest.raises(ds.ConfigTypeError, match="astype"):
            speaker.write(np.zeros(2400, dtype=np.float32))
        assert speaker.written_seconds == 0

    def test_nothing_to_play_is_fine(self, speaker: ds.Speaker) -> None:
        """An empty write (an empty audio delta) is nothing to do, not an error."""
        speaker.write(b"")
        assert speaker.written_seconds == 0 and not speaker.playing


class TestSpeakerDeviceRate:
    def test_resamples_to_the_device_rate(self) -> None:
        """A device opened at 48 kHz gets the 24 kHz audio resampled: same duration, same pitch, tail included."""
        np = need("numpy")
        need("soxr")
        device = VirtualOutput(48000, latency=0.1)
        t = np.arange(RATE) / RATE
        tone = (8000 * np.sin(2 * np.pi * 1000 * t)).astype("<i2").tobytes()
        with ds.Speaker(device_rate=48000, stream=device) as speaker:
            assert speaker.device_rate == 48000
            speaker.write(tone)
            assert speaker.drain(timeout=5)
            assert speaker.played_seconds == pytest.approx(1.0, abs=1e-3)
        assert device.total() == pytest.approx(1.0, abs=2e-3)  # soxr's held-back tail was flushed
        assert peak_hz(bytes(device.data), 48000) == pytest.approx(1000, abs=5)

    def test_interrupt_resets_the_resampler(self) -> None:
        """After an interrupt, none of the interrupted audio's resampler tail plays before the next reply."""
        need("soxr")
        device = VirtualOutput(48000, latency=0.1)
        with ds.Speaker(device_rate=48000, stream=device) as speaker:
            speaker.write(seconds(3.0))
            assert wait_until(lambda: device.heard() > 0.3)
            speaker.interrupt()
            assert wait_until(lambda: len(device.aborts) == 1, timeout=2)
            before = len(device.data)
            speaker.write(seconds(0.5, value=-1000))
            assert speaker.drain(timeout=5)
        after = bytes(device.data[before:])
        assert len(after) == pytest.approx(48000, abs=96)  # 0.5 s at 48 kHz, nothing more
        # Only the new audio's samples (and the filter's small ringing at its
        # edges): nothing of the interrupted +1000 signal held in the filter.
        assert max(memoryview(after).cast("h")) < 500


class TestCaptureRate:
    class FortyEightOnly:
        """A PortAudio host whose input device captures at 48 kHz only."""

        def check_input_settings(self, **settings: object) -> None:
            if settings["samplerate"] != 48000:
                raise ValueError("Invalid sample rate")

        def query_devices(self, device: object, kind: str) -> dict[str, object]:
            return {"default_samplerate": 48000.0}

    class OutputFortyEightOnly:
        """A PortAudio host whose output device plays at 48 kHz only."""

        def check_output_settings(self, **settings: object) -> None:
            if settings["samplerate"] != 48000:
                raise ValueError("Invalid sample rate")

        def query_devices(self, device: object, kind: str) -> dict[str, object]:
            assert kind == "output"
            return {"default_samplerate": 48000.0}

    def test_speaker_native_rate_when_24k_is_refused(self) -> None:
        """An output device that refuses 24 kHz is opened at its native rate (then resampled)."""
        from dashscope_sync._audio.devices import playback_rate

        assert playback_rate(self.OutputFortyEightOnly(), None, 24000) == 48000
        assert playback_rate(self.OutputFortyEightOnly(), None, 48000) == 48000

    def test_native_rate_when_16k_is_refused(self) -> None:
        """A device that refuses 16 kHz is opened at its native rate (then resampled)."""
        from dashscope_sync._audio.devices import capture_rate

        assert capture_rate(self.FortyEightOnly(), None, 16000) == 48000
        assert capture_rate(self.FortyEightOnly(), None, 48000) == 48000


def peak_hz(pcm: bytes, rate: int) -> float:
    """The dominant frequency of PCM16 audio."""
    import numpy as np

    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    return float(np.argmax(np.abs(np.fft.rfft(x * np.hanning(len(x)))))) * rate / len(x)


def play_reply(
    server: LocalRealtimeServer,
    device: VirtualOutput,
    pieces: list[bytes],
    model: str = MODEL,
    **update: object,
) -> None:
    """A scripted reply of these audio deltas, played by an attached Speaker to the end."""
    deltas = [
        {"type": "response.audio.delta", "delta": base64.b64encode(p).decode()} for p in pieces
    ]
    done = [{"type": "response.audio.done"}, {"type": "response.done"}]
    server.script_response([{"type": "response.created"}, *deltas, *done])
    client = ds.Client(server.api_key, base_url=server.url)
    with client.realtime.connect(model=model) as session, ds.Speaker(stream=device) as spk:
        session.update_session(ds.SessionUpdate(turn_detection=None, **update))  # type: ignore[arg-type]
        for name, value in update.items():
            assert getattr(session.info, name) == value
        session.attach(speaker=spk)
        # Runs after the attachment's handlers: once it ran, the tail was written.
        handled = threading.Event()
        session.on(ds.ResponseDone, lambda event: handled.set())
        session.create_response().wait(timeout=10)
        assert handled.wait(10)
        assert spk.drain(timeout=5)


#: A model that takes another output rate (nested audio.output.format): the
#: flat-only ones (turbo, qwen3-flash) would silently drop it, so the client refuses it there.
RATE_MODEL = ds.MODEL_QWEN3_8_OMNI_FLASH_REALTIME


@pytest.mark.both_modes
class TestAttachedSpeakerRate:
    def test_the_session_rate_is_converted_to_the_speakers(
        self, server: LocalRealtimeServer, device: VirtualOutput
    ) -> None:
        """With the session's output at 48 kHz, a 24 kHz speaker plays the reply resampled: same length and pitch."""
        np = need("numpy")
        need("soxr")
        t = np.arange(24000) / 48000  # 0.5 s at 48 kHz
        tone = (8000 * np.sin(2 * np.pi * 1000 * t)).astype("<i2").tobytes()
        pieces = [tone[i : i + 9600] for i in range(0, len(tone), 9600)]
        play_reply(server, device, pieces, RATE_MODEL, output_sample_rate=48000)
        assert device.total() == pytest.approx(0.5, abs=2e-3)  # the filter's tail included
        # Not 500 Hz, as played unconverted.
        assert peak_hz(bytes(device.data), RATE) == pytest.approx(1000, abs=5)

    def test_matching_rates_pass_the_audio_through(
        self, server: LocalRealtimeServer, device: VirtualOutput
    ) -> None:
        """At the speaker's own rate the reply's audio reaches the device byte for byte."""
        audio = bytes(range(256)) * 75  # 0.4 s at 24 kHz
        play_reply(server, device, [audio])
        assert bytes(device.data) == audio

    def test_an_interrupted_reply_leaves_nothing_in_the_resampler(
        self, server: LocalRealtimeServer
    ) -> None:
        """After interrupt(), nothing of the cut reply reaches the speaker, not even the resampler's held-back tail."""
        need("soxr")

        class RecordingSpeaker:
            rate, played_seconds, written_seconds, playing, closed = RATE, 0.0, 0.0, False, False

            def __init__(self) -> None:
                self.calls: list[str] = []

            def write(self, pcm: bytes) -> None:
                self.calls.append("write")

            def mark_end(self) -> None:
                self.calls.append("end")

            def interrupt(self) -> None:
                self.calls.append("interrupt")

            def set_tap(self, tap: object) -> None:
                pass

        delta = {"type": "response.audio.delta", "delta": base64.b64encode(bytes(9600)).decode()}
        done = [{"type": "response.audio.done"}, {"type": "response.done"}]
        server.script_response([{"type": "response.created"}, *([delta] * 6), *done])
        client = ds.Client(server.api_key, base_url=server.url)
        speaker = RecordingSpeaker()
        with client.realtime.connect(model=RATE_MODEL) as session:
            session.update_session(ds.SessionUpdate(turn_detection=None, output_sample_rate=48000))
            session.attach(speaker=speaker)
            deltas = 0

            def cut_on_the_second(event: ds.ResponseAudioDelta) -> None:
                nonlocal deltas
                deltas += 1
                if deltas == 2:
                    session.interrupt()

            session.on(ds.ResponseAudioDelta, cut_on_the_second)
            handled = threading.Event()
            session.on(ds.ResponseDone, lambda event: handled.set())
            # Cancelled, or done before the cancel arrived: either way the cut stands.
            with contextlib.suppress(ds.ResponseCancelledError):
                session.create_response().wait(timeout=10)
            assert handled.wait(10)
        cut = speaker.calls.index("interrupt")
        assert speaker.calls[:cut].count("write") == 2
        assert "write" not in speaker.calls[cut:], speaker.calls
