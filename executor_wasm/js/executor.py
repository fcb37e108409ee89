"""``WasmJavaScriptExecutor``: the Wasmtime executor, serving ``nodejs`` actions besides ``python:3`` and ``wasm:wasi``.

JavaScript actions pinned to this executor (annotation ``executor=wasm``) run in the JavaScript runner
component (build.py): StarlingMonkey initialised at build time, shared by every JavaScript action. ``/init``
evaluates the action's source in a fresh instance, so that a syntax error, a missing ``main`` or a
``require`` of a Node.js built-in fails there with OpenWhisk's Node.js message; the source is kept. Each
``/run`` instantiates the runner afresh and evaluates the source again before calling ``main``: nothing
leaks between activations, and for a small action the evaluation costs ~1 ms (docs/javascript.md).

Everything else (the engine, its epoch ticker, the worker threads and their job timeouts, the Python and
``wasm:wasi`` kinds) is the WasmPythonExecutor's and the WasmExecutor's.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import orjson

from executor_wasm.executor import RUN_GUARD_S, init_namespace
from executor_wasm.js import runner as js_runner
from executor_wasm.js.build import RunnerUnavailable, load_runner, runner_artifact
from executor_wasm.python.executor import WasmPythonExecutor
from executor_wasm.settings import WasmSettings
from executor_wasm.stdio import params_json
from pywhisk.errors import ExecutorError
from pywhisk.executor import InitRequest, InstanceSpec, ProxyResult, RunRequest

# The kinds of runtimes.json's nodejs family (the Docker runtime is Debian bookworm's Node.js 18).
JAVASCRIPT_KINDS = frozenset({"nodejs:18", "nodejs:default"})
# Sources that passed /init by (source digest, main): a second instance of the same action skips the check.
PREPARED_CAPACITY = 1024

_INIT_OK = '{"ok":true}'
# service.js's answers to a repeated /init, an /init without code and a /run before /init.
_REINIT = '{"error":"Cannot initialize the action more than once."}'
_NO_CODE = '{"error":"Missing main/no code to execute."}'
_NOT_READY = '{"error":"System not initialized."}'
_ZIPPED = (
    "Initialization has failed due to: zipped actions (package.json, node_modules) run on Docker only;"
    " on the WASM executor the action is one JavaScript file"
)


@dataclass(slots=True)
class _JavaScriptInstance:
    spec: InstanceSpec
    initializing: bool = False
    source: str | None = None
    main: str = "main"
    env: dict[str, str] | None = None


class WasmJavaScriptExecutor(WasmPythonExecutor):
    """Runs ``wasm:wasi`` modules, ``python:3`` and ``nodejs`` actions in Wasmtime, in this process."""

    def __init__(self, settings: WasmSettings, module_cache_dir: Path) -> None:
        super().__init__(settings, module_cache_dir)
        self._javascript: dict[str, _JavaScriptInstance] = {}
        self._prepared_sources: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._js_runner: asyncio.Future[js_runner.Runner] | None = None

    async def start(self) -> None:
        """Start the Python-capable executor and, if it is already built, load the JavaScript runner (~5 ms).

        An unbuilt runner is built when the first JavaScript instance is created (~30 s to ~1 min, once
        per machine), not here: a platform that never runs JavaScript on WASM never pays for it.
        """
        await super().start()
        if runner_artifact(self.settings.js_cache_dir).exists():
            self._js_runner_future()

    async def close(self) -> None:
        """Forget the JavaScript instances too, then close the rest."""
        self._javascript.clear()
        await super().close()
        runner, self._js_runner = self._js_runner, None
        if runner is not None and not runner.done():
            runner.cancel()

    def kinds(self) -> set[str]:
        """The ``wasm:wasi`` and ``python:3`` kinds plus the ``nodejs`` kinds."""
        return super().kinds() | JAVASCRIPT_KINDS

    async def create(self, spec: InstanceSpec) -> None:
        """Record the instance; for JavaScript, wait until the runner is loaded (built once per machine)."""
        if spec.kind not in JAVASCRIPT_KINDS:
            await super().create(spec)
            return
        if spec.instance_id in self._javascript:
            raise ExecutorError(f"instance {spec.instance_id} already exists")
        await self._ready_js_runner()
        self._javascript[spec.instance_id] = _JavaScriptInstance(spec)

    async def init(self, instance_id: str, request: InitRequest, timeout_ms: int, log_limit_bytes: int) -> ProxyResult:
        """Evaluate the action's source in a fresh instance and check ``main``; keep the source for the runs."""
        instance = self._javascript.get(instance_id)
        if instance is None:
            return await super().init(instance_id, request, timeout_ms, log_limit_bytes)
        if instance.initializing or instance.source is not None:
            return ProxyResult(status=403, body=_REINIT)
        started = time.perf_counter()
        if request.binary:
            return ProxyResult(status=502, body=orjson.dumps({"error": _ZIPPED}).decode())
        source = request.code or ""
        if not source.strip() or not request.main:
            return ProxyResult(status=403, body=_NO_CODE)
        key = (hashlib.sha256(source.encode()).hexdigest(), request.main)
        if key in self._prepared_sources:
            self._prepared_sources.move_to_end(key)
            result = ProxyResult(status=200, body=_INIT_OK)
        else:
            instance.initializing = True
            try:
                limits = self._js_limits(instance, timeout_ms, log_limit_bytes)
                runner = await self._ready_js_runner()
                answer = await self._in_pool(
                    js_runner.prepare,
                    runner,
                    source,
                    request.main,
                    limits,
                    timeout_s=timeout_ms / 1000 + RUN_GUARD_S,
                    namespace=init_namespace(request),
                )
            finally:
                instance.initializing = False
            if answer is None:
                return ProxyResult(status=None, timed_out=True, duration_ms=_since(started))
            result = answer
            if result.status != 200:
                return result
            self._remember_source(key)
        instance.source, instance.main, instance.env = source, request.main, dict(request.env)
        result.duration_ms = _since(started)
        return result

    async def run(self, instance_id: str, request: RunRequest, timeout_ms: int, log_limit_bytes: int) -> ProxyResult:
        """Run the action once in a fresh instance of the runner."""
        instance = self._javascript.get(instance_id)
        if instance is None:
            return await super().run(instance_id, request, timeout_ms, log_limit_bytes)
        if instance.source is None:
            return ProxyResult(status=403, body=_NOT_READY)
        started = time.perf_counter()
        job = self._job(
            js_runner.run,
            await self._ready_js_runner(),
            instance.source,
            instance.main,
            params_json(request.value),
            {**(instance.env or {}), **request.environment()},
            self._js_limits(instance, timeout_ms, log_limit_bytes),
            namespace=request.namespace,  # on the namespace's fair share of the compute slots (slots.py)
        )
        result = await self._await_job(job, timeout_s=timeout_ms / 1000 + RUN_GUARD_S)
        if result is None:  # stuck in a host call (a long timer); its logs are still being written
            result = ProxyResult(status=None, timed_out=True, duration_ms=_since(started) - job.queued_ms)
        result.queued_ms = job.queued_ms
        return result

    async def destroy(self, instance_id: str) -> None:
        """Forget the instance; idempotent."""
        if self._javascript.pop(instance_id, None) is None:
            await super().destroy(instance_id)

    # helpers -------------------------------------------------------------------------------------

    def _js_runner_future(self) -> asyncio.Future[js_runner.Runner]:
        runner = self._js_runner
        if runner is None or (runner.done() and (runner.cancelled() or runner.exception() is not None)):
            runner = self._js_runner = asyncio.ensure_future(asyncio.to_thread(self._load_js_runner))
        return runner

    async def _ready_js_runner(self) -> js_runner.Runner:
        # Shielded: an activation that gives up waiting must not cancel the build for the others.
        try:
            return await asyncio.shield(self._js_runner_future())
        except RunnerUnavailable as error:
            raise ExecutorError(str(error)) from None

    def _load_js_runner(self) -> js_runner.Runner:
        component = load_runner(self.engine, self.settings.js_cache_dir)
        return js_runner.create_runner(self.engine, component)

    def _remember_source(self, key: tuple[str, str]) -> None:
        self._prepared_sources[key] = None
        while len(self._prepared_sources) > PREPARED_CAPACITY:
            self._prepared_sources.popitem(last=False)

    @staticmethod
    def _js_limits(instance: _JavaScriptInstance, timeout_ms: int, log_limit_bytes: int) -> js_runner.CallLimits:
        return js_runner.CallLimits(instance.spec.memory_mb * 1_048_576, timeout_ms, log_limit_bytes)


def _since(started: float) -> float:
    return (time.perf_counter() - started) * 1000
