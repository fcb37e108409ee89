"""The ``Executor`` seam: how an invoker drives instances (containers, WASM instances) of an action.

It mirrors OpenWhisk's action-proxy protocol (reference/openwhisk.md §4): an instance is created,
receives ``/init`` exactly once, then ``/run`` per activation, and is destroyed at the end. Executors
are plugins registered under the entry-point group ``pywhisk.executors``; each entry point names a
factory ``(ExecutorEnvironment) -> Executor``: the environment is what the invoker gives every plugin, and
a plugin reads its own settings (e.g. ``executor_wasm/settings.py``, ``PYWHISK_WASM_*``) itself, so a
third-party executor is added with an entry point and nothing in the kernel.

Both ``init`` and ``run`` answer with a :class:`ProxyResult`: the proxy's HTTP status and raw body
(exactly what a container's action proxy would have said), the log lines the call produced, and the
platform's observations (timeout, memory exhausted, instance died) that a proxy cannot report itself.
The invoker turns a ProxyResult into an activation response; executors never build records.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from pywhisk.settings import Settings

ENTRY_POINT_GROUP = "pywhisk.executors"

logger = logging.getLogger(__name__)


class InstanceSpec(BaseModel):
    """What to provision: one instance for one action (OpenWhisk: one container)."""

    instance_id: str
    kind: str
    memory_mb: int
    image: str | None = None
    # Action annotations, for executor-specific grants (e.g. WASI directories).
    annotations: dict[str, Any] = Field(default_factory=dict)


class InitRequest(BaseModel):
    """The ``value`` of an OpenWhisk ``POST /init`` body."""

    name: str
    main: str = "main"
    code: str | None = None
    binary: bool = False
    env: dict[str, str] = Field(default_factory=dict)


class RunRequest(BaseModel):
    """An OpenWhisk ``POST /run`` body: params in ``value``, the rest becomes ``__OW_*``."""

    value: dict[str, Any] | list[Any] = Field(default_factory=dict)
    namespace: str
    action_name: str
    action_version: str
    activation_id: str
    transaction_id: str
    deadline: str  # epoch ms as a string, as OpenWhisk's invoker sends it
    api_key: str | None = None

    def environment(self) -> dict[str, str]:
        """The ``__OW_*`` variables a proxy exports for this activation."""
        fields = self.model_dump(exclude={"value"}, exclude_none=True)
        return {f"__OW_{key.upper()}": str(value) for key, value in fields.items()}


class ProxyResult(BaseModel):
    """What an ``/init`` or ``/run`` call produced.

    ``status`` is None when the instance gave no answer at all (it timed out, died, or ran out of
    memory); ``body`` is the raw response body; ``logs`` are formatted OpenWhisk log lines
    (``format_log_line``), already cut at the action's log limit.
    """

    status: int | None
    body: str = ""
    logs: list[str] = Field(default_factory=list)
    timed_out: bool = False
    memory_exhausted: bool = False
    exited: bool = False
    # Milliseconds the call took inside the executor, when it can tell more precisely than the caller.
    duration_ms: float | None = None
    # Milliseconds the call waited inside the executor before it started (a queue for worker slots):
    # part of the activation's waitTime, not of its duration.
    queued_ms: float = 0.0


@runtime_checkable
class Executor(Protocol):
    """Drives instances of actions. All methods are coroutines that never block the event loop."""

    name: str

    async def start(self) -> None:
        """Acquire resources (thread pools, clients); called once before any other method."""

    async def close(self) -> None:
        """Destroy every instance and release resources."""

    def kinds(self) -> set[str]:
        """The exec kinds this executor can serve."""

    async def create(self, spec: InstanceSpec) -> None:
        """Provision an instance; raises ``ExecutorError`` when the platform cannot."""

    async def init(self, instance_id: str, request: InitRequest, timeout_ms: int, log_limit_bytes: int) -> ProxyResult:
        """Send ``/init`` (exactly once per instance)."""

    async def run(self, instance_id: str, request: RunRequest, timeout_ms: int, log_limit_bytes: int) -> ProxyResult:
        """Send ``/run``; the executor enforces ``timeout_ms`` and the instance's memory limit."""

    async def destroy(self, instance_id: str) -> None:
        """Remove the instance; idempotent."""


@runtime_checkable
class PausableExecutor(Executor, Protocol):
    """An executor that can freeze an idle instance (``docker pause``) and thaw it for the next run."""

    async def pause(self, instance_id: str) -> None:
        """Freeze the instance; it uses no CPU until resumed."""

    async def resume(self, instance_id: str) -> None:
        """Thaw a paused instance."""


@runtime_checkable
class ConcurrentExecutor(Executor, Protocol):
    """An executor whose instance gives every run its own memory, isolated from the others' runs.

    A WASM instance is a compiled module; every run gets its own Store, whose memory is bounded by the
    action's ``limits.memory`` on its own. So runs sharing an instance do not share memory as the runs
    of a container share its cgroup: the pool charges an instance of this executor once per run in flight
    (invoker/pool.py). An instance still takes at most the action's ``limits.concurrency`` runs at once
    (OpenWhisk's meaning of the limit), and never more than ``max_runs_per_instance``, the executor's own
    bound; further runs get further instances, which are cheap (the compiled module is shared).
    """

    max_runs_per_instance: int


class ExecutorEnvironment(BaseModel):
    """What the invoker gives every executor plugin: the facts of the invoker it serves.

    Anything else an executor needs is its own setting, read by its plugin. Defaults are ``Settings``'.
    """

    model_config = ConfigDict(frozen=True)

    # The state directory of this invoker (e.g. the WASM module cache, the Docker owner label).
    data_dir: Path
    # OpenWhisk's invoker instance number; with data_dir, tells this invoker's instances from others'.
    invoker_id: int = 0
    # The invoker's memory budget for live instances (Docker derives CPU shares from it).
    user_memory_mb: int = Field(default=4096, ge=128)
    # Standalone's worker 0: instances left by invokers numbered from this one up, with the same data_dir,
    # belong to workers that no longer run (``--workers`` was lowered); remove them at start as one's own.
    adopts_invokers_from: int | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> ExecutorEnvironment:
        """The environment of an invoker configured by ``settings``."""
        return cls(data_dir=settings.data_dir, invoker_id=settings.invoker_id, user_memory_mb=settings.user_memory_mb)


# An entry point of the ``pywhisk.executors`` group: builds an executor or raises when it cannot run here.
ExecutorFactory = Callable[[ExecutorEnvironment], Executor]


def load_executor_factories() -> dict[str, ExecutorFactory]:
    """Every installed executor plugin, by entry-point name."""
    return {ep.name: ep.load() for ep in entry_points(group=ENTRY_POINT_GROUP)}


def load_executors(environment: ExecutorEnvironment) -> dict[str, Executor]:
    """Every installed executor plugin that can be built on this machine, by entry-point name.

    A plugin whose factory raises (e.g. no Docker daemon answers) is left out with a warning: the
    others still serve their kinds, and actions of its kinds get a clear error from the invoker.
    """
    executors: dict[str, Executor] = {}
    for name, factory in load_executor_factories().items():
        try:
            executors[name] = factory(environment)
        except Exception as exc:  # one missing backend must not stop the rest
            logger.warning("executor %r is not available: %s", name, exc)
    return executors
