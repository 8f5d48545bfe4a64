"""Stand-ins for PortAudio streams: real-time devices simulated in plain Python.

They are the ``stream=`` objects `Speaker` and `Microphone` accept, so the
logic tests run the same code as with a device. `VirtualOutput` consumes
audio in real time from a buffer of ``latency`` seconds (``write`` blocks
while it is full, as PortAudio's blocking write does) and records when each
sample was heard, as ground truth.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any


class VirtualOutput:
    """A write-mode output device that plays in real time (see the module docstring)."""

    def __init__(self, rate: int = 24000, latency: float = 0.1) -> None:
        self.rate = rate
        self.latency = latency
        # Guards everything below.
        self._lock = threading.Lock()
        self._pieces: list[tuple[float, int]] = []  # (start time, frames) as the device plays them
        self.data = bytearray()  # every sample written, in order
        self._device_end = 0.0
        self.started = 0
        self.aborts: list[float] = []
        self.closed = False
        self._room = threading.Event()  # never set: a timed wait for room in the buffer

    def start(self) -> None:
        with self._lock:
            self.started += 1

    def write(self, data: bytes) -> None:
        frames = len(data) // 2
        duration = frames / self.rate
        while True:
            with self._lock:
                now = time.monotonic()
                queued = max(0.0, self._device_end - now)
                if queued + duration <= self.latency + 1e-9 or queued == 0.0:
                    start = max(self._device_end, now)
                    self._pieces.append((start, frames))
                    self.data += data
                    self._device_end = start + duration
                    return
                wait = queued + duration - self.latency
            self._room.wait(wait)

    def abort(self) -> None:
        with self._lock:
            now = time.monotonic()
            self.aborts.append(now)
            kept = []
            for start, frames in self._pieces:
                if start >= now:
                    continue
                played = min(frames, int((now - start) * self.rate))
                kept.append((start, played))
            self._pieces = kept
            self._device_end = min(self._device_end, now)

    def close(self) -> None:
        self.closed = True

    def heard(self, until: float | None = None) -> float:
        """Seconds of audio played by ``until`` (default: now)."""
        now = time.monotonic() if until is None else until
        with self._lock:
            total = 0
            for start, frames in self._pieces:
                if start < now:
                    total += min(frames, int(min(now - start, 1e6) * self.rate))
            return total / self.rate

    def total(self) -> float:
        """Seconds of audio the device will have played once its buffer is empty."""
        return self.heard(float("inf"))


class VirtualInput:
    """An input stream whose blocks the test pushes, through PortAudio's callback signature."""

    def __init__(self, callback: Callable[..., None]) -> None:
        self.callback = callback
        self.running = False
        self.closed = False

    def start(self) -> None:
        self.running = True

    def stop(self) -> None:
        self.running = False

    def close(self) -> None:
        self.closed = True

    def push(self, pcm: bytes, status: Any = 0) -> None:
        self.callback(pcm, len(pcm) // 2, None, status)


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Test helper: wait for a condition that no event signals (a device's clock)."""
    end = time.monotonic() + timeout
    tick = threading.Event()
    while not predicate():
        if time.monotonic() > end:
            return False
        tick.wait(0.005)
    return True
