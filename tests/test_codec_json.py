"""The codec's JSON step: the json module's scanner called directly must be ``json.loads``.

Pure: no sockets. ``codec._loads`` skips ``json.loads``'s Python wrapper for
the frames a session reads; these tests prove it returns the same value, or
raises the same error with the same message, for any text.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dashscope_sync._wire import codec

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
WHITESPACE = st.sampled_from(["", " ", "\n", "\t ", "\r\n  "])


def outcome(text: str, loads: Any) -> tuple[str, str]:
    """What ``loads(text)`` gives, comparable: the value's repr, or the error's type and text."""
    try:
        return "value", repr(loads(text))
    except (ValueError, RecursionError) as exc:
        return type(exc).__name__, str(exc)


def same_as_json_loads(text: str) -> None:
    assert outcome(text, codec._loads) == outcome(text, json.loads)


@pytest.mark.parametrize(
    "text",
    [
        '{"type":"response.audio.delta","delta":"AAAA"}',
        ' {"a":1}',
        '{"a":1} ',
        '{"a":1}\n',
        '{"a":1}x',
        '{"a":1}{"b":2}',
        "",
        "   ",
        "\ufeff{}",
        '{"a":"\x01"}',
        '{"a":1',
        '"unterminated',
        "NaN",
        "[1,]",
        "{'a': 1}",
        "[" * 100_000,
        '{"a":' * 100_000,
        '{"dup":1,"dup":2}',
        '"\\ud800"',
        "12345678901234567890123456789",
    ],
)
def test_odd_and_hostile_texts_decode_as_json_loads_does(text: str) -> None:
    """Whitespace, a BOM, extra data, bad escapes, deep nesting: the value or error of json.loads."""
    same_as_json_loads(text)


@settings(max_examples=300, deadline=None)
@given(JSON_VALUES, WHITESPACE, WHITESPACE)
def test_any_json_document_decodes_as_json_loads_does(value: Any, before: str, after: str) -> None:
    """Any JSON document, with any whitespace around it, gives json.loads's value."""
    same_as_json_loads(before + json.dumps(value) + after)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_any_text_decodes_or_fails_as_json_loads_does(text: str) -> None:
    """Any text at all gives json.loads's value, or its error with the same message."""
    same_as_json_loads(text)


def test_frames_still_decode_through_it() -> None:
    """A frame with surrounding whitespace still decodes to its event, and extra data is
    still an InvalidFrame naming json's error."""
    event = codec.decode(b' {"type":"response.text.delta","delta":"hi"}\n')
    assert type(event).__name__ == "ResponseTextDelta" and event.delta == "hi"  # type: ignore[attr-defined]
    bad = codec.decode('{"type":"response.text.delta"}{"x":1}')
    assert type(bad).__name__ == "InvalidFrame" and "Extra data" in bad.error  # type: ignore[attr-defined]
