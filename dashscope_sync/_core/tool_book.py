"""Which function calls of a reply the library answers: the tool book, pure.

Fed every function-call event by `SessionState.receive`, under the session's
lock, once the program registered a tool (`RealtimeSession.tool`). When a
reply ends (``response.done``, status ``completed``) it says which calls
are due: the ``function_call`` items of the reply's output, else the
``response.function_call_arguments.done`` events seen for it (a server that
leaves the items out of ``response.done``). A cancelled or failed reply's
calls are not due: the model did not finish asking.

It also holds, until the calls have run, the `ResponseTrack` of each reply
that made them, so that its handle's ``wait()`` returns only then, with
the `ToolCall` records (`SessionState.tools_ran`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import attrs

from .._wire.events import ResponseDone, ResponseFunctionCallArgumentsDone, ServerEvent

if TYPE_CHECKING:
    from .state import ResponseTrack

__all__ = ["DueCall", "ToolBook"]

#: How many replies' argument events are kept while their response.done is
#: awaited (a reply whose end was lost must not keep them forever).
_SEEN_KEPT: Final = 16


@attrs.frozen
class DueCall:
    """One function call of a finished reply that the library must answer.

    Attributes:
        name: The function the model called.
        call_id: The id the output must answer.
        arguments: The arguments as the model wrote them (JSON text).
        response_id: The reply that made the call.
    """

    name: str
    call_id: str
    arguments: str
    response_id: str


class ToolBook:
    """See the module docstring. Not thread-safe: the session's lock serialises it."""

    __slots__ = ("_seen", "waiting")

    def __init__(self) -> None:
        # Reply id -> its calls from the arguments' done events, in arrival order.
        self._seen: dict[str, dict[str, DueCall]] = {}
        #: Reply id -> the track of the reply whose calls are running (None:
        #: nobody follows it), until `SessionState.tools_ran`.
        self.waiting: dict[str, ResponseTrack | None] = {}

    def receive(self, event: ServerEvent) -> tuple[DueCall, ...]:
        """Take a function-call event or a ``response.done``; the calls now due, if any."""
        if type(event) is ResponseFunctionCallArgumentsDone:
            assert isinstance(event, ResponseFunctionCallArgumentsDone)
            calls = self._seen.setdefault(event.response_id, {})
            calls[event.call_id] = DueCall(
                event.name, event.call_id, event.arguments, event.response_id
            )
            while len(self._seen) > _SEEN_KEPT:
                del self._seen[next(iter(self._seen))]
            return ()
        if type(event) is not ResponseDone:
            return ()
        assert isinstance(event, ResponseDone)
        info = event.response
        seen = self._seen.pop(info.id, {})
        if (info.status or "completed") != "completed":
            return ()
        items = [item for item in info.output if item.type == "function_call"]
        if not items:
            return tuple(seen.values())
        due = []
        for item in items:
            earlier = seen.get(item.call_id or "")
            name = item.name or (earlier.name if earlier else "")
            arguments = item.arguments
            if arguments is None:
                arguments = earlier.arguments if earlier else ""
            due.append(DueCall(name, item.call_id or "", arguments, info.id))
        return tuple(due)
