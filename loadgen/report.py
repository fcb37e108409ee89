"""``loadgen report DIR`` and ``loadgen compare A B``: tables (Markdown + CSV) and figures (PNG) from raw files only.

``report`` writes into ``DIR/report/``: ``report.md`` (every table, the parameters and the machine), one CSV per
table and the figures. ``compare`` writes the slowdown ratios of two runs of the same experiment (e.g. Docker vs.
WASM): per level ``mean_A / mean_B`` and ``median_A / median_B`` of each metric, and for ramps the throughput ratio.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

from loadgen import plots
from loadgen.errors import LoadgenError
from loadgen.experiments.capacity import LevelOutcome, outcome
from loadgen.experiments.isolation import IsolationParams, Phase, judge
from loadgen.records import (
    ACTIVATIONS_FILE,
    RESOURCES_FILE,
    SUMMARY_FILE,
    ActivationRow,
    IsolationRow,
    load_jsonl,
    load_rows,
    load_summary,
    raw_file,
)
from loadgen.resources import summarize_samples
from loadgen.stats import mean, percentile, ratio
from loadgen.tables import (
    Cell,
    Metric,
    Table,
    isolation_tables,
    markdown,
    metrics,
    stats_table,
    throughput_table,
    write_csv,
)

RAMPS = ("concurrency", "mixed")


def generate_report(run_dir: Path, out_dir: Path | None = None) -> list[Path]:
    """Write the report of one experiment directory; the files written."""
    summary, rows = _load(run_dir)
    experiment = str(summary.get("experiment"))
    out = out_dir or run_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    label = f"{experiment}, {summary.get('executor')}"
    tables: list[Table] = []
    written: list[Path] = []

    if experiment == "capacity":
        tables.append(_capacity_table(summary, rows))
    if experiment == "isolation":
        tables += _isolation_tables(summary, run_dir)
    for metric in metrics(experiment, rows):
        table = stats_table(metric)
        if metric.by_level:
            image = f"{metric.name}_boxplot.png"
            xlabel = "Simultaneous requests" if experiment == "capacity" else "Concurrent requests"
            plots.box_plot(metric, out / image, f"{metric.title} ({label})", xlabel=xlabel)
            written.append(out / image)
            table = _with_image(table, image)
        tables.append(table)
    if experiment in RAMPS:
        throughput = throughput_table(rows, list(summary.get("windows") or []))
        image = "throughput.png"
        plots.throughput_plot(
            [int(r[0] or 0) for r in throughput.rows],
            [float(r[5] or 0) for r in throughput.rows],
            out / image,
            f"Throughput ({label})",
        )
        written.append(out / image)
        tables.append(_with_image(throughput, image))
    if experiment == "capacity":
        capacity = tables[0]
        image = "capacity.png"
        plots.capacity_plot(
            [dict(zip(capacity.columns, r, strict=True)) for r in capacity.rows], out / image, f"Capacity ({label})"
        )
        written.append(out / image)
        tables[0] = _with_image(capacity, image)
        samples = load_jsonl(run_dir / RESOURCES_FILE)
        if samples:
            image = "resources.png"
            plots.resources_plot(samples, out / image, f"Resources during capacity ({label})")
            written.append(out / image)
            tables.append(_with_image(_resources_table(samples), image))

    for table in tables:
        path = out / f"{table.name}.csv"
        write_csv(table, path)
        written.append(path)
    report = out / "report.md"
    report.write_text(_document(summary, rows, tables), encoding="utf-8")
    written.append(report)
    return written


def compare(a_dir: Path, b_dir: Path, out_dir: Path | None = None) -> list[Path]:
    """Write the A/B ratio tables of two runs of the same experiment; the files written."""
    summary_a, rows_a = _load(a_dir)
    summary_b, rows_b = _load(b_dir)
    experiment = summary_a.get("experiment")
    if experiment != summary_b.get("experiment"):
        raise LoadgenError(
            f"cannot compare a {experiment} run with a {summary_b.get('experiment')} run ({a_dir} vs {b_dir})"
        )
    name_a, name_b = _run_label(summary_a, a_dir), _run_label(summary_b, b_dir)
    if name_a == name_b:
        name_a, name_b = f"A ({name_a})", f"B ({name_b})"
    out = out_dir or a_dir.parent / f"compare-{a_dir.name}-vs-{b_dir.name}"
    out.mkdir(parents=True, exist_ok=True)
    metrics_b = {m.name: m for m in metrics(str(experiment), rows_b)}
    tables: list[Table] = []
    written: list[Path] = []
    for metric_a in metrics(str(experiment), rows_a):
        metric_b = metrics_b.get(metric_a.name)
        if metric_b is None:
            continue
        table = _ratio_table(metric_a, metric_b, name_a, name_b)
        image = f"compare_{metric_a.name}.png"
        plots.comparison_plot(
            name_a,
            {int(r[0] or 0): _float(r[2]) for r in table.rows},
            name_b,
            {int(r[0] or 0): _float(r[4]) for r in table.rows},
            out / image,
            f"{metric_a.title}: {name_a} vs {name_b}",
            f"mean {metric_a.title} ({metric_a.unit})",
        )
        written.append(out / image)
        tables.append(_with_image(table, image))
    if experiment in RAMPS:
        tables.append(_throughput_ratio(summary_a, rows_a, summary_b, rows_b, name_a, name_b))
    for table in tables:
        path = out / f"{table.name}.csv"
        write_csv(table, path)
        written.append(path)
    document = [
        f"# {experiment}: {name_a} vs {name_b}",
        "",
        f"A = `{a_dir}` ({summary_a.get('executor')}, {summary_a.get('started')}), "
        f"B = `{b_dir}` ({summary_b.get('executor')}, {summary_b.get('started')}).",
        "",
        "Ratios are A / B per level: above 1 means A is slower (for times) or faster (for throughput).",
        "",
        *[markdown(table) for table in tables],
    ]
    path = out / "compare.md"
    path.write_text("\n".join(document), encoding="utf-8")
    written.append(path)
    return written


def _load(run_dir: Path) -> tuple[dict[str, Any], list[ActivationRow]]:
    for name in (SUMMARY_FILE, ACTIVATIONS_FILE):
        if raw_file(run_dir / name) is None:
            raise LoadgenError(f"{run_dir} is not a loadgen output directory: {name} is missing")
    return load_summary(run_dir), load_rows(run_dir)


def _ratio_table(a: Metric, b: Metric, name_a: str, name_b: str) -> Table:
    columns = ["level", "n_A", "mean_A", "n_B", "mean_B", "mean_ratio", "median_A", "median_B", "median_ratio"]
    rows: list[list[Cell]] = []
    for level in sorted(set(a.by_level) | set(b.by_level)):
        va, vb = a.by_level.get(level, []), b.by_level.get(level, [])
        mean_a, mean_b = mean(va), mean(vb)
        median_a, median_b = percentile(va, 0.5), percentile(vb, 0.5)
        rows.append(
            [
                level,
                len(va),
                mean_a,
                len(vb),
                mean_b,
                ratio(mean_a, mean_b),
                median_a,
                median_b,
                ratio(median_a, median_b),
            ]
        )
    return Table(
        f"compare_{a.name}",
        f"{a.title} ({a.unit}): {name_a} / {name_b}",
        columns,
        rows,
        f"A = {name_a}, B = {name_b}; mean_ratio = mean_A / mean_B, median_ratio = median_A / median_B",
    )


def _throughput_ratio(
    summary_a: dict[str, Any],
    rows_a: list[ActivationRow],
    summary_b: dict[str, Any],
    rows_b: list[ActivationRow],
    name_a: str,
    name_b: str,
) -> Table:
    ta = {int(r[0] or 0): _float(r[5]) for r in throughput_table(rows_a, list(summary_a.get("windows") or [])).rows}
    tb = {int(r[0] or 0): _float(r[5]) for r in throughput_table(rows_b, list(summary_b.get("windows") or [])).rows}
    rows: list[list[Cell]] = [
        [
            level,
            ta.get(level, math.nan),
            tb.get(level, math.nan),
            ratio(ta.get(level, math.nan), tb.get(level, math.nan)),
        ]
        for level in sorted(set(ta) | set(tb))
    ]
    return Table(
        "compare_throughput",
        f"Throughput (req/s): {name_a} / {name_b}",
        ["level", "req_per_s_A", "req_per_s_B", "ratio"],
        rows,
        f"A = {name_a}, B = {name_b}; ratio = A / B (above 1: A completes more per second)",
    )


def _capacity_table(summary: dict[str, Any], rows: list[ActivationRow]) -> Table:
    parameters = summary.get("parameters") or {}
    max_wait = parameters.get("max_wait_ms")
    sleep_ms = parameters.get("ms")
    strict = bool(parameters.get("require_simultaneous"))
    spans = {int(o["level"]): float(o.get("seconds", 0.0)) for o in summary.get("levels") or []}
    by_level: dict[int, list[ActivationRow]] = {}
    for row in rows:
        by_level.setdefault(row.level, []).append(row)
    outcomes: list[LevelOutcome] = [
        outcome(level, group, spans.get(level, 0.0), max_wait, sleep_ms, strict)
        for level, group in sorted(by_level.items())
    ]
    passed = [o.level for o in outcomes if o.passed]
    columns = [
        "level",
        "n",
        "succeeded",
        "success_share",
        "peak_simultaneous",
        "cold",
        "max_duration",
        "max_wait",
        "max_client_ms",
        "seconds",
        "passed",
    ]
    table_rows: list[list[Cell]] = [
        [
            o.level,
            o.n,
            o.succeeded,
            o.success_share,
            o.peak_simultaneous,
            o.cold,
            o.max_duration,
            o.max_wait,
            o.max_client_ms,
            o.seconds,
            "yes" if o.passed else "no",
        ]
        for o in outcomes
    ]
    failure = next((o for o in outcomes if not o.passed), None)
    note = f"highest fully successful level: {passed[-1] if passed else 0}"
    note += f"; first failure at level {failure.level}: {failure.first_failure}" if failure else "; no level failed"
    note += f"; peak simultaneous activations: {max((o.peak_simultaneous for o in outcomes), default=0)}"
    return Table("capacity", "Capacity: simultaneous sleep activations per level", columns, table_rows, note)


def _isolation_tables(summary: dict[str, Any], run_dir: Path) -> list[Table]:
    rows = load_rows(run_dir, IsolationRow)
    samples = load_jsonl(run_dir / RESOURCES_FILE)
    parameters = dict(summary.get("parameters") or {})
    params = IsolationParams(
        attacker_auth="",
        rss_budget_mb=parameters.get("rss_budget_mb"),
        ratio_bound=float(parameters.get("ratio_bound", 2.0)),
    )
    phases = [Phase(**p) for p in summary.get("phases") or []]
    overran = {v["attack"] for v in (summary.get("result") or {}).get("verdicts", []) if v.get("overran")}
    return isolation_tables(rows, judge(rows, phases, samples, params, overran), samples)


def _resources_table(samples: list[dict[str, Any]]) -> Table:
    stats = summarize_samples(samples)
    rows: list[list[Cell]] = []
    for group, key, unit, scale in (
        ("server", "cpu_percent", "% of one core", 1.0),
        ("server", "rss_bytes", "MiB", 1 / 2**20),
        ("containers", "cpu_percent", "% of one core", 1.0),
        ("containers", "memory_bytes", "MiB", 1 / 2**20),
        ("containers", "count", "containers", 1.0),
    ):
        if f"{group}_{key}_max" in stats:
            rows.append(
                [
                    f"{group} {key.split('_')[0]}",
                    unit,
                    stats[f"{group}_{key}_mean"] * scale,
                    stats[f"{group}_{key}_max"] * scale,
                ]
            )
    return Table(
        "resources",
        f"Resources over {len(samples)} samples",
        ["what", "unit", "mean", "max"],
        rows,
        "server = the API host's processes (RSS); containers = all Docker containers' cgroups (incl. page cache)",
    )


def _document(summary: dict[str, Any], rows: list[ActivationRow], tables: list[Table]) -> str:
    machine = summary.get("machine") or {}
    memory = machine.get("memory_bytes")
    failed = sum(1 for r in rows if not r.succeeded)
    head = [
        f"# {summary.get('experiment')} on {summary.get('executor')}",
        "",
        f"- API host: {summary.get('apihost')} ({(summary.get('server') or {}).get('build', 'unknown build')})",
        f"- started {summary.get('started')}, finished {summary.get('finished')}, status {summary.get('status')}"
        + (f" ({summary['error']})" if summary.get("error") else ""),
        f"- machine: {machine.get('cpu_count')} CPUs ({machine.get('cpu_model')}), "
        + (f"{memory / 2**30:.1f} GiB" if isinstance(memory, int) else "memory unknown")
        + f", {machine.get('platform')}",
        f"- activations: {len(rows)} ({failed} failed, {sum(1 for r in rows if r.cold)} cold)",
        f"- parameters: `{json.dumps(summary.get('parameters') or {}, sort_keys=True)}`",
        "",
        "Times in ms. SD is the sample standard deviation, CoV = SD / mean in %, percentiles interpolate linearly "
        "between closest ranks (R type 7).",
        "",
    ]
    return "\n".join(head + [markdown(table) for table in tables])


def _with_image(table: Table, image: str) -> Table:
    return Table(**{**asdict(table), "images": [*table.images, image]})


def _run_label(summary: dict[str, Any], run_dir: Path) -> str:
    return str(summary.get("executor") or run_dir.name)


def _float(cell: Cell) -> float:
    return float(cell) if isinstance(cell, int | float) else math.nan
