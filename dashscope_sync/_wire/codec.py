"""The wire format, with no sockets and no threads: frames in, events out.

`decode` turns one received frame into a `ServerEvent` and never raises; the
encoders build the client events' JSON text. The one cattrs converter of the
package lives here, private, so its hooks cannot leak into a user's own
cattrs setup.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import logging
import os
import sys
import typing
from collections.abc import Callable, Mapping
from typing import Any, Final

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, override

from .._errors import ConfigError
from . import events as _events
from .events import EVENT_TYPES, InvalidFrame, ServerEvent, UnknownEvent
from .families import flatten_session_echo

__all__ = [
    "MAX_AUDIO_APPEND",
    "EventIds",
    "check_audio_append",
    "b64encode",
    "decode",
    "decode_binary",
    "dumps",
    "encode_audio_append",
    "encode_image_append",
    "encode_item_replacement",
    "encode_simple",
    "encode_text_append",
]

logger = logging.getLogger("dashscope_sync")

#: How much of an undecodable frame's text an `InvalidFrame` keeps.
INVALID_TEXT_KEEP: Final = 200

if sys.version_info >= (3, 11):

    def _b64decode_strict(text: str) -> bytes:
        return binascii.a2b_base64(text, strict_mode=True)

else:  # pragma: no cover - exercised on Python 3.10 only

    def _b64decode_strict(text: str) -> bytes:
        return base64.b64decode(text, validate=True)


def _simd_b64decode() -> Callable[..., bytes] | None:
    """pybase64's decoder (the ``speed`` extra) when its C extension runs, else None."""
    try:
        from pybase64 import b64decode
    except ImportError:
        return None
    decode: Callable[..., bytes] = b64decode
    # Without its extension pybase64 falls back to Python, slower than binascii.
    return None if decode.__module__ == "pybase64._fallback" else decode


_simd: Final = _simd_b64decode()


def _b64decode_fast(text: str) -> bytes:
    """`_b64decode_strict` through pybase64's SIMD decoder: the same bytes, about 10x
    sooner on an audio delta (the largest single cost of decoding one).

    pybase64 with ``validate=True`` accepts no text that `_b64decode_strict`
    refuses (tests/test_codec_base64.py); whatever it refuses goes to
    `_b64decode_strict`, for the standard library's verdict and its error.
    """
    assert _simd is not None
    try:
        return _simd(text, validate=True)
    except Exception:
        return _b64decode_strict(text)


#: How audio base64 is decoded: pybase64's SIMD decoder when installed (the
#: ``speed`` extra), else the standard library's; the same bytes and errors.
_b64decode: Final[Callable[[str], bytes]] = _b64decode_strict if _simd is None else _b64decode_fast


def b64encode(data: bytes | bytearray | memoryview) -> str:
    """Standard base64 of ``data`` (any C-contiguous buffer) as text, as the service expects."""
    return binascii.b2a_base64(data, newline=False).decode("ascii")


# The converter ------------------------------------------------------------------


def _structure_str(value: Any, _: Any) -> str:
    # Lenient: null means "not given" (empty), a number becomes its text.
    if type(value) is str:
        return value
    return "" if value is None else str(value)


def _structure_int(value: Any, _: Any) -> int:
    return 0 if value is None else int(value)


def _structure_bool(value: Any, _: Any) -> bool:
    # Registered apart: bool is a subclass of int, so the int hook would
    # otherwise turn true into 1.
    if type(value) is bool:
        return value
    if isinstance(value, (int, float)):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise TypeError(f"expected a boolean, got {type(value).__name__}")


def _structure_bytes(value: Any, _: Any) -> bytes:
    # Every bytes field on the wire is base64 audio; a bad one fails the frame
    # loudly (as an InvalidFrame) instead of yielding garbled PCM.
    if value is None:
        return b""
    if not isinstance(value, str):
        raise TypeError(f"expected base64 text, got {type(value).__name__}")
    return _b64decode(value)


def _structure_json_object(value: Any, _: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"expected a JSON object, got {type(value).__name__}")
    return value


def _structure_json_objects(value: Any, _: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise TypeError(f"expected a JSON array, got {type(value).__name__}")
    return value


def _structure_passthrough(value: Any, _: Any) -> Any:
    return value


def _count(value: Any, _: Any = None) -> int:
    # Token counts never fail a frame: a response.done that failed to decode
    # would leave its Response waiting forever for the sake of a statistic.
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return 0


def _lenient_record(conv: cattrs.Converter, cls: Any) -> Callable[[Any, Any], Any]:
    """A structure hook for a record of counts: bad counts are 0, a non-object is empty."""
    resolved = _resolved(cls)
    overrides = {
        field.name: override(struct_hook=_count)
        for field in attrs.fields(resolved)
        if field.type is int
    }
    fields = make_dict_structure_fn(resolved, conv, **overrides)  # type: ignore[arg-type]

    def structure(value: Any, _: Any) -> Any:
        return fields(value, cls) if isinstance(value, dict) else cls()

    return structure


def _list_of(conv: cattrs.Converter, list_type: Any) -> Callable[[Any, Any], list[Any]]:
    (item_type,) = typing.get_args(list_type) or (Any,)
    item = conv.get_structure_hook(item_type)

    def structure(value: Any, _: Any) -> list[Any]:
        # Lenient: null is an empty list; a non-list fails the frame.
        if value is None:
            return []
        if not isinstance(value, list):
            raise TypeError(f"expected a JSON array, got {type(value).__name__}")
        return [item(v, item_type) for v in value]

    return structure


def _is_list(type_: Any) -> bool:
    return typing.get_origin(type_) is list


def _resolved(cls: Any) -> Any:
    # The package re-labels its classes as `dashscope_sync.X`, so the string
    # annotations must be resolved in the module that wrote them.
    attrs.resolve_types(cls, globalns=vars(_events))
    return cls


def _record(conv: cattrs.Converter, cls: Any) -> Callable[[Any, Any], Any]:
    fields = make_dict_structure_fn(_resolved(cls), conv)

    def structure(value: Any, _: Any) -> Any:
        # Without this a string or list would pass every "key in value" test
        # and quietly become a record of defaults.
        if value is None:
            return cls()
        if not isinstance(value, dict):
            raise TypeError(f"expected a JSON object, got {type(value).__name__}")
        return fields(value, cls)

    return structure


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter(detailed_validation=False)
    conv.register_structure_hook_factory(_is_list, lambda t: _list_of(conv, t))
    conv.register_structure_hook_factory(attrs.has, lambda t: _record(conv, t))
    conv.register_structure_hook(str, _structure_str)
    conv.register_structure_hook(int, _structure_int)
    conv.register_structure_hook(bool, _structure_bool)
    conv.register_structure_hook(bytes, _structure_bytes)
    # Generic aliases are not classes, so these go through predicates.
    conv.register_structure_hook_func(lambda t: t == dict[str, Any], _structure_json_object)
    conv.register_structure_hook_func(lambda t: t == list[dict[str, Any]], _structure_json_objects)
    conv.register_structure_hook_func(lambda t: t == int | str | None, _structure_passthrough)
    # Direct hooks win over the attrs factory above.
    for counts in (_events.TokenDetails, _events.Usage):
        conv.register_structure_hook(counts, _lenient_record(conv, counts))
    conv.register_structure_hook(_events.SessionInfo, _session_info(conv))
    return conv


def _session_info(conv: cattrs.Converter) -> Callable[[Any, Any], Any]:
    # Both echo shapes (flat, and the nested one of the 3.8 families) give
    # the same SessionInfo attributes.
    record = _record(conv, _events.SessionInfo)

    def structure(value: Any, type_: Any) -> Any:
        if isinstance(value, dict):
            value = flatten_session_echo(value)
        return record(value, type_)

    return structure


_converter: Final = _make_converter()

_Hook = Callable[[Mapping[str, Any], Any], ServerEvent]


def _event_hook(cls: type[ServerEvent]) -> _Hook:
    # ``raw`` is not on the wire: it is the frame itself, set after structuring.
    return make_dict_structure_fn(_resolved(cls), _converter, raw=override(omit=True))


#: Event class -> structure function, generated on the first frame of each
#: type (generating all of them at import would cost ~13 ms of start-up).
_HOOKS: Final[dict[type[ServerEvent], _Hook]] = {}


# Decoding -------------------------------------------------------------------

#: The json module's own scanner (its C one where built), called directly:
#: ``json.loads`` wraps it in three Python calls and two regular expression
#: matches, about 1 us of a frame's decoding (a third of a text delta's).
# (typeshed leaves out the attribute JSONDecoder sets in its constructor.)
_scan_once: Final[Callable[[str, int], tuple[Any, int]]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def _loads(text: str) -> Any:
    """``json.loads(text)``: the same value, or the same error, sooner for a frame.

    A text the scanner does not take whole from its first character (leading
    or trailing whitespace, a byte order mark, no value, extra data) goes to
    ``json.loads`` itself, which accepts it or raises its own error; errors
    inside the value come from the same scanner ``json.loads`` runs.
    """
    try:
        obj, end = _scan_once(text, 0)
    except StopIteration:
        return json.loads(text)
    if end != len(text):
        return json.loads(text)
    return obj


def _invalid(
    error: str, text: str, length: int, wire_type: str | None = None, log_error: str | None = None
) -> InvalidFrame:
    # ``log_error`` replaces ``error`` in the log when the error text may quote
    # the payload (a conversion error repeats the bad value).
    logger.warning(
        "undecodable frame (%d chars, type %s): %s", length, wire_type, log_error or error
    )
    return InvalidFrame(
        error=error, wire_type=wire_type, length=length, text=text[:INVALID_TEXT_KEEP]
    )


def decode(data: bytes | str) -> ServerEvent:
    """Decode one text frame into its event; never raises.

    Unknown types give an `UnknownEvent`; anything that cannot be decoded
    (bad UTF-8, not JSON, not an object, no ``type``, a field of the wrong
    shape, bad base64, nesting too deep for the parser) gives an
    `InvalidFrame` and a WARNING log line that names the error, the length
    and the type, never the payload. Whatever decoding raises (even a
    ``RecursionError`` or a ``MemoryError``) becomes an `InvalidFrame`: a
    frame must never end the reader thread, and so the session.
    """
    try:
        return _decode(data)
    except Exception as exc:
        length = len(data)
        head = data[: INVALID_TEXT_KEEP * 4]
        shown = head if isinstance(head, str) else head.decode("utf-8", "replace")
        return _invalid(
            f"undecodable frame: {type(exc).__name__}",
            shown,
            length,
            log_error=f"{type(exc).__name__} while decoding",
        )


def _decode(data: bytes | str) -> ServerEvent:
    if isinstance(data, str):
        text = data
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            head = data[: INVALID_TEXT_KEEP * 4].decode("utf-8", "replace")
            return _invalid(f"not UTF-8: {exc}", head, len(data))
    try:
        obj = _loads(text)
    except ValueError as exc:
        return _invalid(f"not JSON: {exc}", text, len(text))
    except RecursionError:
        return _invalid("not decodable: JSON nested too deeply", text, len(text))
    if type(obj) is not dict:
        return _invalid(f"not a JSON object but {type(obj).__name__}", text, len(text))
    wire_type = obj.get("type")
    if type(wire_type) is not str:
        return _invalid("no string 'type' field", text, len(text))
    cls = EVENT_TYPES.get(wire_type)
    if cls is None:
        return UnknownEvent(wire_type, obj)
    try:
        hook = _HOOKS.get(cls)
        if hook is None:
            # Racing threads may both build it; the results are equivalent.
            hook = _HOOKS[cls] = _event_hook(cls)
        event = hook(obj, cls)
    except Exception as exc:
        return _invalid(
            f"bad {wire_type} frame: {type(exc).__name__}: {exc}",
            text,
            len(text),
            wire_type,
            log_error=f"a field of the wrong shape ({type(exc).__name__})",
        )
    # Frozen record: ``raw`` is filled here, the one place events are built.
    object.__setattr__(event, "raw", obj)
    return event


def decode_binary(data: bytes) -> InvalidFrame:
    """The service sends only text frames; a binary one is reported, not dropped."""
    logger.warning("unexpected binary frame (%d bytes)", len(data))
    return InvalidFrame(error="unexpected binary frame", length=len(data))


# Encoding -------------------------------------------------------------------


class EventIds:
    """Makes unique client ``event_id`` values cheaply: a random prefix and a counter.

    Thread safety: `next` may be called from any thread (``itertools.count``
    is atomic under the GIL).
    """

    __slots__ = ("_counter", "_prefix")

    def __init__(self) -> None:
        # Unique across sessions and processes; os.urandom spares importing
        # the secrets module at start-up.
        self._prefix = "event_" + os.urandom(6).hex() + "_"
        self._counter = itertools.count(1)

    def next(self) -> str:
        """Return a fresh id, ``event_<12 hex>_<n>``."""
        return f"{self._prefix}{next(self._counter)}"


_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def dumps(payload: Mapping[str, Any]) -> str:
    """Compact JSON text of a client event (UTF-8 kept as is, not escaped)."""
    return _dumps(payload)


#: The service's limit on one ``input_audio_buffer.append``'s audio (PROTOCOL.md).
MAX_AUDIO_APPEND: Final = 15 * 1024 * 1024


def check_audio_append(data: bytes | memoryview) -> None:
    """Refuse, before sending, audio over the service's limit for one append.

    Raises:
        ConfigError: Over ``MAX_AUDIO_APPEND`` bytes.
    """
    if len(data) > MAX_AUDIO_APPEND:
        raise ConfigError(
            f"audio appends are limited to {MAX_AUDIO_APPEND} bytes by the service, got "
            f"{len(data)}: append it in smaller chunks"
        )


def encode_audio_append(event_id: str, pcm: bytes | bytearray | memoryview) -> str:
    """The ``input_audio_buffer.append`` frame, built without a JSON pass over the audio.

    ``pcm`` may be any C-contiguous buffer (a memoryview from `pcm16_buffer`
    is encoded in place, without a copy).

    Base64 and the generated id need no escaping, so formatting the text
    directly saves scanning tens of kilobytes per second of audio.
    """
    return (
        f'{{"event_id":"{event_id}","type":"input_audio_buffer.append","audio":"{b64encode(pcm)}"}}'
    )


def encode_image_append(event_id: str, jpeg: bytes | bytearray | memoryview) -> str:
    """The ``input_image_buffer.append`` frame (same reasoning as the audio one)."""
    image = b64encode(jpeg)
    return f'{{"event_id":"{event_id}","type":"input_image_buffer.append","image":"{image}"}}'


def encode_item_replacement(
    ids: EventIds, item_id: str, text: str, previous_item_id: str | None
) -> list[tuple[str, str]]:
    """The frames that replace an assistant item by one holding ``text`` at its place,
    each with its event id: ``conversation.item.delete``, then (unless ``text`` is
    empty) a ``conversation.item.create`` of an assistant ``message`` with one
    ``text`` part, after ``previous_item_id`` (at the end when None)."""
    delete_id = ids.next()
    frames = [
        (
            delete_id,
            dumps({"event_id": delete_id, "type": "conversation.item.delete", "item_id": item_id}),
        )
    ]
    if text:
        create_id = ids.next()
        create: dict[str, Any] = {
            "event_id": create_id,
            "type": "conversation.item.create",
            "item": {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "text", "text": text}],
            },
        }
        if previous_item_id is not None:
            create["previous_item_id"] = previous_item_id
        frames.append((create_id, dumps(create)))
    return frames


def encode_function_output(event_id: str, call_id: str, output: str) -> str:
    """The ``conversation.item.create`` of a ``function_call_output`` item: the
    answer to the model's call ``call_id`` (PROTOCOL.md 2.8; the item's own id
    is left to the server)."""
    item = {"type": "function_call_output", "call_id": call_id, "output": output}
    return dumps({"event_id": event_id, "type": "conversation.item.create", "item": item})


def encode_simple(event_id: str, wire_type: str) -> str:
    """A client event with no fields beyond its id and type (ids and types need no escaping)."""
    return f'{{"event_id":"{event_id}","type":"{wire_type}"}}'


def encode_text_append(event_id: str, text: str) -> str:
    """The ``input_text_buffer.append`` frame (Qwen-TTS-Realtime): only the text is escaped.

    One JSON pass over the text alone, not over a dict holding it: the
    generated id needs no escaping, and an LLM's stream sends many small pieces.
    """
    return f'{{"event_id":"{event_id}","type":"input_text_buffer.append","text":{_dumps(text)}}}'
