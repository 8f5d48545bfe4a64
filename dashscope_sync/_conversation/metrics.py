"""`session.metrics`: the session's latency figures, summarised (count, p50, p95, max).

Pure code over the numbers the latency book kept (``latency.py``): the
snapshot is taken under the session's lock, summarised outside it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import attrs

from .._fmt import seconds
from .latency import FIGURES, LatencyBook

__all__ = ["LatencySummary", "Metrics", "percentile", "snapshot", "summarize"]


def percentile(ordered: Sequence[float], fraction: float) -> float:
    """The ``fraction`` (0-1) percentile of sorted values, by linear interpolation.

    The same definition as ``numpy.percentile``'s default (and
    ``statistics.quantiles(method="inclusive")``): p50 of ``[1, 2, 3, 4]`` is
    2.5, p95 of one value is that value.

    Raises:
        ValueError: No values, or ``fraction`` outside 0-1.
    """
    if not ordered:
        raise ValueError("a percentile of no values")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be within 0-1, got {fraction!r}")
    position = (len(ordered) - 1) * fraction
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@attrs.frozen(kw_only=True, repr=False)
class LatencySummary:
    """One latency figure over a session: how many, the median, the 95th percentile, the worst.

    Attributes:
        count: How many values (0: the figure never applied; then the others are None).
        p50: The median, in seconds.
        p95: The 95th percentile, in seconds (linear interpolation, as numpy's default).
        max: The largest value, in seconds.

    Thread safety: immutable (numbers only); share it freely between threads.
    """

    count: int = 0
    p50: float | None = None
    p95: float | None = None
    max: float | None = None

    def __repr__(self) -> str:
        if not self.count:
            return "<LatencySummary none>"
        return (
            f"<LatencySummary n={self.count} p50 {seconds(self.p50)}, "
            f"p95 {seconds(self.p95)}, max {seconds(self.max)}>"
        )

    def describe(self) -> str:
        """One short line: ``"p50 0.21 s, p95 0.4 s, max 0.52 s (n=12)"``, or ``"n/a"``."""
        if not self.count:
            return "n/a"
        return (
            f"p50 {seconds(self.p50)}, p95 {seconds(self.p95)}, "
            f"max {seconds(self.max)} (n={self.count})"
        )


def summarize(values: Iterable[float]) -> LatencySummary:
    """The `LatencySummary` of some seconds (an empty one for none)."""
    ordered = sorted(values)
    if not ordered:
        return LatencySummary()
    return LatencySummary(
        count=len(ordered),
        p50=percentile(ordered, 0.5),
        p95=percentile(ordered, 0.95),
        max=ordered[-1],
    )


@attrs.frozen(kw_only=True, repr=False)
class Metrics:
    """The latency figures of a session's responses, summarised: ``session.metrics``.

    A snapshot: it does not change as the session goes on; read
    ``session.metrics`` again for a fresh one. Each figure is a
    `LatencySummary` over the responses it applied to (the latest 10 000),
    with the meaning the `ResponseResult` field of the same name has. For a
    response that no handle followed (a server-VAD reply played through an
    attached speaker), "the request" is the end of the user's speech. A
    response nobody hears (under server VAD, the answer to some of a tool
    reply's outputs, superseded by the answer to the last) is not counted.

    Attributes:
        responses: How many responses the figures cover.
        end_of_speech_to_first_audio: From the user's end of speech to the first audio.
        first_audio_delay: From the request to the first audio chunk.
        first_audible_delay: From the request to the first chunk that is not silence.
        first_text_delay: From the request to the first text.
        playback_start: From the request to the first sample an attached speaker played.
        total_time: From the request to ``response.done``.
        interrupt_to_silence: From each `interrupt()` with a speaker
            attached to the last sample played (a barge-in the server's VAD
            triggers is not timed: it is decided on the socket's reader
            thread, which never waits for the speaker; an interrupt that
            found the speaker silent is not counted: it silenced nothing).

    A `SpeechSession`'s metrics count its speeches that finished whole
    (``responses`` is their number): ``first_audio_delay`` and ``total_time``
    as `SpeechResult` has them, from the speech's first text sent.

    Thread safety: immutable (numbers and `LatencySummary` records); share it
    freely. ``session.metrics`` may be read from any thread, handlers
    included, while the session runs: each read copies the figures under
    the session's lock, so a snapshot is consistent (no response half
    counted) and never changes afterwards.
    """

    responses: int = 0
    end_of_speech_to_first_audio: LatencySummary = LatencySummary()
    first_audio_delay: LatencySummary = LatencySummary()
    first_audible_delay: LatencySummary = LatencySummary()
    first_text_delay: LatencySummary = LatencySummary()
    playback_start: LatencySummary = LatencySummary()
    total_time: LatencySummary = LatencySummary()
    interrupt_to_silence: LatencySummary = LatencySummary()

    @classmethod
    def from_values(
        cls, responses: int, columns: Sequence[Sequence[float]], interrupts: Sequence[float]
    ) -> Metrics:
        """Summarise one column of values per figure (in `FIGURES` order) and the interrupts."""
        summaries = {name: summarize(column) for name, column in zip(FIGURES, columns, strict=True)}
        return cls(
            responses=responses,
            interrupt_to_silence=summarize(interrupts),
            **summaries,
        )

    @classmethod
    def from_speeches(cls, timings: Sequence[tuple[float | None, float]]) -> Metrics:
        """Summarise a speech session's (first audio delay, total time) per speech."""
        return cls(
            responses=len(timings),
            first_audio_delay=summarize(first for first, _ in timings if first is not None),
            total_time=summarize(total for _, total in timings),
        )

    def lines(self) -> list[str]:
        """One line per figure that applied: ``"first audio delay: p50 0.2 s, ..."``."""
        return [
            f"{name.replace('_', ' ')}: {summary.describe()}"
            for name, summary in self._figures()
            if summary.count
        ]

    def _figures(self) -> list[tuple[str, LatencySummary]]:
        return [
            (field.name, getattr(self, field.name))
            for field in attrs.fields(Metrics)
            if field.name != "responses"
        ]

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{name} p50 {seconds(summary.p50)}"
            for name, summary in self._figures()
            if summary.count
        )
        return f"<Metrics {self.responses} responses{': ' if shown else ''}{shown}>"

    def _repr_html_(self) -> str:
        import html  # notebooks only

        rows = "".join(
            f"<tr><td>{html.escape(name)}</td><td>{summary.count}</td>"
            + "".join(f"<td>{seconds(v)}</td>" for v in (summary.p50, summary.p95, summary.max))
            + "</tr>"
            for name, summary in self._figures()
            if summary.count
        )
        return (
            f"<table><caption>{self.responses} responses</caption>"
            "<tr><th>figure</th><th>n</th><th>p50</th><th>p95</th><th>max</th></tr>"
            f"{rows}</table>"
        )


def snapshot(book: LatencyBook) -> tuple[int, list[list[float]], list[float]]:
    """Copy the book's numbers (under the session's lock): responses, columns, interrupts."""
    columns: list[list[float]] = [[] for _ in FIGURES]
    heard = 0
    for timing in book.responses.values():
        if timing.silent:
            continue  # nobody heard it (see Metrics)
        heard += 1
        for column, value in zip(columns, timing.figures(), strict=True):
            if value is not None:
                column.append(value)
    return heard, columns, list(book.interrupts)
