"""Sessions a forked child inherits: it must never use them.

A child made by ``os.fork()`` shares its parent's sockets but not its threads:
a frame it sent would corrupt the parent's stream, a close handshake would end
the parent's session, and a wait would hang (no reader feeds it). Each session
part records `PROCESS.forks` when it is made; one that finds it changed belongs
to a parent, and refuses with `inherited_error` before taking any lock (a lock
held by a parent's thread at the fork stays held in the child forever).
"""

from __future__ import annotations

import os
from typing import Final

from .._errors import UsageError

__all__ = ["PROCESS", "inherited_error"]


class _Process:
    """How many forks this process is away from the one that imported the library."""

    __slots__ = ("forks",)

    def __init__(self) -> None:
        self.forks = 0


#: Read without a lock (an int, replaced whole): the hook runs in the child
#: before any other code of it.
PROCESS: Final = _Process()


def _after_fork_in_child() -> None:
    PROCESS.forks += 1


if hasattr(os, "register_at_fork"):  # pragma: no branch - every POSIX Python has it
    os.register_at_fork(after_in_child=_after_fork_in_child)


def inherited_error(what: str, parent: int) -> UsageError:
    """The error for using, in a forked child, a session process ``parent`` opened."""
    return UsageError(
        f"{what}: this session was opened by process {parent}, and this is a child it "
        f"forked ({os.getpid()}); the connection belongs to the parent, so a child cannot "
        "use it: open a new session in the child"
    )
