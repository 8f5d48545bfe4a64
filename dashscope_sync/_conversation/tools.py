"""Tools the model may call, and the record of each call."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

import attrs

from .._fmt import seconds

__all__ = ["Tool", "ToolCall"]


class _ReadOnlyDict(dict[str, Any]):
    """A dict that refuses changes: `ToolCall.arguments`, shared by every reader.

    Still a dict (``json.dumps``, ``isinstance``, ``==``, ``dict(...)`` for a
    copy to change), so programs that read the arguments keep working.
    """

    __slots__ = ()

    def _refuse(self, *args: object, **kwargs: object) -> NoReturn:
        raise TypeError(
            "ToolCall.arguments is read-only (the record is shared by every reader); "
            "copy it with dict(call.arguments) to change it"
        )

    __setitem__ = __delitem__ = __ior__ = _refuse
    clear = pop = popitem = setdefault = update = _refuse

    def __reduce__(self) -> tuple[Any, ...]:
        return (_ReadOnlyDict, (dict(self),))

    def __copy__(self) -> _ReadOnlyDict:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> _ReadOnlyDict:
        return _ReadOnlyDict(copy.deepcopy(dict(self), memo))


def _read_only(arguments: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if arguments is None or isinstance(arguments, _ReadOnlyDict):
        return arguments
    return _ReadOnlyDict(arguments)


@attrs.frozen(kw_only=True)
class Tool:
    """A Python function registered with `RealtimeSession.tool`, as the model sees it.

    Thread safety: frozen, so it may be read from any thread (do not change
    the ``parameters`` mapping: the session's registry shares it).
    ``function`` runs on the session's tool threads, concurrently when one
    reply calls the tool several times, so it must be safe to run on
    several threads at once.

    Attributes:
        name: The name the model calls it by.
        description: What it does, for the model (by default the docstring's
            first paragraph).
        parameters: The JSON Schema of its parameters, from the type hints.
        function: The function itself.
        timeout: The longest a call may run, in seconds (None: no limit).
    """

    name: str
    description: str
    parameters: Mapping[str, Any] = attrs.field(repr=False)
    function: Callable[..., object] = attrs.field(repr=False)
    timeout: float | None = attrs.field(repr=lambda v: seconds(v))

    def as_dict(self) -> dict[str, Any]:
        """The wire form of the tool: the Chat-Completions nesting every family takes."""
        function: dict[str, Any] = {"name": self.name, "parameters": dict(self.parameters)}
        if self.description:
            function["description"] = self.description
        return {"type": "function", "function": function}


@attrs.frozen(kw_only=True)
class ToolCall:
    """One call the model made of a registered tool, and how it ended.

    Thread safety: one record is shared: the same object goes to
    ``on(ToolCall)`` handlers (on the handler thread), to the calling reply's
    ``ResponseResult.tool_calls`` and to the transcript (read from any
    thread). It is frozen and ``arguments`` is a read-only dict, so it may
    be read from any thread; values nested in ``arguments`` and ``result``
    (what the tool returned) are the same objects for every reader: copy
    them before changing them.

    Attributes:
        name: The tool the model asked for (perhaps one that is not registered).
        call_id: The server's id of the call, which the output answers.
        arguments: The arguments as parsed (a read-only dict: it raises
            `TypeError` on a change; ``dict(call.arguments)`` is a copy to
            change), or None when they did not parse.
        raw_arguments: The arguments as the model wrote them (a JSON text).
        result: What the tool returned (None when it failed).
        error: Why the call failed (unknown tool, bad arguments, an
            exception, a timeout), as sent to the model; None when it worked.
        duration: Seconds the tool ran (None when it never ran, or overran its timeout).
        response_id: The response that made the call.
        output: The ``function_call_output`` text sent to the model (the
            result as JSON, or ``{"error": ...}``); None when nothing was sent.
    """

    name: str
    call_id: str
    arguments: dict[str, Any] | None = attrs.field(converter=_read_only)
    raw_arguments: str
    result: object = None
    error: str | None = None
    duration: float | None = attrs.field(
        default=None, repr=lambda v: "None" if v is None else seconds(v)
    )
    response_id: str | None = None
    output: str | None = None

    @property
    def ok(self) -> bool:
        """True when the tool ran and returned a result."""
        return self.error is None
