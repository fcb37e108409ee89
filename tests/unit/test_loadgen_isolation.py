"""The noisy-neighbour experiment's parts that need no server: the hostile payloads (zip bombs expand as they
claim, modules validate and behave as described under Wasmtime), the judging of outcomes, the verdicts."""

from __future__ import annotations

import bz2
import io
import json
import struct
import tempfile
import zipfile
import zlib
from pathlib import Path

import pytest
import wasmtime

from loadgen import hostile
from loadgen.client import Invocation
from loadgen.experiments.attacks import ATTACKS
from loadgen.experiments.isolation import IsolationParams, Phase, judge
from loadgen.records import IsolationRow, RunWriter, load_rows

pytestmark = pytest.mark.unit


def inflated_size(archive: bytes) -> tuple[str, int]:
    """The member's name and how many bytes its stream really produces, counted in bounded chunks."""
    name_length, extra_length = struct.unpack("<HH", archive[26:30])
    method, compressed = struct.unpack("<H", archive[8:10])[0], struct.unpack("<I", archive[18:22])[0]
    start = 30 + name_length + extra_length
    stream = archive[start : start + compressed]
    total = 0
    if method == 8:
        inflater = zlib.decompressobj(-15)
        data = stream
        while data:
            total += len(inflater.decompress(data, 1 << 24))
            data = inflater.unconsumed_tail
        assert inflater.eof
    else:
        assert method == 12
        decompressor = bz2.BZ2Decompressor()
        total += len(decompressor.decompress(stream, 1 << 24))
        while not decompressor.eof:
            total += len(decompressor.decompress(b"", 1 << 24))
    return archive[30 : 30 + name_length].decode(), total


def test_a_deflate_bomb_expands_a_thousand_times_and_its_honest_header_says_so() -> None:
    bomb = hostile.zip_bomb("deflate", 64 << 20)

    assert inflated_size(bomb.data) == ("action.wasm", 64 << 20)
    assert len(bomb.data) < (64 << 20) // 900
    assert zipfile.ZipFile(io.BytesIO(bomb.data)).getinfo("action.wasm").file_size == 64 << 20
    assert not bomb.lies


def test_a_bzip2_bomb_of_a_few_kb_claims_gigabytes_and_expands_as_claimed() -> None:
    huge = hostile.zip_bomb("bzip2", 1_500_000_000)
    small = hostile.zip_bomb("bzip2", 3 * hostile.BZIP2_UNIT)

    assert len(huge.data) < 2048 and huge.expanded >= 1_500_000_000
    assert zipfile.ZipFile(io.BytesIO(huge.data)).getinfo("action.wasm").file_size == huge.expanded
    assert inflated_size(small.data) == ("action.wasm", 3 * hostile.BZIP2_UNIT)
    # the whole archive is valid: zipfile's own CRC check passes on the full member
    assert zipfile.ZipFile(io.BytesIO(small.data)).read("action.wasm") == bytes(3 * hostile.BZIP2_UNIT)


@pytest.mark.parametrize("method", ["deflate", "bzip2"])
def test_a_lying_header_shows_a_small_consistent_file_to_readers_that_trust_it(method: hostile.ZipMethod) -> None:
    bomb = hostile.zip_bomb(method, 2 * hostile.BZIP2_UNIT, declared=1024)

    assert bomb.lies and bomb.declared == 1024
    assert zipfile.ZipFile(io.BytesIO(bomb.data)).read("action.wasm") == bytes(1024)  # CRC of 1024 zeros
    assert inflated_size(bomb.data)[1] == bomb.expanded >= 2 * hostile.BZIP2_UNIT


def test_a_bomb_beyond_four_gib_is_refused_rather_than_written_without_zip64() -> None:
    with pytest.raises(ValueError, match="ZIP64"):
        hostile.zip_bomb("bzip2", 5 << 30)


def run_module(module: bytes, memory_limit: int | None = None, fuel: int | None = None) -> tuple[str, bytes]:
    """Instantiate and run a WASI command as the WASM executor would (optionally with a memory limit and fuel);
    the outcome (``ok``, a trap or an error) and what it wrote to stdout."""
    config = wasmtime.Config()
    config.consume_fuel = fuel is not None
    engine = wasmtime.Engine(config)
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    store = wasmtime.Store(engine)
    wasi = wasmtime.WasiConfig()
    with tempfile.NamedTemporaryFile(suffix=".out", delete=False) as file:
        stdout = Path(file.name)
    wasi.stdout_file = str(stdout)
    store.set_wasi(wasi)
    if fuel is not None:
        store.set_fuel(fuel)
    if memory_limit is not None:
        store.set_limits(memory_size=memory_limit)
    try:
        linker.instantiate(store, wasmtime.Module(engine, module)).exports(store)["_start"](store)  # type: ignore[operator]
        outcome = "ok"
    except wasmtime.Trap:
        outcome = "trap"
    except wasmtime.WasmtimeError as error:
        outcome = "error: " + str(error).splitlines()[0]
    written = stdout.read_bytes()
    stdout.unlink()
    return outcome, written


def test_memory_modules_escape_without_a_bound_and_fail_within_one() -> None:
    grow = hostile.memory_grow_module(64)
    multi = hostile.multi_memory_module(3, 16)
    table = hostile.huge_table_module(1 << 16, 1 << 16, 4)

    for module in (grow, multi, table):
        assert run_module(module) == ("ok", hostile.ESCAPED)
    assert run_module(grow, memory_limit=32 << 20) == ("trap", b"")
    outcome, written = run_module(multi, memory_limit=8 << 20)
    assert outcome.startswith("error: ") and written == b""  # a memory's minimum over the limit fails instantiation


def test_the_slow_module_compiles_runs_and_says_so_and_each_seed_is_other_bytes() -> None:
    first = hostile.slow_compile_module(50, 500, seed=1)

    assert run_module(first) == ("ok", b'{"compiled": true}\n')
    assert first != hostile.slow_compile_module(50, 500, seed=2)


@pytest.mark.parametrize(
    "module",
    [hostile.poll_oneoff_module(1000), hostile.fd_write_module(1000, 16)],
    ids=["poll_oneoff", "fd_write"],
)
def test_host_call_modules_validate_and_call_the_host_until_stopped(module: bytes) -> None:
    wasmtime.Module.validate(wasmtime.Engine(), module)

    outcome, _ = run_module(module, fuel=5_000)

    assert outcome == "trap"  # out of fuel: it never ends by itself


def test_nested_parameters_are_valid_json_as_deep_as_asked() -> None:
    text = hostile.nested_parameters(300)

    value, depth = json.loads(text), 0
    while isinstance(value, dict):
        value, depth = value["n"], depth + 1
    assert (depth, value) == (300, 0)


def outcome(status: str, http: int | None, record: bool = True) -> Invocation:
    body = {"response": {"status": status, "result": {"error": "x"}}} if record else None
    return Invocation("a", "id" if record else None, http, 1.0, 0.0, 0.001, body, status)


@pytest.mark.parametrize(
    ("attack", "operation", "result", "right"),
    [
        ("noimage", "invoke", outcome("action developer error", 502), True),
        ("noimage", "invoke", outcome("whisk internal error", 502), False),
        ("memory", "invoke", outcome("success", 200), False),  # the guest escaped its bound
        ("race", "invoke", outcome("application error", 502), True),
        ("race", "invoke", outcome("http 404", 404, record=False), True),
        ("cpu", "invoke", outcome("http 429", 429, record=False), True),
        ("cpu", "invoke", outcome("http 503", 503, record=False), False),
        ("flood", "invoke", outcome("accepted", 202, record=False), False),  # accepted, never recorded
        ("nested", "invoke", outcome("transport error", None, record=False), False),
        ("records", "list", outcome("http 200", 200, record=False), True),
    ],
)
def test_each_class_allows_only_the_right_outcomes(
    attack: str, operation: str, result: Invocation, right: bool
) -> None:
    assert ATTACKS[attack].allows(operation, result) is right


def row(
    phase: str, index: int, ms: float, *, tenant: str = "victim", ok: bool = True, expected: bool | None = None
) -> IsolationRow:
    attack = phase.partition(":")[2] or None
    return IsolationRow(
        "isolation", "wasm", index, 1, "hello", "id", ms, 1.0, None, 1.0,
        "success" if ok else "whisk internal error", 200 if ok else 502,
        tenant=tenant, phase=phase, attack=attack, expected=expected,
    )  # fmt: skip


def test_a_class_holds_only_with_no_victim_error_a_p99_within_bound_and_right_attacker_outcomes(
    tmp_path: Path,
) -> None:
    phases = [
        Phase(0, "quiet", None, 0, 1),
        Phase(1, "attack:cpu", "cpu", 1, 2),
        Phase(2, "after:cpu", "cpu", 2, 3),
        Phase(3, "attack:race", "race", 3, 4),
        Phase(4, "after:race", "race", 4, 5),
        Phase(5, "attack:nested", "nested", 5, 6),
        Phase(6, "after:nested", "nested", 6, 7),
    ]
    rows = [row("quiet", 0, 10.0) for _ in range(50)]
    rows += [row("attack:cpu", 1, 15.0) for _ in range(50)] + [row("after:cpu", 2, 12.0)]
    rows += [row("attack:cpu", 1, 1.0, tenant="attacker", expected=True)]
    rows += [row("attack:race", 3, 10.0), row("after:race", 4, 50.0)]  # slow after the attack
    rows += [row("attack:nested", 5, 10.0), row("attack:nested", 5, 10.0, ok=False)]
    rows += [row("attack:nested", 5, 1.0, tenant="attacker", ok=False, expected=False)]
    writer = RunWriter(tmp_path, {})
    for r in rows:
        writer.add(r)
    writer.close("complete")
    samples = [{"level": 1, "server": {"pids": [1], "rss_bytes": 600 << 20}}]

    verdicts = {v.attack: v for v in judge(load_rows(tmp_path, IsolationRow), phases, samples, params(500))}

    assert verdicts["cpu"].p99_ratio == pytest.approx(1.5) and verdicts["cpu"].rss_ok is False
    assert not verdicts["cpu"].held  # over the RSS budget
    assert verdicts["race"].p99_ratio == pytest.approx(5.0) and not verdicts["race"].held
    assert (verdicts["nested"].victim_errors, verdicts["nested"].unexpected) == (1, 1)
    assert judge(rows, phases[:3], samples, params(None))[0].held


def params(budget: float | None) -> IsolationParams:
    return IsolationParams(attacker_auth="a:b", rss_budget_mb=budget)
