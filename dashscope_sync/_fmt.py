"""Small formatting helpers for messages: durations people can read."""

from __future__ import annotations

import math

__all__ = ["seconds"]


def seconds(value: float | None) -> str:
    """A duration for a message, rounded to what a person reads: ``"1.5 s"``.

    One rule for every duration the library shows (timeouts, waits,
    timings): rounded to the millisecond below 100 s, so the timings of one
    line read alike (``0.00758`` gives ``"0.008 s"``, ``0.035`` ``"0.035 s"``,
    ``1.4999397950000457`` ``"1.5 s"``; trailing zeros dropped), to the
    second from 100 s on; a value under half a millisecond keeps one
    significant digit (``"0.0002 s"``) rather than reading as zero. Never an
    exponent; None (no limit) gives ``"no limit"``.
    """
    if value is None:
        return "no limit"
    if not math.isfinite(value):
        return f"{value} s"
    if value < 0:
        return "-" + seconds(-value)
    if value >= 99.9995:  # what rounds to 100.000 s or more
        return f"{value:.0f} s"
    # Below half a millisecond, one significant digit (written out in full).
    small = value < 0.0005 and value != 0
    text = f"{float(f'{value:.1g}'):.10f}" if small else f"{value:.3f}"
    return text.rstrip("0").rstrip(".") + " s"
