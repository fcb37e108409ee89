"""nodejs actions on the WASM executor (annotation executor=wasm), through a real server in both modes.

The expected results and logs come from the host's Node.js running the same file the way OpenWhisk's
Node.js runtime loads it (runner.js's eval wrapper), so "identical to Docker" is checked against Node itself.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from executor_wasm.cache import create_engine
from executor_wasm.js.build import RunnerUnavailable, load_runner, node_and_npm
from executor_wasm.settings import WasmSettings
from tests.conftest import REPO
from tests.integration.helpers import annotations, invoke

pytestmark = pytest.mark.integration

JS = REPO / "actions" / "js"
SAMPLES = [("hello.js", {"name": "Ada"}), ("prime.js", {"n": 2000}), ("hash.js", {"text": "pywhisk", "rounds": 3})]

# OpenWhisk's Node.js runtime in miniature (core/nodejsActionBase/runner.js and src/service.js): the file is
# evaluated as a function body, main called, a promise awaited; console lines are kept with their stream.
NODE_DRIVER = r"""
const [file, params] = process.argv.slice(1);
const code = require('fs').readFileSync(file, 'utf8');
const { format } = require('util');
const lines = [];
console.log = (...a) => lines.push(['stdout', format(...a)]);
console.error = (...a) => lines.push(['stderr', format(...a)]);
const main = eval(`(function(){ ${code}
  try { return main } catch (e) { if (e.name === 'ReferenceError') return module.exports.main || exports.main; throw e }
})()`);
Promise.resolve(main(JSON.parse(params))).then((result) => process.stdout.write(JSON.stringify({ result, lines })));
"""


@pytest.fixture(scope="module", autouse=True)
def _js_runner() -> Iterator[None]:
    """The JavaScript runner, built here first if the cache is empty (~30 s to ~1 min, once per machine), so
    that the servers find it cached instead of building it inside an activation."""
    try:
        node_and_npm()
    except RunnerUnavailable as missing:
        pytest.skip(str(missing))
    engine = create_engine()
    load_runner(engine, WasmSettings().js_cache_dir)
    yield


def create_wasm_js_action(api: httpx.Client, name: str, code: str, **limits: int) -> None:
    """A ``nodejs:default`` action pinned to the WASM executor (what ``pywsk ... --executor wasm`` sends)."""
    body: dict[str, Any] = {
        "exec": {"kind": "nodejs:default", "code": code},
        "annotations": [{"key": "executor", "value": "wasm"}],
    }
    if limits:
        body["limits"] = limits
    response = api.put(f"/namespaces/_/actions/{name}", json=body)
    assert response.status_code == 200, response.text


def on_node(file: str, params: dict[str, Any]) -> tuple[Any, list[str]]:
    """The result and the log lines (``stream: text``) of the sample on the host's Node.js."""
    node = shutil.which("node")
    assert node is not None, "node is on the PATH (the runner fixture checked)"
    done = subprocess.run(
        [node, "-e", NODE_DRIVER, str(JS / file), json.dumps(params)], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    return out["result"], [f"{stream}: {line}" for stream, text in out["lines"] for line in text.split("\n")]


def log_lines(record: dict[str, Any]) -> list[str]:
    """The record's log lines without their timestamps."""
    return [re.sub(r"^\S+\s+", "", line) for line in record["logs"]]


@pytest.mark.parametrize(("file", "params"), SAMPLES, ids=[file for file, _ in SAMPLES])
def test_samples_give_nodes_results_and_logs_cold_then_warm(
    api: httpx.Client, unique_name: str, file: str, params: dict[str, Any]
) -> None:
    if not (JS / file).exists():
        pytest.skip(f"actions/js/{file} is not written yet")
    expected_result, expected_logs = on_node(file, params)
    create_wasm_js_action(api, unique_name, (JS / file).read_text())

    cold = invoke(api, unique_name, params).json()
    warm = invoke(api, unique_name, params).json()

    for record in (cold, warm):
        assert record["response"]["status"] == "success", record["response"]
        assert record["response"]["result"] == expected_result
        assert log_lines(record) == expected_logs
    assert {"waitTime", "initTime"} <= set(annotations(cold))
    assert "initTime" not in annotations(warm)


def test_each_run_is_a_fresh_instance(api: httpx.Client, unique_name: str) -> None:
    code = (
        "let runs = 0;\n"
        "function main() {\n  runs += 1;\n  globalThis.seen = (globalThis.seen || 0) + 1;\n"
        "  return { runs, seen };\n}\n"
    )
    create_wasm_js_action(api, unique_name, code)

    results = [invoke(api, unique_name, result="true").json() for _ in range(3)]

    assert results == [{"runs": 1, "seen": 1}] * 3


def test_async_main_exports_main_and_the_ow_environment(api: httpx.Client, unique_name: str) -> None:
    code = (
        "exports.main = async (args) => {\n"
        "  await new Promise((resolve) => setTimeout(resolve, 5));\n"
        "  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(args.text));\n"
        "  const hex = Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');\n"
        "  console.log('%s has %d bytes', args.text, args.text.length, { done: true });\n"
        "  return { hex, id: process.env.__OW_ACTIVATION_ID, name: process.env.__OW_ACTION_NAME };\n"
        "};\n"
    )
    create_wasm_js_action(api, unique_name, code)

    record = invoke(api, unique_name, {"text": "abc"}).json()

    assert record["response"]["result"] == {
        "hex": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        "id": record["activationId"],
        "name": f"/guest/{unique_name}",
    }
    assert log_lines(record) == ["stdout: abc has 3 bytes { done: true }"]


BROKEN = {
    "syntax": ("function main(args) {\n  return {\n", {}),
    "no-main": ("function handler(args) {\n  return {};\n}\n", {}),
    "require-fs": ("const fs = require('fs');\nfunction main() {\n  return {};\n}\n", {}),
    "thrown": ("function main() {\n  throw new Error('no good');\n}\n", {}),
    "rejected": ("async function main() {\n  throw new TypeError('not today');\n}\n", {}),
    "non-object": ("function main() {\n  return 42;\n}\n", {}),
    "fetch": ("async function main() {\n  return await fetch('http://127.0.0.1:9/');\n}\n", {}),
    "timeout": ("function main() {\n  for (;;) {}\n}\n", {"timeout": 1000}),
    "memory-bomb": (
        "function main() {\n  const hog = [];\n  for (;;) hog.push(new Uint8Array(16 << 20).fill(hog.length));\n}\n",
        {"memory": 128},
    ),
}


@pytest.mark.parametrize(
    ("case", "status", "error", "logged"),
    [
        ("syntax", "action developer error", "Initialization has failed due to: SyntaxError: ", "SyntaxError"),
        (
            "no-main",
            "action developer error",
            "Initialization has failed due to: Function entrypoint 'main' is not a function.",
            "Error during initialization: Function entrypoint 'main' is not a function.",
        ),
        (
            "require-fs",
            "action developer error",
            "Initialization has failed due to: Error: Cannot find module 'fs': the WASM executor runs standard"
            " JavaScript only (no Node.js built-ins, no npm packages)",
            "at action.js:1:",
        ),
        ("thrown", "action developer error", "An error has occurred: Error: no good", "    at main (action.js:2:"),
        ("rejected", "application error", {"name": "TypeError", "message": "not today"}, None),
        ("non-object", "action developer error", "The action did not return a dictionary.", 'has type "number": 42'),
        ("fetch", "application error", {"name": "TypeError"}, None),
        ("timeout", "action developer error", "The action exceeded its time limits of 1000 milliseconds.", None),
        ("memory-bomb", "action developer error", "The action exhausted its memory and was aborted.", None),
    ],
)
def test_broken_js_actions_on_wasm_get_openwhisk_statuses_and_messages(
    api: httpx.Client, unique_name: str, case: str, status: str, error: str | dict[str, str], logged: str | None
) -> None:
    code, limits = BROKEN[case]
    create_wasm_js_action(api, unique_name, code, **limits)

    record = invoke(api, unique_name).json()

    assert record["response"]["status"] == status, record["response"]
    actual = record["response"]["result"]["error"]
    if isinstance(error, dict):  # a rejected promise: serialize-error's name, message and stack
        assert error.items() <= actual.items(), actual
        assert actual["stack"].startswith(f"{actual['name']}: {actual['message']}"), actual
        if case == "rejected":
            assert "\n    at main (action.js:2:" in actual["stack"], actual
    else:
        assert actual.startswith(error), actual
    if logged is not None:
        assert any(logged in line for line in record["logs"]), record["logs"]
    if case == "timeout":
        assert annotations(record)["timeout"] is True
