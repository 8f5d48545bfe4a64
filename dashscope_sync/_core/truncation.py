"""The item replacements of ``interrupt(truncate=True)`` on their way to the server.

Pure (no threads, sockets, locks or clocks): `SessionState` keeps one
`Replacements` and feeds it under the mailbox lock; `SessionCore` sends the
frames. A replacement goes in two steps, so a refused delete never leaves
the cut item and its replacement side by side:

1. ``conversation.item.delete`` of the cut item, registered as a DELETE
   request (answered by ``conversation.item.deleted`` or an ``error``);
2. once the server deleted it, the ``conversation.item.create`` of what was
   heard, at the cut item's place (nothing when nothing was heard).

From the moment a replacement is known until its last frame is on the wire
(or the server refused it), the session is *truncating*: the program's
frames that add to the conversation or ask for a reply wait for it (see
``SessionCore.await_truncations``), so the next reply never builds on words
the listener did not hear.

A hold that runs out of time gives the replacement up as a *hold* only
(`Replacements.abandon`): it stops holding frames back, but stays under way,
so a late ``conversation.item.deleted`` still sends the re-create (else the
model would lose the whole reply, the words heard included). Only the
delete's answer (deleted or refused) closes it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .._conversation.book import Truncation
    from .._errors import DashScopeError
    from .state import Request

__all__ = ["Replacement", "Replacements"]


class Replacement:
    """One cut item being replaced (mutated only under the mailbox lock)."""

    __slots__ = ("create", "cut", "delete", "holding", "refused")

    def __init__(self, cut: Truncation) -> None:
        self.cut = cut
        # The delete request once it is registered, and the re-create's frame
        # that waits for its answer (None: nothing was heard, delete only).
        self.delete: Request | None = None
        self.create: str | None = None
        # The server's refusal of the delete (then the re-create never goes).
        self.refused: DashScopeError | None = None
        # Whether the program's frames wait for it: False once the hold gave it
        # up (it still re-creates when the delete's answer comes, only late).
        self.holding = True

    def __repr__(self) -> str:
        return f"<Replacement of {self.cut.item_id}>"


class Replacements:
    """The replacements under way, oldest first (see the module docstring).

    Not thread-safe by itself: the caller serialises every call.
    """

    def __init__(self) -> None:
        self._open: list[Replacement] = []

    @property
    def busy(self) -> bool:
        """Whether a replacement the program's frames wait for still has frames
        to send (or an answer to wait for)."""
        return any(replacement.holding for replacement in self._open)

    @property
    def under_way(self) -> bool:
        """Whether any replacement, given up by the hold or not, awaits its answer."""
        return bool(self._open)

    def open(self, cut: Truncation) -> Replacement:
        """A truncation is due now: its frames are to be sent."""
        replacement = Replacement(cut)
        self._open.append(replacement)
        return replacement

    def deleting(self, replacement: Replacement, delete: Request, create: str | None) -> None:
        """Its delete is registered (and about to go); ``create`` goes once it is answered."""
        replacement.delete, replacement.create = delete, create

    def answered(self) -> tuple[Replacement, ...]:
        """The replacements whose delete was answered since the last call, deleted or
        refused (``refused``): each is for the caller to finish, then `close`."""
        done = []
        for replacement in self._open:
            request = replacement.delete
            if request is None or (request.answer is None and request.error is None):
                continue
            replacement.refused = request.error
            replacement.delete = None  # returned once; still busy until `close`
            done.append(replacement)
        return tuple(done)

    def abandon(self) -> None:
        """Stop holding frames back for every replacement (its answer has not come):
        each stays under way, so a late answer still finishes it (`answered`)."""
        for replacement in self._open:
            replacement.holding = False

    def close(self, replacement: Replacement) -> None:
        """Its frames are all sent (or never will be): it no longer holds anything back."""
        if replacement in self._open:
            self._open.remove(replacement)
