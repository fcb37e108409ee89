"""Building activation records: the one construction behind every record an activation ends with.

The invoker records what ran (or why it could not run); the controller records an activation whose
invoker went away. Both build the record here, so the two cannot drift apart in fields or in the
order of annotations ([OW] ContainerProxy.constructWhiskActivation, reference/openwhisk.md §3).
"""

from __future__ import annotations

import asyncio
import time

from pywhisk.activation import Activation, ActivationResponse
from pywhisk.entities import KeyValue, Limits
from pywhisk.messages import ActivationMessage

# How long a worker thread lets go of the GIL between two slices of a big record's work (``between_slices``):
# long enough for a thread it wakes to be scheduled and take the GIL; ~70 slices of a 10 MB log cost ~10 ms of
# wall time this way, and no CPU.
SLICE_PAUSE_S = 0.00005


def between_slices() -> None:
    """Call between two slices of a big record's work on a worker thread (formatting, bounding, serialising a
    10 MB log): lets go of the GIL for ``SLICE_PAUSE_S``, so that a thread waiting for it takes it now.

    Without this, the worker gives the GIL up only when the interpreter's switch interval (5 ms) forces it: the
    event loop, which takes the GIL again after every wait (each hand-off of another namespace's hello to the
    bus, the store and the executor threads and back), then waits up to 5 ms each time, and the hello up to
    tens of milliseconds for a record it has no part in. On the event loop's own thread it does nothing (a
    sleep there would stall every request)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        time.sleep(SLICE_PAUSE_S)


def build_activation(
    message: ActivationMessage,
    response: ActivationResponse,
    *,
    start_ms: float,
    end_ms: float,
    wait_time_ms: float,
    kind: str | None = None,
    timed_out: bool = False,
    limits: Limits | None = None,
    init_time_ms: float | None = None,
    logs: list[str] | None = None,
    logs_json: bytes | None = None,
) -> Activation:
    """The record of ``message``'s activation, ending with ``response``.

    Times are epoch milliseconds (``start``/``end`` are cut to whole ones, ``duration`` is their
    difference, so it includes any init time); ``wait_time_ms`` and ``init_time_ms`` are durations,
    rounded. The annotations come in one order: ``path``, ``waitTime`` (``causedBy`` for a sequence's
    component), then what is known of the
    action: ``kind`` with ``timeout`` (whether the action hit its time limit), ``limits``, and
    ``initTime`` on a cold start only. ``logs_json``, when given, is ``orjson.dumps(logs)`` (kept for
    ``Activation.document``).
    """
    start = int(start_ms)
    end = int(end_ms)
    annotations = [
        KeyValue(key="path", value=f"{message.action.path}/{message.action.name}"),
        # A sequence's component has no wait of its own to show: its transid is the sequence's
        # ([OW] ContainerProxy.constructWhiskActivation emits causedBy in place of waitTime).
        KeyValue(key="causedBy", value=message.causedBy)
        if message.causedBy
        else KeyValue(key="waitTime", value=round(wait_time_ms)),
    ]
    if kind is not None:
        annotations += [KeyValue(key="kind", value=kind), KeyValue(key="timeout", value=timed_out)]
    if limits is not None:
        annotations.append(KeyValue(key="limits", value=limits.model_dump()))
    if init_time_ms is not None:
        annotations.append(KeyValue(key="initTime", value=round(init_time_ms)))
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
        logs=[],
        annotations=annotations,
    )
    if logs:
        # Strings already (an executor's ProxyResult validated them): validating 100,000 lines again
        # would hold the event loop for tens of milliseconds.
        record.logs = logs
        if logs_json is not None:
            record.keep_logs_json(logs_json)
    return record
