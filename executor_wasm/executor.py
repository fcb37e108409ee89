"""``WasmExecutor``: the in-process Wasmtime executor behind the ``Executor`` seam (kind ``wasm:wasi``).

An "instance" here is cheap bookkeeping: ``create`` records the spec, ``init`` decodes and loads the
module (compiled once per machine, see cache.py) and ``run`` instantiates it afresh in its own Store
(runner.py), so no state leaks between activations. Wasmtime work happens on a thread pool: wasm
execution releases the GIL, so runs proceed in parallel and the event loop never blocks. The one
exception is a warm guest that cannot block and whose recent runs were short: it runs on the loop,
interrupted by a timer at 2 ms and then run again on the pool (inline.py), which saves the thread
hand-offs that cost more than such a run. A job
executes on one of ``threads`` compute slots, shared fairly between namespaces (slots.py): one
namespace's CPU-bound guests cannot keep another's hello waiting.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextvars
import hashlib
import logging
import threading
import time
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

import orjson
import wasmtime

from executor_wasm.cache import CompiledModule, InvalidModule, ModuleCache, create_engine
from executor_wasm.compiler import CompilerPool
from executor_wasm.grants import NO_GRANTS, GrantDenied, GrantPolicy, Grants, create_linker
from executor_wasm.inline import InlineRunner, Overran, Streak, may_run_inline
from executor_wasm.priority import GuestPriority, RetiringThreadPool
from executor_wasm.runner import RunSpec, run_module
from executor_wasm.settings import WasmSettings, map_count_warning
from executor_wasm.sleeps import define_poll_oneoff
from executor_wasm.slots import ComputeSlots, SlotsClosed, Waiter
from executor_wasm.stdio import define_fd_write, params_json
from executor_wasm.ticker import EpochTicker
from executor_wasm.unzip import ZipRefused, read_member
from pywhisk.errors import ExecutorError
from pywhisk.executor import InitRequest, InstanceSpec, ProxyResult, RunRequest

KINDS = frozenset({"wasm:wasi", "wasm:default"})
# A run normally ends by its epoch deadline (at most 2 ticks late); this guard only answers for a
# guest stuck in a blocking host call (e.g. a long WASI sleep), which epochs cannot interrupt.
RUN_GUARD_S = 0.25
# How often a job still queued for a thread and a compute slot is looked at again (``_await_job``): when it
# began is what its timeout counts from. Polling at its own timeout, a job given none (a ``_load`` whose earlier
# jobs had used the init's budget; before 2026-12-07 its queue did) polled with a timeout of 0: 11 such loads of a
# namespace whose slots were all busy spun the event loop for seconds, 10,000 times each, and every namespace's
# requests waited behind them (issue 12, the cpu class).
QUEUED_POLL_S = 0.05
MAX_MODULE_BYTES = 64 * 1_048_576  # the default of WasmSettings.max_module_bytes
# An inline run is abandoned at 2 ms (inline.py): an action whose own limit is near that runs on the pool.
INLINE_MIN_TIMEOUT_MS = 50

_INIT_OK = '{"ok":true}'
_REINIT = '{"error":"Cannot initialize the action more than once."}'
_NO_CODE = '{"error":"Missing main/no code to execute."}'
_NOT_READY = '{"error":"no action defined yet"}'

T = TypeVar("T")
logger = logging.getLogger(__name__)


class UnknownInstance(ExecutorError):
    """No instance with this id was created (or it was destroyed)."""


@dataclass(slots=True)
class _Instance:
    spec: InstanceSpec
    initializing: bool = False
    compiled: CompiledModule | None = None
    name: str = ""
    env: dict[str, str] = field(default_factory=dict)
    grants: Grants = NO_GRANTS
    cache: ModuleCache | None = None  # where its compiled artifact is
    streak: Streak | None = None  # its short runs, when its module may run inline (inline.py)


class WasmExecutor:
    """Runs ``wasm:wasi`` actions in Wasmtime, in this process.

    ``settings`` are the executor's own (threads, runs, grants); compiled modules are kept in
    ``module_cache_dir`` (``module_cache_dir(data_dir)`` of settings.py, as the plugin passes it).
    """

    name = "wasm"

    @property
    def max_runs_per_instance(self) -> int:
        """Every run has its own Store, so one instance takes as many runs as the executor allows."""
        return self.settings.max_runs

    @property
    def runs_asleep(self) -> int:
        """Runs whose guest sleeps now: each holds a thread and its Store, no compute slot and no descriptor."""
        return self._slots.asleep

    def __init__(self, settings: WasmSettings, module_cache_dir: Path) -> None:
        self.settings = settings
        self.engine = create_engine()
        self.linker = wasmtime.Linker(self.engine)
        self.linker.define_wasi()  # once: ~50 µs, shared by every store (measurements.md)
        define_poll_oneoff(self.linker)
        define_fd_write(self.linker)
        self.cache = ModuleCache(self.engine, self.linker, module_cache_dir)
        # Actions granted net_access link against a Linker that also defines http.get (grants.py).
        net_linker = create_linker(self.engine, net_access=True)
        self.net_cache = ModuleCache(self.engine, net_linker, module_cache_dir)
        self.compiler = CompilerPool(settings.compile_processes, settings.compile_memory_mb * 1_048_576)
        self.grant_policy = GrantPolicy.from_settings(settings)
        # Parked while no pool job runs (ticker.py): under load most warm runs are inline, on an Engine of their own.
        self._ticker = EpochTicker(self.engine, parks=True)
        self._pool: ThreadPoolExecutor | None = None
        # Long-running guests' threads reniced so short ones and the event loop preempt them (priority.py).
        self.priority = (
            GuestPriority(settings.renice_quantum_ms / 1000, settings.renice_nice) if settings.renice else None
        )
        if self.priority is not None:
            self._ticker.watch(self.priority.tick)
        self._slots = ComputeSlots(settings.threads, settings.threads_reserve, self.priority)
        self._instances: dict[str, _Instance] = {}
        # Tiny warm guests run on the loop, bounded by a timer (inline.py): no thread hand-off per run.
        self.inline = InlineRunner.create() if settings.inline else None

    async def start(self) -> None:
        """Start the worker threads and the epoch ticker (warning if the host cannot map ``max_runs`` runs)."""
        if (warning := map_count_warning(self.settings.max_runs)) is not None:
            logger.warning("%s", warning)
        if self._pool is None:
            # A thread per run in progress: a sleeping guest keeps its thread but not its compute slot.
            # Retiring: a thread the kernel would not renice back to 0 after its run leaves (priority.py).
            retire = self.priority.must_retire if self.priority is not None else _never
            self._pool = RetiringThreadPool(self.settings.max_runs, "wasm", retire)
            self._slots.open()
        self._ticker.start()
        await self.compiler.start()

    async def close(self) -> None:
        """Forget every instance, end the runs in progress, stop the pool and the ticker."""
        self._instances.clear()
        await self.compiler.close()
        pool, self._pool = self._pool, None
        if pool is not None:
            # Runs in progress would hold the pool until their deadlines; pass every deadline now.
            self._ticker.hurry()
            self._slots.close()  # wake every sleeping guest, refuse the jobs waiting for a slot
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)
        self._ticker.stop()
        if self.inline is not None:
            self.inline.close()

    def kinds(self) -> set[str]:
        """``wasm:wasi`` and its alias ``wasm:default``."""
        return set(KINDS)

    async def create(self, spec: InstanceSpec) -> None:
        """Record the instance; nothing is allocated before ``init``."""
        if spec.kind not in KINDS:
            raise ExecutorError(f"the wasm executor cannot run kind {spec.kind!r}")
        if spec.instance_id in self._instances:
            raise ExecutorError(f"instance {spec.instance_id} already exists")
        self._instances[spec.instance_id] = _Instance(spec)

    async def init(self, instance_id: str, request: InitRequest, timeout_ms: int, log_limit_bytes: int) -> ProxyResult:
        """Decode and load the module (compiling it unless its artifact is cached)."""
        instance = self._instance(instance_id)
        if instance.initializing or instance.compiled is not None:
            return ProxyResult(status=403, body=_REINIT)
        if not request.code:
            return ProxyResult(status=403, body=_NO_CODE)
        try:
            grants = self.grant_policy.grant(instance.spec.annotations)
        except GrantDenied as denied:
            return ProxyResult(status=502, body=orjson.dumps({"error": str(denied)}).decode())
        cache = self.net_cache if grants.net_access else self.cache
        started = time.perf_counter()
        instance.initializing = True
        queue = _Queue()
        try:
            namespace = init_namespace(request)
            compiled = await self._load(
                request.code, cache, timeout_s=timeout_ms / 1000, namespace=namespace, queue=queue
            )
        except InvalidModule as error:
            body = orjson.dumps({"error": f"Invalid WebAssembly module: {error}"}).decode()
            return queue.charged(ProxyResult(status=502, body=body, duration_ms=_since(started)))
        finally:
            instance.initializing = False
        if compiled is None:  # the compile was killed: the next init starts it again
            return queue.charged(ProxyResult(status=None, timed_out=True, duration_ms=_since(started)))
        instance.compiled, instance.name, instance.env = compiled, request.name, dict(request.env)
        instance.grants, instance.cache = grants, cache
        if self.inline is not None and may_run_inline(compiled.module, grants):
            instance.streak = Streak()
        return queue.charged(ProxyResult(status=200, body=_INIT_OK, duration_ms=_since(started)))

    async def run(self, instance_id: str, request: RunRequest, timeout_ms: int, log_limit_bytes: int) -> ProxyResult:
        """Run the action once in a fresh Wasmtime instance."""
        instance = self._instance(instance_id)
        if instance.compiled is None:
            return ProxyResult(status=500, body=_NOT_READY)
        spec = RunSpec(
            argv0=instance.name,
            env={**instance.grants.env, **instance.env, **request.environment()},
            stdin=params_json(request.value),
            memory_bytes=instance.spec.memory_mb * 1_048_576,
            timeout_ms=timeout_ms,
            log_limit_bytes=log_limit_bytes,
            grants=instance.grants,
        )
        streak = instance.streak
        if streak is not None and streak.ready and (inline := self._run_inline(instance, spec)) is not None:
            streak.ran(inline.duration_ms)
            return inline
        started = time.perf_counter()
        job = self._job(_run_module_timed, self.engine, instance.compiled, spec, namespace=request.namespace)
        timed = await self._await_job(job, timeout_s=timeout_ms / 1000 + RUN_GUARD_S)
        if timed is None:  # stuck in a host call; its logs are still being written
            result = ProxyResult(status=None, timed_out=True, duration_ms=_since(started) - job.queued_ms)
            cpu_ms: float | None = None
        else:
            result, cpu_ms = timed
        result.queued_ms = job.queued_ms
        if streak is not None:
            # The pooled run's CPU time, not its wall time: a module that may run inline cannot wait for
            # anything but the GIL and the core, and with 32 requests on the loop a pooled hello waits > 5 ms
            # for the GIL, so judged by the clock its instance never got back inline (docs/benchmarks.md).
            streak.ran(cpu_ms)
        return result

    def _run_inline(self, instance: _Instance, spec: RunSpec) -> ProxyResult | None:
        """The run on the loop (inline.py), or None: run it on the pool (it reached the budget, or cannot)."""
        assert self.inline is not None and instance.streak is not None and instance.compiled is not None
        if spec.timeout_ms < INLINE_MIN_TIMEOUT_MS or instance.cache is None:
            return None
        compiled = self.inline.module(instance.compiled, instance.cache.artifact_path(instance.compiled.digest))
        if compiled is None:
            instance.streak = None
            return None
        # Abandoned at the budget, not failed (None): the pool runs it from the start.
        try:
            return self.inline.run(compiled, spec)
        except Overran:
            instance.streak.overran()
            logger.debug("a run of %s used the inline budget: on the pool instead", instance.name)
            return None

    async def destroy(self, instance_id: str) -> None:
        """Forget the instance; idempotent. A run in progress finishes on its own."""
        self._instances.pop(instance_id, None)

    def _instance(self, instance_id: str) -> _Instance:
        try:
            return self._instances[instance_id]
        except KeyError:
            raise UnknownInstance(f"no wasm instance {instance_id}") from None

    async def _load(
        self, code: str, cache: ModuleCache, timeout_s: float, namespace: str, queue: _Queue
    ) -> CompiledModule | None:
        """The compiled module of ``exec.code``, None if not ready within ``timeout_s`` (which covers the compile).

        Decoding (bounded by ``max_module_bytes``) and mapping an artifact are short and run on the
        pool; a compile runs in a compiler process (compiler.py) and holds no thread or compute slot.
        ``timeout_s`` counts the work, not the waits for a compute slot, as a run's does (``_in_pool``): with
        every slot of its namespace busy, an init spent its whole limit queued for the decode and then timed out
        in a compile given no time. Those waits are added to ``queue``: the activation's waitTime, not its initTime.
        """
        if (known := cache.known(code)) is not None:
            return known
        left = timeout_s
        decode = self._job(decode_module, code, self.settings.max_module_bytes, namespace=namespace)
        wasm = await self._await_queued(decode, left, queue)
        if wasm is None:
            return None
        left -= decode.held_s
        lookup = self._job(cache.lookup, wasm, namespace=namespace)
        found = await self._await_queued(lookup, max(0.0, left), queue)
        if found is None:
            return None
        left -= lookup.held_s
        digest, compiled = found
        if compiled is None:
            compile_started = time.monotonic()
            if not await self.compiler.compile(wasm, cache.artifact_path(digest), left):
                return None
            left -= time.monotonic() - compile_started
            adopt = self._job(cache.adopt, digest, namespace=namespace)
            compiled = await self._await_queued(adopt, max(0.0, left), queue)
        if compiled is not None:
            cache.remember_code(code, digest)
        return compiled

    async def _await_queued(self, job: _Job[T], timeout_s: float, queue: _Queue) -> T | None:
        """``_await_job``, adding the job's wait for a compute slot to ``queue``."""
        try:
            return await self._await_job(job, timeout_s)
        finally:
            queue.ms += job.queued_ms

    async def _in_pool(self, fn: Callable[..., T], *args: object, timeout_s: float, namespace: str) -> T | None:
        """``fn(*args)`` on the pool, on a compute slot of ``namespace``; None when it has not finished
        ``timeout_s`` after it started.

        The timeout counts from when the job gets a compute slot, not from submission, so a queue in
        front of busy slots does not time runs out (as OpenWhisk, whose waitTime is not part of the
        time limit). Threads cannot be killed: a job that overruns keeps its worker and its slot until it
        returns (for runs, at the next epoch check or sleep of the guest); the slot stays counted
        against its namespace meanwhile, so other namespaces are served first (slots.py).
        """
        job = self._job(fn, *args, namespace=namespace)
        return await self._await_job(job, timeout_s)

    def _job(self, fn: Callable[..., T], *args: object, namespace: str) -> _Job[T]:
        if self._ticker.parks and getattr(fn, "__func__", fn) not in _HELD_JOBS:
            # A subclass's runner (Python, JavaScript) may create Stores outside its jobs: the Python runner's
            # reclaimer instantiates ready instances on a thread of its own, their start functions under an
            # epoch deadline that only a ticking ticker enforces.
            self._ticker.keep_ticking()
        return _Job(fn, args, self._slots, self._ticker, namespace)

    async def _await_job(self, job: _Job[T], timeout_s: float) -> T | None:
        if self._pool is None:
            raise ExecutorError("the wasm executor is not started")
        fn = job.fn
        # In the caller's context: the job's lines carry its activation's ids (pywhisk/logs.py), which a raw
        # run_in_executor would not (unlike asyncio.to_thread).
        future = asyncio.get_running_loop().run_in_executor(self._pool, contextvars.copy_context().run, job)
        try:
            while True:
                begun = job.started_at
                if begun is None:
                    # Queued: its time has not started. Look again a while later, never at once: a job given no
                    # time (a load whose budget its queue used up) would spin the loop until it got a slot.
                    wait_s = max(timeout_s, QUEUED_POLL_S)
                else:
                    wait_s = max(0.0, begun + timeout_s - time.monotonic())
                done, _ = await asyncio.wait({future}, timeout=wait_s)
                if done:
                    break
                if begun is not None:
                    return None
        except asyncio.CancelledError:
            future.cancel()  # drops the job if no worker has taken it yet
            job.withdraw()  # and if one has, but it still waits for a slot
            raise
        if future.cancelled():  # by close(), not by our caller
            raise ExecutorError("the wasm executor was closed")
        try:
            return future.result()
        except (InvalidModule, SlotsClosed):
            raise
        except Exception as error:  # a platform failure (e.g. out of fds), not the action's
            logger.exception("wasm executor job %s failed", getattr(fn, "__name__", fn))
            raise ExecutorError(f"the wasm executor failed: {error!r}") from error


def decode_module(code: str, max_bytes: int = MAX_MODULE_BYTES) -> bytes:
    """The module bytes of ``exec.code``: base64 of a ``.wasm`` file or of a zip holding one.

    A zipped module is inflated with a budget of ``max_bytes`` actually produced (unzip.py), whatever
    the archive claims: a zip bomb costs at most the budget before it is refused.
    """
    # A refusal depends on the code and the budget alone. Each new revision of an action is decoded again
    # (a PUT clears the invoker's caches), so a tenant re-sending one bomb would otherwise pay the
    # base64 decode and the archive's parse each time on a worker holding the GIL (~5 ms per 1.4 MB on
    # this machine); the digest costs ~1 ms per 1.4 MB with the GIL released (hashlib, past 2 KiB).
    key = (hashlib.sha256(code.encode("utf-8", "surrogatepass")).digest(), max_bytes)
    if (known := _REFUSED.get(key)) is not None:
        raise InvalidModule(known)
    try:
        return _decode_module(code, max_bytes)
    except InvalidModule as refused:
        _REFUSED.put(key, str(refused))
        raise


def _decode_module(code: str, max_bytes: int) -> bytes:
    # str.split drops whitespace (which b64decode's strict mode refuses) at ~1 ms per 1.4 MB; looking for
    # any (ASCII code: Unicode whitespace cannot be in it) is a few memchr passes.
    if not code.isascii() or any(space in code for space in _ASCII_WHITESPACE):
        code = "".join(code.split())
    try:
        data = base64.b64decode(code, validate=True)
    except (binascii.Error, ValueError) as error:
        raise InvalidModule(f"code is not valid base64 ({error})") from None
    if not data.startswith(b"PK\x03\x04"):
        if len(data) > max_bytes:
            raise InvalidModule(f"the module is larger than {max_bytes} bytes")
        return data
    try:
        return read_member(data, _the_wasm_member, max_bytes)
    except ZipRefused as refused:
        raise InvalidModule(str(refused)) from None


class _Refusals:
    """The messages of the last ``size`` codes ``decode_module`` refused, by digest; shared by the pool's
    threads, so under a lock."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._seen: OrderedDict[tuple[bytes, int], str] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[bytes, int]) -> str | None:
        with self._lock:
            found = self._seen.get(key)
            if found is not None:
                self._seen.move_to_end(key)
            return found

    def put(self, key: tuple[bytes, int], message: str) -> None:
        with self._lock:
            self._seen[key] = message
            self._seen.move_to_end(key)
            while len(self._seen) > self.size:
                self._seen.popitem(last=False)


# What str.split() splits ASCII text on.
_ASCII_WHITESPACE = " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f"
# Messages are one line (well under 1 KiB) and keys 40 bytes: 256 of them are a few hundred KiB at most.
_REFUSED = _Refusals(256)


def _the_wasm_member(members: list[zipfile.ZipInfo]) -> zipfile.ZipInfo:
    found = [member for member in members if member.filename.endswith(".wasm")]
    if len(found) != 1:
        raise ZipRefused(
            f"the zip must hold exactly one .wasm file (found: {', '.join(m.filename for m in found) or 'none'})"
        )
    return found[0]


class _Job(Generic[T]):
    """A callable for the pool that runs under a compute slot of its namespace and records when it got one."""

    __slots__ = ("args", "ended_at", "fn", "namespace", "slots", "started_at", "submitted_at", "ticker", "waiter")

    def __init__(
        self, fn: Callable[..., T], args: tuple[object, ...], slots: ComputeSlots, ticker: EpochTicker, namespace: str
    ) -> None:
        self.fn, self.args, self.slots, self.ticker, self.namespace = fn, args, slots, ticker, namespace
        self.waiter = Waiter(namespace)
        self.submitted_at = time.monotonic()
        self.started_at: float | None = None
        self.ended_at: float | None = None

    def __call__(self) -> T:
        with self.slots.held(self.namespace, self.waiter):
            self.started_at = time.monotonic()
            if logger.isEnabledFor(logging.DEBUG):
                name = getattr(self.fn, "__name__", self.fn)
                logger.debug("%s on a compute slot of %r after %.1f ms queued", name, self.namespace, self.queued_ms)
            # The epoch moves while a job may run a Store (its deadline is computed in it, after the hold).
            self.ticker.hold()
            try:
                return self.fn(*self.args)
            finally:
                self.ticker.release()
                self.ended_at = time.monotonic()

    def withdraw(self) -> None:
        """Give up the job's place in the queue for a slot (its caller was cancelled)."""
        self.slots.withdraw(self.waiter)

    @property
    def held_s(self) -> float:
        """How long the job has held its compute slot, to its end if it has ended (0 until it gets one)."""
        if self.started_at is None:
            return 0.0
        return (self.ended_at or time.monotonic()) - self.started_at

    @property
    def queued_ms(self) -> float:
        """How long the job waited for a thread and a compute slot."""
        return ((self.started_at or time.monotonic()) - self.submitted_at) * 1000


class _Queue:
    """What an init's pool jobs waited for compute slots, in milliseconds (``_load``)."""

    __slots__ = ("ms",)

    def __init__(self) -> None:
        self.ms = 0.0

    def charged(self, result: ProxyResult) -> ProxyResult:
        """``result`` with the queue as its ``queued_ms`` and out of its ``duration_ms``."""
        result.queued_ms = self.ms
        if result.duration_ms is not None:
            result.duration_ms = max(0.0, result.duration_ms - self.ms)
        return result


def init_namespace(request: InitRequest) -> str:
    """Whose compute slots an ``/init`` takes: the invoker passes ``__OW_NAMESPACE`` in its environment, as
    OpenWhisk's invoker does (its own value overrides any init parameter of that name)."""
    return request.env.get("__OW_NAMESPACE", "")


def _never() -> bool:
    return False


def _run_module_timed(engine: wasmtime.Engine, compiled: CompiledModule, spec: RunSpec) -> tuple[ProxyResult, float]:
    """``run_module`` and the milliseconds of CPU its thread used (the streak's measure of a pooled run)."""
    cpu = time.thread_time()
    result = run_module(engine, compiled, spec)
    return result, (time.thread_time() - cpu) * 1000


def _since(started: float) -> float:
    return (time.perf_counter() - started) * 1000


# The executor's own pool jobs: each creates its Stores (if any) inside the job, under the ticker's hold.
_HELD_JOBS: frozenset[object] = frozenset({_run_module_timed, decode_module, ModuleCache.lookup, ModuleCache.adopt})
