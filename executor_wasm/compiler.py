"""Compiling untrusted modules in child processes: bounded in time and memory, and killed when nobody waits.

Cranelift is not interruptible: a module built to be slow to compile (thousands of huge functions,
deep nesting, many locals) would hold a worker thread for seconds to minutes after its activation
was answered as timed out, and compile in the executor's own address space. So modules are compiled
by ``python -m executor_wasm.compiler`` processes: each runs with an address-space limit
(``RLIMIT_AS``, ``PYWHISK_WASM_COMPILE_MEMORY_MB``), at most ``PYWHISK_WASM_COMPILE_PROCESSES`` compile at
once, and a compile is killed as soon as every ``/init`` waiting for it has timed out (its waiters
share it: two inits of one new module compile it once). The child writes the precompiled artifact
into the module cache (write, then rename) and the executor maps it with ``Module.deserialize_file``
(cache.py), so artifacts are cached exactly as before. One idle worker is kept ready (the executor's
start waits for the first), so a cold start pays a pipe round trip, not a Python start-up (docs/benchmarks.md).

Protocol on the child's stdin/stdout, one request at a time: ``<u32 path length><path><u64 module
length><module bytes>``, answered by one JSON line, ``{"ok": true}`` or ``{"error": "one line"}``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import resource
import struct
import subprocess
import sys
import threading
from pathlib import Path

import orjson

from executor_wasm.cache import InvalidModule

READY = b'{"ready":true}\n'
SPAWN_TIMEOUT_S = 30.0
_REQUEST = struct.Struct("<I")
_MODULE = struct.Struct("<Q")

logger = logging.getLogger(__name__)


class CompilerPool:
    """Child processes that compile modules into artifact files.

    Each compile is driven by a thread of its own (blocking pipe I/O), so the pool works from any event
    loop; ``compile`` is the one coroutine.
    """

    def __init__(self, processes: int, memory_bytes: int) -> None:
        self.processes = processes
        self.memory_bytes = memory_bytes
        self._slots = threading.Semaphore(processes)
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)  # a spare finished starting
        self._idle: list[_Worker] = []
        self._compiling: dict[Path, _Compile] = {}
        self._busy = 0
        self._spawning = False
        self._closing = False

    async def start(self) -> None:
        """Start one worker and wait until it is ready (~0.1-0.2 s), so the first cold start does not pay for it."""
        self._closing = False
        self._replenish()
        await asyncio.to_thread(self._wait_for_spare)

    def _wait_for_spare(self) -> None:
        with self._ready:
            self._ready.wait_for(lambda: not self._spawning, timeout=SPAWN_TIMEOUT_S)

    async def close(self) -> None:
        """Kill every worker, busy or idle; compiles in progress end as cancelled."""
        with self._lock:
            self._closing = True
            compiles, self._compiling = list(self._compiling.values()), {}
            idle, self._idle = self._idle, []
        for compile_ in compiles:
            compile_.cancel()
        await asyncio.to_thread(lambda: [worker.kill() for worker in idle])

    async def compile(self, wasm: bytes, artifact: Path, timeout_s: float) -> bool:
        """Compile ``wasm`` into ``artifact``; False when it was not done within ``timeout_s``.

        Raises :class:`InvalidModule` when the module does not compile (or needs more than the
        memory limit to compile). The compile is shared with other callers for the same artifact
        and killed when the last of them stops waiting.
        """
        with self._lock:
            compile_ = self._compiling.get(artifact)
            if compile_ is None:
                compile_ = self._compiling[artifact] = _Compile()
                thread = threading.Thread(
                    target=self._run, args=(compile_, wasm, artifact), name="wasm-compile", daemon=True
                )
                thread.start()
            compile_.waiters += 1
        try:
            await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(compile_.result)), timeout=max(0.0, timeout_s))
            return True
        except TimeoutError:
            return False
        finally:
            with self._lock:
                compile_.waiters -= 1
                abandoned = compile_.waiters == 0 and not compile_.result.done()
            if abandoned:  # nobody waits any more: kill the process, free the slot
                compile_.cancel()

    def _run(self, compile_: _Compile, wasm: bytes, artifact: Path) -> None:
        try:
            with self._slots:
                if compile_.cancelled:
                    raise concurrent.futures.CancelledError
                with self._ready:
                    # A spare on its way is closer than a new process (which would compete with it for CPU).
                    self._ready.wait_for(lambda: self._idle or not self._spawning, timeout=SPAWN_TIMEOUT_S)
                    worker = self._idle.pop() if self._idle else None
                    self._busy += 1
                try:
                    worker = worker or _Worker.spawn(self.memory_bytes)
                    self._replenish()
                    compile_.attach(worker)
                    answer = worker.compile(wasm, artifact)
                finally:
                    with self._lock:
                        self._busy -= 1
                if compile_.cancelled or answer is None:
                    code = worker.kill()
                    if compile_.cancelled:
                        raise concurrent.futures.CancelledError
                    # The process died: the memory limit (Rust aborts), or a crash in Cranelift.
                    raise InvalidModule(
                        f"compiling the module failed (the compiler exited with {code};"
                        f" does it need more than {self.memory_bytes // 1_048_576} MiB?)"
                    )
                self._keep(worker)
            if "error" in answer:
                raise InvalidModule(str(answer["error"]))
            compile_.result.set_result(None)
        except BaseException as error:  # handed to the waiters
            compile_.result.set_exception(error)
        finally:
            with self._lock:
                if self._compiling.get(artifact) is compile_:
                    del self._compiling[artifact]
            self._replenish()

    def _keep(self, worker: _Worker) -> None:
        with self._ready:
            if not self._closing:
                self._idle.append(worker)
                self._ready.notify_all()
                return
        worker.kill()

    def _replenish(self) -> None:
        """Keep one idle worker ready (while fewer than ``processes`` are busy), started in the background."""
        with self._lock:
            if self._closing or self._idle or self._spawning or self._busy >= self.processes:
                return
            self._spawning = True
        threading.Thread(target=self._spawn_spare, name="wasm-compiler-spare", daemon=True).start()

    def _spawn_spare(self) -> None:
        try:
            self._keep(_Worker.spawn(self.memory_bytes))
        except OSError as error:  # the first compile will try again and report it
            logger.warning("cannot start a wasm compiler process: %s", error)
        finally:
            with self._ready:
                self._spawning = False
                self._ready.notify_all()


class _Compile:
    """One module being compiled, shared by the inits waiting for it."""

    def __init__(self) -> None:
        self.result: concurrent.futures.Future[None] = concurrent.futures.Future()
        self.waiters = 0
        self.cancelled = False
        self._worker: _Worker | None = None
        self._lock = threading.Lock()

    def attach(self, worker: _Worker) -> None:
        with self._lock:
            self._worker = worker
            cancelled = self.cancelled
        if cancelled:
            worker.signal_kill()

    def cancel(self) -> None:
        """Stop the compile: kill its process (its thread then sees end of file and reaps it)."""
        with self._lock:
            self.cancelled = True
            worker = self._worker
        if worker is not None:
            worker.signal_kill()


class _Worker:
    """One ``python -m executor_wasm.compiler`` process; blocking methods, called from compile threads."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process

    @classmethod
    def spawn(cls, memory_bytes: int) -> _Worker:
        process = subprocess.Popen(
            [sys.executable, "-m", "executor_wasm.compiler", str(memory_bytes)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # Rust's "memory allocation failed": the exit status says it
            # glibc reserves 64 MiB of address space per malloc arena and thread: keep RLIMIT_AS for real memory.
            env={**os.environ, "MALLOC_ARENA_MAX": "2"},
        )
        worker = cls(process)
        assert process.stdout is not None, "spawned with pipes"
        if process.stdout.readline() != READY:  # it imports Wasmtime and builds its Engine first
            raise OSError(f"the wasm compiler process did not start (exit status {worker.kill()})")
        return worker

    def compile(self, wasm: bytes, artifact: Path) -> dict[str, object] | None:
        """Send one request and read its answer; None if the process died (or was killed)."""
        stdin, stdout = self.process.stdin, self.process.stdout
        assert stdin is not None and stdout is not None, "spawned with pipes"
        path = str(artifact).encode()
        try:
            stdin.write(_REQUEST.pack(len(path)) + path + _MODULE.pack(len(wasm)))
            stdin.write(wasm)
            stdin.flush()
            line = stdout.readline()
        except OSError:  # BrokenPipeError: it died
            return None
        if not line:
            return None
        answer = orjson.loads(line)
        assert isinstance(answer, dict), "the compiler answers a JSON object"
        return answer

    def signal_kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()

    def kill(self) -> int:
        """Kill the process and reap it; its exit status."""
        self.signal_kill()
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        return self.process.wait()


# --- the child process ----------------------------------------------------------------------------


def main(memory_bytes: int) -> None:
    """Compile requests from stdin until it closes (run as ``python -m executor_wasm.compiler N``)."""
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    from executor_wasm.cache import compile_artifact, create_engine  # after the limit: all allocation counts

    engine = create_engine()
    requests, answers = sys.stdin.buffer, sys.stdout.buffer
    answers.write(READY)
    answers.flush()
    while header := requests.read(_REQUEST.size):
        (path_length,) = _REQUEST.unpack(header)
        artifact = Path(requests.read(path_length).decode())
        (length,) = _MODULE.unpack(requests.read(_MODULE.size))
        wasm = requests.read(length)
        try:
            compile_artifact(engine, wasm, artifact)
            answer: dict[str, object] = {"ok": True}
        except InvalidModule as error:
            answer = {"error": str(error)}
        except MemoryError:
            answer = {"error": f"compiling the module needs more than {memory_bytes // 1_048_576} MiB"}
        answers.write(orjson.dumps(answer) + b"\n")
        answers.flush()


if __name__ == "__main__":
    main(int(sys.argv[1]))
