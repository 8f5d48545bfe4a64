"""The codec's base64 step with pybase64 (the ``speed`` extra): the standard library's verdicts.

Pure: no sockets. With pybase64's C extension installed the codec decodes
audio with it; these tests prove it gives the same bytes for every text the
standard library's strict decoder accepts, and the same error (type and
message) for every text it refuses, so a frame decodes to the same event or
the same `InvalidFrame` with or without the extra.
"""

from __future__ import annotations

import base64
import itertools
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dashscope_sync._wire import codec

from .conftest import need

need("pybase64", reason="the speed extra's base64 decoder")


def outcome(decode: object, text: str) -> tuple[str, str]:
    """What ``decode(text)`` gives, comparable: the bytes, or the error's type and text."""
    try:
        return "bytes", repr(decode(text))  # type: ignore[operator]
    except Exception as exc:
        return type(exc).__name__, str(exc)


def same_as_standard_library(text: str) -> None:
    assert outcome(codec._b64decode_fast, text) == outcome(codec._b64decode_strict, text)


def test_the_codec_decodes_audio_with_pybase64() -> None:
    """With pybase64's C extension installed, audio base64 goes through it."""
    assert codec._simd is not None
    assert codec._b64decode is codec._b64decode_fast


def test_every_short_text_over_a_tricky_alphabet_gets_the_same_verdict() -> None:
    """Every text of up to 5 characters of letters, +, /, padding, whitespace, a URL-safe
    letter and a non-ASCII one decodes to the same bytes or fails the same way."""
    alphabet = "AB+/=\n -é"
    for n in range(6):
        for chars in itertools.product(alphabet, repeat=n):
            same_as_standard_library("".join(chars))


@settings(max_examples=400, deadline=None)
@given(
    st.binary(max_size=200),
    st.integers(min_value=0),
    st.sampled_from(["", "=", "==", "A", " ", "\n", "-", "_", "*", "é", "\x00"]),
)
def test_audio_with_any_one_corruption_gets_the_same_verdict(
    pcm: bytes, where: int, inserted: str
) -> None:
    """Valid base64 of any bytes, with any one character inserted anywhere, decodes to the
    same bytes or fails the same way."""
    text = base64.b64encode(pcm).decode()
    at = where % (len(text) + 1)
    same_as_standard_library(text)
    same_as_standard_library(text[:at] + inserted + text[at:])
    same_as_standard_library(text[:at] + text[at + 1 :])


@pytest.mark.parametrize(
    "delta",
    ["AAAA", "", "%%%not base64%%%", "AAA", "=AAA", "AA==AA==", "AAAA\n", "AAAA====", "QUJD-_"],
)
def test_audio_frames_decode_to_the_same_event_or_invalid_frame(delta: str) -> None:
    """An audio delta frame decodes to the same event, or to an InvalidFrame with the same
    error, as with the standard library's decoder."""
    frame = json.dumps({"type": "response.audio.delta", "event_id": "e", "delta": delta})
    got = codec.decode(frame)
    kind, result = outcome(codec._b64decode_strict, delta)
    if kind == "bytes":
        assert type(got).__name__ == "ResponseAudioDelta"
        assert repr(got.delta) == result  # type: ignore[attr-defined]
    else:
        assert type(got).__name__ == "InvalidFrame"
        assert got.error.endswith(f"{kind}: {result}")  # type: ignore[attr-defined]
