"""loadgen's statistics: exact values on small samples (sample SD, CoV in %, R type-7 percentiles)."""

from __future__ import annotations

import math

import pytest

from loadgen.stats import cov_percent, mean, peak_overlap, percentile, ratio, sample_sd, summarize

pytestmark = pytest.mark.unit


def test_summary_of_one_to_four_matches_r() -> None:
    # R: x <- c(1, 2, 3, 4); mean(x); sd(x); sd(x)/mean(x)*100; quantile(x, c(.5, .95, .99))
    s = summarize([4, 1, 3, 2])

    assert s.n == 4
    assert s.mean == 2.5
    assert s.sd == pytest.approx(math.sqrt(5 / 3))  # 1.2909944
    assert s.cov == pytest.approx(51.63977795)
    assert s.median == 2.5
    assert s.p95 == pytest.approx(3.85)  # h = 3 * 0.95 = 2.85 -> x[2] + 0.85 * (x[3] - x[2])
    assert s.p99 == pytest.approx(3.97)
    assert s.max == 4
    assert s.min == 1


def test_sample_sd_uses_n_minus_one() -> None:
    values = [2, 4, 4, 4, 5, 5, 7, 9]  # population SD 2, sample SD sqrt(32 / 7)

    assert mean(values) == 5
    assert sample_sd(values) == pytest.approx(math.sqrt(32 / 7))
    assert cov_percent(values) == pytest.approx(math.sqrt(32 / 7) / 5 * 100)


def test_percentiles_interpolate_between_closest_ranks() -> None:
    values = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]

    assert percentile(values, 0.0) == 10
    assert percentile(values, 1.0) == 100
    assert percentile(values, 0.5) == 55  # h = 4.5
    assert percentile(values, 0.95) == pytest.approx(95.5)  # h = 8.55
    assert percentile(values, 0.99) == pytest.approx(99.1)  # h = 8.91


def test_odd_count_median_is_the_middle_value() -> None:
    assert percentile([5, 1, 3], 0.5) == 3


def test_one_value_has_no_spread() -> None:
    s = summarize([7.0])

    assert (s.n, s.mean, s.median, s.p95, s.p99, s.max) == (1, 7.0, 7.0, 7.0, 7.0, 7.0)
    assert math.isnan(s.sd)
    assert math.isnan(s.cov)


def test_no_values_give_nan_not_errors() -> None:
    s = summarize([])

    assert s.n == 0
    assert all(math.isnan(v) for v in (s.mean, s.sd, s.cov, s.median, s.p95, s.p99, s.max))


def test_cov_is_undefined_for_a_zero_mean() -> None:
    assert math.isnan(cov_percent([0, 0, 0]))
    assert math.isnan(cov_percent([-1, 1]))


def test_percentile_outside_zero_one_is_refused() -> None:
    with pytest.raises(ValueError, match="quantile"):
        percentile([1, 2], 95)


def test_ratio_of_nan_or_zero_is_nan() -> None:
    assert ratio(3, 2) == 1.5
    assert math.isnan(ratio(1, 0))
    assert math.isnan(ratio(math.nan, 1))


def test_peak_overlap_counts_intervals_running_at_once() -> None:
    assert peak_overlap([]) == 0
    assert peak_overlap([(0, 10), (1, 5), (2, 3), (20, 30)]) == 3
    # Touching intervals do not overlap; empty ones are ignored.
    assert peak_overlap([(0, 5), (5, 10), (7, 7)]) == 1
