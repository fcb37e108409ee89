"""``WasmPythonExecutor``: the Wasmtime executor, serving ``python:3`` actions as well as ``wasm:wasi``.

Python actions pinned to this executor (annotation ``executor=wasm``) run in the Python runner
component (build.py): one CPython, initialised with the standard library at build time, shared by
every Python action; the action's source is compiled and imported once at ``/init`` (in a fresh
instance, so that syntax errors and unavailable imports fail there) and the marshalled code object is
kept. Each ``/run`` then instantiates the runner afresh and executes that code, as ``wasm:wasi`` runs
get a fresh instance: nothing leaks between activations. Why one shared runner rather than a
component per action: docs/python-wasm.md.

Everything else (the engine, its epoch ticker, the worker threads and their job timeouts, the
``wasm:wasi`` kinds) is the WasmExecutor's.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import logging
import time
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import orjson

from executor_wasm.executor import RUN_GUARD_S, WasmExecutor, init_namespace
from executor_wasm.python import runner as python_runner
from executor_wasm.python.build import RunnerUnavailable, load_runner, runner_artifact
from executor_wasm.python.pooling import PoolPlan, create_pooled_engine
from executor_wasm.settings import WasmSettings
from executor_wasm.stdio import params_json
from executor_wasm.unzip import BadZip, ZipRefused, read_member
from pywhisk.errors import ExecutorError
from pywhisk.executor import InitRequest, InstanceSpec, ProxyResult, RunRequest

PYTHON_KINDS = frozenset({"python:3", "python:3.11", "python:default"})
MAX_SOURCE_BYTES = 48 * 1_048_576
# Prepared code by (source digest, main): a second instance of the same action skips the compile.
PREPARED_CAPACITY = 1024

_INIT_OK = '{"ok":true}'
_REINIT = '{"error":"Cannot initialize the action more than once."}'
_NO_CODE = '{"error":"Missing main/no code to execute."}'
_NOT_READY = '{"error":"no action defined yet"}'

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class _PythonInstance:
    spec: InstanceSpec
    initializing: bool = False
    code: str | None = None  # the prepared code object, as the runner takes it (runner.prepare)
    main: str = "main"
    env: dict[str, str] | None = None


class WasmPythonExecutor(WasmExecutor):
    """Runs ``wasm:wasi`` modules and ``python:3`` actions in Wasmtime, in this process."""

    def __init__(self, settings: WasmSettings, module_cache_dir: Path) -> None:
        super().__init__(settings, module_cache_dir)
        self._python: dict[str, _PythonInstance] = {}
        self._prepared: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._runner: asyncio.Future[python_runner.Runner] | None = None

    async def start(self) -> None:
        """Start the WasmExecutor and, if it is already built, load the Python runner (~5 ms, mmap).

        An unbuilt runner is built when the first Python instance is created (~10 s, once per
        machine), not here: a platform that never runs Python on WASM never pays for it.
        """
        await super().start()
        if runner_artifact(self.settings.python_cache_dir).exists():
            self._runner_future()

    async def close(self) -> None:
        """Forget the Python instances too, then close the WasmExecutor and the runner's reclaimer."""
        self._python.clear()
        await super().close()
        runner, self._runner = self._runner, None
        if runner is not None and not runner.done():
            runner.cancel()
        elif runner is not None and not runner.cancelled() and runner.exception() is None:
            await asyncio.to_thread(runner.result().close)  # no run is in progress any more

    def kinds(self) -> set[str]:
        """``wasm:wasi`` (and alias) plus the ``python:3`` kinds."""
        return super().kinds() | PYTHON_KINDS

    async def create(self, spec: InstanceSpec) -> None:
        """Record the instance; for Python, wait until the runner is loaded (built once per machine)."""
        if spec.kind not in PYTHON_KINDS:
            await super().create(spec)
            return
        if spec.instance_id in self._python:
            raise ExecutorError(f"instance {spec.instance_id} already exists")
        await self._ready_runner()
        self._python[spec.instance_id] = _PythonInstance(spec)

    async def init(self, instance_id: str, request: InitRequest, timeout_ms: int, log_limit_bytes: int) -> ProxyResult:
        """Compile and import the action in a fresh instance; keep its code for the runs."""
        instance = self._python.get(instance_id)
        if instance is None:
            return await super().init(instance_id, request, timeout_ms, log_limit_bytes)
        if instance.initializing or instance.code is not None:
            return ProxyResult(status=403, body=_REINIT)
        started = time.perf_counter()
        try:
            source = decode_source(request.code, request.binary)
        except ValueError as error:
            return ProxyResult(status=502, body=orjson.dumps({"error": str(error)}).decode())
        if not source.strip():
            return ProxyResult(status=403, body=_NO_CODE)
        key = (hashlib.sha256(source.encode()).hexdigest(), request.main)
        code = self._prepared.get(key)
        if code is None:
            instance.initializing = True
            try:
                limits = self._limits(instance, timeout_ms, log_limit_bytes)
                runner = await self._ready_runner()
                timeout_s = timeout_ms / 1000 + RUN_GUARD_S
                answer = await self._in_pool(
                    python_runner.prepare,
                    runner,
                    source,
                    request.main,
                    limits,
                    timeout_s=timeout_s,
                    namespace=init_namespace(request),
                )
            finally:
                instance.initializing = False
            if answer is None:
                return ProxyResult(status=None, timed_out=True, duration_ms=_since(started))
            result, code = answer
            if code is None:
                return result
            self._remember(key, code)
        else:
            result = ProxyResult(status=200, body=_INIT_OK)
        instance.code, instance.main, instance.env = code, request.main, dict(request.env)
        result.duration_ms = _since(started)
        return result

    async def run(self, instance_id: str, request: RunRequest, timeout_ms: int, log_limit_bytes: int) -> ProxyResult:
        """Run the action once in a fresh instance of the runner."""
        instance = self._python.get(instance_id)
        if instance is None:
            return await super().run(instance_id, request, timeout_ms, log_limit_bytes)
        if instance.code is None:
            return ProxyResult(status=500, body=_NOT_READY)
        started = time.perf_counter()
        job = self._job(
            python_runner.run,
            await self._ready_runner(),
            instance.code,
            instance.main,
            params_json(request.value),
            {**(instance.env or {}), **request.environment()},
            self._limits(instance, timeout_ms, log_limit_bytes),
            namespace=request.namespace,  # on the namespace's fair share of the compute slots (slots.py)
        )
        result = await self._await_job(job, timeout_s=timeout_ms / 1000 + RUN_GUARD_S)
        if result is None:  # stuck in a host call (e.g. a long sleep); its logs are still being written
            result = ProxyResult(status=None, timed_out=True, duration_ms=_since(started) - job.queued_ms)
        result.queued_ms = job.queued_ms
        return result

    async def destroy(self, instance_id: str) -> None:
        """Forget the instance; idempotent."""
        if self._python.pop(instance_id, None) is None:
            await super().destroy(instance_id)

    # helpers -------------------------------------------------------------------------------------

    def _runner_future(self) -> asyncio.Future[python_runner.Runner]:
        runner = self._runner
        if runner is None or (runner.done() and (runner.cancelled() or runner.exception() is not None)):
            runner = self._runner = asyncio.ensure_future(asyncio.to_thread(self._load_runner))
        return runner

    async def _ready_runner(self) -> python_runner.Runner:
        # Shielded: an activation that gives up waiting must not cancel the build for the others.
        try:
            return await asyncio.shield(self._runner_future())
        except RunnerUnavailable as error:
            raise ExecutorError(str(error)) from None

    def _load_runner(self) -> python_runner.Runner:
        component = load_runner(self.engine, self.settings.python_cache_dir)
        pooled = None
        if self.settings.pooling:
            plan = PoolPlan.from_settings(self.settings, ready=python_runner.READY_SHAPES)
            engine = create_pooled_engine(plan)
            if engine is not None:
                # The same artifact (the allocator is not in the code): a second mmap, ~5 ms.
                pooled = (engine, load_runner(engine, self.settings.python_cache_dir))
                self._ticker.add(engine)
                logger.info(
                    "Python on WASM: a pool of %d runner instances (at most %d MiB kept resident when idle)",
                    plan.instances,
                    plan.resident_bytes // 1_048_576,
                )
        return python_runner.create_runner(self.engine, component, pooled, ready=self.settings.python_ready)

    def _remember(self, key: tuple[str, str], code: str) -> None:
        self._prepared[key] = code
        self._prepared.move_to_end(key)
        while len(self._prepared) > PREPARED_CAPACITY:
            self._prepared.popitem(last=False)

    @staticmethod
    def _limits(instance: _PythonInstance, timeout_ms: int, log_limit_bytes: int) -> python_runner.CallLimits:
        return python_runner.CallLimits(instance.spec.memory_mb * 1_048_576, timeout_ms, log_limit_bytes)


def decode_source(code: str | None, binary: bool) -> str:
    """The action's Python source: ``exec.code`` itself, or ``__main__.py`` of a base64 zip."""
    if not code:
        return ""
    if not binary:
        return code
    try:
        data = base64.b64decode("".join(code.split()), validate=True)
    except (binascii.Error, ValueError) as error:
        raise ValueError(f"Cannot initialize the action: the code is not a zip of Python source ({error})") from None
    try:
        # Inflated with a budget of bytes actually produced, whatever the archive claims (unzip.py).
        source = read_member(data, _only_main, MAX_SOURCE_BYTES)
    except BadZip as error:
        raise ValueError(f"Cannot initialize the action: the code is not a zip of Python source ({error})") from None
    except ZipRefused as refused:
        raise ValueError(f"Cannot initialize the action: {refused}") from None
    try:
        return source.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"Cannot initialize the action: __main__.py is not UTF-8 ({error})") from None


def _only_main(members: list[zipfile.ZipInfo]) -> zipfile.ZipInfo:
    names = sorted(member.filename for member in members)
    if names != ["__main__.py"]:
        raise ZipRefused(
            f"on the WASM executor a zip must hold only __main__.py (found: {', '.join(names) or 'nothing'})"
        )
    return members[0]


def _since(started: float) -> float:
    return (time.perf_counter() - started) * 1000
