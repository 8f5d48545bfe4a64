"""Child processes that Ctrl-C reaches however the test run itself was started.

A shell starts background jobs with SIGINT ignored, children inherit that, and
Python then leaves SIGINT ignored: a test that sends SIGINT to a child of a
backgrounded run would wait for nothing. The child starts with the default.
"""

from __future__ import annotations

import os
import signal
from typing import Any


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


INTERRUPTIBLE: dict[str, Any] = {"preexec_fn": _default_sigint} if os.name == "posix" else {}
