"""A test's ear on the audio device's loopback: did anything sound since a moment?

What a ``talk`` process plays comes back on the loopback's capture side, so a
test can wait until that process has actually played something (a reply is
played in real time after its last delta arrived, later still on a loaded
machine) instead of guessing how long that takes.
"""

from __future__ import annotations

import contextlib
import threading
from types import TracebackType

import dashscope_sync as ds


class Ear:
    """A microphone read on its own thread. Use from one test thread: ``with Ear() as ear``,
    ``mark = ear.mark()``, then ``ear.sounded_since(mark, timeout)``."""

    def __init__(self, threshold: int = 200) -> None:
        self._threshold = threshold
        self._heard = bytearray()
        self._hearing = threading.Condition()  # guards _heard
        self._stop = threading.Event()  # ends the reading thread
        self._mic = ds.Microphone(block_ms=50, max_blocks=400)
        self._thread = threading.Thread(target=self._listen, name="test-ear", daemon=True)

    def __enter__(self) -> Ear:
        self._mic.__enter__()
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(5)
        self._mic.__exit__(exc_type, exc, tb)

    def _listen(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(ds.DashScopeTimeout):
                block = self._mic.read(timeout=0.5)
                with self._hearing:
                    self._heard.extend(block)
                    self._hearing.notify_all()

    def mark(self) -> int:
        """Where what is heard from now on starts."""
        with self._hearing:
            return len(self._heard)

    def sounded_since(self, mark: int, timeout: float) -> bool:
        """Wait until a sample louder than the threshold is heard after ``mark``."""

        def loud() -> bool:
            samples = memoryview(bytes(self._heard[mark:])).cast("h")
            return any(abs(s) > self._threshold for s in samples)

        with self._hearing:
            return self._hearing.wait_for(loud, timeout)
