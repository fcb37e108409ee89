"""``loadgen report`` and ``loadgen compare`` from synthetic raw files: which files appear and what the tables say."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from loadgen.cli import app
from loadgen.errors import LoadgenError
from loadgen.records import ActivationRow, RunWriter
from loadgen.report import compare, generate_report

pytestmark = pytest.mark.unit


def row(experiment: str, level: int, *, wait: float, init: float | None = None, **extra: Any) -> ActivationRow:
    fields: dict[str, Any] = {
        "experiment": experiment,
        "executor": "wasm",
        "level": level,
        "run": 1,
        "action": "lg-wasm-hello",
        "activationId": "a",
        "client_ms": wait + (init or 0) + 2,
        "waitTime": wait,
        "initTime": init,
        "duration": 5.0,
        "status": "success",
        "http_status": 200,
    }
    fields.update(extra)
    return ActivationRow(**fields)


def write_run(out: Path, experiment: str, rows: list[ActivationRow], executor: str = "wasm", **summary: Any) -> Path:
    writer = RunWriter(out, {"experiment": experiment, "executor": executor, "parameters": {}, **summary})
    for r in rows:
        writer.add(r)
    writer.close("complete")
    return out


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def coldstart_run(out: Path, executor: str, scale: float) -> Path:
    rows = [row("coldstart", 1, wait=1 * scale, init=1 * scale)]  # cold start 2
    rows += [row("coldstart", 2, wait=w * scale, init=2 * scale) for w in (1, 2, 3, 4)]  # 3, 4, 5, 6
    return write_run(out, "coldstart", rows, executor=executor)


def test_coldstart_report_has_the_thesis_table_per_level(tmp_path: Path) -> None:
    run = coldstart_run(tmp_path / "cold", "wasm", 1.0)

    written = generate_report(run)

    report = run / "report"
    assert {p.name for p in written} >= {"report.md", "cold_start.csv", "cold_start_boxplot.png", "init_time.csv"}
    assert all(p.stat().st_size > 0 for p in written)
    table = read_csv(report / "cold_start.csv")
    assert list(table[0]) == ["level", "n", "mean", "sd", "cov_percent", "median", "p95", "p99", "max"]
    assert table[0] == {
        "level": "1", "n": "1", "mean": "2.0", "sd": "", "cov_percent": "", "median": "2.0",
        "p95": "2.0", "p99": "2.0", "max": "2.0",
    }  # fmt: skip
    # level 2: 3, 4, 5, 6 -> mean 4.5, sd 1.291, CoV 28.689 %, median 4.5, p95 5.85, p99 5.97
    assert table[1] == {
        "level": "2", "n": "4", "mean": "4.5", "sd": "1.291", "cov_percent": "28.689", "median": "4.5",
        "p95": "5.85", "p99": "5.97", "max": "6.0",
    }  # fmt: skip
    markdown = (report / "report.md").read_text()
    assert "# coldstart on wasm" in markdown
    assert "| 2 | 4 | 4.50 | 1.29 | 28.69 | 4.50 | 5.85 | 5.97 | 6.00 |" in markdown
    assert "![Cold start: waitTime + initTime (ms) per level](cold_start_boxplot.png)" in markdown


def test_a_report_reads_gzipped_raw_files_as_archived(tmp_path: Path) -> None:
    plain = coldstart_run(tmp_path / "plain", "wasm", 1.0)
    archived = coldstart_run(tmp_path / "archived", "wasm", 1.0)
    raw = archived / "activations.jsonl"
    (archived / "activations.jsonl.gz").write_bytes(gzip.compress(raw.read_bytes()))
    raw.unlink()

    generate_report(plain)
    generate_report(archived)

    assert (archived / "report" / "cold_start.csv").read_text() == (plain / "report" / "cold_start.csv").read_text()
    assert "| 2 | 4 | 4.50 |" in (archived / "report" / "report.md").read_text()


def test_ramp_report_uses_warm_activations_and_level_windows(tmp_path: Path) -> None:
    rows = [
        row("concurrency", 1, wait=9, init=50, completed_s=0.5),  # cold: excluded from the warm tables
        row("concurrency", 1, wait=1, completed_s=1.0),
        row("concurrency", 1, wait=3, completed_s=1.5),
        row("concurrency", 2, wait=2, completed_s=2.5),
        row("concurrency", 2, wait=4, completed_s=3.0),
        row("concurrency", 2, wait=6, completed_s=3.5, status="action developer error", http_status=502),
    ]
    windows = [
        {"run": 1, "level": 1, "start_s": 0.0, "end_s": 2.0},
        {"run": 1, "level": 2, "start_s": 2.0, "end_s": 4.0},
    ]
    run = write_run(tmp_path / "ramp", "concurrency", rows, windows=windows)

    generate_report(run)

    warm = read_csv(run / "report" / "warm_wait_time.csv")
    assert [(r["level"], r["n"], r["mean"]) for r in warm] == [("1", "2", "2.0"), ("2", "2", "3.0")]
    throughput = read_csv(run / "report" / "throughput.csv")
    assert [(r["level"], r["completions"], r["succeeded"], r["req_per_s"]) for r in throughput] == [
        ("1", "3", "3", "1.5"),
        ("2", "3", "2", "1.5"),
    ]
    assert (run / "report" / "throughput.png").exists()
    assert "1 cold ones (with initTime) and 1 failed ones excluded" in (run / "report" / "report.md").read_text()


def test_capacity_report_has_levels_and_resource_plots(tmp_path: Path) -> None:
    rows = [row("capacity", 2, wait=1, start=1000, end=2000, duration=1000) for _ in range(2)]
    rows += [row("capacity", 4, wait=1, start=5000, end=6000, duration=1000) for _ in range(3)]
    rows.append(row("capacity", 4, wait=1, status="http 429", http_status=429, duration=None))
    run = write_run(tmp_path / "capacity", "capacity", rows, parameters={"ms": 1000})
    samples = [
        {"t": t, "level": level, "server": {"cpu_percent": 50.0, "rss_bytes": 2**20 * t},
         "containers": {"count": 1, "cpu_percent": 0.0, "memory_bytes": 2**21}}
        for t, level in ((0.5, 2), (1.0, 2), (1.5, None), (2.0, 4))
    ]  # fmt: skip
    (run / "resources.jsonl").write_text("".join(json.dumps(s) + "\n" for s in samples))

    generate_report(run)

    capacity = read_csv(run / "report" / "capacity.csv")
    assert [(r["level"], r["succeeded"], r["peak_simultaneous"], r["passed"]) for r in capacity] == [
        ("2", "2", "2", "yes"),
        ("4", "3", "3", "no"),
    ]
    markdown = (run / "report" / "report.md").read_text()
    assert "highest fully successful level: 2; first failure at level 4" in markdown
    assert (run / "report" / "resources.png").exists()
    resources = read_csv(run / "report" / "resources.csv")
    assert resources[0] == {"what": "server cpu", "unit": "% of one core", "mean": "50.0", "max": "50.0"}


def test_compare_gives_mean_and_median_ratios_per_level(tmp_path: Path) -> None:
    docker = coldstart_run(tmp_path / "docker", "docker", 10.0)
    wasm = coldstart_run(tmp_path / "wasm", "wasm", 1.0)

    written = compare(docker, wasm, tmp_path / "cmp")

    assert {p.name for p in written} >= {"compare.md", "compare_cold_start.csv", "compare_cold_start.png"}
    table = read_csv(tmp_path / "cmp" / "compare_cold_start.csv")
    assert [(r["level"], r["mean_A"], r["mean_B"], r["mean_ratio"], r["median_ratio"]) for r in table] == [
        ("1", "20.0", "2.0", "10.0", "10.0"),
        ("2", "45.0", "4.5", "10.0", "10.0"),
    ]
    assert "# coldstart: docker vs wasm" in (tmp_path / "cmp" / "compare.md").read_text()


def test_compare_refuses_different_experiments(tmp_path: Path) -> None:
    cold = coldstart_run(tmp_path / "cold", "wasm", 1.0)
    ramp = write_run(tmp_path / "ramp", "concurrency", [row("concurrency", 1, wait=1)])

    with pytest.raises(LoadgenError, match="cannot compare a coldstart run with a concurrency run"):
        compare(cold, ramp)


def test_report_cli_on_a_directory_without_raw_files_is_a_one_line_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["report", str(tmp_path)])

    assert result.exit_code == 1
    assert "is not a loadgen output directory: summary.json is missing" in result.output
    assert "Traceback" not in result.output


def test_report_cli_writes_the_report(tmp_path: Path) -> None:
    run = coldstart_run(tmp_path / "cold", "wasm", 1.0)

    result = CliRunner().invoke(app, ["report", str(run)])

    assert result.exit_code == 0, result.output
    assert (run / "report" / "report.md").exists()
