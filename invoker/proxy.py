"""The per-activation runner: OpenWhisk's ContainerProxy, for any executor.

The invoker is two parts with one contract between them, as OpenWhisk's ContainerPool (the
scheduling) and ContainerProxy (one container's life through an activation):

- The consume loop (``invoker/invoker.py``) owns capacity and delivery: it takes a slot before it
  reads, decodes each delivery into an ``ActivationMessage`` and hands it to ``ActivationRunner.run``;
  it stores the record that comes back (waiting out store outages), sends the completion, then acks.
- The runner owns one activation from message to record: it reads the action (cached by revision),
  chooses the executor, acquires an instance from the pool, creates and initialises it when cold,
  runs it with the OpenWhisk proxy bodies and ``__OW_*`` environment, releases it (warm, or to be
  destroyed after a developer error), and builds the record with its ``waitTime`` and ``initTime``.
- ``run`` returns a record for every activation: a developer, application or whisk internal error
  is a record too. The one exception is ``StoreUnavailable`` once the invoker is closing, which
  means "leave this message unacknowledged, the bus delivers it again".
- The runner never touches the bus and never writes to the store; the loop never looks inside an
  action.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from invoker.pool import ActionKey, Instance, Pool
from invoker.results import bound_record, init_failure, run_response, whisk_error
from pywhisk.activation import Activation, ActivationResponse, StatusCode
from pywhisk.entities import Action
from pywhisk.errors import ExecutorError, StoreUnavailable
from pywhisk.executor import ConcurrentExecutor, Executor, InitRequest, InstanceSpec, ProxyResult, RunRequest
from pywhisk.messages import ActivationMessage
from pywhisk.records import build_activation
from pywhisk.runtimes import RuntimeManifest
from pywhisk.store import EntityStore

log = logging.getLogger("pywhisk.invoker.proxy")

MB = 1024 * 1024
# Actions kept by (namespace, name, revision): a revision never changes, so entries never go stale.
ACTION_CACHE_SIZE = 1024


class ActivationRunner:
    """Runs activations on the pool's instances, one per call of ``run`` (calls run concurrently).

    ``actions`` is read for the action of each message; ``pool`` lends the instances; ``executors``
    by name and ``manifest`` decide which executor serves a kind; records are cut to
    ``max_record_bytes``; ``closing`` says when to stop waiting for an unavailable store.
    """

    def __init__(
        self,
        *,
        actions: EntityStore,
        pool: Pool,
        executors: Mapping[str, Executor],
        manifest: RuntimeManifest,
        max_record_bytes: int,
        closing: Callable[[], bool] = lambda: False,
    ) -> None:
        self._store = actions
        self._pool = pool
        self._executors = executors
        self._manifest = manifest
        self._max_record_bytes = max_record_bytes
        self._closing = closing
        self._actions: OrderedDict[tuple[str, str, str | None], Action] = OrderedDict()

    async def run(self, message: ActivationMessage) -> Activation:
        """The record of ``message``'s activation, whatever happened to it.

        Raises ``StoreUnavailable`` only when the action could not be read before shutdown.
        """
        try:
            return await self._activate(message)
        except StoreUnavailable:
            raise
        except Exception:
            log.exception("activation %s failed inside the invoker", message.activationId)
            return self._record(message, None, whisk_error("An internal error occurred."), [], {})

    def executor_for(self, action: Action) -> Executor | None:
        """The executor pinned by the ``executor`` annotation (if it serves the kind), else the manifest's."""
        pinned = action.annotation("executor")
        if isinstance(pinned, str) and pinned in self._executors:
            executor = self._executors[pinned]
            return executor if action.exec.kind in executor.kinds() else None
        return self._executors.get(self._manifest.executor_for(action.exec.kind))

    # one activation ------------------------------------------------------------------------------

    async def _activate(self, message: ActivationMessage) -> Activation:
        action = await self._action(message)
        if action is None:
            return self._record(message, None, whisk_error("The action could not be found."), [], {})
        executor = self.executor_for(action)
        if executor is None:
            response = whisk_error(f"No executor on this invoker can run actions of kind '{action.exec.kind}'.")
            return self._record(message, action, response, [], {})

        key = ActionKey(message.user.namespace.name, action.fully_qualified_name, action.rev or action.version)
        limits = action.limits
        concurrency = limits.concurrency
        if isinstance(executor, ConcurrentExecutor):
            concurrency = max(concurrency, executor.max_runs_per_instance)
        instance = await self._pool.acquire(key, executor, limits.memory, concurrency, kind=action.exec.kind)
        healthy = False
        try:
            record, healthy = await self._run_on(instance, message, action)
        finally:
            self._pool.release(instance, healthy)
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
                await instance.executor.create(_spec(instance, action))
            except ExecutorError as exc:
                log.warning("provisioning %s failed: %s", action.fully_qualified_name, exc)
                response = whisk_error("Failed to provision resources to run the action.")
                return self._record(message, action, response, logs, timings), False
            instance.created = True
        if not instance.initialized:
            init_start = time.time() * 1000
            timings["waitTime"] = init_start - receipt_ms
            init = await instance.executor.init(instance.id, _init_request(message, action), limits.timeout, log_limit)
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
            instance.id, _run_request(message, action), limits.timeout, log_limit
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

    def _record(
        self,
        message: ActivationMessage,
        action: Action | None,
        response: ActivationResponse,
        logs: list[str],
        timings: dict[str, float],
        timed_out: bool = False,
    ) -> Activation:
        # What was not measured (the activation ended before its init or run) ends now.
        now = time.time() * 1000
        record = build_activation(
            message,
            response,
            start_ms=timings.get("start", now),
            end_ms=timings.get("end", now),
            wait_time_ms=timings.get("waitTime", now - message.transaction.start_ms),
            kind=action.exec.kind if action is not None else None,
            timed_out=timed_out,
            limits=action.limits if action is not None else None,
            init_time_ms=timings.get("initTime"),
            logs=logs,
        )
        return bound_record(record, self._max_record_bytes)

    # the action ----------------------------------------------------------------------------------

    async def _action(self, message: ActivationMessage) -> Action | None:
        # Keyed by revision: a cached revision is immutable, so it never needs invalidating.
        cache_key = (message.action.path, message.action.name, message.revision)
        action = self._actions.get(cache_key)
        if action is None:
            action = await self._fetch_action(message.action.path, message.action.name)
            if action is None:
                return None
            self._actions[cache_key] = action
            if len(self._actions) > ACTION_CACHE_SIZE:
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
                if self._closing() and attempt > 3:
                    raise
                log.warning("reading action %s/%s failed (attempt %d): %s", namespace, name, attempt, exc)
                await asyncio.sleep(backoff_s(attempt))


def backoff_s(attempt: int) -> float:
    """Exponential from 0.2 s, capped at 5 s, with jitter so thousands of waiters do not retry in step.

    Shared with the loop, which waits the same way to store a record.
    """
    return min(0.1 * 2.0**attempt, 5.0) * random.uniform(0.5, 1.0)


# the proxy protocol's bodies (reference/openwhisk.md §4) ------------------------------------------


def _spec(instance: Instance, action: Action) -> InstanceSpec:
    return InstanceSpec(
        instance_id=instance.id,
        kind=action.exec.kind,
        memory_mb=action.limits.memory,
        image=action.exec.image,
        annotations={p.key: p.value for p in action.annotations},
    )


def _init_request(message: ActivationMessage, action: Action) -> InitRequest:
    env = {p.key: _env_value(p.value) for p in action.parameters if p.init}
    env.update(_run_request(message, action).environment())  # the __OW_* values
    return InitRequest(
        name=action.name,
        main=action.exec.main or "main",
        code=action.exec.code,
        binary=action.exec.binary,
        env=env,
    )


def _run_request(message: ActivationMessage, action: Action) -> RunRequest:
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


def _env_value(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def _provides_api_key(action: Action) -> bool:
    # A missing annotation counts as true ([OW] ContainerProxy).
    return action.annotation("provide-api-key", True) not in (False, "false")
