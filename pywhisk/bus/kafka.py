"""The Kafka ``Bus`` for distributed mode: aiokafka against a real Apache Kafka cluster.

Over 400 lines because producer, consumer and their at-least-once bookkeeping are one protocol over one client library.

Topics are OpenWhisk's (``invoker{N}``, ``completed{C}``, ``health``; reference/openwhisk.md §5.1),
optionally behind a prefix. Delivery is at-least-once on both sides:

- ``send`` returns only when every in-sync replica has the message (``acks="all"``), so an activation
  the controller accepted is on the topic even if the controller dies the next moment.
- A consumer commits only what its caller acknowledged (``ack``, e.g. once an activation record is
  stored); whatever it received but was not acknowledged goes to the next member of its group.

Duplicates are therefore possible (a redelivery after a consumer dies, a producer retry after a lost
acknowledgement) and consumers must tolerate them; losses are not.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    CommitFailedError,
    IllegalStateError,
    KafkaError,
    TopicAlreadyExistsError,
    for_code,
)

from pywhisk.bus import Consumer, Delivery

log = logging.getLogger("pywhisk.bus.kafka")

T = TypeVar("T")

# Bus messages carry up to 1 MB of parameters or of result plus OpenWhisk's envelope (§5.2, §5.6).
DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024


class KafkaBusError(Exception):
    """Kafka did not do what was asked in time: unreachable brokers, a timeout, a refused request."""


class KafkaBus:
    """A ``Bus`` over Apache Kafka: one producer, one admin client, one aiokafka consumer per subscription.

    ``bootstrap_servers`` is Kafka's comma-separated ``host:port`` list. ``topic_prefix`` is put in
    front of every topic and consumer-group name, so several pywhisk deployments can share a cluster
    (OpenWhisk's ``kafka.topics.prefix``). Topics are created with ``partitions`` partitions and
    ``replication_factor`` replicas the first time they are used. ``timeout_s`` bounds every call that
    waits for a broker: start, send, subscribe, commit, topic creation and close. Consumers commit
    acknowledged messages every ``commit_interval_s``.

    Batching, a trade of latency for CPU (measured in docs/benchmarks.md, "Several workers"): the producer waits up
    to ``linger_ms`` for more messages to the same partition before it sends a batch of at most
    ``max_batch_bytes`` (0 sends at once: the lowest latency, one request per message under load); a consumer's
    fetch waits at the broker up to ``fetch_max_wait_ms`` for data (it returns as soon as one record is there, so
    this mostly sets how often an idle consumer asks again).
    """

    def __init__(
        self,
        bootstrap_servers: str,
        client_id: str,
        topic_prefix: str = "",
        *,
        partitions: int = 1,
        replication_factor: int = 1,
        timeout_s: float = 10.0,
        linger_ms: int = 1,
        max_batch_bytes: int = 16_384,
        fetch_max_wait_ms: int = 500,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        max_poll_interval_s: float = 600.0,
        commit_interval_s: float = 0.1,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.client_id = client_id
        self.topic_prefix = topic_prefix
        self.partitions = partitions
        self.replication_factor = replication_factor
        self.timeout_s = timeout_s
        self._linger_ms = linger_ms
        self._max_batch_bytes = max_batch_bytes
        self._fetch_max_wait_ms = fetch_max_wait_ms
        self._max_message_bytes = max_message_bytes
        self._max_poll_interval_s = max_poll_interval_s
        self.commit_interval_s = commit_interval_s
        self._producer: Any = None
        self._admin: Any = None
        self._known_topics: set[str] = set()
        self._topic_locks: dict[str, asyncio.Lock] = {}
        self._consumers: set[KafkaConsumer] = set()

    async def start(self) -> None:
        """Connect the producer and the admin client; raise ``KafkaBusError`` if no broker answers."""
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap_servers,
            client_id=self.client_id,
            acks="all",
            # Not idempotent on purpose: aiokafka never expires an idempotent batch, so a send that
            # timed out while the brokers were away would still be delivered later, after the caller
            # was told it failed (an activation the user saw rejected would run anyway). Without it a
            # timed-out batch is dropped; the price is a rare duplicate after a lost acknowledgement,
            # which consumers already tolerate because delivery is at-least-once.
            enable_idempotence=False,
            linger_ms=self._linger_ms,
            max_batch_size=self._max_batch_bytes,
            request_timeout_ms=self._timeout_ms,
            max_request_size=self._max_message_bytes,
        )
        admin = AIOKafkaAdminClient(
            bootstrap_servers=self.bootstrap_servers,
            client_id=f"{self.client_id}-admin",
            request_timeout_ms=self._timeout_ms,
        )
        try:
            await self._bounded(producer.start(), "connect the producer")
            await self._bounded(admin.start(), "connect the admin client")
        except BaseException:
            await _quietly(producer.stop(), self.timeout_s)
            await _quietly(admin.close(), self.timeout_s)
            raise
        self._producer, self._admin = producer, admin

    async def close(self) -> None:
        """Close open subscriptions (committing what was acknowledged), flush the producer, disconnect."""
        # Together: with the brokers away each close waits out its own timeouts.
        await asyncio.gather(*(consumer.close() for consumer in list(self._consumers)))
        producer, admin = self._producer, self._admin
        self._producer = self._admin = None
        if producer is not None:
            # stop() flushes; with the brokers gone it would wait for every pending batch to expire.
            await _quietly(producer.stop(), self.timeout_s)
        if admin is not None:
            await _quietly(admin.close(), self.timeout_s)

    async def send(self, topic: str, value: bytes) -> None:
        """Append ``value`` to ``topic``; return once the brokers have acknowledged it (acks=all).

        Raises ``KafkaBusError`` after ``timeout_s`` at the latest. A failed send may in rare cases
        still have reached the topic (the acknowledgement, not the message, was lost).
        """
        producer = self._require_started()
        name = self.topic_prefix + topic
        await self._ensure_topic(name)
        await self._bounded(producer.send_and_wait(name, value), f"send to topic {name!r}")
        log.debug("sent to topic %s: %d bytes", name, len(value))  # with the sender's ids (pywhisk/logs.py)

    async def subscribe(self, topic: str, group: str) -> KafkaConsumer:
        """Consume ``topic`` as a member of consumer group ``group``, from the group's committed offsets.

        Returns once connected; joining the group continues in the background (receive() returns []
        until then). A group that never committed starts at the earliest message still on the topic,
        so work sent before its first member subscribed is not skipped.
        """
        self._require_started()
        name = self.topic_prefix + topic
        # Create the topic before joining: a group that joins a topic which does not exist yet gets
        # no partitions and only notices the topic at its next metadata refresh.
        await self._ensure_topic(name)
        consumer = KafkaConsumer(self, name, self.topic_prefix + group)
        await consumer._start()
        self._consumers.add(consumer)
        return consumer

    # helpers -------------------------------------------------------------------------------------

    @property
    def _timeout_ms(self) -> int:
        return int(self.timeout_s * 1000)

    def _require_started(self) -> Any:
        if self._producer is None:
            raise KafkaBusError("the Kafka bus is not started (call start() first) or already closed")
        return self._producer

    async def _ensure_topic(self, name: str) -> None:
        if name in self._known_topics:
            return
        # One creation per topic even when a thousand first sends arrive together.
        async with self._topic_locks.setdefault(name, asyncio.Lock()):
            if name in self._known_topics:
                return
            topic = NewTopic(
                name,
                num_partitions=self.partitions,
                replication_factor=self.replication_factor,
                topic_configs={"max.message.bytes": str(self._max_message_bytes)},
            )
            response = await self._bounded(
                self._admin.create_topics([topic], timeout_ms=self._timeout_ms), f"create topic {name!r}"
            )
            for _topic, code, *rest in response.topic_errors:
                # Created by someone else (another process, or the broker's auto-create) is as good.
                if code and for_code(code) is not TopicAlreadyExistsError:
                    message = rest[0] if rest else ""
                    raise KafkaBusError(f"Kafka refused to create topic {name!r}: {for_code(code).__name__} {message}")
            self._known_topics.add(name)

    async def _bounded(self, call: Awaitable[T], doing: str) -> T:
        """Await ``call`` for at most ``timeout_s``; turn timeouts and Kafka errors into ``KafkaBusError``."""
        try:
            async with asyncio.timeout(self.timeout_s):
                return await call
        except TimeoutError as err:
            raise KafkaBusError(
                f"could not {doing} within {self.timeout_s:g} s (Kafka at {self.bootstrap_servers})"
            ) from err
        except KafkaError as err:
            raise KafkaBusError(f"could not {doing} (Kafka at {self.bootstrap_servers}): {err!r}") from err


class KafkaConsumer(Consumer):
    """One subscription: an aiokafka consumer in a group that commits what its caller acknowledged.

    Acknowledgements may come in any order (activations finish in any order). Per partition, Kafka can
    only store one offset, "everything before this is done", so the consumer commits the end of the
    acknowledged *prefix* of what it received: with offsets 7, 8, 9 received and 7 and 9 acknowledged,
    it commits 8, and after a crash 8 and 9 come again. Commits are batched in the background every
    ``commit_interval_s`` (one request for many acks), when partitions are taken away in a rebalance,
    and on ``close``.
    """

    def __init__(self, bus: KafkaBus, topic: str, group: str) -> None:
        self._bus = bus
        self.topic = topic
        self.group = group
        self._partitions: dict[int, _PartitionAcks] = {}
        self._acked = asyncio.Event()  # the acknowledged prefix grew since the last commit
        self._committer: asyncio.Task[None] | None = None
        self._closed = False
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bus.bootstrap_servers,
            client_id=bus.client_id,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            request_timeout_ms=max(bus._timeout_ms, 30_000),  # must exceed the 10 s session timeout
            # The invoker may hold back from receiving while its pool is full; past this interval
            # without a receive the member is dropped and its partitions go to another invoker.
            max_poll_interval_ms=int(bus._max_poll_interval_s * 1000),
            max_partition_fetch_bytes=max(bus._max_message_bytes, 1024 * 1024),
            fetch_max_wait_ms=bus._fetch_max_wait_ms,
            # A topic created just before may not be in the broker's metadata yet (seen on a fresh
            # KRaft broker): the group then gets no partitions until the next refresh, 5 min by default.
            metadata_max_age_ms=3000,
        )

    async def receive(self, max_messages: int, timeout_s: float) -> list[Delivery]:
        """Up to ``max_messages`` messages; waits at most ``timeout_s`` for the first one."""
        self._require_open()
        try:
            batches = await self._consumer.getmany(timeout_ms=int(timeout_s * 1000), max_records=max_messages)
        except KafkaError as err:
            raise KafkaBusError(
                f"could not receive from topic {self.topic!r} as group {self.group!r}: {err!r}"
            ) from err
        deliveries: list[Delivery] = []
        for topic_partition, records in batches.items():
            partition = int(topic_partition.partition)
            acks = self._partitions.setdefault(partition, _PartitionAcks())
            for record in records:
                offset = int(record.offset)
                acks.received(offset)
                deliveries.append(Delivery(bytes(record.value or b""), partition, offset))
        return deliveries

    async def ack(self, delivery: Delivery) -> None:
        """``delivery`` is fully handled; it is committed with the acknowledged prefix of its partition.

        Cheap (no I/O): the commit follows within ``commit_interval_s``. An acknowledgement for a
        partition this member no longer owns is ignored; its new owner receives the message again.
        """
        acks = self._partitions.get(delivery.partition)
        if acks is not None and acks.ack(delivery.offset):
            self._acked.set()

    async def keep_alive(self) -> None:
        """Poll with every partition paused: resets ``max.poll.interval`` and takes no message."""
        self._require_open()
        partitions = self._consumer.assignment()
        self._consumer.pause(*partitions)
        try:
            await self._consumer.getmany(timeout_ms=0)
        except KafkaError as err:
            raise KafkaBusError(f"could not poll topic {self.topic!r} as group {self.group!r}: {err!r}") from err
        finally:
            # Only what is still ours: a rebalance may have moved partitions meanwhile.
            self._consumer.resume(*(tp for tp in partitions if tp in self._consumer.assignment()))

    async def close(self) -> None:
        """Commit what was acknowledged, then leave the group; everything else goes to its next member."""
        if self._closed:
            return
        self._closed = True
        self._bus._consumers.discard(self)
        if self._committer is not None:
            self._committer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._committer
        try:
            await self._commit_acknowledged()
        except KafkaBusError as err:
            log.warning("acknowledged messages of group %s will be delivered again: %s", self.group, err)
        await _quietly(self._consumer.stop(), self._bus.timeout_s)

    def assigned_partitions(self) -> set[int]:
        """The partitions of the topic this member owns at the moment (changes on rebalances)."""
        return {int(partition.partition) for partition in self._consumer.assignment()}

    # helpers -------------------------------------------------------------------------------------

    def _require_open(self) -> None:
        if self._closed:
            raise KafkaBusError(f"the consumer of topic {self.topic!r} (group {self.group!r}) is closed")

    async def _start(self) -> None:
        # Connect first, subscribe after: aiokafka's start() on a subscribed consumer also waits for
        # the group join, which may legitimately take longer than any sane connect timeout (after a
        # crash the broker waits a whole session timeout for the dead member). Joining in the
        # background instead costs nothing: until it completes, receive() returns [], and messages
        # sent meanwhile stay on the topic for the group.
        try:
            await self._bus._bounded(self._consumer.start(), f"connect a consumer of group {self.group!r}")
        except BaseException:
            await _quietly(self._consumer.stop(), self._bus.timeout_s)
            raise
        await self._await_topic_metadata()
        self._consumer.subscribe([self.topic], listener=_CommitBeforeRevoke(self))
        self._committer = asyncio.get_running_loop().create_task(
            self._commit_forever(), name=f"kafka-commit-{self.group}"
        )

    async def _await_topic_metadata(self) -> None:
        """Wait until this consumer's metadata lists the topic's partitions.

        On a fresh broker a just-created topic can be missing from the first metadata answer; a group
        joined then gets no partitions and, seen here, received nothing for minutes.
        """
        client = self._consumer._client
        deadline = asyncio.get_running_loop().time() + self._bus.timeout_s
        while not client.cluster.partitions_for_topic(self.topic):
            if asyncio.get_running_loop().time() > deadline:
                log.warning("topic %s has no partition metadata yet; joining anyway", self.topic)
                return
            client.add_topic(self.topic)  # track it, so metadata requests ask about it
            try:
                async with asyncio.timeout(1.0):
                    await client.force_metadata_update()
            except (TimeoutError, KafkaError):
                pass  # asked again on the next round
            await asyncio.sleep(0.05)

    async def _commit_forever(self) -> None:
        while True:
            await self._acked.wait()
            await asyncio.sleep(self._bus.commit_interval_s)  # gather the acks of a burst into one commit
            self._acked.clear()
            try:
                await self._commit_acknowledged()
            except KafkaBusError as err:
                # Typically the brokers are away; the acks are kept and committed once they are back.
                log.warning("commit failed, retrying: %s", err)
                self._acked.set()
                await asyncio.sleep(1.0)

    async def _commit_acknowledged(self) -> None:
        """Commit the end of every partition's acknowledged prefix that is ahead of the last commit."""
        assigned = self._consumer.assignment()
        offsets = {
            TopicPartition(self.topic, partition): acks.commit_to
            for partition, acks in self._partitions.items()
            if acks.commit_to is not None and acks.commit_to != acks.committed
        }
        offsets = {tp: offset for tp, offset in offsets.items() if tp in assigned}
        if not offsets:
            return
        try:
            await self._bus._bounded(self._consumer.commit(offsets), f"commit offsets of group {self.group!r}")
        except KafkaBusError as err:
            if not isinstance(err.__cause__, CommitFailedError | IllegalStateError):
                raise
            # The group rebalanced under us: the partitions may be another member's now, which starts
            # from the previous commit. Duplicates, not losses; nothing to retry.
            log.info("commit of group %s skipped, the group rebalanced: %s", self.group, err.__cause__)
            return
        for tp, offset in offsets.items():
            acks = self._partitions.get(tp.partition)
            if acks is not None:
                acks.committed = offset

    async def _on_revoked(self, revoked: list[Any]) -> None:
        # Still the owner: this is the last moment to commit what was acknowledged on these partitions.
        try:
            await self._commit_acknowledged()
        except KafkaBusError as err:
            log.warning("acknowledged messages of group %s will be delivered again: %s", self.group, err)
        for topic_partition in revoked:
            self._partitions.pop(int(topic_partition.partition), None)


class _PartitionAcks:
    """The received-but-uncommitted offsets of one partition and the end of their acknowledged prefix."""

    def __init__(self) -> None:
        self._in_order: deque[int] = deque()  # received offsets, oldest first, up to the prefix end
        self._unacked: set[int] = set()
        self._acked: set[int] = set()  # acknowledged but behind an unacknowledged one
        self.commit_to: int | None = None  # offset after the acknowledged prefix
        self.committed: int | None = None  # the last commit_to Kafka confirmed

    def received(self, offset: int) -> None:
        if offset in self._unacked or offset in self._acked:
            return  # fetched again after a reset of the position; already tracked
        self._in_order.append(offset)
        self._unacked.add(offset)

    def ack(self, offset: int) -> bool:
        """Mark ``offset`` done; True if the acknowledged prefix grew."""
        if offset not in self._unacked:
            return False  # acknowledged twice, or received before the partition was revoked
        self._unacked.discard(offset)
        self._acked.add(offset)
        grew = False
        while self._in_order and self._in_order[0] in self._acked:
            done = self._in_order.popleft()
            self._acked.discard(done)
            self.commit_to = done + 1
            grew = True
        return grew


class _CommitBeforeRevoke(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
    """Tells the consumer when a rebalance is about to take partitions away."""

    def __init__(self, consumer: KafkaConsumer) -> None:
        self._consumer = consumer

    async def on_partitions_revoked(self, revoked: list[Any]) -> None:
        await self._consumer._on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: list[Any]) -> None:
        return None


async def _quietly(call: Awaitable[Any], timeout_s: float) -> None:
    """Await a shutdown step, bounded; a failure to close cleanly is logged, never raised."""
    try:
        async with asyncio.timeout(timeout_s):
            await call
    except Exception:
        log.warning("closing a Kafka client did not finish cleanly", exc_info=True)
