"""loadgen end to end against a real ``pywhisk standalone``: each experiment, shortened, then report and compare.

The CLI runs in-process (typer's runner), except ``report``, which runs as ``python -m loadgen`` to prove the
entry point. Each experiment runs once per module (the ``runs`` fixture) and later tests read its output.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from loadgen.cli import app
from loadgen.records import load_rows, load_summary
from tests.conftest import REPO, Server
from tests.docker_service import docker_daemon  # noqa: F401

pytestmark = pytest.mark.integration

Run = Callable[[str], Path]
EXPERIMENTS: dict[str, list[str]] = {
    "coldstart": ["coldstart", "--levels", "3", "--runs", "2"],
    "concurrency": ["concurrency", "--action", "hello", "--increase-after", "0.5", "--abort-after", "3"],
    "mixed": ["mixed", "--io-share", "50", "--increase-after", "0.5", "--abort-after", "3", "--seed", "5"],
    "capacity": [
        "capacity",
        "--action",
        "sleep",
        "--start",
        "5",
        "--step",
        "5",
        "--max",
        "15",
        "--ms",
        "300",
        "--sample-interval",
        "0.1",
    ],
}


def loadgen(server: Server, *args: str) -> str:
    """Run a loadgen command against ``server``; its output, after asserting it succeeded."""
    result = CliRunner().invoke(app, ["--apihost", server.apihost, "--auth", server.auth, *args])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def runs(standalone: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """Runs an experiment (wasm) the first time it is asked for; its output directory."""
    base = tmp_path_factory.mktemp("loadgen")
    done: dict[str, Path] = {}
    loadgen(standalone, "setup", "--executor", "wasm")

    def run(name: str) -> Path:
        if name not in done:
            out = base / name
            loadgen(standalone, *EXPERIMENTS[name], "--executor", "wasm", "--out", str(out))
            done[name] = out
        return done[name]

    yield run


@pytest.fixture(autouse=True)
def _no_wskprops(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WSK_CONFIG_FILE", str(tmp_path / "no-wskprops"))


def test_setup_creates_the_five_wasm_actions(standalone: Server) -> None:
    output = loadgen(standalone, "setup", "--executor", "wasm")

    assert "created or updated 5 actions" in output
    with standalone.client() as api:
        actions = {a["name"]: a for a in api.get("/namespaces/_/actions", params={"limit": 200}).json()}
    for name in ("hello", "hash", "prime", "net", "sleep"):
        kind = next(p["value"] for p in actions[f"lg-wasm-{name}"]["annotations"] if p["key"] == "exec")
        assert kind == "wasm:wasi"


def test_coldstart_proves_every_measured_activation_was_cold(runs: Run) -> None:
    out = runs("coldstart")

    rows = load_rows(out)
    assert len(rows) == 2 * (1 + 2 + 3)
    assert all(r.succeeded and r.initTime is not None and r.waitTime is not None for r in rows)
    assert len({r.activationId for r in rows}) == len(rows)
    summary = load_summary(out)
    assert (summary["status"], summary["parameters"]["cold_by"]) == ("complete", "update")
    assert summary["machine"]["cpu_count"] >= 1


def test_concurrency_ramp_climbs_to_abort_after(runs: Run) -> None:
    out = runs("concurrency")

    rows = load_rows(out)
    assert {r.level for r in rows} == {1, 2, 3}
    assert all(r.succeeded for r in rows)
    assert sum(1 for r in rows if not r.cold) > 10  # warm activations to take statistics of
    windows = load_summary(out)["windows"]
    assert [w["level"] for w in windows] == [1, 2, 3]
    assert all(w["end_s"] - w["start_s"] >= 0.5 for w in windows)


def test_mixed_ramp_draws_both_net_and_prime(runs: Run) -> None:
    rows = load_rows(runs("mixed"))

    assert {r.action for r in rows} == {"lg-wasm-net", "lg-wasm-prime"}
    assert all(r.succeeded for r in rows)
    net = [r.duration for r in rows if r.action == "lg-wasm-net" and r.duration is not None]
    assert min(net) >= 300  # net blocks 300 ms


def test_capacity_holds_every_level_and_samples_the_server(runs: Run, standalone: Server) -> None:
    out = runs("capacity")

    summary = load_summary(out)
    assert [(o["level"], o["passed"]) for o in summary["levels"]] == [(5, True), (10, True), (15, True)]
    assert summary["result"]["highest_passed_level"] == 15
    assert summary["result"]["peak_simultaneous"] >= 5
    assert standalone.process.pid in summary["parameters"]["server_pids"]
    samples = [json.loads(line) for line in (out / "resources.jsonl").read_text().splitlines()]
    assert samples and all(s["server"]["rss_bytes"] > 0 for s in samples)
    assert {s["level"] for s in samples} >= {5, 10, 15}


@pytest.mark.parametrize("experiment", list(EXPERIMENTS))
def test_report_regenerates_tables_and_plots_from_the_raw_files(runs: Run, experiment: str) -> None:
    out = runs(experiment)

    result = subprocess.run(
        [sys.executable, "-m", "loadgen", "report", str(out)], cwd=REPO, capture_output=True, text=True, timeout=120
    )

    assert result.returncode == 0, result.stderr
    report = out / "report"
    markdown = (report / "report.md").read_text()
    primary = {
        "coldstart": "cold_start",
        "concurrency": "warm_wait_time",
        "mixed": "warm_wait_time",
        "capacity": "capacity",
    }[experiment]
    table = (report / f"{primary}.csv").read_text().splitlines()
    assert len(table) >= 2, table  # a header and at least one level
    assert (report / f"{primary}.csv").exists()
    assert list(report.glob("*.png"))
    assert "| 1 |" in markdown or experiment == "capacity"
    if experiment in ("concurrency", "mixed"):
        throughput = (report / "throughput.csv").read_text().splitlines()
        assert [line.split(",")[0] for line in throughput[1:]] == ["1", "2", "3"]
    if experiment == "capacity":
        assert (report / "resources.png").exists()
        assert "highest fully successful level: 15" in markdown


def test_compare_two_runs_gives_ratio_tables(runs: Run, standalone: Server, tmp_path: Path) -> None:
    first = runs("coldstart")
    second = tmp_path / "coldstart-again"
    loadgen(standalone, "coldstart", "--levels", "2", "--runs", "1", "--out", str(second))

    loadgen(standalone, "compare", str(first), str(second), "--out", str(tmp_path / "cmp"))

    table = (tmp_path / "cmp" / "compare_cold_start.csv").read_text().splitlines()
    assert table[0] == "level,n_A,mean_A,n_B,mean_B,mean_ratio,median_A,median_B,median_ratio"
    assert [line.split(",")[0] for line in table[1:]] == ["1", "2", "3"]
    assert "mean_ratio" in (tmp_path / "cmp" / "compare.md").read_text()


def test_an_unreachable_server_is_a_one_line_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["coldstart", "--apihost", "http://127.0.0.1:9", "--levels", "1", "--out", str(tmp_path / "x")]
    )

    assert result.exit_code == 1
    assert result.output.strip().startswith("error: cannot reach the API host http://127.0.0.1:9")
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.docker
def test_docker_coldstart_is_cold_and_compares_with_wasm(
    docker_daemon: object,  # noqa: F811
    runs: Run,
    standalone: Server,
    tmp_path: Path,
) -> None:
    if not (REPO / "actions" / "native" / "hello").exists():
        pytest.skip("actions/native/hello is not built")
    out = tmp_path / "docker-cold"

    loadgen(standalone, "coldstart", "--executor", "docker", "--levels", "2", "--runs", "1", "--out", str(out))
    loadgen(standalone, "compare", str(out), str(runs("coldstart")), "--out", str(tmp_path / "cmp"))

    rows = load_rows(out)
    assert len(rows) == 3 and all(r.succeeded and r.cold for r in rows)
    table = (tmp_path / "cmp" / "compare_cold_start.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in table[1:]] == ["1", "2", "3"]
    assert "# coldstart: docker vs wasm" in (tmp_path / "cmp" / "compare.md").read_text()
