"""Tools the model may call, and the record of each call."""

from __future__ import annotations

from typing import Any

import attrs

__all__ = ["ToolCall"]


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
        duration: Seconds the tool ran (None when it never ran).
        response_id: The response that made the call.
    """

    name: str
    call_id: str
    arguments: dict[str, Any] | None
    raw_arguments: str
    result: object = None
    error: str | None = None
    duration: float | None = None
    response_id: str | None = None

    @property
    def ok(self) -> bool:
        """True when the tool ran and returned a result."""
        return self.error is None
