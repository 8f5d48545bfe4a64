"""A conversation's transcript as records: `Transcript`, its `Turn` s, and their text forms.

The records are what ``session.transcript`` returns (a snapshot the core's
`TranscriptBook` builds, see ``book.py``) and what ``talk --transcript`` and
``translate --transcript`` write. They hold text only, never audio, and
times as seconds on the session's clock (since the session started), so a
transcript written as JSON reads back equal (`Transcript.from_json`).
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterator, Mapping
from typing import Any, Final, Literal, overload

import attrs

from .._errors import ConfigError
from .._fmt import seconds
from .._wire.events import TokenDetails, Usage
from .tools import ToolCall

__all__ = ["Transcript", "Turn"]

#: The JSON form's version, written as ``"version"`` (a reader refuses others).
_VERSION: Final = 1

Role = Literal["user", "assistant"]


def _time_repr(value: float | None) -> str:
    return "None" if value is None else seconds(value)


@attrs.frozen(kw_only=True)
class Turn:
    """One turn of a conversation: what the user said or what the model answered.

    Attributes:
        role: ``"user"`` or ``"assistant"`` (a translation, on LiveTranslate).
        text: What the model produced, or what the user said (the input
            transcription where enabled, else the text sent).
        heard_text: For an assistant turn cut by ``interrupt()``, the part of
            ``text`` the listener heard (from the attached speaker's played
            seconds mapped onto the text's timing); equal to ``text`` when
            nothing was cut (a reply the speaker had played to its end when
            ``interrupt()`` came included).
        interrupted: ``interrupt()`` cut this reply before all of it was heard.
        started_at: When the turn started (the user's speech start, or the
            response's ``response.created``), in seconds since the session
            started; None if unknown.
        ended_at: When it ended (speech stop or commit, ``response.done``), in
            seconds since the session started; None while it runs.
        item_id: The conversation item holding it (after a truncating
            ``interrupt()``, the item re-created with ``heard_text``; a cut
            first item is left whole and keeps its id).
        response_id: The response that produced it (assistant turns).
        usage: The response's token usage, from ``response.done``.
        tool_calls: The tool calls the response made, in order.

    Thread safety: immutable; share it freely. Its `ToolCall` records are the
    ones ``ResponseResult.tool_calls`` and ``on(ToolCall)`` handlers get: read
    them, do not change their ``arguments`` or ``result`` in place.
    """

    role: Role
    text: str
    heard_text: str
    interrupted: bool = False
    started_at: float | None = attrs.field(default=None, repr=_time_repr)
    ended_at: float | None = attrs.field(default=None, repr=_time_repr)
    item_id: str | None = None
    response_id: str | None = None
    usage: Usage | None = None
    tool_calls: tuple[ToolCall, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The turn as JSON-ready data (the form `Transcript.to_json` writes)."""
        return {
            "role": self.role,
            "text": self.text,
            "heard_text": self.heard_text,
            "interrupted": self.interrupted,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "item_id": self.item_id,
            "response_id": self.response_id,
            "usage": None if self.usage is None else attrs.asdict(self.usage),
            "tool_calls": [_call_to_dict(call) for call in self.tool_calls],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Turn:
        """The turn `to_dict` wrote.

        Raises:
            ConfigError: Not a turn's data.
        """
        try:
            role = data["role"]
            if role not in ("user", "assistant"):
                raise ConfigError(f"a turn's role is 'user' or 'assistant', got {role!r}")
            usage = data.get("usage")
            return cls(
                role=role,
                text=_str(data["text"]),
                heard_text=_str(data["heard_text"]),
                interrupted=bool(data.get("interrupted", False)),
                started_at=_time(data.get("started_at")),
                ended_at=_time(data.get("ended_at")),
                item_id=data.get("item_id"),
                response_id=data.get("response_id"),
                usage=None if usage is None else _usage(usage),
                tool_calls=tuple(_call_from_dict(c) for c in data.get("tool_calls") or ()),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(f"not a transcript turn: {exc!r}") from exc


@attrs.frozen
class Transcript:
    """A conversation's turns, in conversation order (a snapshot: it never changes).

    Iterate it, index it, or take ``len``; `to_markdown` and `to_json` write
    it, `from_json` reads it back (equal). In a notebook it shows as a table.

    Thread safety: immutable; share it freely (each `Turn`'s `ToolCall`
    records are shared too: see `Turn`). A new snapshot comes from
    ``session.transcript`` on any thread, consistent with the events delivered
    so far.

    Attributes:
        turns: The turns, in the order the conversation holds them (a user's
            turn before the reply that answers it, even when its transcription
            came during the reply).
    """

    turns: tuple[Turn, ...] = ()

    def __iter__(self) -> Iterator[Turn]:
        return iter(self.turns)

    def __len__(self) -> int:
        return len(self.turns)

    @overload
    def __getitem__(self, index: int) -> Turn: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[Turn, ...]: ...
    def __getitem__(self, index: int | slice) -> Turn | tuple[Turn, ...]:
        return self.turns[index]

    def to_markdown(self) -> str:
        """The turns as Markdown: one paragraph each, ``**User:**`` / ``**Assistant:**``.

        A cut reply shows what was heard, with the unheard rest struck through.
        """
        lines = []
        for turn in self.turns:
            who = "User" if turn.role == "user" else "Assistant"
            text = _md(turn.heard_text)
            if turn.interrupted:
                heard = turn.heard_text
                rest = turn.text[len(heard) :].strip() if turn.text.startswith(heard) else ""
                if rest:
                    text += f" ~~{_md(rest)}~~"
                text = f"{text} *(interrupted)*".strip()
            for call in turn.tool_calls:
                outcome = f"error: {call.error}" if call.error is not None else repr(call.result)
                text += f"\n\n> tool `{call.name}`({call.raw_arguments}) -> {_md(outcome)}"
            lines.append(f"**{who}:** {text}")
        return "\n\n".join(lines) + ("\n" if lines else "")

    def to_json(self, *, indent: int | None = 2) -> str:
        """The transcript as JSON text; `from_json` reads it back equal.

        A tool call's ``result`` that is not JSON data is written as its ``repr``.
        """
        data = {"version": _VERSION, "turns": [turn.to_dict() for turn in self.turns]}
        return json.dumps(data, ensure_ascii=False, indent=indent)

    @classmethod
    def from_json(cls, text: str | bytes) -> Transcript:
        """Read a transcript `to_json` wrote.

        Raises:
            ConfigError: Not JSON, or not a transcript of a version this reads.
        """
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"a transcript must be JSON: {exc}") from exc
        if not isinstance(data, dict) or data.get("version") != _VERSION:
            raise ConfigError(f"not a transcript of version {_VERSION}")
        turns = data.get("turns")
        if not isinstance(turns, list):
            raise ConfigError("a transcript's turns must be a list")
        return cls(tuple(Turn.from_dict(turn) for turn in turns))

    def _repr_markdown_(self) -> str:
        return self.to_markdown()

    def _repr_html_(self) -> str:
        rows = []
        for turn in self.turns:
            text = html.escape(turn.heard_text)
            if turn.interrupted and turn.heard_text != turn.text:
                text += f" <del>{html.escape(turn.text[len(turn.heard_text) :])}</del>"
            when = "" if turn.started_at is None else f"{turn.started_at:.2f}"
            rows.append(f"<tr><td>{when}</td><td><b>{turn.role}</b></td><td>{text}</td></tr>")
        return (
            "<table><tr><th>t (s)</th><th>role</th><th>text</th></tr>"
            + "".join(rows)
            + ("</table>")
        )


def _md(text: str) -> str:
    """Text safe in a Markdown paragraph: the characters that would format it escaped."""
    for char in "\\`*_~[]#<>|":
        text = text.replace(char, "\\" + char)
    return text


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {value!r}")
    return value


def _time(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"expected seconds, got {value!r}")
    return float(value)


def _usage(data: Mapping[str, Any]) -> Usage:
    fields = dict(data)
    for key in ("input_tokens_details", "output_tokens_details"):
        fields[key] = TokenDetails(**fields.get(key, {}))
    return Usage(**fields)


def _jsonable(value: object) -> object:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value


def _call_to_dict(call: ToolCall) -> dict[str, Any]:
    data = attrs.asdict(call, recurse=False)
    data["result"] = _jsonable(call.result)
    data["arguments"] = _jsonable(call.arguments)
    return data


def _call_from_dict(data: Mapping[str, Any]) -> ToolCall:
    return ToolCall(**data)
