"""bench/throughput.py's bookkeeping: the warm-up run is not one of the measured rounds."""

from __future__ import annotations

import pytest

from bench.throughput import Target

pytestmark = pytest.mark.unit


def test_the_warm_up_run_leaves_nothing_in_the_rounds() -> None:
    target = Target("pywhisk standalone", "http://127.0.0.1:1/")
    # What one warm-up run leaves (bench/throughput.py wrk): its first instances make it the dearest per request.
    target.rates.append(100.0)
    target.cpu_us.append(9_000.0)
    target.recorded_rates.append(99.0)
    target.latencies.append("300ms")
    target.errors, target.answered = 1, 200

    target.forget_warm_up()

    assert target.rates == [] and target.recorded_rates == [] and target.latencies == []
    assert target.cpu_us == []  # kept before: each CPU median took the warm-up as one of its values
    assert (target.errors, target.answered) == (0, 0)


def test_wait_times_are_summarised_from_the_records_annotations() -> None:
    from bench.throughput import summarise_wait_times

    def record(wait_ms: object) -> dict[str, object]:
        return {"annotations": [{"key": "kind", "value": "wasm:wasi"}, {"key": "waitTime", "value": wait_ms}]}

    line = summarise_wait_times([record(1), record(2), record(3), record(10), {"annotations": []}])

    assert "last 4 records" in line and "mean 4.00 ms" in line and "p50 2.5" in line and "max 10" in line
    assert "(1 records without one)" in line
    assert summarise_wait_times([{"annotations": "nonsense"}]) == "no waitTime in 1 records"


def test_each_round_starts_one_target_further_on() -> None:
    from bench.throughput import rotated

    targets = [Target(name, "http://127.0.0.1:1/") for name in ("a", "b", "c")]

    orders = [[t.name for t in rotated(targets, n)] for n in range(4)]

    assert orders == [["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"], ["a", "b", "c"]]
    assert rotated([], 2) == []
