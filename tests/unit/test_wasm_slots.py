"""The WASM executor's compute slots, shared fairly between namespaces (executor_wasm/slots.py, issue 12).

The policy (:class:`SlotPolicy`) is driven directly: no threads, no clock. :class:`ComputeSlots` is driven
from worker threads that wait on conditions with a deadline, never on sleeps.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from executor_wasm.settings import WasmSettings
from executor_wasm.sleeps import DeadlinePassed, host_sleep, run_deadline
from executor_wasm.slots import ComputeSlots, SlotPolicy, SlotsClosed, Waiter, current_slots, effective_reserve

pytestmark = pytest.mark.unit

WAIT_S = 10.0  # the deadline of every condition waited on here


def ask(policy: SlotPolicy, namespace: str) -> tuple[Waiter, list[Waiter]]:
    waiter = Waiter(namespace)
    return waiter, policy.request(waiter)


def names(granted: list[Waiter]) -> list[str]:
    return [w.namespace for w in granted]


# the policy ----------------------------------------------------------------------------------------


def test_a_lone_namespace_uses_every_slot_but_the_reserve() -> None:
    policy = SlotPolicy(8, reserve=1)

    granted = [w for _ in range(10) for w in ask(policy, "a")[1]]

    assert len(granted) == 7
    assert policy.held == {"a": 7} and policy.free == 1 and policy.waiting("a") == 3


def test_a_namespace_holding_nothing_takes_the_reserve_at_once() -> None:
    # Worked example of slots.py: A runs 7 loops with 22 queued; B's hello starts at once.
    policy = SlotPolicy(8, reserve=1)
    for _ in range(29):
        ask(policy, "a")

    hello, granted = ask(policy, "b")

    assert granted == [hello] and hello.granted
    assert policy.held == {"a": 7, "b": 1} and policy.free == 0


def test_a_freed_slot_goes_to_the_waiting_namespace_holding_fewest_not_to_the_longest_queue() -> None:
    policy = SlotPolicy(4, reserve=0)
    for _ in range(10):
        ask(policy, "a")  # 4 run, 6 wait
    hello, granted = ask(policy, "b")
    assert granted == [] and policy.waiting("b") == 1

    assert policy.release("a") == [hello]  # b holds 0 slots, a 3
    assert names(policy.release("a")) == ["a"]  # nobody else waits: a's queue moves on


def test_ties_go_to_the_namespace_whose_head_came_first() -> None:
    policy = SlotPolicy(4, reserve=0)
    for namespace in "aabb":
        ask(policy, namespace)  # a and b hold 2 each
    later_a, _ = ask(policy, "a")
    first_b, _ = ask(policy, "b")  # b asked after a's head...
    first_c, _ = ask(policy, "c")

    assert policy.release("a") == [first_c]  # ...but c holds nothing
    assert policy.release("b") == [later_a]  # a (1 held, asked first) before b (1 held)
    assert policy.release("c") == [first_b]


def test_a_namespace_queue_is_first_come_first_served() -> None:
    policy = SlotPolicy(1)
    ask(policy, "a")
    queued = [ask(policy, "a")[0] for _ in range(3)]

    order = [w for _ in range(3) for w in policy.release("a")]

    assert order == queued


def test_namespaces_already_holding_slots_never_take_the_reserve() -> None:
    policy = SlotPolicy(8, reserve=2)
    for namespace in "aaaaaabc":  # a fills what is not reserved, b and c take the reserve
        ask(policy, namespace)
    assert policy.held == {"a": 6, "b": 1, "c": 1} and policy.free == 0
    more_b, _ = ask(policy, "b")
    policy.release("c")  # one slot free, b holds one: it is reserved

    assert not more_b.granted and policy.free == 1
    d, granted = ask(policy, "d")
    assert granted == [d]
    assert names(policy.release("a")) == []  # 1 free: reserved
    assert names(policy.release("a")) == []  # 2 free: still reserved, b holds a slot
    assert names(policy.release("a")) == ["b"]  # 3 free: b may take one, 2 stay reserved


def test_a_withdrawn_waiter_is_never_granted() -> None:
    policy = SlotPolicy(1)
    ask(policy, "a")
    gone, _ = ask(policy, "b")
    stays, _ = ask(policy, "c")

    assert policy.withdraw(gone) and gone.withdrawn
    assert policy.release("a") == [stays]
    assert not gone.granted and policy.waiting() == 0


def test_withdrawing_a_granted_waiter_tells_the_caller_to_release_it() -> None:
    policy = SlotPolicy(1)
    waiter, _ = ask(policy, "a")

    assert not policy.withdraw(waiter)
    assert policy.held == {"a": 1}


def test_releasing_a_slot_not_held_is_a_bug() -> None:
    with pytest.raises(RuntimeError, match="holds no compute slot"):
        SlotPolicy(2).release("a")


@pytest.mark.parametrize(
    ("threads", "reserve", "effective"),
    [(8, 1, 1), (8, 5, 2), (3, 1, 0), (1, 1, 0), (16, 0, 0), (16, 4, 4)],
)
def test_the_reserve_is_at_most_a_quarter_of_the_slots(threads: int, reserve: int, effective: int) -> None:
    assert effective_reserve(threads, reserve) == effective


def test_the_reserve_setting_defaults_to_one_slot(monkeypatch: pytest.MonkeyPatch) -> None:
    assert WasmSettings().threads_reserve == 1
    monkeypatch.setenv("PYWHISK_WASM_THREADS_RESERVE", "3")
    assert WasmSettings().threads_reserve == 3


# ComputeSlots on worker threads ------------------------------------------------------------------


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.001)  # polling a condition, not synchronising on time


@pytest.fixture
def workers() -> Iterator[ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(max_workers=16)
    yield pool
    pool.shutdown(wait=True, cancel_futures=True)


def hold(slots: ComputeSlots, namespace: str, release: threading.Event, waiter: Waiter | None = None) -> str:
    with slots.held(namespace, waiter):
        assert current_slots() is slots
        assert release.wait(WAIT_S)
    return namespace


def test_a_namespace_holding_nothing_runs_while_another_fills_the_slots(workers: ThreadPoolExecutor) -> None:
    slots, release = ComputeSlots(4, reserve=1), threading.Event()
    busy = [workers.submit(hold, slots, "a", release) for _ in range(6)]
    wait_until(lambda: slots.holding("a") == 3 and slots.waiting("a") == 3, "a to hold 3 slots and queue 3")

    def hello() -> int:
        with slots.held("b"):  # takes the reserve at once
            return slots.holding("b")

    assert workers.submit(hello).result(WAIT_S) == 1
    assert slots.holding("a") == 3 and slots.waiting("a") == 3  # a's loops still hold their slots
    release.set()
    assert [f.result(WAIT_S) for f in busy] == ["a"] * 6


def test_closing_refuses_the_waiting_jobs(workers: ThreadPoolExecutor) -> None:
    slots, release = ComputeSlots(1), threading.Event()
    running = workers.submit(hold, slots, "a", release)
    wait_until(lambda: slots.holding("a") == 1, "a to hold the slot")
    waiting = workers.submit(hold, slots, "b", release)
    wait_until(lambda: slots.waiting("b") == 1, "b to wait")

    slots.close()

    with pytest.raises(SlotsClosed):
        waiting.result(WAIT_S)
    release.set()
    assert running.result(WAIT_S) == "a"
    with pytest.raises(SlotsClosed), slots.held("c"):
        pass
    slots.open()
    with slots.held("c"):
        assert slots.holding("c") == 1


def test_a_withdrawn_job_never_runs(workers: ThreadPoolExecutor) -> None:
    slots, release = ComputeSlots(1), threading.Event()
    running = workers.submit(hold, slots, "a", release)
    wait_until(lambda: slots.holding("a") == 1, "a to hold the slot")
    waiter = Waiter("b")
    waiting: Future[str] = workers.submit(hold, slots, "b", release, waiter)
    wait_until(lambda: slots.waiting("b") == 1, "b to wait")

    slots.withdraw(waiter)

    with pytest.raises(SlotsClosed):
        waiting.result(WAIT_S)
    release.set()
    running.result(WAIT_S)
    assert slots.holding("a") == slots.holding("b") == slots.waiting() == 0


def test_a_sleeping_guest_gives_its_slot_and_retakes_it_in_turn(workers: ThreadPoolExecutor) -> None:
    slots, go, b_ran = ComputeSlots(1), threading.Event(), threading.Event()

    def sleeper() -> tuple[bool, int]:
        with slots.held("a"), run_deadline(WAIT_S):
            assert go.wait(WAIT_S)
            host_sleep(0.001)  # gives the only slot to b (waiting), then waits in turn for it
            return b_ran.is_set(), slots.holding("a")

    def other() -> None:
        with slots.held("b"):
            b_ran.set()

    asleep = workers.submit(sleeper)
    wait_until(lambda: slots.holding("a") == 1, "a to hold the slot")
    b = workers.submit(other)
    wait_until(lambda: slots.waiting("b") == 1, "b to wait")
    go.set()

    assert asleep.result(WAIT_S) == (True, 1)  # b ran while a slept; a woke holding a slot again
    b.result(WAIT_S)
    assert slots.holding("a") == slots.holding("b") == 0


def test_a_sleeper_whose_deadline_passes_waiting_for_a_slot_stops_without_one(workers: ThreadPoolExecutor) -> None:
    slots, go, release = ComputeSlots(1), threading.Event(), threading.Event()

    def sleeper() -> bool:
        with slots.held("a"):
            assert go.wait(WAIT_S)
            with run_deadline(0.05):
                try:
                    host_sleep(0.001)  # b takes the slot and keeps it past the deadline
                except DeadlinePassed:
                    return slots.holding("a") == 0  # stopped without retaking a slot
            return False

    asleep = workers.submit(sleeper)
    wait_until(lambda: slots.holding("a") == 1, "a to hold the slot")
    busy = workers.submit(hold, slots, "b", release)
    wait_until(lambda: slots.waiting("b") == 1, "b to wait")
    go.set()

    assert asleep.result(WAIT_S)
    release.set()
    busy.result(WAIT_S)
    assert slots.holding("a") == slots.holding("b") == 0
