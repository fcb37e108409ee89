"""Faults are attributed (issue 12): what the invoker records as the action's fault and what as its own.

OpenWhisk's classification, cited where it is implemented (invoker/proxy.py, invoker/results.py):
InvokerReactive.handleActivationMessage for the action that cannot be read, ContainerProxy for an
instance that cannot start. Only a whisk error is a system error, the one thing that counts against
an invoker's health (controller/invokers.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from invoker.results import ACTION_FETCH_ERROR, ACTION_MISMATCH, ACTION_REMOVED, RESOURCE_PROVISION_ERROR
from pywhisk.activation import StatusCode
from pywhisk.entities import Action
from pywhisk.errors import ActionStartupError, ExecutorError
from pywhisk.executor import InstanceSpec
from pywhisk.settings import Settings
from pywhisk.store.sqlite import SqliteStore
from tests.doubles import ScriptedExecutor
from tests.inprocess import InProcessWhisk, in_process_whisk
from tests.unit.test_proxy import Actions, Runner, keys, make_runner, message

pytestmark = pytest.mark.unit

PULL_ERROR = "Failed to pull container image 'nobody/absent:1'."


class FailingCreate(ScriptedExecutor):
    """The ScriptedExecutor whose ``create`` fails as the annotation ``create`` of the action says:
    ``"no-image"`` (the action's fault) or ``"dockerd-gone"`` (the platform's)."""

    async def create(self, spec: InstanceSpec) -> None:
        failure = spec.annotations.get("create")
        if failure == "no-image":
            raise ActionStartupError(PULL_ERROR)
        if failure == "dockerd-gone":
            raise ExecutorError("the docker executor failed: ConnectionRefusedError()")
        await super().create(spec)


class ReadFails(Actions):
    """The entity store whose read of the action raises ``error``."""

    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    async def get_action(self, namespace: str, name: str) -> Action | None:
        raise self.error


@pytest.fixture
async def runner() -> AsyncIterator[Runner]:
    made = make_runner()
    yield made
    await made.pool.close()


def unreadable() -> ValidationError:
    try:
        Action.model_validate({"namespace": "guest", "name": "x", "exec": {"no": "kind"}})
    except ValidationError as error:
        return error
    raise AssertionError("the document was readable")


# the action, read by the invoker ----------------------------------------------------------------


async def test_an_action_deleted_before_the_invoker_read_it_is_an_application_error(runner: Runner) -> None:
    record = await runner.run("deleted-meanwhile")

    assert record.status_code == StatusCode.APPLICATION_ERROR
    assert record.response.result == {"error": ACTION_REMOVED}
    assert ACTION_REMOVED == "Action could not be found or may have been deleted."
    assert keys(record) == ["path", "waitTime"]
    assert runner.pool.instances() == []


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (unreadable(), "Action version is not compatible and cannot be invoked."),
        (RuntimeError("a bug in a store backend"), "Action could not be fetched."),
    ],
)
async def test_an_action_the_store_cannot_give_is_a_whisk_error(error: Exception, expected: str) -> None:
    made = make_runner()
    made.runner._store = ReadFails(error)  # type: ignore[assignment]
    try:
        record = await made.run("hello")
    finally:
        await made.pool.close()

    assert record.status_code == StatusCode.WHISK_ERROR
    assert record.response.result == {"error": expected}
    assert expected in (ACTION_MISMATCH, ACTION_FETCH_ERROR)


async def test_an_action_changed_since_the_controller_read_it_runs_its_latest_revision(runner: Runner) -> None:
    """[OW] InvokerReactive: DocumentRevisionMismatchException → try again with the latest code."""
    runner.actions.add("changing", code="echo")
    sent = message("changing", {"v": 2}).model_copy(update={"revision": "1-stale"})

    record = await runner.runner.run(sent)

    assert record.status_code == StatusCode.SUCCESS
    assert record.response.result == {"v": 2}


# the instance, provisioned by the executor ------------------------------------------------------


async def test_an_instance_the_action_makes_impossible_is_a_developer_error_with_the_executors_words() -> None:
    made = make_runner()
    made.runner._executors = {"wasm": FailingCreate()}
    made.actions.add("no-image", annotations=[{"key": "create", "value": "no-image"}])
    try:
        record = await made.run("no-image")
    finally:
        await made.pool.close()

    assert record.status_code == StatusCode.DEVELOPER_ERROR
    assert record.response.result == {"error": PULL_ERROR}
    assert made.pool.instances() == [] and made.pool.used_mb == 0


async def test_an_instance_the_platform_cannot_provision_is_a_whisk_error() -> None:
    made = make_runner()
    made.runner._executors = {"wasm": FailingCreate()}
    made.actions.add("unlucky", annotations=[{"key": "create", "value": "dockerd-gone"}])
    try:
        record = await made.run("unlucky")
    finally:
        await made.pool.close()

    assert record.status_code == StatusCode.WHISK_ERROR
    assert record.response.result == {"error": RESOURCE_PROVISION_ERROR}
    assert made.pool.instances() == [] and made.pool.used_mb == 0


# through the platform: the completion's system-error flag and the invoker's health ---------------


@pytest.fixture
async def whisk(tmp_path: Path) -> AsyncIterator[InProcessWhisk[SqliteStore, FailingCreate]]:
    settings = Settings(data_dir=tmp_path)
    async with in_process_whisk(settings, SqliteStore(settings.store_path), FailingCreate()) as running:
        yield running


async def test_a_flood_of_missing_images_is_recorded_as_developer_errors_and_the_invoker_stays_up(
    whisk: InProcessWhisk[SqliteStore, FailingCreate],
) -> None:
    await whisk.create("no-image", annotations=[{"key": "create", "value": "no-image"}])
    await whisk.create("hello")

    for _ in range(20):  # OpenWhisk's rule would turn the invoker unhealthy at the 4th whisk error
        response = await whisk.invoke("no-image")
        assert response.status_code == 502, response.text
        assert response.json()["response"]["status"] == "action developer error"
        assert response.json()["response"]["result"] == {"error": PULL_ERROR}

    hello = await whisk.invoke("hello", {"name": "Ada"})
    assert hello.status_code == 200, hello.text
    assert whisk.app.state.balancer.invokers.statuses() == {0: "up"}


async def test_a_deleted_action_raced_by_its_invokes_never_cuts_the_namespace_off(
    whisk: InProcessWhisk[SqliteStore, FailingCreate],
) -> None:
    """The controller read the action, then it was deleted before the invoker did: an application
    error every time, and the invoker takes the next activation (the record is the message's)."""
    store = whisk.store
    real_get = store.get_action

    async def read_then_deleted(namespace: str, name: str) -> Action | None:
        # The controller's read finds the action; the delete (through the controller, as the API's, so its
        # entity cache hears of it) lands before the invoker's read.
        found = await real_get(namespace, name)
        if name == "racy" and found is not None:
            await whisk.app.state.entities.delete_action(namespace, name)
        return found

    for round_ in range(6):
        await whisk.create("racy")
        store.get_action = read_then_deleted  # type: ignore[method-assign]
        try:
            response = await whisk.invoke("racy")
        finally:
            store.get_action = real_get  # type: ignore[method-assign]
        assert response.status_code == 502, f"round {round_}: {response.text}"
        assert response.json()["response"]["status"] == "application error"
        assert response.json()["response"]["result"] == {"error": ACTION_REMOVED}

    await whisk.create("hello")
    assert (await whisk.invoke("hello")).status_code == 200
    assert whisk.app.state.balancer.invokers.statuses() == {0: "up"}
