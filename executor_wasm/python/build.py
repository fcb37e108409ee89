"""The Python runner component: built once per machine with componentize-py, cached by content hash.

``componentize-py`` turns ``guest/app.py`` and ``guest/runner.wit`` into a component holding CPython
already initialised with the standard library imported (~6 s, ~21 MB), and Wasmtime compiles that
into native code (~5 s, ~33 MB). Both results are cached under the cache directory, keyed by the
SHA-256 of the guest sources and the componentize-py version (the ``.wasm``) and additionally by the
engine fingerprint (the ``.cwasm``, as for every module in cache.py); after that, loading the runner
mmaps the artifact in a few milliseconds. A file lock makes concurrent processes (tests, several
invokers) build it only once.

Artifacts are native code that Wasmtime maps without re-validating it, so the cache directory must be
as private as the data directory (it is created 0700).
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from importlib.resources import files
from pathlib import Path

import wasmtime
import wasmtime.component

from executor_wasm.cache import describe_error, engine_fingerprint

GUEST_FILES = ("app.py", "runner.wit")
BUILD_TIMEOUT_S = 600.0

logger = logging.getLogger(__name__)


class RunnerUnavailable(Exception):
    """The runner component cannot be built or loaded here; the message says why."""


def runner_digest() -> str:
    """SHA-256 of what goes into the runner: the guest sources and the componentize-py version."""
    digest = hashlib.sha256(_componentize_py_version().encode())
    for name in GUEST_FILES:
        digest.update(name.encode() + b"\0" + _guest_source(name) + b"\0")
    return digest.hexdigest()[:32]


def runner_artifact(cache_dir: Path) -> Path:
    """Where the compiled runner for this engine configuration and Wasmtime version is cached."""
    return cache_dir / f"runner-{runner_digest()}-{engine_fingerprint()}.cwasm"


def load_runner(engine: wasmtime.Engine, cache_dir: Path) -> wasmtime.component.Component:
    """The compiled runner for ``engine``: from its artifact, else built and compiled (blocking).

    Raises :class:`RunnerUnavailable` when componentize-py is missing or the build fails.
    """
    digest = runner_digest()
    artifact = runner_artifact(cache_dir)
    component = _deserialize(engine, artifact)
    if component is not None:
        return component
    cache_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    with _locked(cache_dir / ".runner.lock"):
        component = _deserialize(engine, artifact)  # another process may have finished meanwhile
        if component is not None:
            return component
        wasm = cache_dir / f"runner-{digest}.wasm"
        if not wasm.exists():
            _build(wasm)
        started = time.perf_counter()
        try:
            component = wasmtime.component.Component.from_file(engine, str(wasm))
        except wasmtime.WasmtimeError as error:
            wasm.unlink(missing_ok=True)
            raise RunnerUnavailable(f"compiling the Python runner failed: {describe_error(error)}") from None
        logger.info("compiled the Python runner in %.1f s", time.perf_counter() - started)
        _write_atomically(artifact, bytes(component.serialize()))
    return component


def _build(output: Path) -> None:
    try:
        _componentize_py_version()
    except importlib.metadata.PackageNotFoundError:
        raise RunnerUnavailable(
            "Python actions on WebAssembly need componentize-py (pip install 'pywhisk[python-wasm]')"
        ) from None
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="pywhisk-runner-") as workdir:
        for name in GUEST_FILES:
            (Path(workdir) / name).write_bytes(_guest_source(name))
        # The app directory is the only Python path: a virtualenv's site-packages must not be bundled
        # (componentize-py adds $VIRTUAL_ENV's), so that what actions can import does not depend on
        # where pywhisk was installed.
        env = {key: value for key, value in os.environ.items() if key != "VIRTUAL_ENV"}
        tmp = Path(workdir) / "runner.wasm"
        command = [
            *_componentize_py_command(),
            *("-q", "-d", "runner.wit", "-w", "runner", "componentize", "-p", ".", "app", "-o", str(tmp)),
        ]
        try:
            done = subprocess.run(
                command, cwd=workdir, env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise RunnerUnavailable(f"building the Python runner failed: {error}") from None
        if done.returncode != 0 or not tmp.exists():
            detail = (done.stderr or done.stdout).strip().splitlines()[-1:] or [f"exit status {done.returncode}"]
            raise RunnerUnavailable(f"building the Python runner failed: {detail[0]}")
        _write_atomically(output, tmp.read_bytes())
    logger.info("built the Python runner component in %.1f s", time.perf_counter() - started)


def _componentize_py_command() -> list[str]:
    script = shutil.which("componentize-py", path=str(Path(sys.executable).parent))
    if script:
        return [script]
    return [sys.executable, "-c", "import sys, componentize_py; sys.exit(componentize_py.script())"]


def _componentize_py_version() -> str:
    return importlib.metadata.version("componentize-py")


def _guest_source(name: str) -> bytes:
    return files("executor_wasm.python.guest").joinpath(name).read_bytes()


def _deserialize(engine: wasmtime.Engine, artifact: Path) -> wasmtime.component.Component | None:
    if not artifact.exists():
        return None
    try:
        return wasmtime.component.Component.deserialize_file(engine, str(artifact))
    except wasmtime.WasmtimeError as error:
        logger.warning("discarding runner artifact %s: %s", artifact, describe_error(error))
        artifact.unlink(missing_ok=True)
        return None


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class _locked:
    """An exclusive ``flock`` on ``path`` for the duration of a ``with`` block (across processes)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = -1

    def __enter__(self) -> None:
        self.fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
