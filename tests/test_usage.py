"""The typed token accounting, ``Usage``, as the private converter decodes it."""

from __future__ import annotations

import json
from typing import Any

import attrs
import pytest

import dashscope_sync as ds
from dashscope_sync._wire.codec import _converter

from .test_protocol import FRAME_RESPONSE_DONE


def usage_of(value: Any) -> ds.Usage:
    usage = _converter.structure(value, ds.Usage)
    assert isinstance(usage, ds.Usage)
    return usage


def test_documented_frame() -> None:
    """The usage of the documented response.done frame decodes field by field."""
    usage = usage_of(json.loads(FRAME_RESPONSE_DONE)["response"]["usage"])
    assert usage == ds.Usage(
        total_tokens=377,
        input_tokens=336,
        output_tokens=41,
        input_tokens_details=ds.TokenDetails(text_tokens=228, audio_tokens=108),
        output_tokens_details=ds.TokenDetails(text_tokens=9, audio_tokens=32),
    )


def test_unknown_keys_are_ignored() -> None:
    """Keys this library does not know (new kinds, cached counts) do not break decoding."""
    usage = usage_of(
        {
            "total_tokens": 5,
            "cached_tokens": 2,
            "input_tokens_details": {"image_tokens": 3, "video_tokens": 7},
            "billing": {"currency": "CNY"},
        }
    )
    assert usage.total_tokens == 5
    assert usage.input_tokens_details == ds.TokenDetails(image_tokens=3)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, 0), ("12", 12), (12.0, 12), ("many", 0), ([1], 0), ({"n": 1}, 0)],
)
def test_odd_counts_never_fail(value: object, expected: int) -> None:
    """A count that is missing or not a number is read as a number or 0, never an error."""
    assert usage_of({"total_tokens": value}).total_tokens == expected


@pytest.mark.parametrize("value", [[], "usage", 3])
def test_not_an_object(value: object) -> None:
    """A usage (or details) value that is not an object decodes as all zeros."""
    assert usage_of(value) == ds.Usage()
    assert usage_of({"output_tokens_details": value}).output_tokens_details == ds.TokenDetails()


def test_frozen_and_short_repr() -> None:
    """Usage is immutable and its repr shows only the counts that are set."""
    usage = ds.Usage(total_tokens=3)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        usage.total_tokens = 4  # type: ignore[misc]
    assert repr(usage) == "Usage(total_tokens=3)"


def test_repr_fits_a_line() -> None:
    """A full Usage's repr is one short line, each details object folded next to its count."""
    usage = ds.Usage(
        total_tokens=98,
        input_tokens=3,
        output_tokens=95,
        input_tokens_details=ds.TokenDetails(text_tokens=3),
        output_tokens_details=ds.TokenDetails(text_tokens=24, audio_tokens=71),
    )
    assert repr(usage) == (
        "Usage(total_tokens=98, input_tokens=3 (text 3), output_tokens=95 (text 24, audio 71))"
    )
    assert len(repr(usage)) <= 90
