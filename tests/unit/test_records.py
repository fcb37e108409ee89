"""Activation records built by ``pywhisk.records.build_activation``: the invoker's and the balancer's.

The reference records below are spelled out field by field, as the invoker and the balancer built
them before they shared the helper: the stored JSON must stay the same byte for byte.
"""

from __future__ import annotations

import orjson
import pytest

from pywhisk.activation import Activation, ActivationResponse, StatusCode
from pywhisk.entities import KeyValue, Limits
from pywhisk.identity import guest_identity
from pywhisk.messages import ActionRef, ActivationMessage, ControllerInstance
from pywhisk.records import build_activation

pytestmark = pytest.mark.unit

RECEIPT_MS = 1_700_000_000_000.25


def _message(cause: str | None = None) -> ActivationMessage:
    return ActivationMessage(
        transid=["tid", RECEIPT_MS],
        action=ActionRef(path="guest/pkg", name="hello", version="0.0.3"),
        user=guest_identity(),
        activationId="a" * 32,
        rootControllerIndex=ControllerInstance(asString="0"),
        blocking=True,
        cause=cause,
    )


def _stored(record: Activation) -> bytes:
    return orjson.dumps(record.model_dump(mode="json"))


def test_a_cold_activation_record_has_every_annotation_in_openwhisk_order() -> None:
    message = _message(cause="b" * 32)
    response = ActivationResponse.of(StatusCode.SUCCESS, {"ok": True})
    limits = Limits(timeout=3000, memory=128)
    start, end = RECEIPT_MS + 2.6, RECEIPT_MS + 9.9
    logs = ["2024-01-01T00:00:00.000000Z    stdout: hi"]

    record = build_activation(
        message,
        response,
        start_ms=start,
        end_ms=end,
        wait_time_ms=2.6,
        kind="wasm:wasi",
        timed_out=False,
        limits=limits,
        init_time_ms=4.4,
        logs=logs,
    )

    reference = Activation(
        activationId=message.activationId,
        namespace="guest",
        name="hello",
        subject=message.user.subject,
        version="0.0.3",
        start=int(start),
        end=int(end),
        duration=int(end) - int(start),
        cause="b" * 32,
        response=response,
        logs=logs,
        annotations=[
            KeyValue(key="path", value="guest/pkg/hello"),
            KeyValue(key="waitTime", value=3),
            KeyValue(key="kind", value="wasm:wasi"),
            KeyValue(key="timeout", value=False),
            KeyValue(key="limits", value={"timeout": 3000, "memory": 128, "logs": 10, "concurrency": 1}),
            KeyValue(key="initTime", value=4),
        ],
    )
    assert _stored(record) == _stored(reference)
    assert [pair.key for pair in record.annotations] == ["path", "waitTime", "kind", "timeout", "limits", "initTime"]


def test_a_warm_activation_that_timed_out_has_no_init_time() -> None:
    record = build_activation(
        _message(),
        ActivationResponse.error(
            StatusCode.DEVELOPER_ERROR, "The action exceeded its time limits of 100 milliseconds."
        ),
        start_ms=RECEIPT_MS + 1,
        end_ms=RECEIPT_MS + 101,
        wait_time_ms=1,
        kind="wasm:wasi",
        timed_out=True,
        limits=Limits(),
    )

    assert [pair.key for pair in record.annotations] == ["path", "waitTime", "kind", "timeout", "limits"]
    assert record.annotation("timeout") is True
    assert record.duration == 100
    assert record.logs == []


def test_a_record_without_an_action_has_only_path_and_wait_time() -> None:
    # The action could not be read: nothing is known of its kind or limits.
    now = RECEIPT_MS + 50.5
    record = build_activation(
        _message(),
        ActivationResponse.error(StatusCode.WHISK_ERROR, "The action could not be found."),
        start_ms=now,
        end_ms=now,
        wait_time_ms=now - RECEIPT_MS,
    )

    assert [(pair.key, pair.value) for pair in record.annotations] == [("path", "guest/pkg/hello"), ("waitTime", 50)]
    assert (record.start, record.end, record.duration) == (int(now), int(now), 0)
    assert record.status_code == StatusCode.WHISK_ERROR


def test_the_balancers_lost_record_is_the_same_as_before_the_shared_helper() -> None:
    message = _message(cause="c" * 32)
    now_ms = RECEIPT_MS + 120_000.7
    response = ActivationResponse.error(StatusCode.WHISK_ERROR, "lost")

    record = build_activation(
        message, response, start_ms=now_ms, end_ms=now_ms, wait_time_ms=now_ms - RECEIPT_MS, kind="python:3"
    )

    reference = Activation(
        activationId=message.activationId,
        namespace=message.user.namespace.name,
        name=message.action.name,
        subject=message.user.subject,
        version=message.action.version,
        start=int(now_ms),
        end=int(now_ms),
        duration=0,
        cause=message.cause,
        response=response,
        annotations=[
            KeyValue(key="path", value=f"{message.action.path}/{message.action.name}"),
            KeyValue(key="waitTime", value=round(now_ms - message.transaction.start_ms)),
            KeyValue(key="kind", value="python:3"),
            KeyValue(key="timeout", value=False),
        ],
    )
    assert _stored(record) == _stored(reference)
    assert record.to_api() == reference.to_api()
