"""Ctrl-C while the command line starts: one line and exit 130, never an import traceback.

The package takes about a tenth of a second to import, and the command's own
handling of Ctrl-C (in ``_cli.main``) exists only after that. When this
process *is* the command (the ``dashscope-sync`` script, or ``python -m
dashscope_sync``), a Ctrl-C meanwhile ends it the way the command would;
``_cli.main`` then puts Python's own handler back. In any other program
importing the package, nothing here happens.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from types import FrameType

__all__ = ["restore_sigint"]

#: The command's name, as the console script is called.
_SCRIPT = "dashscope-sync"
#: The exit code of an interrupted command (``_cli.EXIT_INTERRUPTED``).
_INTERRUPTED = 130


def _is_the_command() -> bool:
    """Whether this process runs the command line, judged from how Python was started."""
    script = os.path.basename(sys.argv[0]) if sys.argv else ""
    if script in (_SCRIPT, f"{_SCRIPT}.exe", f"{_SCRIPT}-script.py"):
        return True
    # python [options] -m dashscope_sync ...: sys.argv[0] is only "-m" while
    # the package is imported, so read the command line Python was given.
    argv = getattr(sys, "orig_argv", [])
    return "-m" in argv[1:-1] and argv[argv.index("-m", 1) + 1] == "dashscope_sync"


def _interrupted(signum: int, frame: FrameType | None) -> None:
    # Nothing to clean up yet: no session, no thread, no file.
    os.write(2, f"{_SCRIPT}: error: interrupted\n".encode())
    os._exit(_INTERRUPTED)


def restore_sigint() -> None:
    """Give Ctrl-C back to Python (KeyboardInterrupt), if it was taken here at start-up."""
    if signal.getsignal(signal.SIGINT) is _interrupted:
        signal.signal(signal.SIGINT, signal.default_int_handler)


# Only when Ctrl-C would raise KeyboardInterrupt: a shell's background job
# ignores SIGINT, and that must stay so.
if _is_the_command() and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
    with contextlib.suppress(ValueError):  # not the main thread: not the command's start-up
        signal.signal(signal.SIGINT, _interrupted)
