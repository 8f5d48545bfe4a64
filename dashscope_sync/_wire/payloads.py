"""Which frames carry base64 media, and in which field: what a recording may leave out.

A protocol fact kept here, not in the recorder: ``response.audio.delta``'s
``delta`` (every family that speaks, Qwen-TTS-Realtime included),
``input_audio_buffer.append``'s ``audio`` (the conversation families and
Qwen-ASR-Realtime) and ``input_image_buffer.append``'s ``image``.

`blank_payloads` replaces those fields in a frame's JSON text by ``""``
without parsing the frame or decoding the base64: the payload's decoded
length comes from the length of its text. Pure functions, no I/O.
"""

from __future__ import annotations

import json
from typing import Any, Final

__all__ = [
    "PAYLOAD_FIELDS",
    "PAYLOAD_KEYS",
    "USER_AUDIO_FIELD",
    "USER_AUDIO_TYPE",
    "b64_length",
    "blank_payloads",
    "blank_payloads_in",
    "client_frame_type",
    "parse_object",
    "payload_text",
]

#: Wire type -> the fields holding base64 media (PROTOCOL.md, SPEECH_FAMILIES.md).
PAYLOAD_FIELDS: Final[dict[str, tuple[str, ...]]] = {
    "response.audio.delta": ("delta",),
    "input_audio_buffer.append": ("audio",),
    "input_image_buffer.append": ("image",),
}

#: Each media field's key as compact JSON writes it, before its string: ``"delta":"``.
PAYLOAD_KEYS: Final[dict[str, tuple[tuple[str, bytes], ...]]] = {
    wire_type: tuple((field, b'"' + field.encode() + b'":"') for field in fields)
    for wire_type, fields in PAYLOAD_FIELDS.items()
}
#: The client frame carrying the user's audio, and its field.
USER_AUDIO_TYPE: Final = "input_audio_buffer.append"
USER_AUDIO_FIELD: Final = "audio"

_EQUALS: Final = ord("=")


def b64_length(size: int, last: int, before_last: int) -> int:
    """Decoded bytes of base64 text of ``size`` characters ending in the two given ones."""
    if size % 4:
        return size * 3 // 4  # not padded (or broken): the whole groups and the rest
    return size // 4 * 3 - (last == _EQUALS) - (before_last == _EQUALS)


def payload_text(frame: bytes, field: str) -> tuple[int, int] | None:
    """Where ``field``'s base64 string sits in ``frame`` (start, end), or None.

    Found by its ``"field":"`` key as the service and this library write it
    (compact); None when the key is spelled otherwise or the value holds an
    escape (base64 holds none, though JSON allows ``\\/``): callers then parse.
    """
    return _find(frame, b'"' + field.encode() + b'":"')


def _find(frame: bytes, key: bytes) -> tuple[int, int] | None:
    start = frame.find(key)
    if start < 0:
        return None
    start += len(key)
    end = frame.find(b'"', start)
    if end < 0 or frame.find(b"\\", start, end) >= 0:
        return None
    return start, end


def blank_payloads(frame: bytes, wire_type: str) -> tuple[bytes, dict[str, int]] | None:
    """``frame`` with its media fields emptied, and their decoded lengths.

    Returns ``(frame, {})`` for a type without media; None when the text
    does not have the expected shape (use `blank_payloads_in` on the parsed
    frame instead). The media itself is never copied.
    """
    keys = PAYLOAD_KEYS.get(wire_type)
    if keys is None:
        return frame, {}
    omitted: dict[str, int] = {}
    for field, key in keys:
        where = _find(frame, key)
        if where is None:
            return None
        start, end = where
        size = end - start
        omitted[field] = (
            b64_length(size, frame[end - 1], frame[end - 2]) if size >= 2 else size * 3 // 4
        )
        frame = frame[:start] + frame[end:]
    return frame, omitted


def blank_payloads_in(obj: dict[str, Any]) -> dict[str, int]:
    """Empty the media fields of a parsed frame in place; their decoded lengths."""
    omitted: dict[str, int] = {}
    wire_type = obj.get("type")
    for field in PAYLOAD_FIELDS.get(wire_type, ()) if isinstance(wire_type, str) else ():
        value = obj.get(field)
        if isinstance(value, str):
            raw = value.encode("ascii", "replace")
            size = len(raw)
            omitted[field] = b64_length(size, raw[-1], raw[-2]) if size >= 2 else size * 3 // 4
            obj[field] = ""
    return omitted


def client_frame_type(frame: bytes) -> str | None:
    """The ``type`` of a client frame as this library writes it (``event_id`` first,
    then ``type``), without parsing it; None for any other shape."""
    if not frame.startswith(b'{"event_id":"'):
        return None
    start = frame.find(b'","type":"', 13)
    if start < 0:
        return None
    start += 10
    end = frame.find(b'"', start)
    if end < 0:
        return None
    return frame[start:end].decode("ascii", "replace")


def parse_object(frame: bytes) -> dict[str, Any] | None:
    """A frame parsed as a JSON object, or None."""
    try:
        obj = json.loads(frame)
    except (ValueError, RecursionError):
        return None
    return obj if isinstance(obj, dict) else None
