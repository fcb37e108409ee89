"""The statistics of the thesis tables, as pure functions.

Conventions (the same as the MF post-processing in R, reference §7.3):
- ``sd`` is the *sample* standard deviation (n - 1 in the denominator), like R's ``sd``; for n < 2 it is NaN.
- ``cov`` is the coefficient of variation in percent: ``sd / mean * 100`` (MF's ``CV``); NaN if the mean is 0.
- Percentiles interpolate linearly between the two closest ranks: for sorted values ``x[0..n-1]`` the q-quantile
  is at position ``h = (n - 1) * q``, i.e. ``x[floor(h)] + (h - floor(h)) * (x[floor(h) + 1] - x[floor(h)])``.
  This is R's default (type 7), NumPy's ``linear`` and Excel's ``PERCENTILE.INC``; the median is the 0.5-quantile.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

NAN = math.nan


@dataclass(frozen=True)
class Summary:
    """One row of a thesis table: the distribution of one metric at one level."""

    n: int
    mean: float
    sd: float
    cov: float
    median: float
    p95: float
    p99: float
    max: float
    min: float


def mean(values: Sequence[float]) -> float:
    """The arithmetic mean; NaN for no values."""
    return math.fsum(values) / len(values) if values else NAN


def sample_sd(values: Sequence[float]) -> float:
    """The sample standard deviation (n - 1); NaN for fewer than two values."""
    if len(values) < 2:
        return NAN
    m = mean(values)
    return math.sqrt(math.fsum((v - m) ** 2 for v in values) / (len(values) - 1))


def cov_percent(values: Sequence[float]) -> float:
    """The coefficient of variation ``sd / mean * 100``; NaN when undefined."""
    m = mean(values)
    sd = sample_sd(values)
    if math.isnan(sd) or m == 0:
        return NAN
    return sd / m * 100.0


def percentile(values: Sequence[float], q: float) -> float:
    """The q-quantile (0 <= q <= 1) by linear interpolation between closest ranks (R type 7); NaN for none."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile {q} is not within [0, 1]")
    if not values:
        return NAN
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    lower = math.floor(position)
    upper = min(lower + 1, len(ordered) - 1)
    return ordered[lower] + (position - lower) * (ordered[upper] - ordered[lower])


def summarize(values: Sequence[float]) -> Summary:
    """Every statistic of a thesis table row for ``values``."""
    return Summary(
        n=len(values),
        mean=mean(values),
        sd=sample_sd(values),
        cov=cov_percent(values),
        median=percentile(values, 0.5),
        p95=percentile(values, 0.95),
        p99=percentile(values, 0.99),
        max=max(values) if values else NAN,
        min=min(values) if values else NAN,
    )


def ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator``, NaN when either is NaN or the denominator is 0."""
    if math.isnan(numerator) or math.isnan(denominator) or denominator == 0:
        return NAN
    return numerator / denominator


def peak_overlap(intervals: Iterable[tuple[float, float]]) -> int:
    """The largest number of half-open intervals ``[start, end)`` that overlap at one instant.

    Used for capacity: from the records' run intervals it tells how many activations really ran at the same
    time, as opposed to being queued by the server one after the other.
    """
    events: list[tuple[float, int]] = []
    for start, end in intervals:
        if end > start:
            events.append((start, 1))
            events.append((end, -1))
    # At equal times, ends (-1) sort before starts (+1): touching intervals do not overlap.
    events.sort()
    peak = current = 0
    for _, delta in events:
        current += delta
        peak = max(peak, current)
    return peak
