"""``loadgen capacity``: how many simultaneous ``sleep`` activations the server holds (reference §7.3, §8.7).

Levels start, start + step, ... up to max: at each, all requests are issued at once (blocking) and awaited. A level
*passes* when every request came back within the server's blocking wait as a successful activation (and, with
``--max-wait-ms``, no ``waitTime`` exceeded it). The experiment stops at the first level that does not pass, like
MF's "until the first failure"; the answer is the highest level that passed.

A server that queues activations (pywhisk's pool holds at most ``user-memory / action memory`` instances of an
action with concurrency limit 1) still passes a level whose queue drains within the blocking wait, so each level also
records the *peak simultaneous* activations: the largest overlap of the records' run intervals ``[start + initTime,
end]``. That is the number actually running at once; if it is below the level, the server queued the rest.
CPU and memory of the server and of the containers are sampled to ``resources.jsonl`` throughout.

``non_blocking`` (``--non-blocking``) issues ``blocking=false`` invokes and polls each record (``GET
activations/<id>``) from ``ms`` after its 202 on, over a few connections (``NON_BLOCKING_CONNECTIONS``). A blocking
invoke holds a socket in the client and one in the server for the whole sleep, so with both on one machine a level
of 20,000 needs 20,000 descriptors in each process: the hard limit here (issue 17). Non-blocking invokes with record
polling are the thesis tools' own fallback for an answer without a record (reference §6.1); the record then says
what the blocking answer would have (status, ``waitTime``, ``start``/``end``), so the level is judged the same way.
For all of a level to sleep at once, ``ms`` must be longer than the time it takes to issue the level.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass
from typing import Any

from loadgen.actions import action_document, action_name, action_source
from loadgen.client import Invocation
from loadgen.errors import LoadgenError
from loadgen.experiments import Context
from loadgen.records import RESOURCES_FILE, ActivationRow, load_jsonl
from loadgen.resources import ResourceSampler, find_server_pids, summarize_samples
from loadgen.stats import peak_overlap


@dataclass(frozen=True)
class CapacityParams:
    """The knobs of the capacity experiment."""

    action: str = "sleep"
    start: int = 100
    step: int = 100
    max: int = 2000
    ms: int = 5000
    memory_mb: int = 128
    action_concurrency: int = 1
    max_wait_ms: float | None = None
    require_simultaneous: bool = False
    pause_s: float = 2.0
    sample_interval_s: float = 0.5
    server_pids: tuple[int, ...] = ()
    non_blocking: bool = False


# Connections of a non-blocking capacity run: invokes answer at once, so a few carry any level. Not fewer: httpcore
# polls every idle pooled connection per request (~18 % of the client's samples at 64), but at load ~5 16 of them
# admitted 228 invokes/s against 390/s with 64 (docs/benchmarks.md, issue 17): the server's answer is the wait.
NON_BLOCKING_CONNECTIONS = 64


# OpenWhisk's largest action timeout (pywhisk/entities.py TIMEOUT_MS), and what a sleep leaves below it: a woken
# guest may wait for a slot and a CPU (a 150 s sleep lasted up to 162 s with 20,000 asleep, docs/benchmarks.md).
MAX_ACTION_TIMEOUT_MS = 300_000
SLEEP_MARGIN_MS = 20_000


@dataclass(frozen=True)
class LevelOutcome:
    """What one capacity level did."""

    level: int
    n: int
    succeeded: int
    success_share: float
    max_duration: float | None
    max_wait: float | None
    max_client_ms: float
    peak_simultaneous: int
    cold: int
    passed: bool
    first_failure: str | None
    seconds: float


def levels(start: int, step: int, maximum: int) -> list[int]:
    """The levels to try: ``start, start + step, ...`` up to and including ``maximum`` (which is always last)."""
    if start < 1 or step < 1 or maximum < start:
        raise LoadgenError("need 1 <= --start <= --max and --step >= 1")
    result = list(range(start, maximum + 1, step))
    if result[-1] != maximum:
        result.append(maximum)
    return result


def outcome(
    level: int,
    rows: list[ActivationRow],
    seconds: float,
    max_wait_ms: float | None,
    sleep_ms: float | None = None,
    require_simultaneous: bool = False,
) -> LevelOutcome:
    """Judge one level from its rows (see the module docstring)."""
    succeeded = [r for r in rows if r.succeeded]
    failures = [r for r in rows if not r.succeeded]
    waits = [r.waitTime for r in rows if r.waitTime is not None]
    if max_wait_ms is not None and not failures:
        failures = [r for r in rows if r.waitTime is not None and r.waitTime > max_wait_ms]
    first = None
    if failures:
        row = failures[0]
        first = (
            f"{row.activationId}: waitTime {row.waitTime} ms > {max_wait_ms} ms"
            if row.succeeded
            else f"{row.activationId or 'no activation'}: {row.status}{' (polled after 202)' if row.polled else ''}"
            f"{': ' + row.error if row.error else ''}"
        )
    peak = peak_simultaneous(rows, sleep_ms)
    if require_simultaneous and not failures and peak < level:
        first = f"only {peak} of {level} activations slept at the same time (the server queued the rest)"
        failures = rows
    durations = [r.duration for r in rows if r.duration is not None]
    return LevelOutcome(
        level=level,
        n=len(rows),
        succeeded=len(succeeded),
        success_share=len(succeeded) / len(rows) if rows else 0.0,
        max_duration=max(durations) if durations else None,
        max_wait=max(waits) if waits else None,
        max_client_ms=max((r.client_ms for r in rows), default=0.0),
        peak_simultaneous=peak,
        cold=sum(1 for r in rows if r.cold),
        passed=not failures and len(rows) == level,
        first_failure=first,
        seconds=round(seconds, 3),
    )


def peak_simultaneous(rows: list[ActivationRow], sleep_ms: float | None) -> int:
    """How many activations slept at the same instant: the peak overlap of ``[end - sleep_ms, end]`` (the sleep
    ends just before the record's ``end``), or of ``[start + initTime, end]`` when the sleep time is unknown.

    The sleep interval sees queueing that ``waitTime`` does not (e.g. a run waiting for an executor thread counts
    in ``duration``), so it is the better witness of "simultaneous".
    """
    intervals = []
    for row in rows:
        if row.end is None or not row.succeeded:
            continue
        if sleep_ms is not None:
            intervals.append((row.end - sleep_ms, float(row.end)))
        elif row.start is not None:
            intervals.append((row.start + (row.initTime or 0), float(row.end)))
    return peak_overlap(intervals)


async def run_capacity(ctx: Context, params: CapacityParams) -> list[LevelOutcome]:
    """Run the capacity experiment and write its raw files; the outcome of each level tried."""
    plan = levels(params.start, params.step, params.max)
    # Room for the sleep past its length, within OpenWhisk's largest action timeout (a longer one is refused).
    timeout_ms = min(max(60_000, params.ms * 2), MAX_ACTION_TIMEOUT_MS)
    if params.ms > timeout_ms - SLEEP_MARGIN_MS:
        raise LoadgenError(
            f"--ms {params.ms}: a sleep must end {SLEEP_MARGIN_MS} ms before the action's timeout, at most "
            f"{MAX_ACTION_TIMEOUT_MS} ms (OpenWhisk's limit): --ms {MAX_ACTION_TIMEOUT_MS - SLEEP_MARGIN_MS} or less"
        )
    source = action_source(ctx.executor, params.action, ctx.actions_dir)
    name = action_name(ctx.executor, params.action)
    body: dict[str, Any] = {"ms": params.ms}
    pids = find_server_pids(ctx.client.target.apihost, list(params.server_pids) or None)
    writer = ctx.writer("capacity", {**asdict(params), "levels": plan, "kind": source.kind, "server_pids": pids})
    if not pids:
        ctx.reporter.note("no local server process found: only containers are sampled (see --server-pid)")
    outcomes: list[LevelOutcome] = []
    current: list[int | None] = [None]
    try:
        await ctx.client.put_action(
            name,
            action_document(
                source, memory_mb=params.memory_mb, concurrency=params.action_concurrency, timeout_ms=timeout_ms
            ),
        )
        with ResourceSampler(
            ctx.out / RESOURCES_FILE,
            server_pids=lambda: pids,
            level_of=lambda: current[0],
            interval_s=params.sample_interval_s,
        ):
            for index, level in enumerate(plan):
                if index:
                    current[0] = None
                    await asyncio.sleep(params.pause_s)  # let the server settle; the samples show the gap
                current[0] = level
                rows, seconds = await _level(ctx, name, body, level, params)
                for row in rows:
                    writer.add(row)
                result = outcome(level, rows, seconds, params.max_wait_ms, params.ms, params.require_simultaneous)
                outcomes.append(result)
                ctx.reporter.note(
                    f"level {level}: {result.succeeded}/{result.n} succeeded, peak {result.peak_simultaneous} "
                    f"simultaneous, max duration {result.max_duration} ms, max waitTime {result.max_wait} ms"
                    + ("" if result.passed else f" -- FAILED ({result.first_failure})")
                )
                if result.passed and result.peak_simultaneous < level:
                    ctx.reporter.note(
                        f"  note: only {result.peak_simultaneous} of {level} slept at the same time: the server queued "
                        "the rest (see --require-simultaneous)"
                    )
                writer.summary["levels"] = [asdict(o) for o in outcomes]
                writer.write_summary()
                if not result.passed:
                    break
            current[0] = None
            await asyncio.sleep(min(params.pause_s, 1.0))  # a few idle samples after the last level
        passed = [o for o in outcomes if o.passed]
        writer.summary["result"] = {
            "highest_passed_level": passed[-1].level if passed else 0,
            "peak_simultaneous": max((o.peak_simultaneous for o in outcomes), default=0),
            "first_failed_level": next((o.level for o in outcomes if not o.passed), None),
            "max_duration": max((o.max_duration or 0 for o in outcomes), default=None),
            "resources": summarize_samples(load_jsonl(ctx.out / RESOURCES_FILE)),
        }
        writer.close("complete")
    except BaseException as error:
        writer.close("failed" if isinstance(error, Exception) else "interrupted", str(error) or type(error).__name__)
        raise
    return outcomes


async def _level(
    ctx: Context, name: str, body: dict[str, Any], level: int, params: CapacityParams
) -> tuple[list[ActivationRow], float]:
    ctx.reporter.begin(f"level {level}: {level} simultaneous {name}", total=level)
    origin = time.monotonic()

    async def one() -> Invocation:
        if params.non_blocking:
            invocation = await ctx.client.invoke_nonblocking(name, dict(body), poll_after_s=params.ms / 1000 + 0.5)
        else:
            invocation = await ctx.client.invoke(name, dict(body))
        ctx.reporter.advance()
        return invocation

    invocations = await asyncio.gather(*(one() for _ in range(level)))
    seconds = time.monotonic() - origin
    ctx.reporter.end()
    rows = [
        ActivationRow.from_invocation(
            inv, experiment="capacity", executor=ctx.executor, level=level, run=1, origin=origin
        )
        for inv in invocations
    ]
    return rows, seconds
