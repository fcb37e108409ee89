"""The per-activation runner on its own (invoker/proxy.py): message in, record out, no bus, no loop.

An in-memory table of actions stands in for the entity store; the pool and the ScriptedExecutor
(whose behaviour is the action's code: "echo", "fail-init", "error", ...) are real.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

import invoker.proxy as proxy_module
from invoker.pool import Pool, StemCells
from invoker.proxy import ActivationRunner
from pywhisk.activation import Activation, StatusCode, new_activation_id
from pywhisk.entities import Action, Exec, KeyValue, Limits
from pywhisk.errors import StoreUnavailable
from pywhisk.executor import InitRequest, ProxyResult, RunRequest
from pywhisk.identity import guest_identity
from pywhisk.messages import ActionRef, ActivationMessage, ControllerInstance
from pywhisk.runtimes import RuntimeManifest
from tests.doubles import ScriptedExecutor

pytestmark = pytest.mark.unit

MANIFEST = RuntimeManifest.model_validate(
    {
        "runtimes": {
            "script": [{"kind": "script:1", "default": True, "executor": "wasm"}],
            "elsewhere": [{"kind": "elsewhere:1", "default": True, "executor": "docker"}],
        }
    }
)


@dataclass
class Actions:
    """The entity store as the runner sees it: ``get_action`` only. ``down`` makes every read fail."""

    actions: dict[tuple[str, str], Action] = field(default_factory=dict)
    down: bool = False
    reads: int = 0

    def add(self, name: str, code: str = "echo", kind: str = "script:1", **fields: Any) -> Action:
        action = Action(namespace="guest", name=name, exec=Exec(kind=kind, code=code), **fields)
        self.actions[("guest", name)] = action
        return action

    async def get_action(self, namespace: str, name: str) -> Action | None:
        self.reads += 1
        if self.down:
            raise StoreUnavailable("the store is restarting")
        return self.actions.get((namespace, name))


class RecordingExecutor(ScriptedExecutor):
    """The ScriptedExecutor keeping the /init and /run requests; ``broken`` makes /run raise."""

    def __init__(self) -> None:
        super().__init__()
        self.init_requests: list[InitRequest] = []
        self.run_requests: list[RunRequest] = []
        self.broken = False

    async def init(self, instance_id: str, request: InitRequest, timeout_ms: int, log_limit_bytes: int) -> ProxyResult:
        self.init_requests.append(request)
        return await super().init(instance_id, request, timeout_ms, log_limit_bytes)

    async def run(self, instance_id: str, request: RunRequest, timeout_ms: int, log_limit_bytes: int) -> ProxyResult:
        self.run_requests.append(request)
        if self.broken:
            raise RuntimeError("a bug in the executor")
        return await super().run(instance_id, request, timeout_ms, log_limit_bytes)


class Closing:
    """The loop's "am I closing?" as the runner asks it."""

    def __init__(self) -> None:
        self.value = False

    def __call__(self) -> bool:
        return self.value


@dataclass
class Runner:
    runner: ActivationRunner
    actions: Actions
    executor: RecordingExecutor
    pool: Pool
    closing: Closing

    async def run(self, name: str, content: dict[str, object] | None = None) -> Activation:
        return await self.runner.run(message(name, content))


def message(name: str, content: dict[str, object] | None = None) -> ActivationMessage:
    return ActivationMessage(
        transid=["tid", time.time() * 1000],
        action=ActionRef(path="guest", name=name, version="0.0.1"),
        user=guest_identity(),
        activationId=new_activation_id(),
        rootControllerIndex=ControllerInstance(asString="0"),
        blocking=True,
        content=content,
    )


def make_runner(
    max_record_bytes: int = 8_000_000,
    executor: RecordingExecutor | None = None,
    action_cache_bytes: int = proxy_module.ACTION_CACHE_BYTES,
) -> Runner:
    actions, executor = Actions(), executor or RecordingExecutor()
    pool, closing = Pool(user_memory_mb=1024, idle_timeout_s=600), Closing()
    runner = ActivationRunner(
        actions=actions,  # type: ignore[arg-type]  # the runner reads only get_action
        pool=pool,
        executors={"wasm": executor},
        manifest=MANIFEST,
        max_record_bytes=max_record_bytes,
        closing=closing,
        action_cache_bytes=action_cache_bytes,
    )
    return Runner(runner, actions, executor, pool, closing)


@pytest.fixture
async def runner() -> AsyncIterator[Runner]:
    made = make_runner()
    yield made
    await made.pool.close()


def keys(record: Activation) -> list[str]:
    return [pair.key for pair in record.annotations]


async def test_a_cold_run_initialises_and_records_init_time_and_the_warm_one_does_not(runner: Runner) -> None:
    runner.actions.add("hello")

    cold = await runner.run("hello", {"name": "Ada"})
    warm = await runner.run("hello", {"name": "Bob"})

    assert (cold.response.result, warm.response.result) == ({"name": "Ada"}, {"name": "Bob"})
    assert keys(cold) == ["path", "waitTime", "kind", "timeout", "limits", "initTime"]
    assert keys(warm) == ["path", "waitTime", "kind", "timeout", "limits"]
    assert len(runner.executor.init_requests) == 1 and len(runner.executor.run_requests) == 2
    assert len(runner.pool.instances()) == 1, "the instance stays warm for the next activation"
    assert cold.duration == cold.end - cold.start


async def test_the_action_is_read_once_per_revision(runner: Runner) -> None:
    runner.actions.add("hello")

    for _ in range(3):
        await runner.run("hello")

    assert runner.actions.reads == 1


async def test_a_missing_action_is_an_application_error_with_only_path_and_wait_time(runner: Runner) -> None:
    record = await runner.run("nowhere")

    # [OW] InvokerReactive: NoDocumentException → applicationError(actionRemovedWhileInvoking) (issue 12)
    assert record.status_code == StatusCode.APPLICATION_ERROR
    assert record.response.result == {"error": "Action could not be found or may have been deleted."}
    assert keys(record) == ["path", "waitTime"]
    assert runner.pool.instances() == []


async def test_a_kind_no_executor_here_serves_is_a_whisk_error_naming_the_kind(runner: Runner) -> None:
    runner.actions.add("remote", kind="elsewhere:1")

    record = await runner.run("remote")

    assert record.response.result == {"error": "No executor on this invoker can run actions of kind 'elsewhere:1'."}
    assert keys(record) == ["path", "waitTime", "kind", "timeout", "limits"]
    assert runner.executor.init_requests == []


async def test_a_failed_init_is_a_developer_error_and_the_instance_is_destroyed(runner: Runner) -> None:
    runner.actions.add("broken", code="fail-init")

    record = await runner.run("broken")

    assert record.status_code == StatusCode.DEVELOPER_ERROR
    assert record.response.result == {"error": "bad module"}
    assert "initTime" in keys(record)
    assert runner.pool.instances() == []
    await runner.pool.close()
    assert runner.executor.destroyed == runner.executor.inits


async def test_an_application_error_keeps_the_instance_warm(runner: Runner) -> None:
    runner.actions.add("nope", code="error")

    record = await runner.run("nope")

    assert record.status_code == StatusCode.APPLICATION_ERROR
    assert len(runner.pool.instances()) == 1


async def test_an_unexpected_failure_is_recorded_as_an_internal_error_and_the_instance_let_go(runner: Runner) -> None:
    runner.actions.add("hello")
    runner.executor.broken = True

    record = await runner.run("hello")

    assert record.status_code == StatusCode.WHISK_ERROR
    assert record.response.result == {"error": "An internal error occurred."}
    assert keys(record) == ["path", "waitTime"]
    assert runner.pool.instances() == [] and runner.pool.used_mb == 0


async def test_init_gets_init_parameters_and_the_ow_environment_and_run_gets_the_content(runner: Runner) -> None:
    runner.actions.add(
        "env",
        parameters=[KeyValue(key="DB", value={"host": "h"}, init=True), KeyValue(key="x", value=1)],
        annotations=[KeyValue(key="provide-api-key", value=False)],
    )

    sent = message("env", {"a": 1})
    await runner.runner.run(sent)

    (init,) = runner.executor.init_requests
    (run,) = runner.executor.run_requests
    assert init.env["DB"] == '{"host":"h"}' and "x" not in init.env
    assert init.env["__OW_ACTIVATION_ID"] == sent.activationId
    assert init.env["__OW_ACTION_NAME"] == "/guest/env"
    assert "__OW_API_KEY" not in init.env, "provide-api-key false keeps the key out"
    assert run.value == {"a": 1} and run.api_key is None


async def test_the_record_is_cut_to_the_record_bound() -> None:
    made = make_runner(max_record_bytes=20_000)
    made.actions.add("hello")
    try:
        record = await made.run("hello", {"big": "x" * 30_000})
    finally:
        await made.pool.close()

    assert record.status_code == StatusCode.APPLICATION_ERROR
    assert "exceeded the allowed length" in record.response.result["error"]


async def test_an_unavailable_store_is_waited_for_until_the_invoker_closes(
    runner: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(proxy_module, "backoff_s", lambda attempt: 0.0)
    runner.actions.add("hello")
    runner.actions.down = True
    runner.closing.value = True

    with pytest.raises(StoreUnavailable):
        await runner.run("hello")

    assert runner.actions.reads == 4, "three retries, then the message is left for redelivery"
    assert runner.executor.init_requests == []


def test_backoff_grows_from_a_fifth_of_a_second_and_stops_at_five() -> None:
    assert 0.1 <= proxy_module.backoff_s(1) <= 0.2
    assert 2.5 <= proxy_module.backoff_s(20) <= 5.0


# concurrency: never above limits.concurrency on one instance ----------------------------------------


class StorePerRunExecutor(RecordingExecutor):
    """A ``ConcurrentExecutor`` (every run its own memory, as WASM) that would take 2 runs per instance."""

    max_runs_per_instance = 2


async def _simultaneously(made: Runner, name: str, count: int) -> list[Activation]:
    return list(await asyncio.gather(*(made.run(name) for _ in range(count))))


@pytest.mark.parametrize(
    ("concurrency", "instances"),
    [(1, 3), (3, 2)],  # 3 asked, the executor's bound of 2 wins: two instances for three runs
)
async def test_simultaneous_runs_share_an_instance_only_up_to_the_actions_concurrency(
    concurrency: int, instances: int
) -> None:
    made = make_runner(executor=StorePerRunExecutor())
    made.actions.add("nap", code="slow:100", limits=Limits(concurrency=concurrency))
    try:
        records = await _simultaneously(made, "nap", 3)
    finally:
        await made.pool.close()

    assert all(r.status_code == StatusCode.SUCCESS for r in records)
    assert len(set(made.executor.runs)) == instances
    assert len(made.executor.inits) == instances


async def test_runs_beyond_the_memory_budget_wait_for_it_and_all_complete() -> None:
    made = make_runner(executor=StorePerRunExecutor())  # 1024 MB: four 256 MB runs at once
    made.actions.add("nap", code="slow:50", limits=Limits(concurrency=2))
    peak = 0

    async def watch() -> None:
        nonlocal peak
        while True:
            peak = max(peak, made.pool.used_mb)
            await asyncio.sleep(0.001)

    watcher = asyncio.create_task(watch())
    try:
        records = await _simultaneously(made, "nap", 12)
    finally:
        watcher.cancel()
        await made.pool.close()

    assert [r.status_code for r in records] == [StatusCode.SUCCESS] * 12
    assert peak <= 1024
    assert max(r.annotation("waitTime") for r in records) >= 50, "the later runs waited for a release"


# the action cache: bounded by bytes -----------------------------------------------------------------


def _sized(name: str, code_bytes: int) -> Action:
    return Action(namespace="guest", name=name, exec=Exec(kind="script:1", code="e" * code_bytes))


def test_the_action_cache_evicts_least_recently_used_by_bytes() -> None:
    cache = proxy_module.ActionCache(max_bytes=100_000)
    for i in range(5):
        assert cache.put(("guest", f"a{i}", "1"), _sized(f"a{i}", 20_000))
    assert len(cache) == 4, "five 21 KB entries do not fit in 100 KB"
    assert cache.get(("guest", "a0", "1")) is None
    assert cache.get(("guest", "a1", "1")) is not None  # a1 is now the most recently used

    cache.put(("guest", "a5", "1"), _sized("a5", 20_000))

    assert cache.get(("guest", "a2", "1")) is None
    assert cache.get(("guest", "a1", "1")) is not None
    assert cache.bytes <= cache.max_bytes


def test_an_action_over_half_the_cache_is_not_kept_and_evicts_nothing() -> None:
    cache = proxy_module.ActionCache(max_bytes=100_000)
    cache.put(("guest", "small", "1"), _sized("small", 10_000))

    assert cache.put(("guest", "huge", "1"), _sized("huge", 60_000)) is False

    assert cache.get(("guest", "huge", "1")) is None
    assert cache.get(("guest", "small", "1")) is not None


def test_an_actions_size_counts_its_code_parameters_and_non_ascii_text() -> None:
    plain = _sized("plain", 1000)
    wide = Action(namespace="guest", name="wide", exec=Exec(kind="script:1", code="\U0001f600" * 1000))
    with_params = Action(
        namespace="guest",
        name="p",
        exec=Exec(kind="script:1", code="e" * 1000),
        parameters=[KeyValue(key="blob", value="x" * 50_000)],
    )

    many_objects = Action(
        namespace="guest",
        name="objects",
        exec=Exec(kind="script:1", code="e"),
        parameters=[KeyValue(key="blob", value=[{} for _ in range(10_000)])],
    )

    assert 1000 <= proxy_module.action_size(plain) < 1300
    assert proxy_module.action_size(wide) >= 4000
    assert proxy_module.action_size(with_params) >= 51_000
    # 30 KB of JSON, but 10,000 dicts of 64 bytes and a list of 80 KB in memory.
    assert proxy_module.action_size(many_objects) >= 10_000 * 64 + 80_000


async def test_the_runner_reads_an_uncacheable_action_every_time_and_keeps_the_others() -> None:
    made = make_runner(action_cache_bytes=100_000)
    made.actions.add("small", code="s" * 1000)
    made.actions.add("huge", code="h" * 60_000)
    try:
        for _ in range(3):
            await made.run("small")
            await made.run("huge")
    finally:
        await made.pool.close()

    assert made.actions.reads == 1 + 3, "small once, huge on every activation"


@pytest.mark.parametrize(("network", "takes_the_stem_cell"), [(None, True), (False, False)])
async def test_an_action_annotated_network_false_is_never_given_a_stem_cell(
    runner: Runner, network: bool | None, takes_the_stem_cell: bool
) -> None:
    # A stem cell is started before its action is known, with the executor's default network (Docker: a
    # bridge), so an action that asked for none (the crun-direct engine's `network: false`) must get its own.
    runner.pool.prewarm(StemCells(runner.executor, "script:1", 256, 1))
    deadline = time.monotonic() + 5
    while not any(cell.created for cell in runner.pool.stem_cells()):
        assert time.monotonic() < deadline, "the stem cell was never created"
        await asyncio.sleep(0.005)
    cell = runner.pool.stem_cells()[0]
    annotations = [] if network is None else [KeyValue(key="network", value=network)]
    runner.actions.add("private", annotations=annotations, limits=Limits(memory=256))

    record = await runner.run("private")

    assert record.response.statusCode == StatusCode.SUCCESS
    taken = cell not in runner.pool.stem_cells()
    assert taken is takes_the_stem_cell
    assert any(instance is cell for instance in runner.pool.instances()) is takes_the_stem_cell
