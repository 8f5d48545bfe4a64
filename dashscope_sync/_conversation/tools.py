"""Tools the model may call, and the record of each call."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs

from .._fmt import seconds

__all__ = ["Tool", "ToolCall"]


@attrs.frozen(kw_only=True)
class Tool:
    """A Python function registered with `RealtimeSession.tool`, as the model sees it.

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

    Attributes:
        name: The tool the model asked for (perhaps one that is not registered).
        call_id: The server's id of the call, which the output answers.
        arguments: The arguments as parsed, or None when they did not parse.
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
    arguments: dict[str, Any] | None
    raw_arguments: str
    result: object = None
    error: str | None = None
    duration: float | None = None
    response_id: str | None = None
    output: str | None = None

    @property
    def ok(self) -> bool:
        """True when the tool ran and returned a result."""
        return self.error is None
