"""The lines of ``frames.jsonl``, formatted a batch at a time: pure, no I/O.

The recorder thread's hot path. A burst brings thousands of frames a
second, and Python's cost per frame is what recording costs, so the
received frames of a round are formatted with one pass of C-level work per
step (``map``, ``zip``, ``bytes.join``) rather than a Python loop: each
line is ``{"t":<t>,"dir":"in","frame":`` + the frame's own text + ``}``,
with no parsing. Python runs per frame only where it must: a reply audio
delta whose payload is left out (``audio=False``), and the rare frame that
cannot be written as it came (not a JSON object, or JSON over several
lines), which is parsed and dumped again.

An audio delta's payload span follows from the decoded audio's length
(strict base64: 4 characters per 3 bytes, padded) and the field being last,
as the service sends it: the frame ends with ``"}`` and the text before
the span ends with the ``"delta":"`` key. A quote cannot appear unescaped
inside a JSON string, so that key is the frame's own field, never text
inside a value. Any other shape is parsed instead.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from itertools import compress, repeat
from operator import contains, is_
from typing import Any, Final

from .._wire.events import InvalidFrame, ResponseAudioDelta, ServerEvent
from .._wire.payloads import PAYLOAD_KEYS, blank_payloads_in, parse_object

__all__ = ["dumps", "frame_line", "in_lines", "invalid_line", "parsed_line"]

dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode

#: A received frame's line, up to the frame's text (``% t``).
_IN_PREFIX: Final = b'{"t":%.6f,"dir":"in","frame":'.__mod__
#: A received frame's line: ``% (t, the frame's text, its end)``.
_IN_FORMAT: Final = b'{"t":%.6f,"dir":"in","frame":%b%b'
#: What closes a line whose frame is written as it came.
_END: Final = b"}\n"
#: The reply audio's base64 field and its key, as the service writes it.
((_DELTA_FIELD, _DELTA_KEY),) = PAYLOAD_KEYS[ResponseAudioDelta.type]
_KEY_SIZE: Final = len(_DELTA_KEY)
#: Line breaks as ints: testing ``in`` with a byte's value is one ``memchr``,
#: about 4 times faster than with a one-byte ``bytes`` (0.5 against 0.13 us
#: per frame for an audio round's scan, whose deltas hold 6.4 kB of base64).
_LF: Final = ord("\n")
_CR: Final = ord("\r")
#: What ends an audio delta whose base64 string is the last field.
_LAST_STRING: Final = b'"}'


def in_lines(
    ats: Sequence[float],
    datas: Sequence[bytes],
    events: Sequence[ServerEvent],
    *,
    audio: bool,
    omitted: dict[int, bytes],
) -> tuple[bytes, list[int]]:
    """The lines of received frames, in order, and where the reply audio deltas are.

    Args:
        ats: Each frame's offset in the recording (seconds).
        datas: Each frame's text, as received.
        events: What each frame decoded to.
        audio: Whether audio payloads are kept (else blanked, their size noted).
        omitted: A cache of the ``"omitted"`` endings by decoded size, kept by
            the caller across rounds (most deltas share one size).

    Returns:
        The lines, joined; and the indexes of the `ResponseAudioDelta` frames.
    """
    n = len(datas)
    classes = list(map(type, events))
    # The frame's own text, written as it came (a blanked delta: up to its
    # payload); a line made otherwise goes whole into ``ends``, its ``mids``
    # empty and ``made`` set.
    mids = list(datas)
    ends = [_END] * n
    made = False
    deltas = list(compress(range(n), map(is_, classes, repeat(ResponseAudioDelta))))
    if InvalidFrame in classes:
        made = True
        for i in compress(range(n), map(is_, classes, repeat(InvalidFrame))):
            event = events[i]
            assert isinstance(event, InvalidFrame)
            mids[i] = b""
            ends[i] = invalid_line(ats[i], datas[i], event, audio=audio)
    if not audio:
        key, key_size, last = _DELTA_KEY, _KEY_SIZE, _LAST_STRING
        for i in deltas:
            data = mids[i]
            size = len(events[i].delta)  # type: ignore[attr-defined]
            cut = len(data) - 2 - (size + 2) // 3 * 4
            if cut >= key_size and data.startswith(key, cut - key_size) and data.endswith(last):
                mids[i] = data[:cut]
                end = omitted.get(size)
                if end is None:
                    end = omitted[size] = b'"},"omitted":{"%s":%d}}\n' % (
                        _DELTA_FIELD.encode(),
                        size,
                    )
                ends[i] = end
            else:
                made = True
                mids[i] = b""
                ends[i] = parsed_line(ats[i], b"in", dict(events[i].raw), audio=audio)
        # Blanked, the texts are short: one scan of them all.
        texts = b"".join(mids)
        broken = _LF in texts or _CR in texts
    else:
        # Kept, each holds kilobytes of base64: scanned where it lies, not copied.
        broken = any(map(contains, mids, repeat(_LF))) or any(map(contains, mids, repeat(_CR)))
    if broken:
        # JSON may hold line breaks between its tokens (never inside a
        # string): such a frame, rare, gets one line of its parsed JSON.
        made = True
        for i in range(n):
            text = mids[i]
            if _LF in text or _CR in text:
                mids[i] = b""
                ends[i] = parsed_line(ats[i], b"in", dict(events[i].raw), audio=audio)
    if not made:
        # One formatting of the whole run: ``t`` and the pieces of each line.
        args: list[object] = [None] * (3 * n)
        args[0::3], args[1::3], args[2::3] = ats, mids, ends
        return _IN_FORMAT * n % tuple(args), deltas
    pieces: list[bytes] = [b""] * (3 * n)
    pieces[0::3] = [_IN_PREFIX(at) if mid else b"" for at, mid in zip(ats, mids, strict=True)]
    pieces[1::3], pieces[2::3] = mids, ends
    return b"".join(pieces), deltas


def invalid_line(at: float, data: bytes, event: InvalidFrame, *, audio: bool) -> bytes:
    """The line of a frame that decoded to no event: its JSON if it is an object, else a note."""
    obj = parse_object(data)  # a frame of the wrong shape is still JSON
    if obj is not None:
        return parsed_line(at, b"in", obj, audio=audio)
    invalid = {"length": event.length, "error": event.error}
    return b'{"t":%.6f,"dir":"in","invalid":%s}\n' % (at, dumps(invalid).encode())


def parsed_line(t: float, direction: bytes, obj: dict[str, Any], *, audio: bool) -> bytes:
    """The line of a frame written from its parsed JSON (payloads blanked unless ``audio``)."""
    omitted = {} if audio else blank_payloads_in(obj)
    return frame_line(t, direction, dumps(obj).encode(), omitted)


def frame_line(t: float, direction: bytes, frame: bytes, omitted: Mapping[str, int]) -> bytes:
    """One ``frames.jsonl`` line."""
    if not omitted:
        return b'{"t":%.6f,"dir":"%s","frame":%s}\n' % (t, direction, frame)
    if len(omitted) == 1:
        ((field, size),) = omitted.items()
        if field.isidentifier():  # a field name that needs no escaping (all of them)
            return b'{"t":%.6f,"dir":"%s","frame":%s,"omitted":{"%s":%d}}\n' % (
                t,
                direction,
                frame,
                field.encode(),
                size,
            )
    return b'{"t":%.6f,"dir":"%s","frame":%s,"omitted":%s}\n' % (
        t,
        direction,
        frame,
        dumps(omitted).encode(),
    )
