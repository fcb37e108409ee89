"""The compiled-module cache: one Engine, precompiled artifacts on disk, loaded modules in memory.

Compiling is the expensive part of a WASM cold start (a 24 KB C module ~14 ms, a 4.4 MB Go module
~2.3 s), while loading a precompiled artifact with ``Module.deserialize_file`` mmaps it in 24-40 µs
(reference/measurements.md, "Wasmtime from Python"). So every module is compiled once per machine and
engine configuration (by a compiler process, compiler.py), written to ``<module_cache_dir>/<key>.cwasm``,
and kept loaded (with its ``InstancePre``) in an in-memory LRU keyed by the SHA-256 of the module bytes.

Artifacts are native code that Wasmtime maps without re-validating it: whoever can write the cache
directory can run code in the executor, so it must be as private as the rest of ``data_dir``.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import os
import platform
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import orjson
import wasmtime

# Everything that changes the machine code Wasmtime emits. An artifact only loads into an Engine
# with the same settings and the same Wasmtime version (measurements.md), so these go into the key.
ENGINE_SETTINGS: dict[str, object] = {
    "epoch_interruption": True,  # timeouts: a ticker thread bumps the epoch (runner.py)
    "cranelift_opt_level": "speed",
}
WASM_MAGIC = b"\0asm"
# ``exec.code`` strings remembered for their loaded module (``ModuleCache.known``): in all, and the longest one.
CODE_CHARS = 16 * 1024 * 1024
CODE_CHARS_EACH = 4 * 1024 * 1024

logger = logging.getLogger(__name__)


class InvalidModule(Exception):
    """The bytes are not a runnable WASI command module; the message says why, in one line."""


@dataclass(frozen=True, slots=True)
class CompiledModule:
    """A loaded module and its pre-linked instantiation recipe (imports resolved once)."""

    digest: str
    module: wasmtime.Module
    instance_pre: wasmtime.InstancePre


def create_engine() -> wasmtime.Engine:
    """An Engine with the settings of ``ENGINE_SETTINGS`` (and parallel compilation)."""
    config = wasmtime.Config()
    config.epoch_interruption = bool(ENGINE_SETTINGS["epoch_interruption"])
    config.cranelift_opt_level = str(ENGINE_SETTINGS["cranelift_opt_level"])
    # Does not change the output, only how many cores Cranelift uses: not part of the fingerprint.
    config.parallel_compilation = True
    return wasmtime.Engine(config)


def engine_fingerprint() -> str:
    """A short digest of the engine settings, the Wasmtime version and the host architecture."""
    facts = {
        "settings": ENGINE_SETTINGS,
        "wasmtime": importlib.metadata.version("wasmtime"),
        "machine": platform.machine(),
    }
    return hashlib.sha256(orjson.dumps(facts, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def describe_error(error: BaseException) -> str:
    """One informative line from a Wasmtime message.

    Wasmtime's messages are multi-line: a context line, an optional backtrace and a "Caused by:"
    list. For traps the first line is always "error while executing at wasm backtrace:", so the
    root causes are what says anything; for compile errors the first line plus the causes does.
    """
    lines = [line.strip() for line in str(error).splitlines()]
    head = lines[0] if lines else type(error).__name__
    causes: list[str] = []
    if "Caused by:" in lines:
        for line in lines[lines.index("Caused by:") + 1 :]:
            if line:
                number, sep, rest = line.partition(": ")
                causes.append(rest if sep and number.isdigit() else line)
    if head.startswith("error while executing at wasm backtrace") and causes:
        return ": ".join(causes)
    return ": ".join([head, *causes])


class ModuleCache:
    """Loaded modules for one Engine and Linker, and their artifacts on disk; thread-safe, blocking (run it off-loop).

    It never compiles: a module without an artifact is compiled into one by a compiler process
    (compiler.py, ``compile_artifact`` here), then ``adopt`` maps it.
    """

    def __init__(
        self,
        engine: wasmtime.Engine,
        linker: wasmtime.Linker,
        directory: Path,
        capacity: int = 256,
        code_chars: int = CODE_CHARS,
    ) -> None:
        self.engine = engine
        self.linker = linker
        self.directory = directory
        self.capacity = capacity
        self._fingerprint = engine_fingerprint()
        self._loaded: OrderedDict[str, CompiledModule] = OrderedDict()
        self._lock = threading.Lock()
        # The ``exec.code`` strings loaded modules were made from, and their digests (``known``), least recently
        # used first; at most ``code_chars`` characters of them, none longer than CODE_CHARS_EACH.
        self._codes: OrderedDict[str, str] = OrderedDict()
        self._code_chars = 0
        self._code_chars_max = code_chars

    def artifact_path(self, digest: str) -> Path:
        """Where the precompiled artifact of the module with this SHA-256 lives."""
        return self.directory / f"{digest}-{self._fingerprint}.cwasm"

    def lookup(self, wasm: bytes) -> tuple[str, CompiledModule | None]:
        """The module's digest, and its compiled module if loaded or if its artifact exists (else None).

        Raises :class:`InvalidModule` when the bytes are not WebAssembly, or are not a WASI command
        module this linker can run.
        """
        # wasmtime.Module parses anything not starting with a NUL byte as WAT text: insist on binary.
        if not wasm.startswith(WASM_MAGIC):
            raise InvalidModule("not a WebAssembly binary (bad magic number)")
        digest = hashlib.sha256(wasm).hexdigest()
        with self._lock:
            hit = self._loaded.get(digest)
            if hit is not None:
                self._loaded.move_to_end(digest)
                return digest, hit
        module = self._deserialize(digest)
        return digest, None if module is None else self._remember(digest, module)

    def known(self, code: str) -> CompiledModule | None:
        """The loaded module made from exactly this ``exec.code`` (``remember_code``), or None.

        Cheap enough for the event loop: a new instance of a loaded action (a cold start of a warm action, as
        when its concurrent runs scale out) skips the base64 decode and the two SHA-256 of ``decode_module``
        and ``lookup``, two pool jobs. The dict hashes the string once per string object (Python caches a
        str's hash; ~0.35 ms per MiB the first time), and the invoker passes the same object for every instance
        of an action revision it holds; longer codes are never remembered, so never hashed here.
        """
        if len(code) > CODE_CHARS_EACH:
            return None
        hash(code)  # before the lock: the workers' lookups never wait for it
        with self._lock:
            digest = self._codes.get(code)
            if digest is None:
                return None
            hit = self._loaded.get(digest)
            if hit is None:  # evicted since: the slow path loads it again and remembers the code anew
                self._forget_code(code)
                return None
            self._codes.move_to_end(code)
            self._loaded.move_to_end(digest)
            return hit

    def remember_code(self, code: str, digest: str) -> None:
        """``code`` decodes to the module ``digest`` (just loaded): ``known(code)`` finds it while it stays loaded."""
        if len(code) > CODE_CHARS_EACH:
            return
        with self._lock:
            if code in self._codes:
                self._codes.move_to_end(code)
                return
            self._codes[code] = digest
            self._code_chars += len(code)
            while self._code_chars > self._code_chars_max and self._codes:
                self._forget_code(next(iter(self._codes)))

    def _forget_code(self, code: str) -> None:  # under the lock
        if self._codes.pop(code, None) is not None:
            self._code_chars -= len(code)

    def adopt(self, digest: str) -> CompiledModule:
        """Load the artifact a compiler just wrote for ``digest``."""
        module = self._deserialize(digest)
        if module is None:
            raise InvalidModule("the compiled module could not be loaded")
        return self._remember(digest, module)

    def clear_memory(self) -> None:
        """Forget the loaded modules (the artifacts on disk stay); for benchmarks and tests."""
        with self._lock:
            self._loaded.clear()
            self._codes.clear()
            self._code_chars = 0

    def _remember(self, digest: str, module: wasmtime.Module) -> CompiledModule:
        start = next((export.type for export in module.exports if export.name == "_start"), None)
        if not isinstance(start, wasmtime.FuncType) or start.params or start.results:
            raise InvalidModule("not a WASI command: no `_start` function export of type () -> ()")
        try:
            instance_pre = self.linker.instantiate_pre(module)
        except wasmtime.WasmtimeError as error:  # an import that is neither WASI preview 1 nor ours
            raise InvalidModule(describe_error(error)) from None
        compiled = CompiledModule(digest, module, instance_pre)
        with self._lock:
            self._loaded[digest] = compiled
            self._loaded.move_to_end(digest)
            while len(self._loaded) > self.capacity:
                self._loaded.popitem(last=False)
        return compiled

    def _deserialize(self, digest: str) -> wasmtime.Module | None:
        path = self.artifact_path(digest)
        if not path.exists():
            return None
        try:
            return wasmtime.Module.deserialize_file(self.engine, str(path))
        except wasmtime.WasmtimeError as error:
            # Truncated, or built by another Wasmtime/CPU/config: drop it and recompile.
            logger.warning("discarding module artifact %s: %s", path, describe_error(error))
            path.unlink(missing_ok=True)
            return None


def compile_artifact(engine: wasmtime.Engine, wasm: bytes, path: Path) -> None:
    """Compile ``wasm`` for ``engine`` and write its artifact to ``path`` (in a compiler process, compiler.py).

    Raises :class:`InvalidModule` when the bytes do not compile.
    """
    if not wasm.startswith(WASM_MAGIC):
        raise InvalidModule("not a WebAssembly binary (bad magic number)")
    try:
        module = wasmtime.Module(engine, wasm)
    except wasmtime.WasmtimeError as error:
        raise InvalidModule(describe_error(error)) from None
    # Write then rename: a reader (another executor process) never maps a half-written file.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(module.serialize())
        os.replace(tmp, path)
    except OSError as error:
        # A read-only or full cache directory: the executor cannot map what it cannot read back.
        tmp.unlink(missing_ok=True)
        raise InvalidModule(f"cannot write the compiled module: {error}") from None
