"""Small formatting helpers for messages: durations people can read."""

from __future__ import annotations

import math

__all__ = ["seconds"]


def seconds(value: float | None) -> str:
    """A duration for a message, rounded to what a person reads: ``"1.5 s"``.

    Three significant digits below 100 s (``1.4999397950000457`` gives
    ``"1.5 s"``, ``0.009291`` gives ``"0.00929 s"``), whole seconds from
    100 s on, never an exponent; None (no limit) gives ``"no limit"``.
    """
    if value is None:
        return "no limit"
    if not math.isfinite(value):
        return f"{value} s"
    if value < 0:
        return "-" + seconds(-value)
    if value >= 100:
        return f"{value:.0f} s"
    if value >= 0.0001 or value == 0:
        return f"{value:.3g} s"
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return f"{text} s"
