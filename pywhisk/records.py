"""Building activation records: the one construction behind every record an activation ends with.

The invoker records what ran (or why it could not run); the controller records an activation whose
invoker went away. Both build the record here, so the two cannot drift apart in fields or in the
order of annotations ([OW] ContainerProxy.constructWhiskActivation, reference/openwhisk.md §3).
"""

from __future__ import annotations

from pywhisk.activation import Activation, ActivationResponse
from pywhisk.entities import KeyValue, Limits
from pywhisk.messages import ActivationMessage


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
