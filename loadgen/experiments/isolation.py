"""``loadgen isolation``: the noisy neighbour. Does one namespace's hostile code slow down, break or starve
another's hello? (issue 12; DESIGN.md: "another namespace's hello p99 while one namespace runs hostile code
<= 2x quiet").

Two tenants on one API host: the *victim* (``--auth``) invokes ``hello`` blocking, paced at ``victim_rate``
per second over ``victim_concurrency`` loops, from start to end; the *attacker* (``--attacker-auth``, another
namespace) runs the attack classes of :mod:`loadgen.experiments.attacks` one after the other. Phases:

1. ``quiet``: the victim alone for ``quiet_s`` -- the reference figures.
2. For each class: ``attack:<class>`` while the attack runs (``attack_s``, then its in-flight requests finish),
   and ``after:<class>``: the victim alone again for ``after_s`` (an invoker marked unhealthy, a pool still
   full of the attacker's instances, show up here).

Every victim hello and every attacker request is a row of ``activations.jsonl``
(:class:`loadgen.records.IsolationRow`, ``level`` = the phase's index); the server's processes are sampled into
``resources.jsonl`` (RSS against ``rss_budget_mb``). A class *held* when the victim had no error in its two
phases, its p99 in each stayed within ``ratio_bound`` x the quiet p99, every attacker outcome was a right one,
and the server's peak RSS stayed within the budget.

The client runs on the server's machine, and its own work must not count as the attacker's harm (issue 12: a few
hundred attacker requests a second cost the client as much CPU as the server): every class's payloads are made
before the quiet phase (:func:`loadgen.experiments.attacks.prepare_payloads`); the victim runs in a process of its
own (:func:`victim_main`), so its answers are timed on an event loop that is not also parsing the attacker's; and
each phase records this process's CPU time (``client_cpu_s``: the attacker's client and the resource sampler).
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from loadgen.actions import action_document, action_name, action_source
from loadgen.client import Invocation, WhiskClient
from loadgen.config import Target
from loadgen.errors import LoadgenError
from loadgen.experiments import Context
from loadgen.experiments.attacks import ATTACKS, Attacker, Knobs, prepare_payloads
from loadgen.records import RESOURCES_FILE, IsolationRow, load_jsonl, load_rows
from loadgen.resources import ResourceSampler, find_server_pids, summarize_samples, with_descendants
from loadgen.stats import percentile, ratio

EXPERIMENT = "isolation"
# How the victim's process gets its work (a JSON object: apihost, auth, action, rate, concurrency, timeout_s);
# in the environment, so the key is not on a command line.
VICTIM_ENV = "LOADGEN_ISOLATION_VICTIM"


@dataclass(frozen=True)
class IsolationParams:
    """The knobs of the noisy-neighbour experiment."""

    attacker_auth: str
    attacks: tuple[str, ...] = tuple(ATTACKS)
    quiet_s: float = 10.0
    attack_s: float = 10.0
    after_s: float = 3.0
    victim_rate: float = 20.0
    victim_concurrency: int = 1
    memory_mb: int = 128
    rss_budget_mb: float | None = None
    ratio_bound: float = 2.0
    # After attack_s, how long a class's in-flight requests may take before they are cut off (and the class
    # counted as not held: a request the server did not answer in that time is a hung one).
    grace_s: float = 120.0
    sample_interval_s: float = 0.5
    server_pids: tuple[int, ...] = ()
    knobs: Knobs = field(default_factory=Knobs)


@dataclass(frozen=True)
class Phase:
    """One stretch of the run: its index (the rows' ``level``), name, the attack it belongs to, its window."""

    index: int
    name: str
    attack: str | None
    start_s: float
    end_s: float = 0.0
    client_cpu_s: float | None = None  # the client's (this process's) CPU time in the phase


@dataclass(frozen=True)
class Verdict:
    """How one attack class went, for the summary and the report."""

    attack: str
    victim_n: int
    victim_errors: int
    p50: float
    p99: float
    after_p99: float
    p99_ratio: float
    attacker_requests: int
    unexpected: int
    rss_peak_mb: float | None
    rss_ok: bool | None
    overran: bool
    held: bool
    # CPU seconds of the attack phase: the server's (from the resource samples) and the client's own.
    server_cpu_s: float | None = None
    client_cpu_s: float | None = None


async def run_isolation(ctx: Context, params: IsolationParams) -> list[Verdict]:
    """Run the experiment and write its raw files; the verdict of each attack class."""
    unknown = [name for name in params.attacks if name not in ATTACKS]
    if unknown:
        raise LoadgenError(f"unknown attack {', '.join(unknown)} (one of {', '.join(ATTACKS)})")
    victim = ctx.client
    attacker_target = Target(victim.target.apihost, params.attacker_auth)
    connections = max(params.knobs.flood_requests, params.knobs.cpu_concurrency or 0, 64) + 8
    async with WhiskClient(attacker_target, max_connections=connections, timeout_s=180.0) as attacker:
        await attacker.check()
        victim_ns, attacker_ns = await _namespace(victim), await _namespace(attacker)
        if victim_ns == attacker_ns:
            raise LoadgenError(f"the attacker must be another namespace than the victim's ({victim_ns})")
        limits = await attacker.get_json(f"/namespaces/{attacker.namespace}/limits")
        return await _run(ctx, params, attacker, victim_ns, attacker_ns, limits if isinstance(limits, dict) else {})


async def _run(
    ctx: Context,
    params: IsolationParams,
    attacker: WhiskClient,
    victim_ns: str,
    attacker_ns: str,
    limits: dict[str, Any],
) -> list[Verdict]:
    hello = action_source(ctx.executor, "hello", ctx.actions_dir)
    hello_name = action_name(ctx.executor, "hello")
    roots = find_server_pids(ctx.client.target.apihost, list(params.server_pids) or None)
    parameters = {
        **asdict(params),
        "attacker_auth": params.attacker_auth.partition(":")[0] + ":***",
        "victim_namespace": victim_ns,
        "attacker_namespace": attacker_ns,
        "attacker_limits": limits,
        "server_pids": roots,
    }
    writer = ctx.writer(EXPERIMENT, parameters)
    if not roots:
        ctx.reporter.note("no local server process found: the server's memory is not sampled (see --server-pid)")
    phases: list[Phase] = []
    origin = time.monotonic()
    current: list[Phase] = []
    cpu_at_begin = [time.process_time()]
    overran: set[str] = set()

    def add(row_phase: Phase, tenant: str, operation: str, outcome: Invocation, expected: bool | None) -> None:
        row = IsolationRow.from_invocation(
            outcome, experiment=EXPERIMENT, executor=ctx.executor, level=row_phase.index, run=1, origin=origin
        )
        writer.add(
            replace(
                row,
                tenant=tenant,
                phase=row_phase.name,
                attack=row_phase.attack,
                operation=operation,
                message=(outcome.message or None) and str(outcome.message)[:300],
                expected=expected,
            )
        )

    def begin(name: str, attack: str | None) -> Phase:
        if current:
            phases.append(_ended(current[0], time.monotonic() - origin, time.process_time() - cpu_at_begin[0]))
            writer.summary["phases"] = [asdict(p) for p in phases]
            writer.write_summary()
        cpu_at_begin[0] = time.process_time()
        phase = Phase(len(phases), name, attack, time.monotonic() - origin)
        current[:] = [phase]
        ctx.reporter.begin(name)
        return phase

    try:
        await ctx.client.put_action(hello_name, action_document(hello, memory_mb=params.memory_mb))
        await ctx.client.invoke(hello_name, {"name": "warm-up"})  # a cold start is not the neighbour's doing
        made = time.process_time()
        payloads = prepare_payloads(params.attacks, params.knobs)
        ctx.reporter.note(f"attack payloads made in {time.process_time() - made:.2f} s of CPU, before the quiet phase")
        stop = asyncio.Event()
        with ResourceSampler(
            ctx.out / RESOURCES_FILE,
            server_pids=lambda: with_descendants(roots) if roots else [],
            level_of=lambda: current[0].index if current else None,
            interval_s=params.sample_interval_s,
        ):
            ready = asyncio.Event()
            victim = asyncio.create_task(
                _victim(
                    ctx.client,
                    hello_name,
                    params,
                    stop,
                    lambda inv: add(current[0], "victim", "invoke", inv, None),
                    ready,
                    lambda: begin("quiet", None),
                ),
                name="loadgen-victim",
            )
            try:
                await _wait_ready(victim, ready)
                await _sleep_unless(victim, params.quiet_s)
                for name in params.attacks:
                    attack = ATTACKS[name]
                    phase = begin(f"attack:{name}", name)
                    attacker_view = Attacker(
                        attack,
                        attacker,
                        params.knobs,
                        ctx.actions_dir,
                        time.monotonic() + params.attack_s,
                        functools.partial(add, phase, "attacker"),
                        ctx.reporter.note,
                        limits,
                        payloads[name],
                    )
                    if not await _race(victim, attack.run(attacker_view), params.attack_s + params.grace_s):
                        overran.add(name)
                        ctx.reporter.note(f"{name}: still running {params.grace_s:.0f} s after its time: cut off")
                    begin(f"after:{name}", name)
                    await _sleep_unless(victim, params.after_s)
            finally:
                stop.set()
                await victim
            phases.append(_ended(current[0], time.monotonic() - origin, time.process_time() - cpu_at_begin[0]))
        writer.summary["phases"] = [asdict(p) for p in phases]
        samples = load_jsonl(ctx.out / RESOURCES_FILE)
        verdicts = judge(load_rows(ctx.out, IsolationRow), phases, samples, params, overran)
        writer.summary["result"] = {
            "verdicts": [asdict(v) for v in verdicts],
            "held": all(v.held for v in verdicts),
            "resources": summarize_samples(samples),
        }
        writer.close("complete")
    except BaseException as error:
        writer.close("failed" if isinstance(error, Exception) else "interrupted", str(error) or type(error).__name__)
        raise
    finally:
        ctx.reporter.end()
    return verdicts


def judge(
    rows: list[IsolationRow],
    phases: list[Phase],
    samples: list[dict[str, Any]],
    params: IsolationParams,
    overran: set[str] | frozenset[str] = frozenset(),
) -> list[Verdict]:
    """The verdict of each attack class from the rows, the phases and the resource samples."""
    victim = [r for r in rows if r.tenant == "victim"]
    quiet_p99 = percentile([r.client_ms for r in victim if r.phase == "quiet" and r.succeeded], 0.99)
    budget = params.rss_budget_mb
    verdicts = []
    for attack in dict.fromkeys(p.attack for p in phases if p.attack):
        during = [r for r in victim if r.phase == f"attack:{attack}"]
        after = [r for r in victim if r.phase == f"after:{attack}"]
        mine = [r for r in rows if r.tenant == "attacker" and r.attack == attack]
        indices = {p.index for p in phases if p.attack == attack}
        attacking = [p for p in phases if p.name == f"attack:{attack}"]
        rss = [
            float(s["server"]["rss_bytes"]) / 2**20
            for s in samples
            if s.get("level") in indices and isinstance(s.get("server"), dict) and s["server"].get("pids")
        ]
        peak = max(rss) if rss else None
        p99 = percentile([r.client_ms for r in during if r.succeeded], 0.99)
        after_p99 = percentile([r.client_ms for r in after if r.succeeded], 0.99)
        worst = max((v for v in (p99, after_p99) if v == v), default=float("nan"))
        errors = sum(1 for r in during + after if not r.succeeded)
        unexpected = sum(1 for r in mine if r.expected is False)
        rss_ok = None if budget is None or peak is None else peak <= budget
        within = ratio(worst, quiet_p99) <= params.ratio_bound
        verdicts.append(
            Verdict(
                attack=attack,
                victim_n=len(during) + len(after),
                victim_errors=errors,
                p50=percentile([r.client_ms for r in during if r.succeeded], 0.5),
                p99=p99,
                after_p99=after_p99,
                p99_ratio=ratio(worst, quiet_p99),
                attacker_requests=len(mine),
                unexpected=unexpected,
                rss_peak_mb=peak,
                rss_ok=rss_ok,
                overran=attack in overran,
                held=errors == 0 and within and unexpected == 0 and rss_ok is not False and attack not in overran,
                server_cpu_s=_server_cpu_s(samples, {p.index for p in attacking}),
                client_cpu_s=attacking[0].client_cpu_s if attacking else None,
            )
        )
    return verdicts


async def _namespace(client: WhiskClient) -> str:
    names = await client.get_json("/namespaces")
    if not isinstance(names, list) or not names:
        raise LoadgenError(f"{client.target.apihost} lists no namespace for the key {client.target.auth[:8]}...")
    return str(names[0])


async def _victim(
    client: WhiskClient,
    name: str,
    params: IsolationParams,
    stop: asyncio.Event,
    sink: Callable[[Invocation], None],
    ready: asyncio.Event,
    on_ready: Callable[[], object],
) -> None:
    """The victim's hellos, run by :func:`victim_main` in a process of its own; ``on_ready`` is called and
    ``ready`` set once it has its connection, and each outcome goes to ``sink`` as it ends. ``on_ready`` runs
    here, before the next line is read: the first hello's line can come in the same read as the ready line, and
    it must find its phase begun (it did not when the phase began after ``ready`` woke its waiter: IndexError).
    Closing the process's stdin (when ``stop`` is set) ends it after its hellos in flight."""
    spec = {
        "apihost": client.target.apihost,
        "auth": client.target.auth,
        "action": name,
        "rate": params.victim_rate,
        "concurrency": params.victim_concurrency,
        "timeout_s": 180.0,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from loadgen.experiments.isolation import victim_main; victim_main()",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, VICTIM_ENV: json.dumps(spec)},
        limit=1 << 24,  # a line is one record: a hello's is small, but do not fail on a big one
    )
    assert process.stdin is not None and process.stdout is not None, "expected pipes to the victim's process"
    stdin = process.stdin

    async def stop_when_told() -> None:
        await stop.wait()
        stdin.close()

    stopper = asyncio.create_task(stop_when_told(), name="loadgen-victim-stop")
    try:
        async for line in process.stdout:
            row = json.loads(line)
            if row == {"ready": True}:
                on_ready()
                ready.set()
            else:
                sink(Invocation(**row))
    finally:
        stopper.cancel()
        if process.returncode is None and not stop.is_set():
            process.kill()
        code = await process.wait()
    if code != 0:
        raise LoadgenError(f"the victim's process ended with exit status {code}")


def victim_main() -> None:
    """The victim's process: ``concurrency`` loops of blocking hellos, each paced to ``rate / concurrency``
    per second, every outcome a JSON line on stdout, until stdin is closed. A slow answer is not made up for
    (the next one starts at once), so a stall shows as one slow row."""
    spec = json.loads(os.environ[VICTIM_ENV])

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        # stdin's end is the parent's word to stop (a thread: a blocking read, once).
        threading.Thread(
            target=lambda: (sys.stdin.buffer.read(), loop.call_soon_threadsafe(stop.set)), daemon=True
        ).start()
        concurrency = max(int(spec["concurrency"]), 1)
        interval = concurrency / float(spec["rate"])
        target = Target(spec["apihost"], spec["auth"])
        out = sys.stdout.buffer

        async with WhiskClient(target, max_connections=concurrency + 4, timeout_s=float(spec["timeout_s"])) as client:
            await client.check()  # its connection open before the first measured hello
            out.write(b'{"ready": true}\n')
            out.flush()

            async def one_loop(index: int) -> None:
                due = time.monotonic() + interval * index / concurrency
                while not stop.is_set():
                    delay = due - time.monotonic()
                    if delay > 0:
                        try:
                            await asyncio.wait_for(stop.wait(), delay)
                            return
                        except TimeoutError:
                            pass
                    due = max(due + interval, time.monotonic())
                    outcome = await client.invoke(spec["action"], {"name": "victim"})
                    out.write(json.dumps(asdict(outcome)).encode() + b"\n")
                    out.flush()

            await asyncio.gather(*(one_loop(i) for i in range(concurrency)))

    asyncio.run(run())


async def _wait_ready(victim: asyncio.Task[None], ready: asyncio.Event, limit_s: float = 60.0) -> None:
    waiting = asyncio.ensure_future(ready.wait())
    done, _ = await asyncio.wait({victim, waiting}, timeout=limit_s, return_when=asyncio.FIRST_COMPLETED)
    if waiting not in done:
        waiting.cancel()
        if victim in done:
            victim.result()
        raise LoadgenError(f"the victim's process did not start within {limit_s:.0f} s")


async def _sleep_unless(victim: asyncio.Task[None], seconds: float) -> None:
    # The victim runs until told to stop; if it died, stop waiting and let its error out.
    done, _ = await asyncio.wait({victim}, timeout=seconds)
    if done:
        victim.result()
        raise LoadgenError("the victim's loop ended early")


async def _race(victim: asyncio.Task[None], attack: Awaitable[None], limit_s: float) -> bool:
    """Run the attack beside the victim; False if it had to be cut off after ``limit_s``."""
    task = asyncio.ensure_future(attack)
    done, _ = await asyncio.wait({victim, task}, timeout=limit_s, return_when=asyncio.FIRST_COMPLETED)
    if victim in done:
        task.cancel()
        victim.result()
        raise LoadgenError("the victim's loop ended early")
    if task not in done:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return False
    task.result()
    return True


def _ended(phase: Phase, end_s: float, client_cpu_s: float) -> Phase:
    return Phase(
        phase.index, phase.name, phase.attack, round(phase.start_s, 3), round(end_s, 3), round(client_cpu_s, 3)
    )


def _server_cpu_s(samples: list[dict[str, Any]], indices: set[int]) -> float | None:
    """The server's CPU seconds over the samples of these phases (each sample's CPU % over the time since the
    one before it)."""
    total, seen, last_t = 0.0, False, None
    for sample in samples:
        server, t = sample.get("server"), sample.get("t")
        if isinstance(server, dict) and isinstance(t, int | float):
            if sample.get("level") in indices and last_t is not None and server.get("cpu_percent") is not None:
                total += float(server["cpu_percent"]) / 100 * (t - last_t)
                seen = True
            last_t = float(t)
    return round(total, 3) if seen else None
