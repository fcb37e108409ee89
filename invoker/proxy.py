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
import sys
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

import orjson
from pydantic import ValidationError

from invoker.pool import ActionKey, Instance, Pool
from invoker.results import (
    ACTION_FETCH_ERROR,
    ACTION_MISMATCH,
    ACTION_REMOVED,
    LINES_PER_SLICE,
    RESOURCE_PROVISION_ERROR,
    application_error,
    bound_logs,
    developer_error,
    init_failure,
    run_response,
    whisk_error,
)
from pywhisk.activation import Activation, ActivationResponse, StatusCode, between_slices
from pywhisk.entities import Action
from pywhisk.errors import ActionStartupError, ExecutorError, StoreUnavailable
from pywhisk.executor import ConcurrentExecutor, Executor, InitRequest, InstanceSpec, ProxyResult, RunRequest
from pywhisk.messages import ActivationMessage
from pywhisk.records import build_activation
from pywhisk.runtimes import RuntimeManifest
from pywhisk.store import EntityStore

log = logging.getLogger("pywhisk.invoker.proxy")

MB = 1024 * 1024
# Bytes of actions the runner keeps (Settings.invoker_action_cache_mb); one action takes at most half.
ACTION_CACHE_BYTES = 128 * MB


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
        action_cache_bytes: int = ACTION_CACHE_BYTES,
    ) -> None:
        self._store = actions
        self._pool = pool
        self._executors = executors
        # Asked once per executor: a Protocol isinstance costs ~10 µs, and this is asked per activation.
        self._runs_per_instance = {
            id(executor): executor.max_runs_per_instance
            for executor in executors.values()
            if isinstance(executor, ConcurrentExecutor)
        }
        self._manifest = manifest
        self._max_record_bytes = max_record_bytes
        self._closing = closing
        self._actions = ActionCache(action_cache_bytes)

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
        # [OW] InvokerReactive.handleActivationMessage: a revision that moved on runs the latest (the
        # store's only), a deleted action is the user's doing, any other failure to read it the platform's.
        try:
            action = await self._action(message)
        except StoreUnavailable:
            raise
        except ValidationError:
            log.exception("the action of %s is unreadable", message.activationId)
            return self._record(message, None, whisk_error(ACTION_MISMATCH), [], {})
        except Exception:
            log.exception("reading the action of %s failed", message.activationId)
            return self._record(message, None, whisk_error(ACTION_FETCH_ERROR), [], {})
        if action is None:
            return self._record(message, None, application_error(ACTION_REMOVED), [], {})
        executor = self.executor_for(action)
        if executor is None:
            response = whisk_error(f"No executor on this invoker can run actions of kind '{action.exec.kind}'.")
            return self._record(message, action, response, [], {})

        key = ActionKey(message.user.namespace.name, action.fully_qualified_name, action.rev or action.version)
        limits = action.limits
        # At most limits.concurrency runs share an instance ([OW] ContainerPool); the pool charges the runs.
        concurrency = limits.concurrency
        if id(executor) in self._runs_per_instance:
            concurrency = min(concurrency, self._runs_per_instance[id(executor)])
        # A stem cell was started before its action was known, with the executor's default network; an action
        # annotated `network: false` (Docker's crun-direct engine: no network at all) must never be given one.
        stem_kind = None if action.annotation("network") is False else action.exec.kind
        instance = await self._pool.acquire(key, executor, limits.memory, concurrency, kind=stem_kind)
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
            except ActionStartupError as exc:  # [OW] ContainerProxy: BlackboxStartupError → developer error
                response = developer_error(str(exc))
                return self._record(message, action, response, logs, timings), False
            except ExecutorError as exc:
                log.warning("provisioning %s failed: %s", action.fully_qualified_name, exc)
                return self._record(message, action, whisk_error(RESOURCE_PROVISION_ERROR), logs, timings), False
            instance.created = True
        if not instance.initialized:
            init_start = time.time() * 1000
            timings["waitTime"] = init_start - receipt_ms
            init = await instance.executor.init(instance.id, _init_request(message, action), limits.timeout, log_limit)
            timings["start"] = init_start
            timings["initTime"] = time.time() * 1000 - init_start
            if init.queued_ms:  # queued inside the executor for worker slots: waiting, not initialising
                timings["waitTime"] += init.queued_ms
                timings["start"] += init.queued_ms
                timings["initTime"] -= init.queued_ms
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
        logs = [*logs, *result.logs] if logs else result.logs  # up to ~900,000 lines at a 10 MB log limit
        response = run_response(result, limits.timeout)
        # [OW] ContainerProxy: a developer error (including a timeout) destroys the instance.
        healthy = response.statusCode != StatusCode.DEVELOPER_ERROR
        if not many_logs(logs):
            return self._record(message, action, response, logs, timings, result.timed_out), healthy
        # Standalone runs the controller on this loop too: cutting and freeing ~900,000 lines here would
        # stall every other namespace's requests, so it runs on a thread, a slice per C call, which lets
        # the loop take the GIL between slices (invoker/results.py bound_logs).
        record = await asyncio.to_thread(
            self._record, message, action, response, logs, timings, result.timed_out, serialise=True
        )
        if record.logs is not logs:  # cut: the lines left out are this runner's to free
            await asyncio.to_thread(_free, logs, result.logs)
        return record, healthy

    def _record(
        self,
        message: ActivationMessage,
        action: Action | None,
        response: ActivationResponse,
        logs: list[str],
        timings: dict[str, float],
        timed_out: bool = False,
        serialise: bool = False,
    ) -> Activation:
        # What was not measured (the activation ended before its init or run) ends now.
        now = time.time() * 1000
        bounded = bound_logs(logs, response, self._max_record_bytes, serialise)
        return build_activation(
            message,
            bounded.response,
            start_ms=timings.get("start", now),
            end_ms=timings.get("end", now),
            wait_time_ms=timings.get("waitTime", now - message.transaction.start_ms),
            kind=action.exec.kind if action is not None else None,
            timed_out=timed_out,
            limits=action.limits if action is not None else None,
            init_time_ms=timings.get("initTime"),
            logs=bounded.logs,
            logs_json=bounded.logs_json,
        )

    # the action ----------------------------------------------------------------------------------

    async def _action(self, message: ActivationMessage) -> Action | None:
        # Keyed by revision: a cached revision is immutable, so it never needs invalidating.
        cache_key = (message.action.path, message.action.name, message.revision)
        action = self._actions.get(cache_key)
        if action is None:
            action = await self._fetch_action(message.action.path, message.action.name)
            if action is None:
                return None
            self._actions.put(cache_key, action)
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


# Logs from which a record is built on a thread: ~1 ms of bounding, against ~0.1 ms for the hop.
MANY_LOG_LINES = 10_000
MANY_LOG_CHARS = 1024 * 1024


def many_logs(logs: list[str]) -> bool:
    """Whether a record with these logs is big enough to be built on a thread and kept off the bus."""
    return len(logs) >= MANY_LOG_LINES or sum(map(len, logs)) >= MANY_LOG_CHARS


def _free(*lists: list[str]) -> None:
    """Empty each list a slice at a time (freeing 900,000 strings is ~15 ms in one C call), letting go of the GIL
    between slices (pywhisk/activation.py ``between_slices``)."""
    for lines in lists:
        while lines:
            del lines[-LINES_PER_SLICE:]
            if lines:
                between_slices()


def backoff_s(attempt: int) -> float:
    """Exponential from 0.2 s, capped at 5 s, with jitter so thousands of waiters do not retry in step.

    Shared with the loop, which waits the same way to store a record.
    """
    return min(0.1 * 2.0**attempt, 5.0) * random.uniform(0.5, 1.0)


class ActionCache:
    """The actions the runner has read, least recently used first out, bounded by their size in bytes.

    An action's size is what it holds that a tenant chooses: its code (up to 48 MB of base64, or a blackbox
    image name), parameters and annotations, plus a fixed overhead for the rest. An action larger than half
    the cache is not kept (it would push out most of everyone else's), so its every activation reads it
    from the store; it is the tenant's own cost.
    """

    ENTRY_OVERHEAD_BYTES = 1024

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.max_entry_bytes = max_bytes // 2
        self.bytes = 0
        self._entries: OrderedDict[tuple[str, str, str | None], tuple[Action, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: tuple[str, str, str | None]) -> Action | None:
        """The cached action, now the most recently used; None when it is not cached."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        return entry[0]

    def put(self, key: tuple[str, str, str | None], action: Action) -> bool:
        """Keep ``action`` unless it is over the per-entry cap; evicts the least recently used to make room."""
        size = action_size(action) + self.ENTRY_OVERHEAD_BYTES
        if size > self.max_entry_bytes:
            return False
        old = self._entries.pop(key, None)
        if old is not None:
            self.bytes -= old[1]
        while self._entries and self.bytes + size > self.max_bytes:
            _, (_, evicted) = self._entries.popitem(last=False)
            self.bytes -= evicted
        self._entries[key] = (action, size)
        self.bytes += size
        return True


# What one JSON value (a number, an empty object, ...) may cost as a Python object beyond its text, at most.
PYTHON_OBJECT_BYTES = 64


def action_size(action: Action) -> int:
    """Bytes an action holds that its owner chose (code, image, parameters, annotations), as held in memory.

    Strings by ``getsizeof`` (a non-ASCII character takes up to 4 bytes); parameter and annotation values by
    their JSON plus ``PYTHON_OBJECT_BYTES`` per value in it (counted by its separators), because 1 MB of
    ``[{},{},...]`` is 20 MB of dicts: an overestimate for most values, never an underestimate.
    """
    chosen = sum(sys.getsizeof(text) for text in (action.exec.code, action.exec.image, action.exec.main) if text)
    pairs = (*action.parameters, *action.annotations)
    values = orjson.dumps([p.value for p in pairs])
    elements = values.count(b",") + values.count(b"{") + values.count(b"[")
    return chosen + sum(sys.getsizeof(p.key) for p in pairs) + len(values) + PYTHON_OBJECT_BYTES * elements


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
