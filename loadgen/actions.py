"""Which file and kind each executor uses for the benchmark actions, and creating them on the server.

| executor | kind | code |
|---|---|---|
| ``wasm`` | ``wasm:wasi`` | ``actions/wasm/<name>.wasm``, base64 |
| ``docker`` | ``blackbox``, image ``openwhisk/dockerskeleton`` | ``actions/native/<name>`` (executable), base64 |
| ``python`` | ``python:3`` | ``actions/python/<name>.py``, source text |
| ``python-wasm`` | ``python:3``, annotation ``executor=wasm`` | the same ``.py`` file, run on the WASM executor |
| ``nodejs`` | ``nodejs:default`` | ``actions/js/<name>.js``, source text |
| ``nodejs-wasm`` | ``nodejs:default``, annotation ``executor=wasm`` | the same ``.js`` file, run on the WASM executor |

The same sources are compiled to WASM and to native code, so Docker-vs-WASM compares the same work (reference §8.8).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from loadgen.client import WhiskClient
from loadgen.errors import LoadgenError

Executor = Literal["wasm", "docker", "python", "python-wasm", "nodejs", "nodejs-wasm"]
EXECUTORS: tuple[Executor, ...] = ("wasm", "docker", "python", "python-wasm", "nodejs", "nodejs-wasm")
# The source-text executors pinned to the WASM executor by the annotation executor=wasm.
PINNED_TO_WASM = ("python-wasm", "nodejs-wasm")
BENCHMARKS = ("hello", "hash", "prime", "net", "sleep")

# 128 MB is OpenWhisk's smallest memory limit. It lets twice 15 instances (e.g. `net` and `prime` in the mixed
# ramp, or two revisions of 15 cold-start copies) fit pywhisk standalone's default 4096 MB pool, so the pool never
# has to queue activations behind memory; the thesis used 256 MB (MF's records), which halves that room.
DEFAULT_MEMORY_MB = 128
DOCKERSKELETON = "openwhisk/dockerskeleton"


@dataclass(frozen=True)
class ActionSource:
    """One benchmark action as one executor runs it: the file, the kind, and how the code is sent."""

    executor: Executor
    benchmark: str
    path: Path
    kind: str
    binary: bool
    image: str | None = None

    def exec_body(self) -> dict[str, Any]:
        """The ``exec`` object of the action document."""
        try:
            data = self.path.read_bytes()
        except OSError as error:
            raise LoadgenError(f"cannot read {self.path}: {error.strerror}") from error
        code = base64.b64encode(data).decode() if self.binary else data.decode("utf-8")
        body: dict[str, Any] = {"kind": self.kind, "code": code}
        if self.image:
            body["image"] = self.image
        return body


def default_actions_dir(cwd: Path | None = None) -> Path:
    """The repository's ``actions/``: next to the installed package (an editable install), else under the cwd."""
    beside_package = Path(__file__).resolve().parent.parent / "actions"
    if beside_package.is_dir():
        return beside_package
    return (cwd or Path.cwd()) / "actions"


def action_source(executor: Executor, benchmark: str, actions_dir: Path) -> ActionSource:
    """Where ``benchmark`` lives for ``executor``; a LoadgenError naming the file if it is missing."""
    if executor == "wasm":
        source = ActionSource(executor, benchmark, actions_dir / "wasm" / f"{benchmark}.wasm", "wasm:wasi", True)
    elif executor == "docker":
        source = ActionSource(executor, benchmark, actions_dir / "native" / benchmark, "blackbox", True, DOCKERSKELETON)
    elif executor in ("python", "python-wasm"):
        source = ActionSource(executor, benchmark, actions_dir / "python" / f"{benchmark}.py", "python:3", False)
    elif executor in ("nodejs", "nodejs-wasm"):
        source = ActionSource(executor, benchmark, actions_dir / "js" / f"{benchmark}.js", "nodejs:default", False)
    else:
        raise LoadgenError(f"unknown executor {executor!r} (one of {', '.join(EXECUTORS)})")
    if not source.path.is_file():
        raise LoadgenError(f"the {executor} build of '{benchmark}' is missing: {source.path} (see actions/build.sh)")
    return source


def action_name(executor: Executor, benchmark: str) -> str:
    """The name loadgen gives a benchmark action on the server: ``lg-<executor>-<benchmark>``."""
    return f"lg-{executor}-{benchmark}"


def action_document(
    source: ActionSource,
    *,
    memory_mb: int = DEFAULT_MEMORY_MB,
    concurrency: int = 1,
    timeout_ms: int | None = None,
) -> dict[str, Any]:
    """The PUT body of an action: its exec, limits and a ``loadgen`` annotation naming the benchmark."""
    limits: dict[str, int] = {"memory": memory_mb, "concurrency": concurrency}
    if timeout_ms is not None:
        limits["timeout"] = timeout_ms
    annotations = [{"key": "loadgen", "value": f"{source.executor}/{source.benchmark}"}]
    if source.executor in PINNED_TO_WASM:  # the python:3 or nodejs source, pinned to the WASM executor
        annotations.append({"key": "executor", "value": "wasm"})
    return {"exec": source.exec_body(), "limits": limits, "annotations": annotations}


async def setup(
    client: WhiskClient,
    executor: Executor,
    actions_dir: Path,
    benchmarks: tuple[str, ...] = BENCHMARKS,
    *,
    memory_mb: int = DEFAULT_MEMORY_MB,
) -> list[str]:
    """Create or update ``lg-<executor>-<benchmark>`` for each benchmark; the names. Checks every file first."""
    sources = [action_source(executor, benchmark, actions_dir) for benchmark in benchmarks]
    names = []
    for source in sources:
        name = action_name(executor, source.benchmark)
        await client.put_action(name, action_document(source, memory_mb=memory_mb))
        names.append(name)
    return names
