"""``loadgen coldstart``: L concurrent requests to L distinct actions, for L = 1..N, R runs (reference §6.1, §7.3).

Every measured activation must be a cold start, proven by the ``initTime`` annotation of its record; the metric is
``waitTime + initTime``. Distinct actions are needed because one action's warm instances would be reused.

Making each level cold: by default every action is *updated* (PUT with ``overwrite=true``) right before each level.
An update is a new revision, and an OpenWhisk invoker (and pywhisk's pool) only reuses a warm instance of the same
revision, so the next request needs a fresh one -- without MF's 25 s idle waits, which only work when the server's
idle timeout is shorter than the wait. ``--idle-wait S`` does it MF's way instead: no updates, S seconds between
levels (pair it with ``pywhisk standalone --idle-timeout`` below S). Old revisions' idle instances stay until the
pool evicts them, so on a memory-tight server an eviction may overlap a level; both modes record which was used.

Before run 1 one extra copy (``-cold-0``) is invoked once, unmeasured, so one-time costs (compiling the WASM module
into the server's cache, the first container image read) are not charged to level 1.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import asdict, dataclass
from typing import Any

from loadgen.actions import action_document, action_source
from loadgen.client import Invocation
from loadgen.errors import LoadgenError
from loadgen.experiments import Context
from loadgen.records import ActivationRow

COLD_BENCHMARKS = ("hello", "hash")


@dataclass(frozen=True)
class ColdStartParams:
    """The knobs of the cold-start experiment."""

    levels: int = 15
    runs: int = 3
    action: str = "hello"
    idle_wait_s: float | None = None
    memory_mb: int = 128
    iterations: int = 1000  # hash only: WoW's cold-start requests use 1000 iterations (reference §6.1)


def cold_name(executor: str, index: int) -> str:
    """The i-th distinct copy: ``lg-<executor>-cold-<i>``."""
    return f"lg-{executor}-cold-{index}"


def request_params(action: str, iterations: int, rng: random.Random) -> dict[str, Any]:
    """The body of one request: WoW's hash request (random input) or MF's hello request."""
    if action == "hash":
        return {"iterations": iterations, "input": str(rng.randint(-(2**63), 2**63 - 1))}
    return {"name": "loadgen"}


async def run_coldstart(ctx: Context, params: ColdStartParams) -> list[ActivationRow]:
    """Run the experiment, write its raw files; a LoadgenError if an activation failed or was not cold."""
    if params.action not in COLD_BENCHMARKS:
        raise LoadgenError(f"coldstart uses hello or hash, not {params.action!r}")
    if params.levels < 1 or params.runs < 1:
        raise LoadgenError("--levels and --runs must be at least 1")
    source = action_source(ctx.executor, params.action, ctx.actions_dir)
    document = action_document(source, memory_mb=params.memory_mb)
    mode = "idle-wait" if params.idle_wait_s is not None else "update"
    writer = ctx.writer("coldstart", {**asdict(params), "cold_by": mode, "kind": source.kind, "file": str(source.path)})
    rng = random.Random()
    rows: list[ActivationRow] = []
    try:
        names = [cold_name(ctx.executor, i) for i in range(params.levels + 1)]
        ctx.reporter.begin(f"creating {len(names)} copies of {params.action}", total=len(names))
        for name in names:
            await ctx.client.put_action(name, document)
            ctx.reporter.advance()
        ctx.reporter.end()
        warmup = await ctx.client.invoke(names[0], request_params(params.action, params.iterations, rng))
        if not warmup.succeeded:
            raise LoadgenError(f"the warm-up invoke of {names[0]} failed: {_outcome(warmup)}")

        first = True
        for run in range(1, params.runs + 1):
            for level in range(1, params.levels + 1):
                targets = names[1 : level + 1]
                if mode == "update":
                    # A new revision of each action: no warm instance can match it (see the module docstring).
                    await asyncio.gather(*(ctx.client.put_action(name, document) for name in targets))
                elif not first:
                    await _idle_wait(ctx, params.idle_wait_s or 0.0, f"run {run} level {level}")
                first = False
                level_rows = await _level(ctx, params, targets, run, level, rng)
                for row in level_rows:
                    writer.add(row)
                rows.extend(level_rows)
                _check_level(level_rows, run, level, mode)
                cold = [r.cold_start_ms for r in level_rows if r.cold_start_ms is not None]
                ctx.reporter.note(
                    f"run {run} level {level}: cold start mean {sum(cold) / len(cold):.1f} ms, max {max(cold):.1f} ms"
                )
        writer.close("complete")
    except BaseException as error:
        writer.close("failed" if isinstance(error, Exception) else "interrupted", str(error) or type(error).__name__)
        raise
    return rows


async def _level(
    ctx: Context, params: ColdStartParams, targets: list[str], run: int, level: int, rng: random.Random
) -> list[ActivationRow]:
    ctx.reporter.begin(f"run {run}/{params.runs} level {level}/{params.levels}", total=len(targets))
    origin = time.monotonic()

    async def one(name: str) -> Invocation:
        invocation = await ctx.client.invoke(name, request_params(params.action, params.iterations, rng))
        ctx.reporter.advance()
        return invocation

    invocations = await asyncio.gather(*(one(name) for name in targets))
    ctx.reporter.end()
    return [
        ActivationRow.from_invocation(
            invocation, experiment="coldstart", executor=ctx.executor, level=level, run=run, origin=origin
        )
        for invocation in invocations
    ]


def _check_level(rows: list[ActivationRow], run: int, level: int, mode: str) -> None:
    # Like WoW's tool, any failed request aborts: a cold-start table with holes would mislead.
    failed = [r for r in rows if not r.succeeded]
    if failed:
        row = failed[0]
        raise LoadgenError(
            f"run {run} level {level}: {len(failed)} of {len(rows)} activations failed, e.g. {row.action} "
            f"({row.activationId}): {row.status}{': ' + row.error if row.error else ''}"
        )
    warm = [r for r in rows if not r.cold]
    if warm:
        ids = ", ".join(str(r.activationId) for r in warm[:5])
        hint = (
            " (with --idle-wait, the server's idle timeout must be shorter than the wait)"
            if mode == "idle-wait"
            else ""
        )
        raise LoadgenError(
            f"run {run} level {level}: {len(warm)} of {len(rows)} activations were NOT cold (no initTime in the "
            f"record: {ids}); a warm instance was reused, so the cold-start numbers would be wrong{hint}"
        )


async def _idle_wait(ctx: Context, seconds: float, before: str) -> None:
    ctx.reporter.begin(f"idle wait {seconds:.0f} s before {before}", total=seconds)
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        step = min(1.0, left)
        await asyncio.sleep(step)
        ctx.reporter.advance(step)
    ctx.reporter.end()


def _outcome(invocation: Invocation) -> str:
    return f"{invocation.status}{': ' + invocation.error if invocation.error else ''}"
