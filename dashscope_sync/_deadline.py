"""One time budget for a wait made of several steps."""

from __future__ import annotations

import time

__all__ = ["Deadline"]


class Deadline:
    """One time budget shared by every step of a multi-step wait."""

    __slots__ = ("_end", "timeout")

    def __init__(self, timeout: float | None) -> None:
        self.timeout = timeout
        self._end = None if timeout is None else time.monotonic() + timeout

    def remaining(self) -> float | None:
        """Seconds left (0 when spent), or None for no limit."""
        if self._end is None:
            return None
        return max(0.0, self._end - time.monotonic())
