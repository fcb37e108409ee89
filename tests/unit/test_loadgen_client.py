"""loadgen's OpenWhisk client against httpx.MockTransport: outcomes are returned, never raised, for invokes."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from loadgen.client import WhiskClient
from loadgen.config import Target
from loadgen.errors import LoadgenError

pytestmark = pytest.mark.unit

TARGET = Target("http://openwhisk.test", "uuid:key")


def record(activation_id: str, status: str = "success", **annotations: Any) -> dict[str, Any]:
    return {
        "activationId": activation_id,
        "duration": 12,
        "start": 1000,
        "end": 1012,
        "response": {"status": status, "success": status == "success", "result": {}},
        "annotations": [{"key": k, "value": v} for k, v in annotations.items()],
    }


def client_for(handler: Callable[[httpx.Request], httpx.Response]) -> WhiskClient:
    return WhiskClient(TARGET, transport=httpx.MockTransport(handler), poll_timeout_s=5)


async def test_blocking_invoke_returns_the_record_and_its_timings() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=record("a1", waitTime=3, initTime=40))

    async with client_for(handler) as client:
        invocation = await client.invoke("lg-wasm-hello", {"name": "x"})

    assert invocation.succeeded
    assert (invocation.activation_id, invocation.status) == ("a1", "success")
    assert invocation.annotation("waitTime") == 3
    assert invocation.annotation("initTime") == 40
    assert invocation.client_ms >= 0
    request = seen[0]
    assert request.method == "POST"
    assert request.url.path == "/api/v1/namespaces/_/actions/lg-wasm-hello"
    assert dict(request.url.params) == {"blocking": "true", "result": "false"}
    assert json.loads(request.content) == {"name": "x"}
    assert request.headers["authorization"].startswith("Basic ")


async def test_an_action_error_keeps_its_record_and_status() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, json=record("a2", "action developer error", waitTime=1))

    async with client_for(handler) as client:
        invocation = await client.invoke("x", {})

    assert not invocation.succeeded
    assert (invocation.http_status, invocation.status) == (502, "action developer error")


async def test_a_throttled_invoke_is_reported_with_the_api_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, json={"error": "Too many concurrent requests in flight.", "code": "c1"})

    async with client_for(handler) as client:
        invocation = await client.invoke("x", {})

    assert (invocation.status, invocation.http_status, invocation.record) == ("http 429", 429, None)
    assert invocation.error == "Too many concurrent requests in flight."


async def test_a_transport_error_is_an_outcome_not_an_exception() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async with client_for(handler) as client:
        invocation = await client.invoke("x", {})

    assert invocation.status == "transport error"
    assert invocation.http_status is None
    assert "connection refused" in (invocation.error or "")


async def test_a_202_is_polled_until_the_record_exists() -> None:
    gets = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal gets
        if request.method == "POST":
            return httpx.Response(202, json={"activationId": "slow"})
        assert request.url.path == "/api/v1/namespaces/_/activations/slow"
        gets += 1
        if gets < 2:
            return httpx.Response(404, json={"error": "The requested resource does not exist.", "code": "x"})
        return httpx.Response(200, json=record("slow", waitTime=1))

    async with client_for(handler) as client:
        invocation = await client.invoke("x", {})
        unpolled = await client.invoke("x", {}, poll=False)

    assert invocation.polled and invocation.status == "success"
    assert not invocation.succeeded  # it did not finish within the blocking wait
    assert (unpolled.status, unpolled.record, unpolled.activation_id) == ("accepted", None, "slow")


async def test_non_blocking_invokes_succeed_by_their_polled_record_and_fail_by_its_status() -> None:
    gets: dict[str, int] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            assert request.url.params["blocking"] == "false"
            name = request.url.path.rsplit("/", 1)[1]
            if name == "throttled":
                return httpx.Response(429, json={"error": "Too many requests in the last minute.", "code": "x"})
            return httpx.Response(202, json={"activationId": f"id-{name}"})
        activation_id = request.url.path.rsplit("/", 1)[1]
        gets[activation_id] = gets.get(activation_id, 0) + 1
        if gets[activation_id] < 2:  # not recorded yet
            return httpx.Response(404, json={"error": "The requested resource does not exist.", "code": "x"})
        status = "success" if activation_id == "id-ok" else "whisk internal error"
        return httpx.Response(200, json=record(activation_id, status, waitTime=3))

    async with client_for(handler) as client:
        ok = await client.invoke_nonblocking("ok", {}, poll_after_s=0)
        failed = await client.invoke_nonblocking("broken", {}, poll_after_s=0)
        refused = await client.invoke_nonblocking("throttled", {}, poll_after_s=0)

    assert (ok.succeeded, ok.status, ok.annotation("waitTime"), ok.blocking) == (True, "success", 3, False)
    assert (failed.succeeded, failed.status) == (False, "whisk internal error")
    assert (refused.succeeded, refused.status, refused.record) == (False, "http 429", None)
    assert refused.error == "Too many requests in the last minute."


async def test_put_action_overwrites_and_reports_api_errors() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.params["overwrite"] == "true"
        if request.url.path.endswith("/bad"):
            return httpx.Response(400, json={"error": "exec malformed: code undefined", "code": "x"})
        return httpx.Response(200, json={"name": "good", "version": "0.0.2"})

    async with client_for(handler) as client:
        assert (await client.put_action("good", {}))["version"] == "0.0.2"
        with pytest.raises(LoadgenError, match="PUT action bad: HTTP 400: exec malformed: code undefined"):
            await client.put_action("bad", {})


async def test_check_explains_an_unreachable_host_and_a_refused_key() -> None:
    def unreachable(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("All connection attempts failed", request=request)

    def refused(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v1":
            return httpx.Response(200, json={"build": "test"})
        return httpx.Response(401, json={"error": "The supplied authentication is invalid", "code": "x"})

    def fine(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v1":
            return httpx.Response(200, json={"build": "test"})
        return httpx.Response(200, json=[])

    async with client_for(unreachable) as client:
        with pytest.raises(LoadgenError, match=r"cannot reach the API host http://openwhisk.test: ConnectError"):
            await client.check()
    async with client_for(refused) as client:
        with pytest.raises(LoadgenError, match="refused the auth key"):
            await client.check()
    async with client_for(fine) as client:
        assert await client.check() == {"build": "test"}


def test_idle_connections_are_dropped_before_the_server_may_close_them() -> None:
    # Equal timeouts race: the server closes an idle connection as a POST is sent on it (a ReadError, and a
    # POST that cannot be retried). The client must give up its idle connections first.
    from loadgen.client import KEEPALIVE_EXPIRY_S
    from pywhisk.settings import Settings

    assert Settings().http_keep_alive_s > KEEPALIVE_EXPIRY_S
    assert KEEPALIVE_EXPIRY_S < 5.0  # uvicorn's own default timeout_keep_alive


def test_httpcores_import_of_sniffio_does_not_search_the_path_per_request() -> None:
    # httpcore imports sniffio for each lock and event of a request; without the package each failing import
    # searched sys.path again (~15 % of the client's CPU per non-blocking invoke, issue 17).
    import subprocess
    import sys

    probe = (
        "import importlib.util, sys\n"
        "import loadgen.client\n"
        "searched = []\n"
        "class Spy:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        searched.append(name)\n"
        "sys.meta_path.insert(0, Spy())\n"
        "try:\n"
        "    import sniffio\n"
        "except ImportError:\n"
        "    print('missing', searched)\n"
        "else:\n"
        "    print('installed', searched)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    # Installed, the first import finds it and later ones take it from sys.modules: nothing to check.
    assert out[0] == "installed" or out == ["missing", "[]"]
