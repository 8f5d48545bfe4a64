"""Latency figures a listener would recognise: interrupt to silence, end of speech to first audio.

Run by hand (about a minute), not by the suite::

    bash .ci/audio-device.sh start /tmp/audiodev && . /tmp/audiodev/env
    python benchmarks/latency.py [--interrupts 20] [--turns 20] [--no-device]
    bash .ci/audio-device.sh stop /tmp/audiodev

Two parts, both against the local server (``LocalRealtimeServer``) on loopback:

- **interrupt to silence**, on the PipeWire loopback (``.ci/audio-device.sh``,
  AUDIO.md): a `Speaker` attached to the session plays a long reply, a
  `Microphone` records the loopback, and ``interrupt()`` is called at a random
  point 0.3-0.8 s into the playback, ``--interrupts`` times. Reported: the
  session's own ``interrupt_to_silence`` (the call until the speaker's
  stream abort returned), and the silence observed in the recording: the
  capture time of the last sample of the reply, bounded from above by the
  arrival times of the microphone's blocks (a sample is captured before the
  block holding it, and every later block, arrives), minus the time of the
  call. That bound includes the input latency, so it overstates the truth.
- **the session's figures**, ``--turns`` turns of ``respond()`` in manual mode
  and under server VAD, with a speaker when a device is there (each reply
  heard out before the next question): the ``session.metrics`` summary (end
  of speech to first audio, first audio, first audible, first text, playback
  start, total). The server echoes the question after 200 ms of silence
  (``leading_silence_ms``). Against the local server these are the
  library's and the loopback's share, not a model's.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import statistics
import sys
import threading
import time
from array import array
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import dashscope_sync as ds
from dashscope_sync.testing import LocalRealtimeServer, speech_like_pcm16

MIC_RATE = 16000
#: A 10 ms frame of the recording is the reply's when its peak reaches this (-40 dBFS).
LOUD = 328
#: The device clock may run this much slower than the monotonic clock (AUDIO.md: 0.97-1.01).
CLOCK_SLACK = 0.95


class Recorder:
    """Reads a microphone on a thread, keeping each block with the time it arrived."""

    def __init__(self, mic: ds.Microphone) -> None:
        self.mic = mic
        # Guards blocks: appended by the reader thread, read by the analysis.
        self.lock = threading.Lock()
        self.blocks: list[tuple[float, bytes]] = []
        self.stop = threading.Event()  # set to end the reader thread
        self.thread = threading.Thread(target=self._run, name="bench-recorder", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            with contextlib.suppress(ds.DashScopeTimeout):
                block = self.mic.read(timeout=0.2)
                with self.lock:
                    self.blocks.append((time.monotonic(), block))

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)

    def last_loud_before(self, since: float) -> float | None:
        """The latest capture time (an upper bound) of a loud sample among the blocks
        that arrived after ``since``; None if none is loud."""
        with self.lock:
            blocks = list(self.blocks)
        ends: list[tuple[float, int]] = []  # (arrival, index of the block's last sample + 1)
        total = 0
        for arrival, block in blocks:
            total += len(block) // 2
            ends.append((arrival, total))
        latest = None
        start = 0
        for number, (arrival, block) in enumerate(blocks):
            samples = array("h", block)
            if arrival >= since:
                for offset in range(0, len(samples), MIC_RATE // 100):
                    frame = samples[offset : offset + MIC_RATE // 100]
                    if frame and max(max(frame), -min(frame)) >= LOUD:
                        index = start + offset + len(frame) - 1
                        latest = self._captured_by(index, ends[number : number + 20])
            start += len(samples)
        return latest

    @staticmethod
    def _captured_by(index: int, later: list[tuple[float, int]]) -> float:
        """An upper bound of when sample ``index`` was captured: before each later block
        arrived, by at least the audio between it and that block's end."""
        return min(arrival - CLOCK_SLACK * (end - 1 - index) / MIC_RATE for arrival, end in later)


def percentiles(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return (
        f"p50 {statistics.median(ordered) * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms, "
        f"max {ordered[-1] * 1000:.1f} ms (n={len(ordered)})"
    )


def interrupts(count: int) -> None:
    reported: list[float] = []
    observed: list[float] = []
    with (
        LocalRealtimeServer() as server,
        ds.Client(server.api_key, base_url=server.url).realtime.connect() as session,
        ds.Speaker() as speaker,
        ds.Microphone(block_ms=20, max_blocks=1000) as mic,
    ):
        session.update_session(ds.SessionUpdate(turn_detection=None))
        session.attach(speaker=speaker)
        recorder = Recorder(mic)
        try:
            for _ in range(count):
                sounding = threading.Event()
                speaker.notify_playback(lambda at, s=sounding: s.set())
                session.append_text("Tell me a long story, please, with many words in it.")
                handle = session.create_response()
                if not sounding.wait(10):
                    raise SystemExit("the speaker never played: is the audio device running?")
                threading.Event().wait(random.uniform(0.3, 0.8))
                called = time.monotonic()
                stopped = session.interrupt()
                with contextlib.suppress(ds.ResponseError):
                    handle.wait(timeout=10)
                threading.Event().wait(0.6)  # the tail travels through the loopback
                last = recorder.last_loud_before(called - 1.0)
                if stopped.interrupt_to_silence is not None:
                    reported.append(stopped.interrupt_to_silence)
                if last is not None:
                    observed.append(max(0.0, last - called))
            print(f"speaker output latency reported by the device: {speaker.device_latency:.3f} s")
        finally:
            recorder.close()
            session.detach()
    print(f"interrupt_to_silence (reported by the session): {percentiles(reported)}")
    print(f"last reply sample captured after the call (upper bound): {percentiles(observed)}")


def figures(turns: int, device: bool) -> None:
    question = speech_like_pcm16(1.0)
    for mode, detection in (("manual", None), ("server VAD", ds.NOT_GIVEN)):
        with contextlib.ExitStack() as stack:
            # The reply is the question played back (1 s) after 200 ms of silence,
            # as a model may send before its voice.
            server = stack.enter_context(
                LocalRealtimeServer(delta_delay=0.01, reply_audio="echo", leading_silence_ms=200)
            )
            client = ds.Client(server.api_key, base_url=server.url)
            session = stack.enter_context(client.realtime.connect())
            if detection is None:
                session.update_session(ds.SessionUpdate(turn_detection=None))
            speaker = stack.enter_context(ds.Speaker()) if device else None
            handled = threading.Event()  # the handlers gave the speaker the whole reply
            if speaker is not None:
                session.attach(speaker=speaker)
                stack.callback(session.detach)
                session.on(ds.ResponseDone, lambda e, done=handled: done.set())
            for _ in range(turns):
                handled.clear()
                session.respond(question, timeout=60)
                if speaker is not None:
                    # A conversation: the next question comes once the reply was heard.
                    handled.wait(10)
                    speaker.drain(timeout=10)
            print(f"\n{mode}, {turns} turns{' with a speaker' if device else ''}:")
            for line in session.metrics.lines():
                print(f"  {line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interrupts", type=int, default=20)
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--no-device", action="store_true", help="skip the audio device parts")
    args = parser.parse_args()
    if not args.no_device:
        interrupts(args.interrupts)
    figures(args.turns, device=not args.no_device)


if __name__ == "__main__":
    main()
