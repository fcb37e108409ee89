"""Namespace throttles, the balancer's per-namespace books, and key verification (no services)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from controller.auth import Authenticator
from controller.loadbalancer import LoadBalancer
from controller.throttles import Throttles, controller_share
from pywhisk.bus.memory import MemoryBus
from pywhisk.errors import StoreUnavailable, TooManyRequests, Unauthorized
from pywhisk.identity import (
    KEY_LENGTH,
    AuthKey,
    Identity,
    Namespace,
    NamespaceLimits,
    generate_key,
    hash_key,
    valid_auth_key,
    verify_key,
)
from pywhisk.messages import ActivationMessage
from pywhisk.settings import Settings
from pywhisk.store.sqlite import SqliteStore
from pywhisk.tenancy import TenancyError, create_user, delete_user, set_limits
from tests.unit.test_loadbalancer import HELLO, _complete, _message, _ping


def _identity(namespace: str = "team-a", **limits: int) -> Identity:
    return Identity(
        subject=namespace,
        namespace=Namespace(name=namespace, uuid="11111111-0000-4000-8000-000000000001"),
        authkey=AuthKey(uuid="11111111-0000-4000-8000-000000000001", key="k" * 64),
        limits=NamespaceLimits(**limits),
    )


class _Books:
    def __init__(self) -> None:
        self.active: dict[str, int] = {}

    def active_activations(self, namespace: str) -> int:
        return self.active.get(namespace, 0)


class _Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _throttles(books: _Books | None = None, clock: _Clock | None = None, **settings: int) -> Throttles:
    return Throttles(Settings(**settings), books or _Books(), clock or _Clock(1_700_000_000.0))  # type: ignore[arg-type]


# shares and defaults --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("limit", "controllers", "share"),
    [(60, 1, 60), (60, 2, 36), (10, 2, 6), (10, 3, 4), (1, 4, 1), (0, 1, 0), (0, 2, 0), (30, 2, 18)],
)
def test_each_controller_enforces_its_share_of_the_limit_as_openwhisk(limit: int, controllers: int, share: int) -> None:
    # [OW] Entitlement.calculateIndividualLimit: ceil(limit * 1.2 if clustered) / controllers, at least 1 unless 0.
    assert controller_share(limit, controllers) == share


def test_a_namespace_without_limits_gets_the_system_defaults_and_its_own_override_them() -> None:
    throttles = _throttles(invocations_per_minute=60, concurrent_invocations=30)
    assert throttles.invocations_per_minute(_identity()) == 60
    assert throttles.concurrent_invocations(_identity()) == 30
    own = _identity(invocationsPerMinute=5, concurrentInvocations=0)
    assert throttles.invocations_per_minute(own) == 5
    assert throttles.concurrent_invocations(own) == 0


# invocations per minute -----------------------------------------------------------------------------


def test_the_invoke_over_the_per_minute_limit_is_429_with_openwhisks_message() -> None:
    clock = _Clock(1_700_000_040.0)  # 40 s into a calendar minute
    throttles = _throttles(clock=clock)
    tenant = _identity(invocationsPerMinute=3)
    for _ in range(3):
        throttles.check_rate(tenant)
    with pytest.raises(TooManyRequests) as refused:
        throttles.check_rate(tenant)
    assert refused.value.status_code == 429
    assert refused.value.message == "Too many requests in the last minute (count: 4, allowed: 3)."
    with pytest.raises(TooManyRequests) as again:  # refused invokes count too, as in OpenWhisk
        throttles.check_rate(tenant)
    assert again.value.message == "Too many requests in the last minute (count: 5, allowed: 3)."


def test_the_per_minute_count_starts_again_in_the_next_calendar_minute() -> None:
    clock = _Clock(1_700_000_099.0)  # 1_700_000_099 s is in minute 28_333_334 (fixed windows, not sliding)
    throttles = _throttles(clock=clock)
    tenant = _identity(invocationsPerMinute=1)
    throttles.check_rate(tenant)
    with pytest.raises(TooManyRequests):
        throttles.check_rate(tenant)
    clock.now = 1_700_000_100.0  # the next minute begins one second later
    throttles.check_rate(tenant)


def test_namespaces_are_counted_apart() -> None:
    throttles = _throttles()
    throttles.check_rate(_identity("team-a", invocationsPerMinute=1))
    throttles.check_rate(_identity("team-b", invocationsPerMinute=1))
    with pytest.raises(TooManyRequests):
        throttles.check_rate(_identity("team-a", invocationsPerMinute=1))


def test_a_limit_of_zero_refuses_every_invoke() -> None:
    with pytest.raises(TooManyRequests) as refused:
        _throttles().check_rate(_identity(invocationsPerMinute=0))
    assert refused.value.message == "Too many requests in the last minute (count: 1, allowed: 0)."


# concurrent invocations -----------------------------------------------------------------------------


def test_a_namespace_at_its_concurrent_limit_is_429_with_openwhisks_message() -> None:
    books = _Books()
    throttles = _throttles(books)
    tenant = _identity(concurrentInvocations=2)
    books.active["team-a"] = 1
    throttles.check_concurrent(tenant)
    books.active["team-a"] = 2
    with pytest.raises(TooManyRequests) as refused:
        throttles.check_concurrent(tenant)
    assert refused.value.status_code == 429
    assert refused.value.message == "Too many concurrent requests in flight (count: 2, allowed: 2)."
    throttles.check_concurrent(_identity("team-b", concurrentInvocations=2))  # another namespace's books


def test_two_controllers_each_allow_their_share_of_concurrent_invocations() -> None:
    books = _Books()
    throttles = _throttles(books, controllers=2)
    books.active["team-a"] = 6  # limit 10 → ceil(12) / 2 = 6 on this controller
    with pytest.raises(TooManyRequests) as refused:
        throttles.check_concurrent(_identity(concurrentInvocations=10))
    assert refused.value.message == "Too many concurrent requests in flight (count: 6, allowed: 6)."


# the balancer's books -------------------------------------------------------------------------------


@pytest.fixture
async def books(tmp_path: Path) -> AsyncIterator[tuple[MemoryBus, LoadBalancer, SqliteStore]]:
    bus = MemoryBus()
    await bus.start()
    store = SqliteStore(tmp_path / "books.sqlite3")
    await store.start()
    balancer = LoadBalancer(bus, store, Settings(data_dir=tmp_path, invoker_offline_after_s=0.3))
    await balancer.start()
    await _ping(bus, balancer, 0)
    yield bus, balancer, store
    await balancer.close()
    await store.close()
    await bus.close()


def _of(namespace: str, blocking: bool = False) -> ActivationMessage:
    message = _message(blocking=blocking)
    message.user = _identity(namespace)
    return message


async def _until(condition: object, timeout_s: float = 5.0) -> None:
    for _ in range(int(timeout_s / 0.01)):
        if condition():  # type: ignore[operator]
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


async def test_books_count_published_activations_per_namespace_until_their_completion(
    books: tuple[MemoryBus, LoadBalancer, SqliteStore],
) -> None:
    bus, balancer, _ = books
    first, second, other = _of("team-a"), _of("team-a"), _of("team-b")
    for message in (first, second, other):
        await balancer.publish(message, HELLO)
    assert (balancer.active_activations("team-a"), balancer.active_activations("team-b")) == (2, 1)

    await _complete(bus, first, None)
    await _until(lambda: balancer.active_activations("team-a") == 1)
    assert balancer.active_activations("team-b") == 1


async def test_a_blocking_wait_that_times_out_keeps_the_slot_until_the_late_completion(
    books: tuple[MemoryBus, LoadBalancer, SqliteStore],
) -> None:
    bus, balancer, _ = books
    message = _of("team-a", blocking=True)
    await balancer.publish(message, HELLO)

    assert await balancer.wait(message.activationId, timeout_s=0.05) is None  # the caller got its 202
    assert balancer.active_activations("team-a") == 1  # ... but the activation still runs
    await _complete(bus, message, None)
    await _until(lambda: balancer.active_activations("team-a") == 0)


async def test_an_activation_lost_with_its_invoker_frees_its_slot(
    books: tuple[MemoryBus, LoadBalancer, SqliteStore],
) -> None:
    _, balancer, store = books
    message = _of("team-a")
    await balancer.publish(message, HELLO)
    assert balancer.active_activations("team-a") == 1

    # No completion and no more pings: the controller records it as lost and takes it off the books.
    await _until(lambda: balancer.active_activations("team-a") == 0, timeout_s=10)
    assert await store.get_activation("team-a", message.activationId) is not None


async def test_an_activation_the_bus_refused_takes_no_slot(
    books: tuple[MemoryBus, LoadBalancer, SqliteStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    bus, balancer, _ = books

    async def refuse(topic: str, value: bytes) -> None:
        raise ConnectionError("broker down")

    monkeypatch.setattr(bus, "send", refuse)
    with pytest.raises(ConnectionError):
        await balancer.publish(_of("team-a"), HELLO)
    assert balancer.active_activations("team-a") == 0


# keys -----------------------------------------------------------------------------------------------


def test_generated_keys_have_openwhisks_form_and_are_never_the_same() -> None:
    keys = [generate_key() for _ in range(200)]
    assert all(valid_auth_key(k.uuid, k.key) and len(k.key) == KEY_LENGTH for k in keys)
    assert len({k.key for k in keys}) == 200 and len({k.uuid for k in keys}) == 200


def test_a_key_hash_is_salted_and_verifies_only_its_key() -> None:
    key = generate_key().key
    first, second = hash_key(key), hash_key(key)
    assert first != second and key not in first
    assert verify_key(key, first) and verify_key(key, second)
    assert not verify_key(key[:-1] + ("a" if key[-1] != "a" else "b"), first)
    for damaged in ("", "hmac-sha256$", "md5$00$" + first.rsplit("$", 1)[1], first.replace("$", "$zz", 1)):
        assert not verify_key(key, damaged)


@pytest.mark.parametrize(
    "credential",
    [
        "not-a-uuid:" + "a" * 64,
        "11111111-0000-4000-8000-000000000001:short",
        "11111111-0000-4000-8000-000000000001:" + "-" * 64,
    ],
)
def test_malformed_credentials_are_not_valid_keys(credential: str) -> None:
    uuid, _, key = credential.partition(":")
    assert not valid_auth_key(uuid, key)


# authentication against the store -------------------------------------------------------------------


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(tmp_path / "auth.sqlite3")
    await store.start()
    yield store
    await store.close()


def _basic(credential: str) -> str:
    import base64

    return "Basic " + base64.b64encode(credential.encode()).decode()


async def test_a_created_key_authenticates_and_a_wrong_one_does_not(store: SqliteStore) -> None:
    key = await create_user(store, "ada-lovelace", namespace="team-a")
    authenticator = Authenticator(store, cache_ttl_s=60)

    identity = await authenticator.identify(_basic(key.api_key))
    assert (identity.subject, identity.namespace.name, identity.authkey.api_key) == (
        "ada-lovelace",
        "team-a",
        key.api_key,
    )
    # Cached now: a wrong key for the same uuid is still refused, and the right one still works.
    with pytest.raises(Unauthorized):
        await authenticator.identify(_basic(f"{key.uuid}:{'x' * 64}"))
    assert (await authenticator.identify(_basic(key.api_key))).namespace.name == "team-a"
    with pytest.raises(Unauthorized):
        await authenticator.identify(_basic(f"11111111-0000-4000-8000-00000000dead:{key.key}"))


async def test_concurrent_requests_of_an_uncached_uuid_read_the_store_once(store: SqliteStore) -> None:
    key = await create_user(store, "ada-lovelace", namespace="team-a")
    reads = 0
    read_subject = store.get_subject_by_uuid

    async def counted(uuid: str) -> object:
        nonlocal reads
        reads += 1
        return await read_subject(uuid)

    store.get_subject_by_uuid = counted  # type: ignore[method-assign,assignment]
    authenticator = Authenticator(store, cache_ttl_s=60)
    identities = await asyncio.gather(*(authenticator.identify(_basic(key.api_key)) for _ in range(20)))
    assert {identity.namespace.name for identity in identities} == {"team-a"}
    assert reads == 1
    # A wrong key among concurrent ones is still refused on its own.
    wrong = await asyncio.gather(
        authenticator.identify(_basic(f"{key.uuid}:{'x' * 64}")),
        authenticator.identify(_basic(key.api_key)),
        return_exceptions=True,
    )
    assert isinstance(wrong[0], Unauthorized) and isinstance(wrong[1], Identity)


async def test_a_failed_store_read_fails_every_waiting_request_and_the_next_one_reads_again(
    store: SqliteStore,
) -> None:
    key = await create_user(store, "ada-lovelace", namespace="team-a")
    read_subject = store.get_subject_by_uuid
    failing = True

    async def flaky(uuid: str) -> object:
        await asyncio.sleep(0)  # let the other requests find this read in flight
        if failing:
            raise StoreUnavailable("down")
        return await read_subject(uuid)

    store.get_subject_by_uuid = flaky  # type: ignore[method-assign,assignment]
    authenticator = Authenticator(store, cache_ttl_s=60)
    outcomes = await asyncio.gather(
        *(authenticator.identify(_basic(key.api_key)) for _ in range(5)), return_exceptions=True
    )
    assert all(isinstance(outcome, StoreUnavailable) for outcome in outcomes)
    failing = False
    assert (await authenticator.identify(_basic(key.api_key))).namespace.name == "team-a"


async def test_limits_and_deleted_keys_take_effect_after_the_cache_ttl(store: SqliteStore) -> None:
    key = await create_user(store, "ada-lovelace", namespace="team-a")
    authenticator = Authenticator(store, cache_ttl_s=0.2)
    assert (await authenticator.identify(_basic(key.api_key))).limits == NamespaceLimits()

    await set_limits(store, "team-a", invocations_per_minute=7)
    assert (await authenticator.identify(_basic(key.api_key))).limits == NamespaceLimits()  # cached
    await asyncio.sleep(0.25)
    assert (await authenticator.identify(_basic(key.api_key))).limits == NamespaceLimits(invocationsPerMinute=7)

    await delete_user(store, "ada-lovelace")
    await asyncio.sleep(0.25)
    with pytest.raises(Unauthorized):
        await authenticator.identify(_basic(key.api_key))


@pytest.mark.parametrize(
    ("subject", "namespace", "auth", "message"),
    [
        ("ada", None, None, "Subject name must be at least 5 characters"),
        ("ada-lovelace", "_design", None, "Namespace '_design' is not valid"),
        ("ada/lovelace", None, None, "Subject 'ada/lovelace' is not valid"),
        ("ada-lovelace", None, "nope", "The authorization key must be uuid:key"),
    ],
)
async def test_bad_user_input_is_refused_and_changes_nothing(
    store: SqliteStore, subject: str, namespace: str | None, auth: str | None, message: str
) -> None:
    with pytest.raises(TenancyError, match=message):
        await create_user(store, subject, namespace, auth)
    assert await store.list_subjects() == []


async def test_a_second_key_for_the_same_namespace_or_uuid_is_refused(store: SqliteStore) -> None:
    key = await create_user(store, "ada-lovelace")
    with pytest.raises(TenancyError, match="Namespace already exists"):
        await create_user(store, "ada-lovelace")
    with pytest.raises(TenancyError, match="already holds a key"):
        await create_user(store, "grace-hopper", auth=key.api_key)
    with pytest.raises(TenancyError, match="No limits given"):
        await set_limits(store, "ada-lovelace")
