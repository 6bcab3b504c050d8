"""Response times as log-spaced histogram bins, and percentiles read from merged bins (pure).

Percentiles cannot be summed: the p90 of a year is not built from the p90s of its days. A
year of tickets (~500k at 1M posts) is too many values to load for every page view, so the
store keeps, per day (and brand, source, priority), how many tickets fell into each bin of
durations (`report_response_hist`, written with the ticket and with its first reply). A
range's histogram is the sum of its days'; a percentile is read from it.

The bins: one bin per second below `EXACT_BELOW` seconds, then each bin `RATIO` times as wide
as the one before (integer edges). The nearest-rank percentile of the exact values lies in the
bin this module picks, so reporting the bin's middle is off by at most half the bin's width:
**exact below 20 s, within ±2.5 % above** (`max_error`), whole seconds either way. Durations of
`LAST_EDGE` seconds (400 days) or more share the last bin and are reported as its lower edge.
"""
from __future__ import annotations

import math
from bisect import bisect_right
from typing import Iterable, Mapping

RATIO = 1.05
EXACT_BELOW = 20  # where 1-second bins become as wide as RATIO makes them
LAST_EDGE = 400 * 86400


def _edges() -> tuple[int, ...]:
    edges = [1]
    while edges[-1] < LAST_EDGE:
        edges.append(max(edges[-1] + 1, math.ceil(edges[-1] * RATIO)))
    return tuple(edges)


#: Lower edges of bins 1…: bin b ≥ 1 holds [EDGES[b-1], EDGES[b]); bin 0 holds everything
#: below one second (0, or a negative duration from clock skew).
EDGES = _edges()
BINS = len(EDGES) + 1


def bin_of(seconds: int | float) -> int:
    return bisect_right(EDGES, seconds)


def bin_range(b: int) -> tuple[int, int]:
    """The smallest and largest whole seconds of bin `b` (the last bin: its lower edge twice)."""
    if b <= 0:
        return 0, 0
    low = EDGES[b - 1]
    high = EDGES[b] - 1 if b < len(EDGES) else low
    return low, high


def bin_value(b: int) -> float:
    """What a value in bin `b` is reported as: the middle of its whole seconds."""
    low, high = bin_range(b)
    return (low + high) / 2


def max_error(b: int) -> float:
    """The most a value of bin `b` can differ from `bin_value(b)`, in seconds."""
    low, high = bin_range(b)
    return (high - low) / 2


def merge(histograms: Iterable[Mapping[int, int]]) -> dict[int, int]:
    out: dict[int, int] = {}
    for histogram in histograms:
        for b, n in histogram.items():
            out[b] = out.get(b, 0) + n
    return out


def count(histogram: Mapping[int, int]) -> int:
    return sum(histogram.values())


def percentile(histogram: Mapping[int, int], p: float) -> float | None:
    """Nearest-rank percentile (as reports.percentile of the exact values) read from the bins:
    the bin holding the ⌈p/100·n⌉-th smallest value, reported as the bin's middle."""
    total = count(histogram)
    if not total:
        return None
    rank = max(1, math.ceil(p / 100 * total))
    seen = 0
    for b in sorted(histogram):
        seen += histogram[b]
        if seen >= rank:
            return bin_value(b)
    return bin_value(max(histogram))  # unreachable: seen reaches total

