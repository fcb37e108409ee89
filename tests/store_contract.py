"""The Store contract: what every backend does alike, written once and run against each backend.

A backend's test module defines a ``store`` fixture (a started, empty store, closed afterwards) and subclasses
``StoreContract`` (``class TestSqliteStoreContract(StoreContract)``): every test of the class then runs against
that backend, so a test added here runs everywhere without touching the backends' modules. Behaviour only one
backend has (files, databases, credentials, batching, outages) stays in that backend's module.
"""

from __future__ import annotations

import asyncio
import tracemalloc
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from pywhisk.activation import Activation, ActivationResponse, StatusCode
from pywhisk.entities import (
    Action,
    Binding,
    EntityRef,
    Exec,
    KeyValue,
    Limits,
    Package,
    PackageSummary,
    ReducedRule,
    Rule,
    Trigger,
)
from pywhisk.errors import ConcurrentModification, Conflict
from pywhisk.identity import (
    GUEST_KEY,
    GUEST_UUID,
    NamespaceLimits,
    Subject,
    SubjectNamespace,
    guest_subject,
    hash_key,
    verify_key,
)
from pywhisk.schedules import Schedule, ScheduleStatus
from pywhisk.store import ActionSummary, ActivationQuery, ActivationSummary, Store


def make_action(name: str = "hello", namespace: str = "guest", updated: int = 1_000, **fields: object) -> Action:
    """An action with a small WASM exec; ``fields`` override any other field."""
    return Action.model_validate(
        {
            "namespace": namespace,
            "name": name,
            "exec": Exec(kind="wasm:wasi", code="ZWNobw==", binary=True),
            "updated": updated,
            **fields,
        }
    )


def make_schedule(name: str, next_fire_ms: int | None = 1_000, active: bool = True) -> Schedule:
    """An ``interval`` alarm schedule of trigger ``guest/name``."""
    return Schedule(
        namespace="guest",
        name=name,
        subject="guest",
        kind="interval",
        minutes=1,
        startDate=next_fire_ms,
        payload={"n": 1},
        status=ScheduleStatus(active=active, dateChanged=1),
        next_fire_ms=next_fire_ms,
    )


def make_activation(
    activation_id: str, start: int, name: str = "hello", namespace: str = "guest", result: object = None
) -> Activation:
    """A successful 5 ms record starting at ``start``, with one log line."""
    return Activation(
        activationId=activation_id,
        namespace=namespace,
        name=name,
        subject=namespace,
        start=start,
        end=start + 5,
        duration=5,
        response=ActivationResponse.of(StatusCode.SUCCESS, result if result is not None else {"n": start}),
        logs=[f"line {start}"],
        annotations=[KeyValue(key="path", value=f"{namespace}/{name}")],
    )


def record_id(n: int) -> str:
    """The 32-hex-digit activation id numbered ``n``."""
    return f"{n:032x}"


def make_subject(name: str, *namespaces: tuple[str, str]) -> Subject:
    """A subject with a key (hashed) for each ``(namespace, uuid)``."""
    return Subject(
        subject=name,
        namespaces=[SubjectNamespace(name=ns, uuid=uuid, key_hash=hash_key("k" * 64)) for ns, uuid in namespaces],
    )


async def starts(store: Store, **query: object) -> list[int]:
    """The ``start`` of each record ``list_activations`` finds in ``guest`` with ``query``, in its order."""
    return [
        a.start for a in await store.list_activations(ActivationQuery.model_validate({"namespace": "guest", **query}))
    ]


async def peak_bytes_allocated(call: Callable[[], Awaitable[Any]]) -> tuple[Any, int]:
    """``call()``'s result and the peak of Python memory allocated while it ran (tracemalloc)."""
    tracemalloc.start()
    try:
        result = await call()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak


ADA_1 = "11111111-0000-4000-8000-000000000001"
ADA_2 = "11111111-0000-4000-8000-000000000002"
GRACE = "11111111-0000-4000-8000-000000000003"


class StoreContract:
    """The tests every ``Store`` backend passes; subclass with a ``store`` fixture in scope."""

    @pytest.fixture
    async def history(self, store: Store) -> Store:
        """Ten records of two actions (hello at even starts, other at odd), plus one in each of two other
        namespaces, one of them a prefix-extension of ``guest``."""
        for n in range(10):
            await store.put_activation(
                make_activation(record_id(n), start=1000 + n * 100, name="hello" if n % 2 == 0 else "other")
            )
        await store.put_activation(make_activation(record_id(99), start=5000, namespace="someone"))
        await store.put_activation(make_activation(record_id(98), start=5000, namespace="guests"))
        return store

    def test_satisfies_the_store_seam(self, store: Store) -> None:
        assert isinstance(store, Store)

    # actions ------------------------------------------------------------------------------------

    async def test_put_then_get_returns_the_action_with_a_revision(self, store: Store) -> None:
        action = make_action(parameters=[KeyValue(key="a", value=1, init=True)], limits=Limits(memory=128))
        stored = await store.put_action(action, expected_rev=None)

        fetched = await store.get_action("guest", "hello")

        assert stored.rev is not None and stored.rev.startswith("1-")
        assert fetched is not None
        assert fetched.rev == stored.rev
        assert fetched.to_api() == action.to_api()

    async def test_get_of_a_missing_action_is_none(self, store: Store) -> None:
        assert await store.get_action("guest", "nope") is None

    async def test_names_with_every_allowed_character_and_package_namespaces_round_trip(self, store: Store) -> None:
        # '/', ' ', '@', '&' and '.' must survive (in CouchDB: as one percent-encoded path segment).
        await store.put_action(make_action(name="a b@c.d&e-f_g", namespace="guest/pkg"), expected_rev=None)
        await store.put_action(make_action(name="pkg", namespace="guest"), expected_rev=None)

        fetched = await store.get_action("guest/pkg", "a b@c.d&e-f_g")

        assert fetched is not None and fetched.name == "a b@c.d&e-f_g" and fetched.namespace == "guest/pkg"
        assert [a.name for a in await store.list_actions("guest/pkg", limit=10, skip=0)] == ["a b@c.d&e-f_g"]
        assert await store.delete_action("guest/pkg", "a b@c.d&e-f_g") is not None

    async def test_create_over_an_existing_action_is_a_conflict(self, store: Store) -> None:
        await store.put_action(make_action(), expected_rev=None)
        with pytest.raises(Conflict) as caught:
            await store.put_action(make_action(version="9.9.9"), expected_rev=None)
        assert not isinstance(caught.value, ConcurrentModification)
        assert caught.value.status_code == 409
        assert caught.value.message == "resource already exists"
        fetched = await store.get_action("guest", "hello")
        assert fetched is not None and fetched.version == "0.0.1"

    async def test_update_with_the_current_revision_bumps_the_generation(self, store: Store) -> None:
        first = await store.put_action(make_action(), expected_rev=None)
        second = await store.put_action(make_action(version="0.0.2"), expected_rev=first.rev)

        fetched = await store.get_action("guest", "hello")
        assert second.rev is not None and second.rev.startswith("2-")
        assert fetched is not None and fetched.rev == second.rev and fetched.version == "0.0.2"

    async def test_update_with_a_stale_revision_is_a_concurrent_modification(self, store: Store) -> None:
        first = await store.put_action(make_action(), expected_rev=None)
        await store.put_action(make_action(version="0.0.2"), expected_rev=first.rev)

        with pytest.raises(ConcurrentModification) as caught:
            await store.put_action(make_action(version="0.0.3"), expected_rev=first.rev)
        assert caught.value.status_code == 409
        assert caught.value.message == "Concurrent modification to resource detected."
        fetched = await store.get_action("guest", "hello")
        assert fetched is not None and fetched.version == "0.0.2"

    async def test_update_with_a_made_up_revision_is_a_concurrent_modification(self, store: Store) -> None:
        with pytest.raises(ConcurrentModification):
            await store.put_action(make_action(), expected_rev="1-00000000000000000000000000000000")
        await store.put_action(make_action(), expected_rev=None)
        with pytest.raises(ConcurrentModification):
            await store.put_action(make_action(), expected_rev="7-00000000000000000000000000000000")

    async def test_update_of_a_deleted_action_is_a_concurrent_modification(self, store: Store) -> None:
        first = await store.put_action(make_action(), expected_rev=None)
        await store.delete_action("guest", "hello")
        with pytest.raises(ConcurrentModification):
            await store.put_action(make_action(), expected_rev=first.rev)

    async def test_concurrent_updates_from_one_revision_let_exactly_one_win(self, store: Store) -> None:
        first = await store.put_action(make_action(), expected_rev=None)

        outcomes = await asyncio.gather(
            *(store.put_action(make_action(version=f"0.0.{n}"), expected_rev=first.rev) for n in range(2, 12)),
            return_exceptions=True,
        )

        winners = [o for o in outcomes if isinstance(o, Action)]
        assert len(winners) == 1
        assert all(isinstance(o, ConcurrentModification) for o in outcomes if o is not winners[0])
        fetched = await store.get_action("guest", "hello")
        assert fetched is not None and fetched.rev == winners[0].rev

    async def test_an_action_can_be_created_again_after_delete(self, store: Store) -> None:
        await store.put_action(make_action(), expected_rev=None)
        await store.delete_action("guest", "hello")

        again = await store.put_action(make_action(version="1.0.0"), expected_rev=None)

        fetched = await store.get_action("guest", "hello")
        assert fetched is not None and fetched.version == "1.0.0" and fetched.rev == again.rev

    async def test_delete_returns_the_action_and_removes_it(self, store: Store) -> None:
        await store.put_action(make_action(), expected_rev=None)

        deleted = await store.delete_action("guest", "hello")

        assert deleted is not None and deleted.name == "hello" and deleted.rev is not None
        assert await store.get_action("guest", "hello") is None
        assert await store.delete_action("guest", "hello") is None
        assert await store.count_actions("guest") == 0

    async def test_same_name_in_two_namespaces_are_two_actions(self, store: Store) -> None:
        await store.put_action(make_action(namespace="guest"), expected_rev=None)
        await store.put_action(make_action(namespace="other", version="2.0.0"), expected_rev=None)

        guest = await store.get_action("guest", "hello")
        other = await store.get_action("other", "hello")
        assert guest is not None and guest.version == "0.0.1"
        assert other is not None and other.version == "2.0.0"
        await store.delete_action("other", "hello")
        assert await store.get_action("guest", "hello") is not None

    async def test_list_actions_is_newest_updated_first_with_limit_and_skip(self, store: Store) -> None:
        for i, updated in enumerate([300, 100, 500, 200, 400]):
            await store.put_action(make_action(name=f"a{i}", updated=updated), expected_rev=None)
        await store.put_action(make_action(name="elsewhere", namespace="other", updated=999), expected_rev=None)
        await store.put_action(make_action(name="prefix", namespace="guests", updated=998), expected_rev=None)

        everything = await store.list_actions("guest", limit=200, skip=0)
        page = await store.list_actions("guest", limit=2, skip=1)

        assert [a.updated for a in everything] == [500, 400, 300, 200, 100]
        assert [a.name for a in page] == ["a4", "a0"]
        assert all(isinstance(a, ActionSummary) for a in everything)
        assert await store.list_actions("guest", limit=10, skip=5) == []
        assert await store.list_actions("guest", limit=0, skip=0) == []
        assert await store.count_actions("guest") == 5
        assert await store.count_actions("other") == 1
        assert await store.count_actions("empty") == 0

    async def test_an_updated_action_moves_to_the_top_of_the_list(self, store: Store) -> None:
        old = await store.put_action(make_action(name="old", updated=100), expected_rev=None)
        await store.put_action(make_action(name="new", updated=200), expected_rev=None)
        await store.put_action(make_action(name="old", updated=300), expected_rev=old.rev)

        assert [a.name for a in await store.list_actions("guest", limit=10, skip=0)] == ["old", "new"]
        assert await store.count_actions("guest") == 2

    async def test_listed_actions_are_their_summaries_without_code_or_parameters(self, store: Store) -> None:
        action = make_action(
            exec=Exec(kind="wasm:wasi", code="QUJD" * 1000, binary=True),
            parameters=[KeyValue(key="secret", value="s3cr3t")],
            annotations=[KeyValue(key="exec", value="wasm:wasi"), KeyValue(key="n", value=None, init=True)],
            limits=Limits(memory=128, concurrency=3),
            publish=True,
        )
        await store.put_action(action, expected_rev=None)

        [listed] = await store.list_actions("guest", limit=10, skip=0)

        assert listed == ActionSummary.of(action)
        assert listed.to_api() == action.summary()  # the API's row is what it was when the whole action was read
        assert "QUJD" not in listed.model_dump_json() and "s3cr3t" not in listed.model_dump_json()

    async def test_listing_actions_never_reads_their_code(self, store: Store) -> None:
        code = "QUJD" * (1024 * 1024)  # 4 MB of code each
        for n in range(5):
            await store.put_action(
                make_action(name=f"big{n}", exec=Exec(kind="wasm:wasi", code=code, binary=True)), None
            )

        listed, peak = await peak_bytes_allocated(lambda: store.list_actions("guest", limit=200, skip=0))

        assert len(listed) == 5
        assert peak < 1024 * 1024, f"listing 5 summaries allocated {peak} bytes: the 20 MB of code was read"

    # packages -----------------------------------------------------------------------------------

    async def test_a_package_and_a_binding_round_trip_with_revisions(self, store: Store) -> None:
        package = Package(namespace="guest", name="utils", publish=True, parameters=[KeyValue(key="a", value=1)])
        binding = Package(namespace="other", name="mine", binding=Binding(namespace="guest", name="utils"))
        stored = await store.put_package(package, expected_rev=None)
        await store.put_package(binding, expected_rev=None)

        fetched = await store.get_package("guest", "utils")
        fetched_binding = await store.get_package("other", "mine")

        assert fetched is not None and fetched.rev == stored.rev and fetched.to_api() == package.to_api()
        assert fetched.to_api()["binding"] == {}
        assert fetched_binding is not None and fetched_binding.binding == Binding(namespace="guest", name="utils")
        updated = await store.put_package(package.model_copy(update={"version": "0.0.2"}), expected_rev=stored.rev)
        assert updated.rev is not None and updated.rev.startswith("2-")
        with pytest.raises(ConcurrentModification):
            await store.put_package(package, expected_rev=stored.rev)

    async def test_a_package_and_an_action_share_one_name_space(self, store: Store) -> None:
        await store.put_action(make_action(name="same"), expected_rev=None)

        with pytest.raises(Conflict):
            await store.put_package(Package(namespace="guest", name="same"), expected_rev=None)
        assert await store.get_package("guest", "same") is None
        assert await store.delete_package("guest", "same") is None
        assert await store.get_action("guest", "same") is not None

    async def test_packages_list_newest_first_apart_from_actions_and_published_only_on_request(
        self, store: Store
    ) -> None:
        await store.put_package(Package(namespace="guest", name="p1", updated=1_000, publish=True), None)
        await store.put_package(Package(namespace="guest", name="p2", updated=2_000), None)
        await store.put_package(
            Package(
                namespace="guest",
                name="p3",
                updated=3_000,
                publish=True,
                parameters=[KeyValue(key="k", value="s3cr3t")],
            ),
            None,
        )
        await store.put_action(make_action(name="a1"), None)
        await store.put_package(Package(namespace="guests", name="p4", publish=True), None)

        listed = await store.list_packages("guest", limit=10, skip=0)
        public = await store.list_packages("guest", limit=10, skip=0, published_only=True)

        assert [p.name for p in listed] == ["p3", "p2", "p1"]
        assert [p.name for p in await store.list_packages("guest", limit=1, skip=1)] == ["p2"]
        assert [p.name for p in public] == ["p3", "p1"]
        assert await store.count_packages("guest") == 3
        assert await store.count_packages("guest", published_only=True) == 2
        assert all(isinstance(p, PackageSummary) for p in listed)
        assert "s3cr3t" not in listed[0].model_dump_json()
        assert [a.name for a in await store.list_actions("guest", limit=10, skip=0)] == ["a1"]

    async def test_a_root_namespace_lists_the_actions_of_its_packages_too(self, store: Store) -> None:
        # [OW] whisks_design_document_for_entities_db_v2.1.0.json: the actions view emits an action under its
        # namespace and, when that is a package, under the root namespace as well.
        await store.put_action(make_action(name="a", namespace="guest", updated=1_000), None)
        await store.put_action(make_action(name="b", namespace="guest/pkg", updated=2_000), None)
        await store.put_action(make_action(name="c", namespace="guest/pkg2", updated=3_000), None)
        await store.put_action(make_action(name="d", namespace="guests/pkg", updated=4_000), None)
        await store.put_action(make_action(name="e", namespace="guest0", updated=5_000), None)

        listed = await store.list_actions("guest", limit=10, skip=0)

        assert [(a.namespace, a.name) for a in listed] == [("guest/pkg2", "c"), ("guest/pkg", "b"), ("guest", "a")]
        assert await store.count_actions("guest") == 3
        assert [a.name for a in await store.list_actions("guest/pkg", limit=10, skip=0)] == ["b"]
        assert await store.count_actions("guest/pkg") == 1
        assert [a.name for a in await store.list_actions("guest", limit=1, skip=1)] == ["b"]

    async def test_published_listings_leave_bindings_out(self, store: Store) -> None:
        await store.put_package(Package(namespace="guest", name="shared", publish=True), None)
        await store.put_package(
            Package(namespace="guest", name="bound", publish=True, binding=Binding(namespace="x", name="y")), None
        )

        assert [p.name for p in await store.list_packages("guest", 10, 0, published_only=True)] == ["shared"]
        assert await store.count_packages("guest", published_only=True) == 1
        assert await store.count_packages("guest") == 2

    async def test_delete_package_returns_it_and_leaves_its_actions_to_the_caller(self, store: Store) -> None:
        await store.put_package(Package(namespace="guest", name="pkg"), None)
        await store.put_action(make_action(name="inside", namespace="guest/pkg"), None)

        deleted = await store.delete_package("guest", "pkg")

        assert deleted is not None and deleted.name == "pkg"
        assert await store.get_package("guest", "pkg") is None
        assert await store.count_actions("guest/pkg") == 1

    # triggers and rules ---------------------------------------------------------------------------

    async def test_a_trigger_with_its_rules_and_a_rule_round_trip(self, store: Store) -> None:
        echo = EntityRef(path="guest/pkg", name="echo")
        trigger = Trigger(
            namespace="guest",
            name="t",
            parameters=[KeyValue(key="a", value=1)],
            rules={"guest/r": ReducedRule(action=echo, status="active")},
        )
        rule = Rule(namespace="guest", name="r", trigger=EntityRef(path="guest", name="t"), action=echo)
        stored = await store.put_trigger(trigger, None)
        await store.put_rule(rule, None)

        fetched = await store.get_trigger("guest", "t")
        fetched_rule = await store.get_rule("guest", "r")

        assert fetched is not None and fetched.rev == stored.rev and fetched.to_api() == trigger.to_api()
        assert fetched.rules == {"guest/r": ReducedRule(action=echo, status="active")}
        assert fetched_rule is not None and fetched_rule.action == echo
        assert fetched_rule.to_api("active") == rule.to_api("active")
        without = fetched.model_copy(update={"rules": {}})
        updated = await store.put_trigger(without, expected_rev=fetched.rev)
        assert updated.rev is not None and updated.rev.startswith("2-")
        with pytest.raises(ConcurrentModification):
            await store.put_trigger(without, expected_rev=fetched.rev)
        assert await store.get_action("guest", "t") is None and await store.get_rule("guest", "t") is None

    async def test_triggers_and_rules_list_and_count_apart_and_delete(self, store: Store) -> None:
        for n in range(3):
            await store.put_trigger(Trigger(namespace="guest", name=f"t{n}", updated=1_000 + n), None)
        ref = EntityRef(path="guest", name="t0")
        await store.put_rule(Rule(namespace="guest", name="r0", trigger=ref, action=ref), None)
        with pytest.raises(Conflict):
            await store.put_rule(Rule(namespace="guest", name="t1", trigger=ref, action=ref), None)

        assert [t.name for t in await store.list_triggers("guest", 10, 0)] == ["t2", "t1", "t0"]
        assert [t.name for t in await store.list_triggers("guest", 1, 1)] == ["t1"]
        assert [r.name for r in await store.list_rules("guest", 10, 0)] == ["r0"]
        assert (await store.count_triggers("guest"), await store.count_rules("guest")) == (3, 1)
        deleted = await store.delete_trigger("guest", "t0")
        assert deleted is not None and deleted.name == "t0"
        assert await store.delete_trigger("guest", "r0") is None
        assert await store.count_triggers("guest") == 2

    # subjects and limits ------------------------------------------------------------------------

    async def test_the_guest_is_stored_with_a_hash_that_verifies_only_its_key(self, store: Store) -> None:
        await store.put_subject(guest_subject())
        stored = await store.get_subject_by_uuid(GUEST_UUID)
        assert stored is not None
        entry = stored.namespace_for_uuid(GUEST_UUID)
        assert entry is not None and GUEST_KEY not in entry.key_hash
        assert verify_key(GUEST_KEY, entry.key_hash)
        assert not verify_key("x" * 64, entry.key_hash)

    async def test_subject_is_found_by_name_and_by_each_key_uuid(self, store: Store) -> None:
        ada = make_subject("ada-lovelace", ("ada", ADA_1), ("team", ADA_2))
        await store.put_subject(ada)

        assert await store.get_subject("ada-lovelace") == ada
        assert await store.get_subject_by_uuid(ADA_2) == ada
        assert await store.get_subject_by_uuid("00000000-0000-0000-0000-000000000000") is None
        assert await store.get_subject("nobody") is None

    async def test_put_subject_replaces_its_namespaces(self, store: Store) -> None:
        await store.put_subject(make_subject("ada-lovelace", ("ada", ADA_1)))
        await store.put_subject(make_subject("ada-lovelace", ("team", ADA_2)))

        assert await store.get_subject_by_uuid(ADA_1) is None
        fetched = await store.get_subject("ada-lovelace")
        assert fetched is not None and [ns.name for ns in fetched.namespaces] == ["team"]

    async def test_a_uuid_of_another_subject_is_a_conflict(self, store: Store) -> None:
        await store.put_subject(make_subject("ada-lovelace", ("ada", ADA_1)))
        with pytest.raises(Conflict):
            await store.put_subject(make_subject("grace-hopper", ("grace", ADA_1)))
        assert await store.get_subject("grace-hopper") is None

    async def test_list_and_delete_subjects_next_to_namespace_limits(self, store: Store) -> None:
        await store.put_subject(make_subject("grace-hopper", ("grace", GRACE)))
        await store.put_subject(make_subject("ada-lovelace", ("ada", ADA_1), ("team", ADA_2)))
        await store.put_limits("team", NamespaceLimits(invocationsPerMinute=5))

        assert [s.subject for s in await store.list_subjects()] == ["ada-lovelace", "grace-hopper"]
        assert [s.subject for s in await store.list_subjects("team")] == ["ada-lovelace"]
        deleted = await store.delete_subject("ada-lovelace")
        assert deleted is not None and len(deleted.namespaces) == 2
        assert await store.delete_subject("ada-lovelace") is None
        assert await store.delete_subject("team/limits") is None  # limits are not a subject
        assert await store.get_subject_by_uuid(ADA_2) is None

    async def test_limits_set_merge_free_and_delete(self, store: Store) -> None:
        assert await store.get_limits("team") is None
        await store.put_limits("team", NamespaceLimits(invocationsPerMinute=5))
        assert await store.get_limits("team") == NamespaceLimits(invocationsPerMinute=5)
        await store.put_limits("team", NamespaceLimits(invocationsPerMinute=5, concurrentInvocations=0))
        assert await store.get_limits("team") == NamespaceLimits(invocationsPerMinute=5, concurrentInvocations=0)
        assert await store.delete_limits("team") is True
        assert await store.delete_limits("team") is False
        assert await store.get_limits("team") is None

    # activations --------------------------------------------------------------------------------

    async def test_activation_round_trips(self, store: Store) -> None:
        record = make_activation(record_id(1), start=1000)
        await store.put_activation(record)
        assert await store.get_activation("guest", record_id(1)) == record

    async def test_activation_of_another_namespace_is_not_found(self, store: Store) -> None:
        await store.put_activation(make_activation(record_id(1), start=1000))
        assert await store.get_activation("other", record_id(1)) is None
        assert await store.get_activation("guest", record_id(2)) is None

    async def test_second_put_of_the_same_activation_id_is_ignored(self, store: Store) -> None:
        await store.put_activation(make_activation(record_id(1), start=1000, result={"first": True}))
        await store.put_activation(make_activation(record_id(1), start=2000, result={"second": True}))

        fetched = await store.get_activation("guest", record_id(1))
        assert fetched is not None and fetched.response.result == {"first": True}
        assert await store.count_activations(ActivationQuery(namespace="guest")) == 1

    async def test_500_concurrent_activation_writes_are_all_stored(self, store: Store) -> None:
        records = [make_activation(record_id(n), start=n) for n in range(500)]

        await asyncio.gather(*(store.put_activation(r) for r in records))

        assert await store.count_activations(ActivationQuery(namespace="guest")) == 500
        listed = await store.list_activations(ActivationQuery(namespace="guest", limit=500))
        assert {a.activationId for a in listed} == {r.activationId for r in records}

    async def test_concurrent_writes_of_duplicate_ids_make_one_record_each(self, store: Store) -> None:
        records = [make_activation(record_id(n % 50), start=n) for n in range(200)]
        await asyncio.gather(*(store.put_activation(r) for r in records))
        assert await store.count_activations(ActivationQuery(namespace="guest")) == 50
        # Redeliveries after the fact are ignored too.
        await asyncio.gather(*(store.put_activation(r) for r in records[:50]))
        assert await store.count_activations(ActivationQuery(namespace="guest")) == 50

    async def test_list_activations_is_newest_first_and_per_namespace(self, history: Store) -> None:
        assert await starts(history) == [1900, 1800, 1700, 1600, 1500, 1400, 1300, 1200, 1100, 1000]

    async def test_list_activations_by_name(self, history: Store) -> None:
        assert await starts(history, name="hello") == [1800, 1600, 1400, 1200, 1000]
        assert await starts(history, name="missing") == []

    async def test_list_activations_since_and_upto_are_inclusive_epoch_ms(self, history: Store) -> None:
        assert await starts(history, since=1500) == [1900, 1800, 1700, 1600, 1500]
        assert await starts(history, upto=1200) == [1200, 1100, 1000]
        assert await starts(history, since=1300, upto=1500, name="other") == [1500, 1300]
        assert await starts(history, since=1500, upto=1500) == [1500]
        assert await starts(history, since=1600, upto=1500) == []

    async def test_list_activations_limit_and_skip(self, history: Store) -> None:
        assert await starts(history, limit=3) == [1900, 1800, 1700]
        assert await starts(history, limit=3, skip=2) == [1700, 1600, 1500]
        assert await starts(history, limit=5, skip=8) == [1100, 1000]
        assert await starts(history, skip=10) == []
        assert await starts(history, limit=0) == []
        assert await starts(history, name="other", since=1200, limit=2, skip=1) == [1700, 1500]

    async def test_activation_summaries_are_the_records_list_rows_in_the_same_order(self, history: Store) -> None:
        await history.put_activation(
            make_activation(record_id(50), start=950).model_copy(update={"end": 0, "duration": 0, "cause": "c" * 32})
        )
        for query in ({}, {"name": "hello", "limit": 3}, {"since": 1200, "upto": 1600, "skip": 1}, {"upto": 999}):
            query_model = ActivationQuery.model_validate({"namespace": "guest", **query})
            records = await history.list_activations(query_model)
            summaries = await history.list_activation_summaries(query_model)
            assert summaries == [ActivationSummary.of(r) for r in records]
            assert [s.to_api() for s in summaries] == [r.summary() for r in records]

    async def test_listing_activation_summaries_never_reads_results_or_logs(self, store: Store) -> None:
        for n in range(8):  # 1 MB of logs each
            record = make_activation(record_id(n), start=1000 + n)
            await store.put_activation(record.model_copy(update={"logs": ["x" * 1000] * 1000}))

        listed, peak = await peak_bytes_allocated(
            lambda: store.list_activation_summaries(ActivationQuery(namespace="guest", limit=200))
        )

        assert [s.start for s in listed] == [1007 - n for n in range(8)]
        assert peak < 1024 * 1024, f"listing 8 summaries allocated {peak} bytes: the 8 MB of records was read"

    async def test_count_activations_ignores_limit_and_skip(self, history: Store) -> None:
        assert await history.count_activations(ActivationQuery(namespace="guest", limit=1, skip=3)) == 10
        assert await history.count_activations(ActivationQuery(namespace="guest", name="other")) == 5
        assert await history.count_activations(ActivationQuery(namespace="guest", since=1850)) == 1
        assert await history.count_activations(ActivationQuery(namespace="guest", name="hello", upto=1400)) == 3
        assert await history.count_activations(ActivationQuery(namespace="guest", since=1600, upto=1500)) == 0
        assert await history.count_activations(ActivationQuery(namespace="nobody")) == 0

    # schedules (alarms) ---------------------------------------------------------------------------------

    async def test_a_schedule_round_trips_and_its_revision_claims_a_tick_once(self, store: Store) -> None:
        created = await store.put_schedule(make_schedule("t", next_fire_ms=5_000), None)
        assert created.rev is not None
        with pytest.raises(Conflict):
            await store.put_schedule(make_schedule("t"), None)
        stored = await store.get_schedule("guest", "t")
        assert stored == created and stored is not None and stored.rev == created.rev
        # Two claims of the same tick from the same revision: the first wins, the second is stale.
        claimed = await store.put_schedule(stored.model_copy(update={"next_fire_ms": 6_000, "fired": 1}), stored.rev)
        with pytest.raises(ConcurrentModification):
            await store.put_schedule(stored.model_copy(update={"next_fire_ms": 6_000, "fired": 1}), stored.rev)
        assert await store.get_schedule("guest", "t") == claimed
        deleted = await store.delete_schedule("guest", "t")
        assert deleted is not None and deleted.fired == 1
        assert await store.delete_schedule("guest", "t") is None
        with pytest.raises(ConcurrentModification):
            await store.put_schedule(claimed, claimed.rev)

    async def test_due_schedules_are_the_active_ones_due_by_then_earliest_first(self, store: Store) -> None:
        await store.put_schedule(make_schedule("later", next_fire_ms=3_000), None)
        await store.put_schedule(make_schedule("sooner", next_fire_ms=1_000), None)
        await store.put_schedule(make_schedule("exactly", next_fire_ms=2_000), None)
        await store.put_schedule(make_schedule("paused", next_fire_ms=500, active=False), None)
        await store.put_schedule(make_schedule("finished", next_fire_ms=None), None)
        assert [s.name for s in await store.due_schedules(2_000, 10)] == ["sooner", "exactly"]
        assert [s.name for s in await store.due_schedules(10_000, 2)] == ["sooner", "exactly"]
        assert await store.due_schedules(999, 10) == []
        sooner = await store.get_schedule("guest", "sooner")
        assert sooner is not None
        paused = sooner.model_copy(update={"status": ScheduleStatus(active=False, dateChanged=1)})
        await store.put_schedule(paused, sooner.rev)
        assert [s.name for s in await store.due_schedules(10_000, 10)] == ["exactly", "later"]
