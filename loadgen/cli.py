"""The ``loadgen`` command line: set up the benchmark actions, run the five experiments, report and compare.

About 400 lines because every command's options and help live here; the work is in the modules it calls.

Server options (``--apihost``, ``--auth``, ``--executor``, ``--actions-dir``) are accepted before the command and
after it; the API host and key default to ``$WSK_CONFIG_FILE`` or ``~/.wskprops``, then to pywhisk standalone's
``http://127.0.0.1:3233`` and the guest key.
"""

from __future__ import annotations

import asyncio
import enum
import resource
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import httpx
import typer
from rich.console import Console

from loadgen.actions import BENCHMARKS, DEFAULT_MEMORY_MB, Executor, default_actions_dir, setup
from loadgen.client import WhiskClient
from loadgen.config import Target, resolve_target
from loadgen.errors import LoadgenError
from loadgen.experiments import Context
from loadgen.experiments.attacks import ATTACKS, Knobs
from loadgen.experiments.capacity import NON_BLOCKING_CONNECTIONS, CapacityParams, run_capacity
from loadgen.experiments.coldstart import ColdStartParams, run_coldstart
from loadgen.experiments.isolation import IsolationParams, run_isolation
from loadgen.experiments.ramp import ConcurrencyParams, MixedParams, run_concurrency, run_mixed
from loadgen.progress import RichReporter
from loadgen.report import compare as compare_runs
from loadgen.report import generate_report

T = TypeVar("T")
console = Console(soft_wrap=True)
errors = Console(stderr=True, soft_wrap=True)

app = typer.Typer(
    help="Load generator and report tool: cold start, concurrency, mixed load, capacity and the noisy neighbour "
    "(isolation) on an OpenWhisk API host.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class ExecutorChoice(enum.StrEnum):
    """Which build of the benchmark actions to create."""

    wasm = "wasm"
    docker = "docker"
    python = "python"
    python_wasm = "python-wasm"
    nodejs = "nodejs"
    nodejs_wasm = "nodejs-wasm"


class ColdAction(enum.StrEnum):
    """The action copied for the cold-start experiment."""

    hello = "hello"
    hash = "hash"


ApihostOpt = Annotated[
    str | None,
    typer.Option("--apihost", help="API host URL (default: APIHOST of ~/.wskprops, or http://127.0.0.1:3233)"),
]
AuthOpt = Annotated[
    str | None, typer.Option("--auth", help="uuid:key (default: AUTH of ~/.wskprops, or the guest key)")
]
ExecutorOpt = Annotated[
    ExecutorChoice | None,
    typer.Option(
        "--executor",
        help="wasm (kind wasm:wasi), docker (native binaries in dockerskeleton), python (python:3 on Docker) or"
        " python-wasm (python:3 on WASM), nodejs (nodejs:default on Docker) or nodejs-wasm (the same .js on WASM)"
        " (default: wasm)",
    ),
]
ActionsDirOpt = Annotated[
    Path | None, typer.Option("--actions-dir", help="the actions/ folder (default: the repository's actions/)")
]
OutOpt = Annotated[Path, typer.Option("--out", help="directory for activations.jsonl and summary.json")]
MemoryOpt = Annotated[int, typer.Option("--memory", help="memory limit (MB) of the created actions")]
TimeoutOpt = Annotated[float, typer.Option("--timeout", help="client timeout (s) of one blocking invoke")]
SampleIntervalOpt = Annotated[float, typer.Option(help="seconds between resource samples")]
ServerPidOpt = Annotated[
    list[int] | None,
    typer.Option("--server-pid", help="server process(es) to sample (default: the API host's listener)"),
]


@dataclass(frozen=True)
class Globals:
    """Server options given before the command."""

    apihost: str | None = None
    auth: str | None = None
    executor: ExecutorChoice | None = None
    actions_dir: Path | None = None


@dataclass(frozen=True)
class Settings:
    """Server options resolved: command option, else global option, else properties file, else default."""

    target: Target
    executor: Executor
    actions_dir: Path


@app.callback()
def root(
    ctx: typer.Context,
    apihost: ApihostOpt = None,
    auth: AuthOpt = None,
    executor: ExecutorOpt = None,
    actions_dir: ActionsDirOpt = None,
) -> None:
    """Reproduce the WebAssembly-vs-Docker serverless experiments (reference §6-8) against any OpenWhisk API host."""
    ctx.obj = Globals(apihost, auth, executor, actions_dir)


@app.command("setup")
def setup_command(
    ctx: typer.Context,
    executor: ExecutorOpt = None,
    apihost: ApihostOpt = None,
    auth: AuthOpt = None,
    actions_dir: ActionsDirOpt = None,
    action: Annotated[
        list[str] | None, typer.Option("--action", help="only these benchmarks (repeatable) (default: all five)")
    ] = None,
    memory: MemoryOpt = DEFAULT_MEMORY_MB,
) -> None:
    """Create or update the actions lg-<executor>-{hello,hash,prime,net,sleep}."""
    settings = _settings(ctx, apihost, auth, executor, actions_dir)
    chosen = tuple(action) if action else BENCHMARKS
    unknown = [name for name in chosen if name not in BENCHMARKS]
    if unknown:
        _fail(f"unknown benchmark {', '.join(unknown)} (one of {', '.join(BENCHMARKS)})")

    async def body(client: WhiskClient, info: dict[str, Any]) -> list[str]:
        return await setup(client, settings.executor, settings.actions_dir, chosen, memory_mb=memory)

    names = _run(_with_client(settings, 4, 60.0, body))
    console.print(f"created or updated {len(names)} actions: {', '.join(names)}")


@app.command()
def coldstart(
    ctx: typer.Context,
    out: OutOpt,
    levels: Annotated[int, typer.Option(help="highest number of concurrent requests (levels 1..N)")] = 15,
    runs: Annotated[int, typer.Option(help="repetitions of the whole 1..N sequence")] = 3,
    action: Annotated[
        ColdAction, typer.Option(help="copied action: hello (MF) or hash (WoW, 1000 iterations)")
    ] = ColdAction.hello,
    idle_wait: Annotated[
        float | None,
        typer.Option(
            "--idle-wait",
            help="seconds to wait between levels instead of updating the actions (then the server's idle timeout "
            "must be shorter) (default: update every action before each level: a new revision is never warm)",
        ),
    ] = None,
    executor: ExecutorOpt = None,
    apihost: ApihostOpt = None,
    auth: AuthOpt = None,
    actions_dir: ActionsDirOpt = None,
    memory: MemoryOpt = DEFAULT_MEMORY_MB,
    timeout: TimeoutOpt = 180.0,
) -> None:
    """L concurrent requests to L distinct actions for L = 1..N, every one a verified cold start."""
    settings = _settings(ctx, apihost, auth, executor, actions_dir)
    params = ColdStartParams(levels, runs, action.value, idle_wait, memory)
    rows = _run(_with_context(settings, out, levels + 4, timeout, lambda c: run_coldstart(c, params)))
    console.print(f"{len(rows)} cold activations in {out}; every one has an initTime. Next: loadgen report {out}")


# The options the two ramps (concurrency, mixed) share.
IncreaseAfterOpt = Annotated[float, typer.Option(help="seconds at each level before one more request is added")]
AbortAfterOpt = Annotated[int, typer.Option(help="the highest level (requests in flight)")]
RampRunsOpt = Annotated[int, typer.Option(help="repetitions of the ramp (MF: 10)")]


@app.command()
def concurrency(
    ctx: typer.Context,
    out: OutOpt,
    action: Annotated[ColdAction, typer.Option(help="hello (no load) or hash (CPU load)")] = ColdAction.hello,
    increase_after: IncreaseAfterOpt = 5.0,
    abort_after: AbortAfterOpt = 15,
    runs: RampRunsOpt = 1,
    iterations: Annotated[int, typer.Option(help="hash iterations per request")] = 100_000,
    seed: Annotated[int | None, typer.Option(help="random seed (hash inputs)")] = None,
    executor: ExecutorOpt = None,
    apihost: ApihostOpt = None,
    auth: AuthOpt = None,
    actions_dir: ActionsDirOpt = None,
    memory: MemoryOpt = DEFAULT_MEMORY_MB,
    timeout: TimeoutOpt = 180.0,
) -> None:
    """The closed-loop ramp: 1 request in flight, one more every --increase-after seconds, up to --abort-after."""
    settings = _settings(ctx, apihost, auth, executor, actions_dir)
    params = ConcurrencyParams(
        increase_after_s=increase_after,
        abort_after=abort_after,
        runs=runs,
        memory_mb=memory,
        seed=seed,
        action=action.value,
        iterations=iterations,
    )
    rows = _run(_with_context(settings, out, abort_after + 4, timeout, lambda c: run_concurrency(c, params)))
    console.print(f"{len(rows)} activations in {out}. Next: loadgen report {out}")


@app.command()
def mixed(
    ctx: typer.Context,
    out: OutOpt,
    io_share: Annotated[
        int, typer.Option(help="percent of requests to net (MF: 10, 25, 50, 75, 90); the rest to prime")
    ] = 50,
    increase_after: IncreaseAfterOpt = 5.0,
    abort_after: AbortAfterOpt = 15,
    runs: RampRunsOpt = 1,
    net_ms: Annotated[int | None, typer.Option(help="net's blocking time (ms) (default: the action's, 300)")] = None,
    prime_n: Annotated[int | None, typer.Option(help="which prime prime computes (default: the action's)")] = None,
    seed: Annotated[int | None, typer.Option(help="random seed of the net/prime draws")] = None,
    executor: ExecutorOpt = None,
    apihost: ApihostOpt = None,
    auth: AuthOpt = None,
    actions_dir: ActionsDirOpt = None,
    memory: MemoryOpt = DEFAULT_MEMORY_MB,
    timeout: TimeoutOpt = 180.0,
) -> None:
    """The same ramp, each request drawn net (I/O) or prime (CPU) by --io-share."""
    settings = _settings(ctx, apihost, auth, executor, actions_dir)
    params = MixedParams(
        increase_after_s=increase_after,
        abort_after=abort_after,
        runs=runs,
        memory_mb=memory,
        seed=seed,
        io_share=io_share,
        net_ms=net_ms,
        prime_n=prime_n,
    )
    rows = _run(_with_context(settings, out, abort_after + 4, timeout, lambda c: run_mixed(c, params)))
    console.print(f"{len(rows)} activations in {out}. Next: loadgen report {out}")


@app.command()
def capacity(
    ctx: typer.Context,
    out: OutOpt,
    action: Annotated[str, typer.Option(help="the action to hold open (sleep)")] = "sleep",
    start: Annotated[int, typer.Option(help="first level (simultaneous requests)")] = 100,
    step: Annotated[int, typer.Option(help="level increment")] = 100,
    max_level: Annotated[int, typer.Option("--max", help="last level")] = 2000,
    ms: Annotated[int, typer.Option(help="how long each activation sleeps (ms)")] = 5000,
    max_wait_ms: Annotated[
        float | None,
        typer.Option(help="also fail a level if any waitTime exceeds this (ms): queued is not simultaneous"),
    ] = None,
    require_simultaneous: Annotated[
        bool,
        typer.Option(
            "--require-simultaneous",
            help="also fail a level if fewer than all its activations slept at the same time (queued)",
        ),
    ] = False,
    action_concurrency: Annotated[
        int, typer.Option(help="the action's concurrency limit (activations per instance)")
    ] = 1,
    pause: Annotated[float, typer.Option(help="seconds between levels")] = 2.0,
    non_blocking: Annotated[
        bool,
        typer.Option(
            "--non-blocking",
            help="invoke blocking=false and poll the records: no connection held per activation (levels > ~9,000)",
        ),
    ] = False,
    sample_interval: SampleIntervalOpt = 0.5,
    server_pid: ServerPidOpt = None,
    executor: ExecutorOpt = None,
    apihost: ApihostOpt = None,
    auth: AuthOpt = None,
    actions_dir: ActionsDirOpt = None,
    memory: MemoryOpt = DEFAULT_MEMORY_MB,
    timeout: TimeoutOpt = 180.0,
) -> None:
    """Raise the number of simultaneous sleep activations until the first failure or --max; sample CPU and memory."""
    if action != "sleep":
        _fail("capacity holds activations open with the sleep action (--action sleep)")
    settings = _settings(ctx, apihost, auth, executor, actions_dir)
    params = CapacityParams(
        action=action,
        start=start,
        step=step,
        max=max_level,
        ms=ms,
        memory_mb=memory,
        action_concurrency=action_concurrency,
        max_wait_ms=max_wait_ms,
        require_simultaneous=require_simultaneous,
        pause_s=pause,
        sample_interval_s=sample_interval,
        server_pids=tuple(server_pid or ()),
        non_blocking=non_blocking,
    )
    connections = NON_BLOCKING_CONNECTIONS if non_blocking else max_level + 8
    _raise_open_files(connections * 2 + 256)
    outcomes = _run(_with_context(settings, out, connections, timeout, lambda c: run_capacity(c, params)))
    passed = [o.level for o in outcomes if o.passed]
    peak = max((o.peak_simultaneous for o in outcomes), default=0)
    console.print(
        f"highest fully successful level: {passed[-1] if passed else 0} (peak {peak} simultaneous activations); "
        f"raw files in {out}. Next: loadgen report {out}"
    )


@app.command()
def isolation(
    ctx: typer.Context,
    out: OutOpt,
    attacker_auth: Annotated[
        str, typer.Option("--attacker-auth", help="uuid:key of the attacker, a namespace other than --auth's")
    ],
    attacks: Annotated[
        str, typer.Option(help=f"comma-separated attack classes, run in this order (default: all: {','.join(ATTACKS)})")
    ] = ",".join(ATTACKS),
    quiet: Annotated[float, typer.Option(help="seconds of the victim alone first (the reference)")] = 10.0,
    attack_seconds: Annotated[float, typer.Option(help="seconds each attack class runs")] = 10.0,
    after: Annotated[float, typer.Option(help="seconds of the victim alone after each class")] = 3.0,
    victim_rate: Annotated[float, typer.Option(help="the victim's hellos per second")] = 20.0,
    victim_concurrency: Annotated[int, typer.Option(help="the victim's loops (hellos in flight at most)")] = 1,
    rss_budget_mb: Annotated[
        float | None, typer.Option(help="the server's RSS budget (MB) each class is judged against")
    ] = None,
    ratio_bound: Annotated[float, typer.Option(help="victim p99 / quiet p99 a class may reach (DESIGN: 2)")] = 2.0,
    concurrency: Annotated[int, typer.Option(help="the attacker's requests in flight per class")] = 4,
    max_requests: Annotated[int, typer.Option(help="at most this many attacker requests per class")] = 400,
    action_timeout: Annotated[int, typer.Option(help="limits.timeout (ms) of the attacker's actions")] = 3000,
    bomb_mib: Annotated[int, typer.Option(help="what the zip bombs expand to (MiB; deflate at most 1024)")] = 2048,
    guest_mib: Annotated[int, typer.Option(help="guest memory (MiB) the memory attacks reach for")] = 1024,
    compile_statements: Annotated[int, typer.Option(help="size of the slow-to-compile function")] = 40_000,
    flood_requests: Annotated[int, typer.Option(help="concurrent sleeps per flood burst")] = 60,
    nested_depth: Annotated[int, typer.Option(help="nesting of the deep parameters (also half and twice)")] = 500,
    log_lines: Annotated[int, typer.Option(help="lines the big-record action logs")] = 1_000_000,
    cpu_concurrency: Annotated[
        int | None, typer.Option(help="loops at once (default: the attacker's concurrentInvocations limit)")
    ] = None,
    sample_interval: SampleIntervalOpt = 0.5,
    server_pid: ServerPidOpt = None,
    executor: ExecutorOpt = None,
    apihost: ApihostOpt = None,
    auth: AuthOpt = None,
    actions_dir: ActionsDirOpt = None,
    memory: MemoryOpt = DEFAULT_MEMORY_MB,
    timeout: TimeoutOpt = 180.0,
) -> None:
    """The noisy neighbour: the victim's hello latency quiet, then while another namespace runs each attack class."""
    settings = _settings(ctx, apihost, auth, executor, actions_dir)
    chosen = tuple(name.strip() for name in attacks.split(",") if name.strip())
    unknown = [name for name in chosen if name not in ATTACKS]
    if unknown or not chosen:
        _fail(f"unknown attack {', '.join(unknown) or '(none given)'} (one of {', '.join(ATTACKS)})")
    knobs = Knobs(
        concurrency=concurrency,
        max_requests=max_requests,
        timeout_ms=action_timeout,
        memory_mb=memory,
        bomb_mib=bomb_mib,
        guest_mib=guest_mib,
        compile_statements=compile_statements,
        flood_requests=flood_requests,
        nested_depth=nested_depth,
        log_lines=log_lines,
        cpu_concurrency=cpu_concurrency,
    )
    params = IsolationParams(
        attacker_auth=attacker_auth,
        attacks=chosen,
        quiet_s=quiet,
        attack_s=attack_seconds,
        after_s=after,
        victim_rate=victim_rate,
        victim_concurrency=victim_concurrency,
        memory_mb=memory,
        rss_budget_mb=rss_budget_mb,
        ratio_bound=ratio_bound,
        sample_interval_s=sample_interval,
        server_pids=tuple(server_pid or ()),
        knobs=knobs,
    )
    verdicts = _run(_with_context(settings, out, victim_concurrency + 4, timeout, lambda c: run_isolation(c, params)))
    for v in verdicts:
        console.print(
            f"{v.attack}: victim p99 {v.p99:.1f} ms ({v.p99_ratio:.2f}x quiet), {v.victim_errors} victim errors, "
            f"{v.unexpected}/{v.attacker_requests} attacker outcomes not right -- {'held' if v.held else 'NOT HELD'}",
            highlight=False,
        )
    console.print(f"raw files in {out}. Next: loadgen report {out}")


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="an experiment's --out directory")],
    out: Annotated[Path | None, typer.Option("--out", help="where to write (default: RUN_DIR/report)")] = None,
) -> None:
    """Tables (Markdown + CSV) and figures (PNG) of one experiment, from its raw files alone."""
    written = _run_sync(lambda: generate_report(run_dir, out))
    console.print(f"wrote {len(written)} files to {written[-1].parent} (start with {written[-1].name})")


@app.command()
def compare(
    a: Annotated[Path, typer.Argument(help="run A (e.g. the Docker run)")],
    b: Annotated[Path, typer.Argument(help="run B (e.g. the WASM run)")],
    out: Annotated[Path | None, typer.Option("--out", help="where to write (default: A/../compare-A-vs-B)")] = None,
) -> None:
    """Slowdown ratios A / B per level (mean and median) of two runs of the same experiment."""
    written = _run_sync(lambda: compare_runs(a, b, out))
    console.print(f"wrote {len(written)} files to {written[-1].parent} (start with {written[-1].name})")


def main() -> None:
    """The console script."""
    app()


def _settings(
    ctx: typer.Context,
    apihost: str | None,
    auth: str | None,
    executor: ExecutorChoice | None,
    actions_dir: Path | None,
) -> Settings:
    given = ctx.obj if isinstance(ctx.obj, Globals) else Globals()
    chosen = executor or given.executor or ExecutorChoice.wasm
    return Settings(
        target=resolve_target(apihost or given.apihost, auth or given.auth),
        executor=chosen.value,
        actions_dir=actions_dir or given.actions_dir or default_actions_dir(),
    )


async def _with_client(
    settings: Settings, connections: int, timeout_s: float, body: Callable[[WhiskClient, dict[str, Any]], Awaitable[T]]
) -> T:
    async with WhiskClient(settings.target, max_connections=connections, timeout_s=timeout_s) as client:
        info = await client.check()
        return await body(client, info)


async def _with_context(
    settings: Settings, out: Path, connections: int, timeout_s: float, body: Callable[[Context], Awaitable[T]]
) -> T:
    async def with_reporter(client: WhiskClient, info: dict[str, Any]) -> T:
        with RichReporter() as reporter:
            return await body(Context(client, settings.executor, settings.actions_dir, out, reporter, info))

    return await _with_client(settings, connections, timeout_s, with_reporter)


def _run(work: Awaitable[T]) -> T:
    async def wrapped() -> T:
        return await work

    return _run_sync(lambda: asyncio.run(wrapped()))


def _run_sync(work: Callable[[], T]) -> T:
    try:
        return work()
    except LoadgenError as error:
        _fail(str(error))
    except httpx.HTTPError as error:
        _fail(f"HTTP request failed: {type(error).__name__}: {error}")
    except KeyboardInterrupt:
        errors.print("interrupted")
        raise typer.Exit(130) from None


def _fail(message: str) -> NoReturn:
    errors.print(f"[bold red]error:[/] {message}", highlight=False, markup=True)
    raise typer.Exit(1)


def _raise_open_files(wanted: int) -> None:
    # Thousands of simultaneous connections need as many descriptors; raise the soft limit up to the hard one.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
