"""WASM actions through the whole path, HTTP → controller → bus → invoker → Wasmtime → store, in both
modes: standalone (memory bus, SQLite) and distributed (Kafka, CouchDB API)."""

from __future__ import annotations

import asyncio
import base64
import io
import time
import zipfile

import httpx
import pytest

from loadgen.transport import LendingTransport
from tests.conftest import WASM_DIR, Server
from tests.integration.helpers import annotations, create_wasm_action, invoke, wait_for_record

pytestmark = pytest.mark.integration


def test_first_invoke_is_cold_with_init_time_and_second_is_warm_without(api: httpx.Client, unique_name: str) -> None:
    create_wasm_action(api, unique_name, "hello")

    cold = invoke(api, unique_name, {"name": "Ada"})
    warm = invoke(api, unique_name, {"name": "Grace"})

    assert cold.status_code == 200, cold.text
    assert cold.json()["response"]["result"] == {"greeting": "Hello, Ada!"}
    assert cold.json()["response"]["status"] == "success"
    assert "initTime" in annotations(cold.json())
    assert warm.json()["response"]["result"] == {"greeting": "Hello, Grace!"}
    assert "initTime" not in annotations(warm.json())
    for record in (cold.json(), warm.json()):
        meta = annotations(record)
        assert meta["waitTime"] >= 0
        assert meta["path"] == f"guest/{unique_name}"
        assert meta["kind"] == "wasm:wasi"
        assert meta["timeout"] is False
        assert record["duration"] == record["end"] - record["start"]
    assert cold.headers["x-openwhisk-activation-id"] == cold.json()["activationId"]


def test_logs_exclude_the_result_line_and_carry_both_streams(api: httpx.Client, unique_name: str) -> None:
    create_wasm_action(api, unique_name, "hello")

    record = invoke(api, unique_name, {"name": "Ada"}).json()
    logs = api.get(f"/namespaces/_/activations/{record['activationId']}/logs").json()["logs"]

    assert [line.split(" ", 1)[1].strip() for line in logs] == [
        "stdout: hello: greeting Ada",
        "stderr: hello: this line goes to stderr",
    ]


def test_result_query_returns_only_the_result(api: httpx.Client, unique_name: str) -> None:
    create_wasm_action(api, unique_name, "echo")

    response = invoke(api, unique_name, {"a": [1, 2], "b": "x"}, result="true")

    assert response.status_code == 200
    assert response.json() == {"a": [1, 2], "b": "x"}


def test_action_parameters_are_defaults_that_invoke_parameters_override(api: httpx.Client, unique_name: str) -> None:
    api.put(
        f"/namespaces/_/actions/{unique_name}",
        json={
            "exec": {"kind": "wasm:default", "code": base64.b64encode((WASM_DIR / "echo.wasm").read_bytes()).decode()},
            "parameters": [
                {"key": "a", "value": 1},
                {"key": "b", "value": 2},
                {"key": "secret", "value": "s", "init": True},
            ],
        },
    ).raise_for_status()

    result = invoke(api, unique_name, {"b": 3}, result="true").json()

    assert result == {"a": 1, "b": 3}


def test_zip_holding_one_module_runs(api: httpx.Client, unique_name: str) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.write(WASM_DIR / "hello.wasm", "hello.wasm")
    code = base64.b64encode(buffer.getvalue()).decode()
    api.put(
        f"/namespaces/_/actions/{unique_name}", json={"exec": {"kind": "wasm:wasi", "code": code}}
    ).raise_for_status()

    assert invoke(api, unique_name, {"name": "Zip"}, result="true").json() == {"greeting": "Hello, Zip!"}


def test_non_blocking_invoke_answers_202_and_the_record_follows(api: httpx.Client, unique_name: str) -> None:
    create_wasm_action(api, unique_name, "hello")

    response = api.post(f"/namespaces/_/actions/{unique_name}", json={"name": "Later"})

    assert response.status_code == 202
    activation_id = response.json()["activationId"]
    assert len(activation_id) == 32
    record = wait_for_record(api, activation_id)
    assert record["response"]["result"] == {"greeting": "Hello, Later!"}
    assert api.get(f"/namespaces/_/activations/{activation_id}/result").json() == {
        "status": "success",
        "success": True,
        "result": {"greeting": "Hello, Later!"},
        "size": record["response"]["size"],
    }


def test_the_action_sees_only_ow_environment_and_no_host_files(api: httpx.Client, unique_name: str) -> None:
    create_wasm_action(api, unique_name, "env")

    result = invoke(api, unique_name, result="true").json()

    assert result["file"] == "denied"
    assert result["env"], "the __OW_* values are given"
    assert all(key.startswith("__OW_") for key in result["env"]), result["env"]
    assert result["env"]["__OW_ACTION_NAME"] == f"/guest/{unique_name}"
    assert result["env"]["__OW_NAMESPACE"] == "guest"
    assert "__OW_API_KEY" not in result["env"], "provide-api-key is false on create"


# --- actions that fail: each gets OpenWhisk's status and message, and the server keeps serving ---


def _assert_serving(api: httpx.Client, name: str) -> None:
    create_wasm_action(api, f"{name}-after", "hello")
    response = invoke(api, f"{name}-after", {"name": "still"}, result="true")
    assert response.json() == {"greeting": "Hello, still!"}


def test_trap_is_a_developer_error(api: httpx.Client, unique_name: str) -> None:
    create_wasm_action(api, unique_name, "trap")

    response = invoke(api, unique_name)

    assert response.status_code == 502
    record = response.json()
    assert "code" not in record
    assert record["response"]["status"] == "action developer error"
    assert record["response"]["result"]["error"].startswith("The action trapped")
    assert any("trap: about to trap" in line for line in record["logs"])
    _assert_serving(api, unique_name)


def test_infinite_loop_ends_at_the_time_limit_and_others_proceed(platform: Server, unique_name: str) -> None:
    async def scenario() -> tuple[httpx.Response, list[float]]:
        async with platform.async_client() as client:
            create = client.put(
                f"/namespaces/_/actions/{unique_name}",
                json={"exec": {"kind": "wasm:wasi", "code": _code("loop")}, "limits": {"timeout": 2000}},
            )
            (await create).raise_for_status()
            (
                await client.put(
                    f"/namespaces/_/actions/{unique_name}-hello",
                    json={"exec": {"kind": "wasm:wasi", "code": _code("hello")}},
                )
            ).raise_for_status()
            started = time.monotonic()
            loops = [
                asyncio.create_task(client.post(f"/namespaces/_/actions/{unique_name}", params={"blocking": "true"}))
                for _ in range(3)
            ]
            await asyncio.sleep(0.2)
            hello_done: list[float] = []
            for _ in range(10):
                reply = await client.post(
                    f"/namespaces/_/actions/{unique_name}-hello", params={"blocking": "true", "result": "true"}, json={}
                )
                assert reply.json() == {"greeting": "Hello, stranger!"}
                hello_done.append(time.monotonic() - started)
            responses = await asyncio.gather(*loops)
            return responses[0], hello_done

    loop_response, hello_done = asyncio.run(scenario())

    assert max(hello_done) < 1.9, f"hello waited behind the loops: {hello_done}"
    assert loop_response.status_code == 502
    record = loop_response.json()
    assert record["response"]["result"] == {"error": "The action exceeded its time limits of 2000 milliseconds."}
    assert annotations(record)["timeout"] is True
    assert record["duration"] >= 2000


def test_blocking_sleep_is_cut_at_the_time_limit(api: httpx.Client, unique_name: str) -> None:
    create_wasm_action(api, unique_name, "sleep", timeout=500)

    started = time.monotonic()
    response = invoke(api, unique_name, {"ms": 5000})
    elapsed = time.monotonic() - started

    assert response.status_code == 502
    assert response.json()["response"]["result"] == {
        "error": "The action exceeded its time limits of 500 milliseconds."
    }
    assert elapsed < 4.0


def test_memory_bomb_is_aborted_with_openwhisk_message(api: httpx.Client, unique_name: str) -> None:
    create_wasm_action(api, unique_name, "membomb", memory=128)

    response = invoke(api, unique_name)

    assert response.status_code == 502
    assert response.json()["response"]["result"] == {"error": "The action exhausted its memory and was aborted."}
    assert response.json()["response"]["status"] == "action developer error"
    _assert_serving(api, unique_name)


def test_non_json_last_line_is_a_developer_error(api: httpx.Client, unique_name: str) -> None:
    create_wasm_action(api, unique_name, "badjson")

    response = invoke(api, unique_name)

    assert response.status_code == 502
    assert response.json()["response"]["result"] == {
        "error": "The action did not produce a valid JSON or JSON Array response: this is not json"
    }


def test_error_field_in_result_is_an_application_error(api: httpx.Client, unique_name: str) -> None:
    create_wasm_action(api, unique_name, "apperror")

    response = invoke(api, unique_name)
    result_only = invoke(api, unique_name, result="true")

    assert response.status_code == 502
    assert response.json()["response"]["status"] == "application error"
    assert response.json()["response"]["result"] == {"error": "something went wrong"}
    assert result_only.status_code == 502
    assert result_only.json() == {"error": "something went wrong"}


def test_exit_without_result_is_a_developer_error(api: httpx.Client, unique_name: str) -> None:
    create_wasm_action(api, unique_name, "exit1")

    response = invoke(api, unique_name)

    assert response.status_code == 502
    assert response.json()["response"]["status"] == "action developer error"
    assert "status 3" in response.json()["response"]["result"]["error"]


def test_invalid_wasm_bytes_fail_at_init_with_a_developer_error(api: httpx.Client, unique_name: str) -> None:
    code = base64.b64encode(b"\0asm this is not a module").decode()
    api.put(
        f"/namespaces/_/actions/{unique_name}", json={"exec": {"kind": "wasm:wasi", "code": code}}
    ).raise_for_status()

    response = invoke(api, unique_name)

    assert response.status_code == 502
    record = response.json()
    assert record["response"]["status"] == "action developer error"
    assert record["response"]["result"]["error"].startswith("Invalid WebAssembly module")
    assert "initTime" in annotations(record)
    _assert_serving(api, unique_name)


def test_logs_over_the_limit_are_truncated_with_openwhisk_message(api: httpx.Client, unique_name: str) -> None:
    create_wasm_action(api, unique_name, "logs", logs=0)

    record = invoke(api, unique_name, {"count": 1000}).json()

    assert record["response"]["result"] == {"lines": 1000}
    assert record["logs"][-1].endswith("Logs were truncated because the total bytes size exceeds the limit of 0 bytes.")


def test_200_concurrent_blocking_invokes_all_succeed_with_one_record_each(platform: Server, unique_name: str) -> None:
    async def scenario() -> list[httpx.Response]:
        async with platform.async_client(transport=LendingTransport(200)) as client:
            create = await client.put(
                f"/namespaces/_/actions/{unique_name}", json={"exec": {"kind": "wasm:wasi", "code": _code("hello")}}
            )
            create.raise_for_status()
            return await asyncio.gather(
                *(
                    client.post(
                        f"/namespaces/_/actions/{unique_name}", params={"blocking": "true"}, json={"name": str(i)}
                    )
                    for i in range(200)
                )
            )

    responses = asyncio.run(scenario())

    assert [r.status_code for r in responses] == [200] * 200
    assert sorted(r.json()["response"]["result"]["greeting"] for r in responses) == sorted(
        f"Hello, {i}!" for i in range(200)
    )
    ids = {r.json()["activationId"] for r in responses}
    assert len(ids) == 200
    with platform.client() as api:
        listed: list[str] = []
        for skip in (0, 200):
            page = api.get("/namespaces/_/activations", params={"name": unique_name, "limit": 200, "skip": skip})
            listed += [row["activationId"] for row in page.json()]
        assert sorted(listed) == sorted(ids), "exactly one record per activation"
        assert api.get("/namespaces/_/activations", params={"name": unique_name, "count": "true"}).json() == {
            "activations": 200
        }


def _code(module: str) -> str:
    return base64.b64encode((WASM_DIR / f"{module}.wasm").read_bytes()).decode()
