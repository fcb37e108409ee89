"""The WASM floor: the echo floor also running hello.wasm in a fresh Wasmtime instance per request (not a test).

    python bench/floors/wasm_floor.py --port 8102 [--module actions/wasm/hello.wasm]

As echo_floor.py, and per request the body goes to the module on stdin in a new Store and instance made the way
pywhisk's executor makes them (``executor_wasm.runner.run_module``: limits, deadline, stdio capture), run inline
on the event loop in one process: no thread hand-off, no store, no bus, no record. This is the floor of a warm
invoke in one Python process; bench/throughput.py reports pywhisk as a ratio of it.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson
import wasmtime

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script: echo_floor sits beside it

from echo_floor import Scope, authorized, read_json, respond, serve

from executor_wasm.cache import ModuleCache, compile_artifact, create_engine
from executor_wasm.runner import RunSpec, run_module
from executor_wasm.stdio import define_fd_write

REPO = Path(__file__).resolve().parents[2]
MODULE = REPO / "actions" / "wasm" / "hello.wasm"


def load(module: Path, directory: Path) -> tuple[wasmtime.Engine, Any]:
    """The engine and the compiled module, linked against WASI as the executor links it."""
    engine = create_engine()
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    # The guest's stdout and stderr into the run's buffers, as the executor links them: without it the floor
    # threw hello's output away and answered an empty result, less work than a real invoke (found 2026-12-07).
    define_fd_write(linker)
    cache = ModuleCache(engine, linker, directory)
    wasm = module.read_bytes()
    digest, compiled = cache.lookup(wasm)
    if compiled is None:
        compile_artifact(engine, wasm, cache.artifact_path(digest))
        compiled = cache.adopt(digest)
    return engine, compiled


ENGINE, COMPILED = load(MODULE, Path(tempfile.mkdtemp(prefix="wasm-floor-")))


async def app(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.complete"})
        return
    if not authorized(scope):
        await respond(send, 401, b'{"error":"The supplied authentication is invalid"}')
        return
    try:
        params = await read_json(receive)
    except orjson.JSONDecodeError:
        await respond(send, 400, b'{"error":"The request content was malformed"}')
        return
    spec = RunSpec(
        argv0="hello",
        env={},
        stdin=orjson.dumps(params),
        memory_bytes=256 * 1_048_576,
        timeout_ms=60_000,
        log_limit_bytes=10 * 1_048_576,
    )
    result = run_module(ENGINE, COMPILED, spec)
    status = 200 if result.status == 200 else 502
    body = b'{"response":{"result":' + (result.body or "{}").encode() + b"}}"
    await respond(send, status, body)


if __name__ == "__main__":
    serve(app, __doc__.splitlines()[0])
