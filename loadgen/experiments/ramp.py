"""``loadgen concurrency`` and ``loadgen mixed``: the closed-loop ramp after McGrath & Brenner (reference §6.2, §7.3).

Start with one request in flight. On each completion, issue a replacement; if at least ``increase_after`` seconds
have passed since the last increase, issue one extra request as well (the level, i.e. the number in flight, rises
by one). When level ``abort_after`` has lasted ``increase_after`` seconds, stop issuing and let the requests in
flight finish. So levels 1..abort_after each last at least ``increase_after`` seconds (WoW's "≥5 s buckets"; its
dropped level-16 bucket is never started here). Each activation is labelled with the level when it was issued.

``concurrency`` sends every request to one action (``hello`` or ``hash``); ``mixed`` draws each request's action,
``net`` or ``prime``, by weight (MF's ``WeightedIndex``, the extra and the replacement drawn independently).
Statistics are of warm activations only (MF's ``extract_warm_start.py``); each action is warmed once first.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from loadgen.actions import action_document, action_name, action_source
from loadgen.client import Invocation
from loadgen.errors import LoadgenError
from loadgen.experiments import Context, Reporter, SilentReporter
from loadgen.records import ActivationRow

Invoke = Callable[[str, dict[str, Any]], Awaitable[Invocation]]
Choose = Callable[[], tuple[str, dict[str, Any]]]
Clock = Callable[[], float]


@dataclass(frozen=True)
class LevelWindow:
    """How long the ramp stayed at a level (seconds from the ramp's start) and how many it issued there."""

    level: int
    start_s: float
    end_s: float
    issued: int


@dataclass
class RampResult:
    """The completed invocations with the level each was issued at, and the level windows."""

    completions: list[tuple[int, Invocation]] = field(default_factory=list)
    windows: list[LevelWindow] = field(default_factory=list)
    origin: float = 0.0


async def ramp(
    invoke: Invoke,
    choose: Choose,
    *,
    increase_after_s: float,
    abort_after: int,
    clock: Clock = time.monotonic,
    reporter: Reporter | None = None,
) -> RampResult:
    """Run one closed-loop ramp from 1 to ``abort_after`` requests in flight (see the module docstring).

    ``invoke`` must not raise for a failed request (return its outcome instead); ``clock`` is injectable so the
    scheduling can be tested with a fake clock.
    """
    if abort_after < 1:
        raise LoadgenError("--abort-after must be at least 1")
    reporter = reporter or SilentReporter()
    result = RampResult(origin=clock())
    pending: dict[asyncio.Task[Invocation], int] = {}
    level, last_added, issued_here = 1, result.origin, 0
    stopping = False

    def issue() -> None:
        nonlocal issued_here
        target, body = choose()
        pending[asyncio.ensure_future(invoke(target, body))] = level
        issued_here += 1

    reporter.begin(f"level 1/{abort_after}", total=abort_after * increase_after_s)
    try:
        issue()
        while pending:
            done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            # Process completions in issue order so that equal fake-clock runs are deterministic.
            for task in sorted(done, key=lambda t: t.result().issued_at):
                result.completions.append((pending.pop(task), task.result()))
                if stopping:
                    continue
                now = clock()
                if now - last_added >= increase_after_s:
                    result.windows.append(
                        LevelWindow(level, last_added - result.origin, now - result.origin, issued_here)
                    )
                    reporter.advance(increase_after_s)
                    if level >= abort_after:
                        stopping = True
                        reporter.describe(f"level {level}/{abort_after}: draining {len(pending)} in flight")
                        continue
                    level, last_added, issued_here = level + 1, now, 0
                    reporter.describe(f"level {level}/{abort_after}")
                    issue()  # the extra request: one more in flight from now on
                issue()  # the replacement
    finally:
        for task in pending:
            task.cancel()
        reporter.end()
    return result


@dataclass(frozen=True)
class RampParams:
    """The knobs of both ramps."""

    increase_after_s: float = 5.0
    abort_after: int = 15
    runs: int = 1
    memory_mb: int = 128
    seed: int | None = None


@dataclass(frozen=True)
class ConcurrencyParams(RampParams):
    """``loadgen concurrency``: ``hello`` (MF's no-load test) or ``hash`` (CPU load, 100000 iterations)."""

    action: str = "hello"
    iterations: int = 100_000


@dataclass(frozen=True)
class MixedParams(RampParams):
    """``loadgen mixed``: the share (percent) of requests that go to ``net``; the rest go to ``prime``."""

    io_share: int = 50
    net_ms: int | None = None  # None: the action's default (300 ms)
    prime_n: int | None = None  # None: the action's default


async def run_concurrency(ctx: Context, params: ConcurrencyParams) -> list[ActivationRow]:
    """The concurrency ramp against one action; writes the raw files."""
    if params.action not in ("hello", "hash"):
        raise LoadgenError(f"concurrency uses hello or hash, not {params.action!r}")
    rng = random.Random(params.seed)
    name = action_name(ctx.executor, params.action)

    def choose() -> tuple[str, dict[str, Any]]:
        if params.action == "hash":
            return name, {"iterations": params.iterations, "input": str(rng.randint(-(2**63), 2**63 - 1))}
        return name, {"name": "loadgen"}

    return await _run_ramps(ctx, "concurrency", params, {params.action: choose()[1]}, choose)


async def run_mixed(ctx: Context, params: MixedParams) -> list[ActivationRow]:
    """The mixed ramp: each request to ``net`` with probability ``io_share`` %, else to ``prime``."""
    if not 0 <= params.io_share <= 100:
        raise LoadgenError("--io-share is a percentage (0..100)")
    rng = random.Random(params.seed)
    net, prime = action_name(ctx.executor, "net"), action_name(ctx.executor, "prime")
    net_body: dict[str, Any] = {} if params.net_ms is None else {"ms": params.net_ms}
    prime_body: dict[str, Any] = {} if params.prime_n is None else {"n": params.prime_n}

    def choose() -> tuple[str, dict[str, Any]]:
        if rng.choices((0, 1), weights=(params.io_share, 100 - params.io_share))[0] == 0:
            return net, dict(net_body)
        return prime, dict(prime_body)

    return await _run_ramps(ctx, "mixed", params, {"net": net_body, "prime": prime_body}, choose)


async def _run_ramps(
    ctx: Context, experiment: str, params: RampParams, warmups: dict[str, dict[str, Any]], choose: Choose
) -> list[ActivationRow]:
    if params.runs < 1:
        raise LoadgenError("--runs must be at least 1")
    sources = [action_source(ctx.executor, b, ctx.actions_dir) for b in warmups]
    writer = ctx.writer(experiment, {**asdict(params), "actions": {s.benchmark: s.kind for s in sources}})
    rows: list[ActivationRow] = []
    windows: list[dict[str, Any]] = []
    writer.summary["windows"] = windows
    try:
        for source in sources:
            name = action_name(ctx.executor, source.benchmark)
            await ctx.client.put_action(name, action_document(source, memory_mb=params.memory_mb))
            # MF warms each action once with a blocking invoke before the ramp (reference §7.3).
            warmup = await ctx.client.invoke(name, warmups[source.benchmark])
            if not warmup.succeeded:
                raise LoadgenError(f"the warm-up invoke of {name} failed: {warmup.status} {warmup.error or ''}")
        for run in range(1, params.runs + 1):
            ctx.reporter.note(f"{experiment} run {run}/{params.runs}")
            result = await ramp(
                ctx.client.invoke,
                choose,
                increase_after_s=params.increase_after_s,
                abort_after=params.abort_after,
                reporter=ctx.reporter,
            )
            for level, invocation in result.completions:
                row = ActivationRow.from_invocation(
                    invocation, experiment=experiment, executor=ctx.executor, level=level, run=run, origin=result.origin
                )
                writer.add(row)
                rows.append(row)
            windows.extend({"run": run, **asdict(w)} for w in result.windows)
            failed = sum(1 for _, inv in result.completions if not inv.succeeded)
            ctx.reporter.note(
                f"run {run}: {len(result.completions)} activations, {failed} failed, "
                f"{sum(1 for _, inv in result.completions if inv.annotation('initTime') is not None)} cold"
            )
            writer.write_summary()
        writer.close("complete")
    except BaseException as error:
        writer.close("failed" if isinstance(error, Exception) else "interrupted", str(error) or type(error).__name__)
        raise
    return rows
