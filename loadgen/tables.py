"""Per-level metrics from the raw rows, and the tables built from them (Markdown and CSV).

A *metric* is a named set of samples per level (e.g. the cold-start times at each concurrency level); a *table*
has one row per level with the statistics of :mod:`loadgen.stats`.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadgen.records import ActivationRow, IsolationRow
from loadgen.stats import summarize

Cell = str | int | float | None
STAT_COLUMNS = ["level", "n", "mean", "sd", "cov_percent", "median", "p95", "p99", "max"]


@dataclass(frozen=True)
class Metric:
    """Samples (ms) per level of one quantity, with a human title and the axis label of its plot."""

    name: str
    title: str
    unit: str
    by_level: dict[int, list[float]]
    note: str = ""


@dataclass(frozen=True)
class Table:
    """A titled table; ``name`` is its file stem."""

    name: str
    title: str
    columns: list[str]
    rows: list[list[Cell]]
    note: str = ""
    images: list[str] = field(default_factory=list)


def metrics(experiment: str, rows: Sequence[ActivationRow]) -> list[Metric]:
    """The metrics an experiment's report tabulates, primary metric first.

    - coldstart: ``waitTime + initTime`` (the thesis's cold start), ``initTime``, ``waitTime``, client latency.
    - concurrency / mixed: warm ``waitTime`` (successful activations without ``initTime``, as MF), warm client latency;
      for mixed also the warm client latency of each action.
    - capacity: the activations' ``duration`` and ``waitTime`` (all of them), client latency.
    """
    ok = [r for r in rows if r.succeeded]
    if experiment == "coldstart":
        return [
            _metric("cold_start", "Cold start: waitTime + initTime", ok, lambda r: r.cold_start_ms),
            _metric("init_time", "initTime", ok, lambda r: r.initTime),
            _metric("wait_time", "waitTime", ok, lambda r: r.waitTime),
            _metric("client_latency", "Client latency (blocking invoke)", ok, lambda r: r.client_ms),
        ]
    if experiment in ("concurrency", "mixed"):
        warm = [r for r in ok if not r.cold]
        cold = len(ok) - len(warm)
        note = f"warm activations only: {cold} cold ones (with initTime) and {len(rows) - len(ok)} failed ones excluded"
        result = [
            _metric("warm_wait_time", "Warm waitTime", warm, lambda r: r.waitTime, note),
            _metric("warm_client_latency", "Warm client latency (blocking invoke)", warm, lambda r: r.client_ms, note),
        ]
        if experiment == "mixed":
            for benchmark in sorted({benchmark_of(r.action) for r in warm}):
                subset = [r for r in warm if benchmark_of(r.action) == benchmark]
                title = f"Warm client latency of {benchmark}"
                result.append(_metric(f"warm_client_latency_{benchmark}", title, subset, lambda r: r.client_ms))
        return result
    if experiment == "isolation":
        return []  # isolation_tables
    if experiment == "capacity":
        return [
            _metric("duration", "Activation duration", ok, lambda r: r.duration),
            _metric("wait_time", "waitTime", ok, lambda r: r.waitTime),
            _metric("client_latency", "Client latency (blocking invoke)", ok, lambda r: r.client_ms),
        ]
    raise ValueError(f"unknown experiment {experiment!r}")


def benchmark_of(action: str) -> str:
    """The benchmark an action name stands for: ``lg-wasm-net`` -> ``net`` (other names are kept)."""
    parts = action.split("-", 2)
    return parts[2] if len(parts) == 3 and parts[0] == "lg" else action


def stats_table(metric: Metric) -> Table:
    """The thesis table of a metric: per level n, mean, SD, CoV %, median, p95, p99, max (ms)."""
    table_rows: list[list[Cell]] = []
    for level in sorted(metric.by_level):
        s = summarize(metric.by_level[level])
        table_rows.append([level, s.n, s.mean, s.sd, s.cov, s.median, s.p95, s.p99, s.max])
    return Table(metric.name, f"{metric.title} ({metric.unit}) per level", STAT_COLUMNS, table_rows, metric.note)


def throughput_table(rows: Sequence[ActivationRow], windows: list[dict[str, Any]]) -> Table:
    """Completions per second at each ramp level.

    With the level windows of ``summary.json``: the activations that *completed* within a level's window, over the
    window's length, summed over runs (WoW's buckets). Without windows: activations issued at a level over the span
    from the first issue to the last completion of that level.
    """
    completed: dict[int, int] = defaultdict(int)
    succeeded: dict[int, int] = defaultdict(int)
    seconds: dict[int, float] = defaultdict(float)
    runs: dict[int, int] = defaultdict(int)
    if windows:
        by_run: dict[int, list[ActivationRow]] = defaultdict(list)
        for row in rows:
            by_run[row.run].append(row)
        for window in windows:
            level, start, end = int(window["level"]), float(window["start_s"]), float(window["end_s"])
            inside = [r for r in by_run[int(window["run"])] if start <= r.completed_s < end]
            completed[level] += len(inside)
            succeeded[level] += sum(1 for r in inside if r.succeeded)
            seconds[level] += end - start
            runs[level] += 1
    else:
        grouped: dict[tuple[int, int], list[ActivationRow]] = defaultdict(list)
        for row in rows:
            grouped[(row.level, row.run)].append(row)
        for (level, _), group in grouped.items():
            completed[level] += len(group)
            succeeded[level] += sum(1 for r in group if r.succeeded)
            seconds[level] += max(r.completed_s for r in group) - min(r.issued_s for r in group)
            runs[level] += 1
    table_rows: list[list[Cell]] = []
    for level in sorted(completed):
        rate = completed[level] / seconds[level] if seconds[level] > 0 else math.nan
        table_rows.append([level, runs[level], round(seconds[level], 3), completed[level], succeeded[level], rate])
    return Table(
        "throughput",
        "Throughput (completions per second) per level",
        ["level", "runs", "seconds", "completions", "succeeded", "req_per_s"],
        table_rows,
        "completions within each level's window, summed over runs, divided by the windows' total length",
    )


def write_csv(table: Table, path: Path) -> None:
    """The table as CSV (NaN as an empty cell, floats with 3 decimals)."""
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(table.columns)
        for row in table.rows:
            writer.writerow([_csv_cell(cell) for cell in row])


def markdown(table: Table) -> str:
    """The table as a Markdown section: title, note, the pipe table and its images."""
    lines = [f"### {table.title}", ""]
    if table.note:
        lines += [f"_{table.note}_", ""]
    lines.append("| " + " | ".join(table.columns) + " |")
    lines.append("|" + "|".join("---:" for _ in table.columns) + "|")
    lines += ["| " + " | ".join(_md_cell(cell) for cell in row) + " |" for row in table.rows]
    if not table.rows:
        lines.append("| " + " | ".join("" for _ in table.columns) + " |")
    lines.append("")
    lines += [f"![{table.title}]({image})\n" for image in table.images]
    return "\n".join(lines)


def format_number(value: float) -> str:
    """Two decimals; ``n/a`` for NaN."""
    return "n/a" if math.isnan(value) else f"{value:.2f}"


def _metric(
    name: str,
    title: str,
    rows: Iterable[ActivationRow],
    value: Callable[[ActivationRow], float | None],
    note: str = "",
) -> Metric:
    by_level: dict[int, list[float]] = defaultdict(list)
    for row in rows:
        sample = value(row)
        if sample is not None:
            by_level[row.level].append(float(sample))
    return Metric(name, title, "ms", dict(by_level), note)


def _csv_cell(cell: Cell) -> Cell:
    if isinstance(cell, float):
        return "" if math.isnan(cell) else round(cell, 3)
    return "" if cell is None else cell


def _md_cell(cell: Cell) -> str:
    if isinstance(cell, float):
        return format_number(cell)
    return "" if cell is None else str(cell)


def isolation_tables(
    rows: Sequence[IsolationRow], verdicts: Sequence[Any], samples: Sequence[dict[str, Any]], quiet: str = "quiet"
) -> list[Table]:
    """The noisy-neighbour tables: one row per attack class (the verdicts of
    :func:`loadgen.experiments.isolation.judge`), the attacker's outcomes, and the victim per phase."""
    victim = [r for r in rows if r.tenant == "victim"]
    calm = summarize([r.client_ms for r in victim if r.phase == quiet and r.succeeded])
    calm_errors = sum(1 for r in victim if r.phase == quiet and not r.succeeded)
    main: list[list[Cell]] = [[quiet, calm.n, calm_errors, calm.median, calm.p99, None, 1.0, 0, 0, None, None, ""]]
    for v in verdicts:
        main.append(
            [
                v.attack,
                v.victim_n,
                v.victim_errors,
                v.p50,
                v.p99,
                v.after_p99,
                v.p99_ratio,
                v.attacker_requests,
                v.unexpected,
                v.rss_peak_mb,
                None if v.rss_ok is None else ("yes" if v.rss_ok else "NO"),
                "yes" if v.held else "NO",
            ]
        )
    outcomes: dict[tuple[str, str, str, str, bool | None], int] = defaultdict(int)
    for r in rows:
        if r.tenant == "attacker":
            message = " ".join((r.message or "").split())[:90]
            outcomes[(r.attack or "", r.operation, r.status, message, r.expected)] += 1
    outcome_rows: list[list[Cell]] = [
        [attack, operation, status, message, count, "yes" if right else "NO"]
        for (attack, operation, status, message, right), count in outcomes.items()
    ]
    rss_by_phase: dict[int, float] = defaultdict(float)
    for sample in samples:
        server, level = sample.get("server"), sample.get("level")
        if isinstance(level, int) and isinstance(server, dict) and server.get("pids"):
            rss_by_phase[level] = max(rss_by_phase[level], float(server["rss_bytes"]) / 2**20)
    phase_rows: list[list[Cell]] = []
    for level, phase in sorted({(r.level, r.phase) for r in victim}):
        mine = [r for r in victim if r.level == level]
        got = summarize([r.client_ms for r in mine if r.succeeded])
        errors = sum(1 for r in mine if not r.succeeded)
        phase_rows.append(
            [phase, got.n, errors, got.mean, got.median, got.p95, got.p99, got.max, rss_by_phase.get(level)]
        )
    return [
        Table(
            "isolation",
            "Noisy neighbour: the victim's hello (client latency, ms) while another namespace attacks",
            [
                "attack",
                "victim_n",
                "victim_errors",
                "p50",
                "p99",
                "after_p99",
                "p99_ratio",
                "attacker_requests",
                "wrong_outcomes",
                "rss_peak_mib",
                "rss_in_budget",
                "held",
            ],
            main,
            "p50/p99 during the attack, after_p99 in the seconds after it; p99_ratio = the larger of the two over "
            "the quiet p99; held = no victim error, p99_ratio within the bound, every attacker outcome a right "
            "one, server RSS within the budget",
        ),
        Table(
            "attacker_outcomes",
            "What each attack ended with (record status or HTTP answer, and the message)",
            ["attack", "operation", "status", "message", "count", "right"],
            outcome_rows,
            "right = an outcome the class allows (loadgen/experiments/attacks.py): never a whisk internal error, "
            "a 5xx, a reset connection or an accepted activation without a record",
        ),
        Table(
            "victim_phases",
            "The victim's hello per phase (client latency, ms; server RSS, MiB)",
            ["phase", "n", "errors", "mean", "median", "p95", "p99", "max", "rss_max_mib"],
            phase_rows,
        ),
    ]
