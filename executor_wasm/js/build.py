"""The JavaScript runner component: built once per machine with componentize-js, cached by content hash.

``@bytecodealliance/componentize-js`` (StarlingMonkey, SpiderMonkey's engine for components) turns
``guest/app.js`` and ``guest/runner.wit`` into a component holding the engine already initialised with the
runner evaluated (Wizer's snapshot: ~15 s, ~12 MB), and Wasmtime compiles that into native code (~10 s).
componentize-js itself comes from the npm registry, at a pinned version, installed with the machine's npm
into the cache directory the first time (~20 s, ~390 MB). As for the Python runner (python/build.py), the
``.wasm`` is keyed by the SHA-256 of the guest sources and the componentize-js version, the ``.cwasm``
additionally by the engine fingerprint, a file lock makes concurrent processes build it once, and loading
the cached runner mmaps it in a few milliseconds.

Why one runner evaluating each action's source rather than a component per action: componentizing takes
~15 s, far beyond an ``/init``, while evaluating a source in a fresh instance takes ~1 ms (docs/javascript.md).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
import time
from importlib.resources import files
from pathlib import Path

import wasmtime
import wasmtime.component

from executor_wasm.cache import describe_error, engine_fingerprint

# The artifact plumbing (the cross-process lock, atomic writes, dropping a stale artifact) is the Python runner's.
from executor_wasm.python.build import _deserialize, _locked, _write_atomically

COMPONENTIZE_JS = "@bytecodealliance/componentize-js"
COMPONENTIZE_JS_VERSION = "0.23.0"
GUEST_FILES = ("app.js", "runner.wit", "build.mjs")
INSTALL_TIMEOUT_S = 600.0
BUILD_TIMEOUT_S = 600.0

logger = logging.getLogger(__name__)


class RunnerUnavailable(Exception):
    """The JavaScript runner cannot be built or loaded here; the message says why."""


def runner_digest() -> str:
    """SHA-256 of what goes into the runner: the guest sources and the componentize-js version."""
    digest = hashlib.sha256(COMPONENTIZE_JS_VERSION.encode())
    for name in GUEST_FILES:
        digest.update(name.encode() + b"\0" + _guest_source(name) + b"\0")
    return digest.hexdigest()[:32]


def runner_artifact(cache_dir: Path) -> Path:
    """Where the compiled runner for this engine configuration and Wasmtime version is cached."""
    return cache_dir / f"runner-{runner_digest()}-{engine_fingerprint()}.cwasm"


def load_runner(engine: wasmtime.Engine, cache_dir: Path) -> wasmtime.component.Component:
    """The compiled runner for ``engine``: from its artifact, else built and compiled (blocking).

    Raises :class:`RunnerUnavailable` when node or npm is missing or the build fails.
    """
    artifact = runner_artifact(cache_dir)
    component = _deserialize(engine, artifact)
    if component is not None:
        return component
    cache_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    with _locked(cache_dir / ".runner.lock"):
        component = _deserialize(engine, artifact)  # another process may have finished meanwhile
        if component is not None:
            return component
        wasm = cache_dir / f"runner-{runner_digest()}.wasm"
        if not wasm.exists():
            _build(wasm, _componentize_js(cache_dir))
        started = time.perf_counter()
        try:
            component = wasmtime.component.Component.from_file(engine, str(wasm))
        except wasmtime.WasmtimeError as error:
            wasm.unlink(missing_ok=True)
            raise RunnerUnavailable(f"compiling the JavaScript runner failed: {describe_error(error)}") from None
        logger.info("compiled the JavaScript runner in %.1f s", time.perf_counter() - started)
        _write_atomically(artifact, bytes(component.serialize()))
    return component


def node_and_npm() -> tuple[str, str]:
    """The paths of ``node`` and ``npm``; raises :class:`RunnerUnavailable` when either is missing."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        raise RunnerUnavailable("JavaScript actions on WebAssembly need Node.js and npm on the invoker's machine")
    return node, npm


def _componentize_js(cache_dir: Path) -> Path:
    """The entry module of componentize-js, installed from the npm registry under the cache directory once."""
    _, npm = node_and_npm()
    home = cache_dir / f"componentize-js-{COMPONENTIZE_JS_VERSION}"
    entry = home / "node_modules" / "@bytecodealliance" / "componentize-js" / "src" / "componentize.js"
    if entry.exists():
        return entry
    started = time.perf_counter()
    # Into a temporary directory renamed at the end: an interrupted install must not look complete.
    staging = Path(tempfile.mkdtemp(prefix=".componentize-js-", dir=cache_dir))
    try:
        command = [npm, "install", "--prefix", str(staging), "--no-audit", "--no-fund", "--no-save", "--silent"]
        _run([*command, f"{COMPONENTIZE_JS}@{COMPONENTIZE_JS_VERSION}"], staging, INSTALL_TIMEOUT_S, "installing")
        shutil.rmtree(home, ignore_errors=True)
        os.replace(staging, home)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("installed componentize-js %s in %.1f s", COMPONENTIZE_JS_VERSION, time.perf_counter() - started)
    return entry


def _build(output: Path, componentize_js: Path) -> None:
    node, _ = node_and_npm()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="pywhisk-js-runner-") as workdir:
        for name in GUEST_FILES:
            (Path(workdir) / name).write_bytes(_guest_source(name))
        tmp = Path(workdir) / "runner.wasm"
        command = [node, "build.mjs", str(componentize_js), "app.js", "runner.wit", str(tmp)]
        _run(command, Path(workdir), BUILD_TIMEOUT_S, "building")
        if not tmp.exists():
            raise RunnerUnavailable("building the JavaScript runner failed: componentize-js wrote no component")
        _write_atomically(output, tmp.read_bytes())
    logger.info("built the JavaScript runner component in %.1f s", time.perf_counter() - started)


def _run(command: list[str], cwd: Path, timeout_s: float, doing: str) -> None:
    try:
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout_s, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise RunnerUnavailable(f"{doing} the JavaScript runner failed: {error}") from None
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()[-1:] or [f"exit status {done.returncode}"]
        raise RunnerUnavailable(f"{doing} the JavaScript runner failed: {detail[0]}")


def _guest_source(name: str) -> bytes:
    return files("executor_wasm.js.guest").joinpath(name).read_bytes()
