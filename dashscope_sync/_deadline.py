"""Timeouts: checking one, and one time budget for a wait made of several steps."""

from __future__ import annotations

import math
import time

from ._errors import ConfigError

__all__ = ["Deadline", "check_timeout"]


def check_timeout(timeout: object, name: str = "timeout") -> float | None:
    """Return ``timeout`` as seconds (a finite number >= 0) or None, else raise.

    Raises:
        ConfigError: Not a number, not finite (``inf``, ``nan``) or negative.
    """
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise ConfigError(f"{name} must be a number of seconds or None, got {timeout!r}")
    if not math.isfinite(timeout) or timeout < 0:
        raise ConfigError(
            f"{name} must be a finite number of seconds >= 0 (None for no limit), got {timeout!r}"
        )
    return float(timeout)


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
