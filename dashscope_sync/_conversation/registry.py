"""A session's registered tools: making a `Tool` from a function, and declaring the list.

`RealtimeSession.tool` and ``remove_tool`` are thin: the checks, the record
and the one ``session.update`` that declares the whole list (the registered
tools plus those the program declared by hand, kept) live here. The
declaring itself is the session's (``update_session``, passed in as
``declare``), so this module never refers to the session.
"""

from __future__ import annotations

import re
import threading
import types
from collections.abc import Callable, Mapping
from typing import Any, Final

import attrs

from .._deadline import check_timeout
from .._errors import ConfigError
from .schema import Signature, signature_of
from .tools import Tool

__all__ = ["ToolEntry", "ToolRegistry", "tool_name"]

#: A tool name the service takes (the Chat-Completions rule).
_TOOL_NAME: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")

#: Sends one ``session.update`` with this ``tools`` list and waits for its acceptance.
Declare = Callable[[list[dict[str, Any]]], None]


@attrs.frozen
class ToolEntry:
    """A registered tool and how to bind the model's arguments to it.

    Attributes:
        tool: The public record.
        signature: Its schema and argument binder.
    """

    tool: Tool
    signature: Signature


def tool_name(wire: object) -> str | None:
    """The name of a tool in its wire form (Chat-Completions nesting, or flat), else None."""
    if not isinstance(wire, Mapping):
        return None
    function = wire.get("function")
    name = function.get("name") if isinstance(function, Mapping) else wire.get("name")
    return name if isinstance(name, str) else None


class ToolRegistry:
    """A session's registered tools: name -> `ToolEntry`.

    Thread safety: `entries` may be read from any thread without a lock (the
    mapping is replaced whole, never changed in place); `register` and
    `remove` may be called from any thread but a handler (they wait).
    """

    def __init__(self) -> None:
        # Held by a registration from its check to the server's answer, so two
        # registrations never declare lists that leave each other out.
        self._lock = threading.Lock()
        self.entries: Mapping[str, ToolEntry] = types.MappingProxyType({})

    def tools(self) -> Mapping[str, Tool]:
        """A read-only snapshot: name -> `Tool`."""
        return types.MappingProxyType({n: e.tool for n, e in self.entries.items()})

    def register(
        self,
        fn: Callable[..., object],
        name: str | None,
        description: str | None,
        timeout: float | None,
        *,
        accepted: Callable[[], list[Any]],
        declare: Declare,
    ) -> None:
        """Check and describe ``fn``, declare the new list, and register it once accepted.

        ``accepted``: the ``tools`` the server accepted so far (to keep those
        declared by hand).

        Raises:
            ConfigError: A bad function, name, description or timeout, a name
                taken, or a parameter that cannot be described.
            What ``declare`` raises (then nothing is registered).
        """
        if not callable(fn):
            raise ConfigError(f"a tool must be a function, got {fn!r}")
        if name is None:
            name = getattr(fn, "__name__", None)
        if not isinstance(name, str) or not _TOOL_NAME.fullmatch(name):
            raise ConfigError(
                f"a tool name must be 1 to 64 letters, digits, '_' or '-', got {name!r}"
            )
        if description is not None and not isinstance(description, str):
            raise ConfigError(f"description must be a string, got {description!r}")
        limit = check_timeout(timeout)
        signature = signature_of(fn, name)
        tool = Tool(
            name=name,
            description=signature.description if description is None else description,
            parameters=signature.parameters,
            function=fn,
            timeout=limit,
        )
        with self._lock:
            by_hand = self._by_hand(accepted())
            if name in self.entries or any(tool_name(w) == name for w in by_hand):
                raise ConfigError(f"a tool named {name!r} is declared already")
            tools = [*(e.tool for e in self.entries.values()), tool]
            declare([*by_hand, *(t.as_dict() for t in tools)])
            self._publish({**self.entries, name: ToolEntry(tool, signature)})

    def remove(self, name: str, *, accepted: Callable[[], list[Any]], declare: Declare) -> None:
        """Declare the list without ``name``, and unregister it once accepted.

        Raises:
            ConfigError: No tool of that name is registered.
            What ``declare`` raises (then it stays registered).
        """
        with self._lock:
            if name not in self.entries:
                raise ConfigError(
                    f"no tool {name!r} is registered (the tools are: "
                    f"{', '.join(self.entries) or 'none'})"
                )
            kept = {n: e for n, e in self.entries.items() if n != name}
            declare([*self._by_hand(accepted()), *(e.tool.as_dict() for e in kept.values())])
            self._publish(kept)

    def adopt(self, other: ToolRegistry) -> None:
        """Register ``other``'s tools here as they are, declaring nothing: the
        caller declares them (`RealtimeSession.reconnect` replays the accepted
        ``tools`` list, which holds them)."""
        with self._lock:
            self._publish({**other.entries, **self.entries})

    def _by_hand(self, accepted: list[Any]) -> list[dict[str, Any]]:
        """The accepted tools that were not registered here: declared by hand, kept."""
        return [
            dict(w)
            for w in accepted
            if tool_name(w) is not None and tool_name(w) not in self.entries
        ]

    def _publish(self, entries: Mapping[str, ToolEntry]) -> None:
        self.entries = types.MappingProxyType(dict(entries))
