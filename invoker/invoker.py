"""The invoker: consumes activations, runs them on pooled instances, stores records, acks.

Shaped like arq's worker: a bounded number of activations in progress (taken before reading more
work), one task per activation, a record for every activation whatever happens, and a clean drain
on close.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import OrderedDict
from typing import Any

import orjson
from pydantic import ValidationError

from invoker.pool import ActionKey, Instance, Pool, StemCells
from invoker.results import bound_record, init_failure, run_response, whisk_error
from pywhisk.activation import Activation, ActivationResponse, StatusCode
from pywhisk.bus import Bus, Consumer, Delivery
from pywhisk.entities import Action, KeyValue
from pywhisk.errors import ExecutorError, StoreUnavailable
from pywhisk.executor import ConcurrentExecutor, Executor, InitRequest, InstanceSpec, ProxyResult, RunRequest
from pywhisk.lifecycle import every
from pywhisk.messages import (
    HEALTH_TOPIC,
    ActivationMessage,
    CompletionMessage,
    InvokerInstance,
    PingMessage,
    completed_topic,
    invoker_topic,
)
from pywhisk.runtimes import RuntimeManifest
from pywhisk.settings import Settings
from pywhisk.store import Store

log = logging.getLogger("pywhisk.invoker")

PING_INTERVAL_S = 1.0
# While every slot is taken the consumer is told to stay in its group this often (Kafka's
# max.poll.interval is 10 min here: an invoker full for longer would be dropped and its work redelivered).
KEEP_ALIVE_S = 60.0
MB = 1024 * 1024


class Invoker:
    """One invoker (``invoker{N}``) with its pool and executors."""

    def __init__(
        self,
        settings: Settings,
        bus: Bus,
        store: Store,
        executors: dict[str, Executor],
        manifest: RuntimeManifest,
    ) -> None:
        self.settings = settings
        self.instance = InvokerInstance(
            instance=settings.invoker_id,
            uniqueName=f"invoker{settings.invoker_id}",
            userMemory=f"{settings.user_memory_mb} MB",
        )
        self._bus = bus
        self._store = store
        self._executors = executors
        self._manifest = manifest
        self.pool = Pool(settings.user_memory_mb, settings.idle_timeout_s, settings.pause_grace_s)
        self._slots = asyncio.Semaphore(settings.invoker_max_in_progress)
        self._actions: OrderedDict[tuple[str, str, str | None], Action] = OrderedDict()
        self._running: set[asyncio.Task[None]] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._consumer: Consumer | None = None
        self._closing = False

    async def start(self) -> None:
        for executor in self._executors.values():
            await executor.start()
        await self.pool.start()
        for runtime in self._manifest.all_runtimes():
            serving = self._executors.get(runtime.executor)
            if serving is None:
                continue
            for cells in runtime.stemCells:
                self.pool.prewarm(StemCells(serving, runtime.kind, cells.memory, cells.count))
        # A group per invoker, as OpenWhisk: one invoker's restart must not rebalance the others.
        topic = invoker_topic(self.settings.invoker_id)
        self._consumer = await self._bus.subscribe(topic, group=topic)
        await self._ping()
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._consume(self._consumer), name="invoker-consume"),
            loop.create_task(every(PING_INTERVAL_S, self._ping, "health ping", log), name="invoker-ping"),
        ]

    async def close(self) -> None:
        """Stop reading, let the activations in progress finish and be recorded, then let go."""
        self._closing = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._running:
            await asyncio.wait(self._running, timeout=self.settings.drain_timeout_s)
        if self._consumer is not None:
            # Whatever did not finish is not acknowledged: the bus delivers it again.
            await self._consumer.close()
        await self.pool.close()
        for executor in self._executors.values():
            await executor.close()

    # the loop ------------------------------------------------------------------------------------

    async def _consume(self, consumer: Consumer) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._take_slot(consumer)  # bounded work in progress, taken before reading more
            self._slots.release()
            for delivery in await consumer.receive(max_messages=100, timeout_s=1.0):
                await self._take_slot(consumer)
                task = loop.create_task(self._handle(consumer, delivery))
                self._running.add(task)
                task.add_done_callback(self._done)

    async def _take_slot(self, consumer: Consumer) -> None:
        while True:
            try:
                async with asyncio.timeout(KEEP_ALIVE_S):
                    await self._slots.acquire()
                return
            except TimeoutError:
                log.info("every slot busy for %.0f s; staying in the consumer group", KEEP_ALIVE_S)
                try:
                    await consumer.keep_alive()
                except Exception as exc:  # the bus is away: the next round tries again
                    log.warning("keeping the consumer group membership failed: %s", exc)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._slots.release()

    async def _ping(self) -> None:
        ping = PingMessage(name=self.instance, timestamp=time.time() * 1000)
        await self._bus.send(HEALTH_TOPIC, ping.serialize())

    # one activation ------------------------------------------------------------------------------

    async def _handle(self, consumer: Consumer, delivery: Delivery) -> None:
        try:
            message = ActivationMessage.model_validate_json(delivery.value)
        except (ValidationError, orjson.JSONDecodeError):
            log.exception("dropping a malformed activation message")
            await consumer.ack(delivery)
            return
        try:
            record = await self._activate(message)
        except StoreUnavailable as exc:  # only when closing: left unacknowledged, delivered again
            log.warning("activation %s left for redelivery: %s", message.activationId, exc)
            return
        except Exception:
            log.exception("activation %s failed inside the invoker", message.activationId)
            record = self._record(message, None, whisk_error("An internal error occurred."), [], {})
        if await self._finish(message, record):
            await consumer.ack(delivery)

    async def _activate(self, message: ActivationMessage) -> Activation:
        action = await self._action(message)
        if action is None:
            return self._record(message, None, whisk_error("The action could not be found."), [], {})
        executor = self._executor_for(action)
        if executor is None:
            response = whisk_error(f"No executor on this invoker can run actions of kind '{action.exec.kind}'.")
            return self._record(message, action, response, [], {})

        key = ActionKey(message.user.namespace.name, action.fully_qualified_name, action.rev or action.version)
        limits = action.limits
        concurrency = limits.concurrency
        if isinstance(executor, ConcurrentExecutor):
            concurrency = max(concurrency, executor.max_runs_per_instance)
        instance = await self.pool.acquire(key, executor, limits.memory, concurrency, kind=action.exec.kind)
        healthy = False
        try:
            record, healthy = await self._run_on(instance, message, action)
        finally:
            self.pool.release(instance, healthy)
        return record

    async def _run_on(self, instance: Instance, message: ActivationMessage, action: Action) -> tuple[Activation, bool]:
        """Init (on a cold instance) and run; returns the record and whether the instance stays warm."""
        limits = action.limits
        log_limit = limits.logs * MB
        timings: dict[str, float] = {}
        logs: list[str] = []
        receipt_ms = message.transaction.start_ms
        if not instance.created:  # a stem cell was created (and started) before it was needed
            try:
                await instance.executor.create(self._spec(instance, action))
            except ExecutorError as exc:
                log.warning("provisioning %s failed: %s", action.fully_qualified_name, exc)
                response = whisk_error("Failed to provision resources to run the action.")
                return self._record(message, action, response, logs, timings), False
            instance.created = True
        if not instance.initialized:
            init_start = time.time() * 1000
            timings["waitTime"] = init_start - receipt_ms
            init = await instance.executor.init(
                instance.id, self._init_request(message, action), limits.timeout, log_limit
            )
            timings["start"] = init_start
            timings["initTime"] = time.time() * 1000 - init_start
            logs.extend(init.logs)
            failure = init_failure(init, limits.timeout)
            if failure is not None:
                timings["end"] = time.time() * 1000
                return self._record(message, action, failure, logs, timings, init.timed_out), False
            instance.initialized = True

        run_start = time.time() * 1000
        timings.setdefault("waitTime", run_start - receipt_ms)
        timings.setdefault("start", run_start)
        result: ProxyResult = await instance.executor.run(
            instance.id, self._run_request(message, action), limits.timeout, log_limit
        )
        timings["end"] = time.time() * 1000
        if result.queued_ms and "initTime" not in timings:  # queued inside the executor: still waiting
            timings["waitTime"] += result.queued_ms
            timings["start"] += result.queued_ms
        logs.extend(result.logs)
        response = run_response(result, limits.timeout)
        # [OW] ContainerProxy: a developer error (including a timeout) destroys the instance.
        healthy = response.statusCode != StatusCode.DEVELOPER_ERROR
        return self._record(message, action, response, logs, timings, result.timed_out), healthy

    async def _finish(self, message: ActivationMessage, record: Activation) -> bool:
        """Store the record, then tell the controller. False if the record could not be stored
        before shutdown: the message is then left unacknowledged, to be delivered again."""
        if not await self._store_record(record):
            return False
        ack = CompletionMessage(
            transid=message.transid,
            activationId=message.activationId,
            isSystemError=record.status_code == StatusCode.WHISK_ERROR,
            instance=self.instance,
            response=record if message.blocking else None,
        )
        try:
            await self._bus.send(completed_topic(message.rootControllerIndex.asString), ack.serialize())
        except Exception:  # the record is stored; the controller falls back to the store
            log.exception("sending the completion of %s failed", message.activationId)
        return True

    async def _store_record(self, record: Activation) -> bool:
        # A store outage (e.g. CouchDB restarting) must not lose the record: retry until it is back,
        # backing off to a few seconds, for as long as the invoker runs.
        attempt = 0
        while True:
            try:
                await self._store.put_activation(record)
                return True
            except Exception as exc:
                attempt += 1
                if self._closing and attempt > 3:
                    log.error("giving up storing %s at shutdown: %s", record.activationId, exc)
                    return False
                log.warning("storing activation %s failed (attempt %d): %s", record.activationId, attempt, exc)
                await asyncio.sleep(_backoff_s(attempt))

    # helpers -------------------------------------------------------------------------------------

    async def _action(self, message: ActivationMessage) -> Action | None:
        # Keyed by revision: a cached revision is immutable, so it never needs invalidating.
        cache_key = (message.action.path, message.action.name, message.revision)
        action = self._actions.get(cache_key)
        if action is None:
            action = await self._fetch_action(message.action.path, message.action.name)
            if action is None:
                return None
            self._actions[cache_key] = action
            if len(self._actions) > 1024:
                self._actions.popitem(last=False)
        else:
            self._actions.move_to_end(cache_key)
        return action

    async def _fetch_action(self, namespace: str, name: str) -> Action | None:
        # While the store is away the activation waits for it (unacknowledged) rather than failing.
        attempt = 0
        while True:
            try:
                return await self._store.get_action(namespace, name)
            except StoreUnavailable as exc:
                attempt += 1
                if self._closing and attempt > 3:
                    raise
                log.warning("reading action %s/%s failed (attempt %d): %s", namespace, name, attempt, exc)
                await asyncio.sleep(_backoff_s(attempt))

    def _executor_for(self, action: Action) -> Executor | None:
        pinned = action.annotation("executor")
        if isinstance(pinned, str) and pinned in self._executors:
            executor = self._executors[pinned]
            return executor if action.exec.kind in executor.kinds() else None
        return self._executors.get(self._manifest.executor_for(action.exec.kind))

    @staticmethod
    def _spec(instance: Instance, action: Action) -> InstanceSpec:
        return InstanceSpec(
            instance_id=instance.id,
            kind=action.exec.kind,
            memory_mb=action.limits.memory,
            image=action.exec.image,
            annotations={p.key: p.value for p in action.annotations},
        )

    def _init_request(self, message: ActivationMessage, action: Action) -> InitRequest:
        env = {p.key: _env_value(p.value) for p in action.parameters if p.init}
        env.update(self._ow_environment(message, action))
        return InitRequest(
            name=action.name,
            main=action.exec.main or "main",
            code=action.exec.code,
            binary=action.exec.binary,
            env=env,
        )

    def _run_request(self, message: ActivationMessage, action: Action) -> RunRequest:
        return RunRequest(
            value=message.content if message.content is not None else {},
            namespace=message.user.namespace.name,
            action_name=action.fully_qualified_name,
            action_version=action.version,
            activation_id=message.activationId,
            transaction_id=message.transaction.id,
            deadline=str(int(time.time() * 1000) + action.limits.timeout),
            api_key=message.user.authkey.api_key if _provides_api_key(action) else None,
        )

    def _ow_environment(self, message: ActivationMessage, action: Action) -> dict[str, str]:
        request = self._run_request(message, action)
        return request.environment()

    def _record(
        self,
        message: ActivationMessage,
        action: Action | None,
        response: ActivationResponse,
        logs: list[str],
        timings: dict[str, float],
        timed_out: bool = False,
    ) -> Activation:
        now = time.time() * 1000
        start = int(timings.get("start", now))
        end = int(timings.get("end", now))
        annotations = [
            KeyValue(key="path", value=f"{message.action.path}/{message.action.name}"),
            KeyValue(key="waitTime", value=round(timings.get("waitTime", now - message.transaction.start_ms))),
        ]
        if action is not None:
            annotations += [
                KeyValue(key="kind", value=action.exec.kind),
                KeyValue(key="timeout", value=timed_out),
                KeyValue(key="limits", value=action.limits.model_dump()),
            ]
        if "initTime" in timings:
            annotations.append(KeyValue(key="initTime", value=round(timings["initTime"])))
        record = Activation(
            activationId=message.activationId,
            namespace=message.user.namespace.name,
            name=message.action.name,
            subject=message.user.subject,
            version=message.action.version,
            start=start,
            end=end,
            duration=end - start,
            cause=message.cause,
            response=response,
            logs=logs,
            annotations=annotations,
        )
        return bound_record(record, self.settings.activation_max_bytes)


def _backoff_s(attempt: int) -> float:
    """Exponential from 0.2 s, capped at 5 s, with jitter so thousands of waiters do not retry in step."""
    return min(0.1 * 2.0**attempt, 5.0) * random.uniform(0.5, 1.0)


def _env_value(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def _provides_api_key(action: Action) -> bool:
    # A missing annotation counts as true ([OW] ContainerProxy).
    return action.annotation("provide-api-key", True) not in (False, "false")
