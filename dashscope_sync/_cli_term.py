"""What the command line's commands share: the --timeout budget of a whole command.

A command is several steps (connect, configure, upload, wait for the reply);
``--timeout`` bounds them together, as a person reading the option expects,
not each step on its own.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

from ._deadline import Deadline
from ._errors import DashScopeError, DashScopeTimeout
from ._fmt import seconds

if TYPE_CHECKING:
    from ._session import RealtimeSession

__all__ = ["Budget"]


class Budget:
    """One command's ``--timeout``: every step takes what is left of it.

    `watch` closes the session when the time is up, so whatever the command
    is blocked in (a send, a wait for the reply, a paced upload) ends at
    once; `bound` turns the failure that causes into one timeout error that
    names the option and the step.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._deadline = Deadline(timeout)
        #: What the command is doing, for the message: "connecting"...
        self.stage = "starting"
        # Set by the timer thread once it has closed the session at the deadline.
        self._expired = threading.Event()
        self._timer: threading.Timer | None = None

    def left(self) -> float:
        """Seconds left; raises the timeout error when none are."""
        remaining = self._deadline.remaining()
        assert remaining is not None  # a budget always has a limit
        if remaining <= 0:
            raise self.error()
        return remaining

    def error(self) -> DashScopeTimeout:
        """The error of a command that ran out of time, naming the option and the step."""
        return DashScopeTimeout(
            f"timed out after {seconds(self.timeout)} (--timeout) {self.stage}",
            timeout=self.timeout,
        )

    def watch(self, session: RealtimeSession) -> None:
        """Close ``session`` when the time is up (from a timer thread), ending every wait."""

        def expire() -> None:
            self._expired.set()
            session.close()

        self._timer = threading.Timer(self.left(), expire)
        self._timer.name = "dashscope-sync-cli-timeout"
        self._timer.daemon = True  # never keeps the process alive after Ctrl-C
        self._timer.start()

    @contextlib.contextmanager
    def bound(self) -> Iterator[None]:
        """Run a command's steps; a failure once the time is up is the timeout error."""
        try:
            yield
        except DashScopeError as exc:
            if self._expired.is_set() or self._deadline.remaining() == 0:
                raise self.error() from exc
            raise
        finally:
            if self._timer is not None:
                self._timer.cancel()
