"""Invoker health is about the invoker, not the workload (controller/invokers.py, issue 12).

Played as an attacker would: one namespace (or two) produces whatever still ends in a whisk error,
as fast as it likes, while another namespace uses the same invoker. The clock is the module's
``time.monotonic``, moved by hand, so nothing here waits.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import controller.invokers as invokers_module
from controller.invokers import (
    MAX_SYSTEM_ERRORS,
    OUTCOME_WINDOW,
    PROOF_OF_LIFE_S,
    TRACKED_NAMESPACES,
    UNHEALTHY_COOL_DOWN_S,
    Invokers,
)
from controller.loadbalancer import LoadBalancer
from pywhisk.activation import new_activation_id
from pywhisk.bus.memory import MemoryBus
from pywhisk.entities import Action, Exec
from pywhisk.errors import ServiceUnavailable
from pywhisk.identity import AuthKey, Identity, Namespace
from pywhisk.messages import (
    HEALTH_TOPIC,
    ActionRef,
    ActivationMessage,
    CompletionMessage,
    ControllerInstance,
    InvokerInstance,
    PingMessage,
    completed_topic,
)
from pywhisk.settings import Settings
from pywhisk.store.sqlite import SqliteStore

pytestmark = pytest.mark.unit


class Clock:
    """``time.monotonic`` of controller/invokers.py, under the test's control."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    made = Clock()
    monkeypatch.setattr(invokers_module.time, "monotonic", made)
    return made


def cluster(clock: Clock, size: int = 1) -> Invokers:
    invokers = Invokers(controllers=1, offline_after_s=1e9)
    for index in range(size):
        invokers.on_ping(PingMessage(name=InvokerInstance(instance=index, userMemory="4096 MB")))
    return invokers


def fail(invokers: Invokers, namespace: str, times: int = 1, invoker: int = 0) -> None:
    for _ in range(times):
        invokers.release(invoker, 0, system_error=True, namespace=namespace)


def succeed(invokers: Invokers, namespace: str, invoker: int = 0) -> None:
    invokers.release(invoker, 0, system_error=False, namespace=namespace)


def test_one_namespace_spamming_whisk_errors_never_cuts_another_off_the_only_invoker(clock: Clock) -> None:
    invokers = cluster(clock)

    for round_ in range(50):  # far more than a window, with nothing else succeeding in between
        fail(invokers, "attacker", 5)
        clock.now += 0.5
        assert invokers.statuses() == {0: "up"}, f"round {round_}"
        assert invokers.choose("victim", "/victim/hello", 128) == 0

    with pytest.raises(ServiceUnavailable):
        invokers.choose("attacker", "/attacker/broken", 128)


def test_the_erring_namespace_is_quarantined_alone_after_more_than_three_of_its_last_ten(clock: Clock) -> None:
    invokers = cluster(clock)
    fail(invokers, "attacker", 3)
    assert invokers.choose("attacker", "/attacker/a", 128) == 0, "three of its own are tolerated"

    fail(invokers, "attacker")

    with pytest.raises(ServiceUnavailable):
        invokers.choose("attacker", "/attacker/a", 128)
    assert invokers.choose("victim", "/victim/hello", 128) == 0
    clock.now += UNHEALTHY_COOL_DOWN_S
    assert invokers.choose("attacker", "/attacker/a", 128) == 0, "after the cool-down, with a clean record"
    fail(invokers, "attacker", 3)
    assert invokers.choose("attacker", "/attacker/a", 128) == 0


def test_a_quarantined_namespace_goes_to_the_next_invoker_of_its_probe_order(clock: Clock) -> None:
    invokers = cluster(clock, size=3)
    home = invokers.choose("attacker", "/attacker/a", 1)

    fail(invokers, "attacker", 4, invoker=home)

    elsewhere = invokers.choose("attacker", "/attacker/a", 1)
    assert elsewhere != home
    assert invokers.statuses() == {0: "up", 1: "up", 2: "up"}


def test_the_namespaces_own_good_outcome_ends_its_quarantine(clock: Clock) -> None:
    invokers = cluster(clock)
    fail(invokers, "mixed", 4)

    succeed(invokers, "mixed")  # one of its activations still in flight ended well

    assert invokers.choose("mixed", "/mixed/a", 128) == 0


def test_errors_from_two_namespaces_with_nothing_succeeding_are_the_invokers_fault(clock: Clock) -> None:
    invokers = cluster(clock)
    fail(invokers, "first", 2)
    fail(invokers, "second", 2)

    assert invokers.statuses() == {0: "unhealthy"}
    with pytest.raises(ServiceUnavailable):
        invokers.choose("third", "/third/hello", 128)
    clock.now += UNHEALTHY_COOL_DOWN_S
    assert invokers.statuses() == {0: "up"}


def test_two_colluding_namespaces_cannot_make_an_invoker_unhealthy_while_another_namespace_succeeds_on_it(
    clock: Clock,
) -> None:
    invokers = cluster(clock)
    for _ in range(100):
        succeed(invokers, "victim")
        clock.now += 1.0  # the victim's hello every second, well inside the proof-of-life window
        fail(invokers, "attacker-1", OUTCOME_WINDOW)
        fail(invokers, "attacker-2", OUTCOME_WINDOW)
        assert invokers.statuses() == {0: "up"}
        assert invokers.choose("victim", "/victim/hello", 128) == 0


def test_a_good_outcome_ends_an_unhealthy_spell_at_once(clock: Clock) -> None:
    invokers = cluster(clock)
    fail(invokers, "first", 2)
    fail(invokers, "second", 2)
    assert invokers.statuses() == {0: "unhealthy"}

    succeed(invokers, "third")  # in flight when the invoker was judged: it works after all

    assert invokers.statuses() == {0: "up"}
    fail(invokers, "first")
    assert invokers.statuses() == {0: "up"}, "the record was cleaned"


def test_a_good_outcome_long_ago_is_no_proof_of_life(clock: Clock) -> None:
    invokers = cluster(clock)
    succeed(invokers, "victim")
    clock.now += PROOF_OF_LIFE_S + 1

    fail(invokers, "first", 2)
    fail(invokers, "second", 2)

    assert invokers.statuses() == {0: "unhealthy"}


def test_developer_and_application_errors_never_count(clock: Clock) -> None:
    invokers = cluster(clock)
    for namespace in ("a", "b", "c"):
        for _ in range(OUTCOME_WINDOW):
            invokers.release(0, 0, system_error=False, namespace=namespace)
            invokers.release(0, 0, system_error=None, namespace=namespace)  # never sent: unknown

    assert invokers.statuses() == {0: "up"}
    assert all(invokers.choose(ns, f"/{ns}/x", 1) == 0 for ns in ("a", "b", "c"))


def test_a_flood_of_namespaces_is_remembered_only_up_to_the_bound(clock: Clock) -> None:
    invokers = cluster(clock)
    for index in range(TRACKED_NAMESPACES + 500):
        fail(invokers, f"ns-{index}", 4)
        succeed(invokers, "victim")  # someone keeps it alive, so only namespaces are at stake

    state = invokers._states[0]
    assert len(state.by_namespace) <= TRACKED_NAMESPACES
    assert len(state.quarantined) <= TRACKED_NAMESPACES
    assert invokers.choose("victim", "/victim/hello", 128) == 0


# through the balancer: completions from the bus --------------------------------------------------


def identity(namespace: str) -> Identity:
    return Identity(
        subject=namespace,
        namespace=Namespace(name=namespace, uuid=f"{namespace}-uuid"),
        authkey=AuthKey(uuid=f"{namespace}-uuid", key="k" * 64),
    )


def message(namespace: str, blocking: bool = False) -> ActivationMessage:
    return ActivationMessage(
        transid=["tid", 1_700_000_000_000.0],
        action=ActionRef(path=namespace, name="a", version="0.0.1"),
        user=identity(namespace),
        activationId=new_activation_id(),
        rootControllerIndex=ControllerInstance(asString="0"),
        blocking=blocking,
    )


@pytest.fixture
async def balancer(tmp_path: Path) -> AsyncIterator[tuple[MemoryBus, LoadBalancer]]:
    bus = MemoryBus()
    await bus.start()
    store = SqliteStore(tmp_path / "store.sqlite3")
    await store.start()
    balancer = LoadBalancer(bus, store, Settings(data_dir=tmp_path, controller_id=0))
    await balancer.start()
    ping = PingMessage(name=InvokerInstance(instance=0, userMemory="4096 MB"))
    await bus.send(HEALTH_TOPIC, ping.serialize())
    assert await balancer.wait_for_invoker(5.0)
    yield bus, balancer
    await balancer.close()
    await store.close()
    await bus.close()


async def test_system_error_completions_of_one_namespace_leave_the_invoker_to_the_others(
    balancer: tuple[MemoryBus, LoadBalancer],
) -> None:
    bus, lb = balancer
    broken = Action(namespace="attacker", name="a", exec=Exec(kind="blackbox", image="absent/image"))
    for _ in range(MAX_SYSTEM_ERRORS + 1):
        sent = message("attacker", blocking=True)
        await lb.publish(sent, broken)
        ack = CompletionMessage(
            transid=sent.transid,
            activationId=sent.activationId,
            isSystemError=True,
            instance=InvokerInstance(instance=0),
        )
        await bus.send(completed_topic(0), ack.serialize())
        await lb.wait(sent.activationId, 5.0)  # resolved once the completion is counted
        assert lb.completed(sent.activationId)

    victim = Action(namespace="victim", name="a", exec=Exec(kind="wasm:wasi", code="AA==", binary=True))
    await lb.publish(message("victim"), victim)
    assert lb.invokers.statuses() == {0: "up"}
    with pytest.raises(ServiceUnavailable):
        await lb.publish(message("attacker"), broken)
