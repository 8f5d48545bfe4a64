"""Reading a recorded session (``frames.jsonl``) for the local server to replay.

Pure: parsing and validation only, no sockets or threads. The format is the
one ``session.record()`` writes: a header line ``{"recording": 1, "model":
..., "family": ..., "session_id": ..., "started": "<ISO 8601>"}``, then one
line per frame ``{"t": <seconds since the start>, "dir": "in" | "out",
"frame": {...}}``, where ``"in"`` is server to client. A recording made
without audio has each audio or image payload (base64) replaced by ``""``
and the line carries ``"omitted": {"<field>": <decoded byte length>}``; the
field is a key of the frame, or a dotted path into it for a nested one
(``"item.content.0.audio"``).
"""

from __future__ import annotations

import base64
import datetime
import itertools
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import attrs

from .._errors import ConfigError, ConfigTypeError
from .._wire.families import ModelFamily
from ._session import JSONDict

__all__ = ["FRAMES_FILE", "RecordedFrame", "Recording", "fill_omitted"]

#: The file a recording directory holds the frames in.
FRAMES_FILE = "frames.jsonl"
_VERSION = 1
_FAMILIES = frozenset(family.value for family in ModelFamily)


@attrs.frozen(kw_only=True)
class RecordedFrame:
    """One frame of a recording, in or out.

    Thread safety: immutable; the ``frame`` dict is not to be changed.

    Attributes:
        index: Its position among the recording's frames, from 0.
        line: Its line number in ``frames.jsonl`` (the header is line 1).
        t: Seconds since the recording started.
        dir: ``"in"`` (a server event the client received) or ``"out"`` (a
            client event it sent).
        frame: The event as a JSON object.
        omitted: The payload fields left out, each with its decoded byte length.
    """

    index: int
    line: int
    t: float
    dir: Literal["in", "out"]
    frame: JSONDict = attrs.field(repr=False)
    omitted: Mapping[str, int] = attrs.field(factory=dict, repr=False)

    @property
    def type(self) -> str:
        """The event's ``type``."""
        return str(self.frame["type"])


@attrs.frozen(kw_only=True)
class Recording:
    """A recorded session, loaded and checked.

    Thread safety: immutable, so safe to share between threads.

    Attributes:
        model: The model the session was opened with.
        family: The model family's value (``"omni"``, ``"qwen_audio"``...).
        session_id: The recorded session's id.
        started: When the recording started (ISO 8601, as written).
        frames: The frames in recorded order.
        source: Where it was read from (a path), or ``"<lines>"``.
    """

    model: str
    family: str
    session_id: str
    started: str
    frames: tuple[RecordedFrame, ...] = attrs.field(repr=False)
    source: str = "<lines>"

    @classmethod
    def load(cls, source: object) -> Recording:
        """Read and check a recording.

        Args:
            source: A recording directory (holding ``frames.jsonl``), the path
                of a ``frames.jsonl`` file, a loaded `Recording` (returned as
                is), or the file's lines already read: a list of JSON strings
                or of decoded objects, the header first.

        Raises:
            ConfigTypeError: ``source`` is none of these.
            ConfigError: The file cannot be read, or a line is not in the
                format (the message names the line and the field).
        """
        if isinstance(source, Recording):
            return source
        if isinstance(source, (str, os.PathLike)):
            path = Path(source)
            if path.is_dir():
                path = path / FRAMES_FILE
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(f"cannot read the recording {str(path)!r}: {exc}") from exc
            return _parse(text.splitlines(), str(path))
        if isinstance(source, Sequence) and not isinstance(source, (bytes, bytearray)):
            return _parse(list(source), "<lines>")
        raise ConfigTypeError(
            "recording must be a directory, a frames.jsonl path, a Recording or a list of "
            f"lines, got {type(source).__name__}"
        )

    def __len__(self) -> int:
        return len(self.frames)


def fill_omitted(frame: JSONDict, omitted: Mapping[str, int]) -> JSONDict:
    """A copy of ``frame`` with each omitted payload replaced by silence of its length.

    Silence is that many zero bytes, base64 encoded (PCM16 silence for audio).
    """
    if not omitted:
        return frame
    filled: JSONDict = json.loads(json.dumps(frame))
    for field, length in omitted.items():
        parent, key = _locate(filled, field)
        parent[key] = base64.b64encode(bytes(length)).decode("ascii")
    return filled


# Parsing ----------------------------------------------------------------------------


def _parse(lines: list[Any], source: str) -> Recording:
    numbered = [(number, line) for number, line in enumerate(lines, 1) if not _blank(line)]
    if not numbered:
        raise ConfigError(f"{source}: the recording is empty (no header line)")
    number, line = numbered[0]
    header = _object(line, number, source)
    where = f"{source} line {number} (the header)"
    if header.get("recording") != _VERSION or isinstance(header.get("recording"), bool):
        raise ConfigError(
            f'{where}: expected "recording": {_VERSION}, got {header.get("recording")!r}'
        )
    fields = {name: _text(header, name, where) for name in ("model", "family", "session_id")}
    if fields["family"] not in _FAMILIES:
        raise ConfigError(f"{where}: family {fields['family']!r} is not one of {sorted(_FAMILIES)}")
    started = _text(header, "started", where)
    try:
        datetime.datetime.fromisoformat(started)
    except ValueError:
        raise ConfigError(f"{where}: started {started!r} is not an ISO 8601 time") from None
    frames = tuple(
        _frame(index, number, line, source) for index, (number, line) in enumerate(numbered[1:])
    )
    for before, after in itertools.pairwise(frames):
        if after.t < before.t:
            raise ConfigError(
                f"{source} line {after.line}: t {after.t!r} goes back in time "
                f"(line {before.line} has {before.t!r})"
            )
    return Recording(
        model=fields["model"],
        family=fields["family"],
        session_id=fields["session_id"],
        started=started,
        frames=frames,
        source=source,
    )


def _blank(line: object) -> bool:
    return isinstance(line, str) and not line.strip()


def _object(line: object, number: int, source: str) -> JSONDict:
    if isinstance(line, Mapping):
        return dict(line)
    if not isinstance(line, str):
        raise ConfigTypeError(
            f"{source} line {number}: expected a JSON string or object, got {type(line).__name__}"
        )
    try:
        value = json.loads(line)
    except ValueError as exc:
        raise ConfigError(f"{source} line {number}: not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{source} line {number}: expected a JSON object, got {line[:60]!r}")
    return value


def _text(obj: Mapping[str, Any], name: str, where: str) -> str:
    value = obj.get(name)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: {name!r} must be a non-empty string, got {value!r}")
    return value


def _frame(index: int, number: int, line: object, source: str) -> RecordedFrame:
    obj = _object(line, number, source)
    where = f"{source} line {number}"
    t = obj.get("t")
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t < 0:
        raise ConfigError(f"{where}: 't' must be a number of seconds >= 0, got {t!r}")
    direction = obj.get("dir")
    if direction not in ("in", "out"):
        raise ConfigError(f'{where}: \'dir\' must be "in" or "out", got {direction!r}')
    frame = obj.get("frame")
    if not isinstance(frame, dict) or not isinstance(frame.get("type"), str) or not frame["type"]:
        raise ConfigError(f"{where}: 'frame' must be a JSON object with a string 'type'")
    omitted = obj.get("omitted", {})
    if not isinstance(omitted, dict):
        raise ConfigError(f"{where}: 'omitted' must be an object, got {omitted!r}")
    for field, length in omitted.items():
        if isinstance(length, bool) or not isinstance(length, int) or length < 0:
            raise ConfigError(
                f"{where}: omitted {field!r} must be a byte count >= 0, got {length!r}"
            )
        try:
            parent, key = _locate(frame, field)
            present = parent[key]
        except (KeyError, IndexError, TypeError):
            present = None
        if present != "":
            raise ConfigError(f"{where}: omitted field {field!r} is not an empty string there")
    return RecordedFrame(
        index=index,
        line=number,
        t=float(t),
        dir=direction,
        frame=frame,
        omitted=dict(omitted),
    )


def _locate(frame: JSONDict, field: str) -> tuple[Any, Any]:
    """The container holding the dotted ``field`` of ``frame``, and its key there."""
    *path, last = field.split(".")
    parent: Any = frame
    for part in path:
        parent = parent[int(part)] if isinstance(parent, list) else parent[part]
    key: Any = int(last) if isinstance(parent, list) else last
    if isinstance(parent, dict) and key not in parent:
        raise KeyError(field)
    return parent, key
