"""Workload parity of the JavaScript benchmark actions (``actions/js``) with the C and Python builds.

``actions/js/<name>.js`` (kind ``nodejs:default``, and the same file on the WASM executor) must return the same
result and log the same stdout lines as ``actions/wasm/<name>.wasm`` (compiled from ``actions/src/<name>.c``)
and ``actions/python/<name>.py``. The JavaScript runs in the host's ``node``, loaded the way OpenWhisk's Node.js
runtime loads plain source (the file as a function body returning ``main``); the C and Python runs are those of
test_benchmark_actions.py. No services.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.unit.test_benchmark_actions import BENCHMARKS, Run, reference_hash, run_python, run_wasm

pytestmark = pytest.mark.unit

JS = Path(__file__).resolve().parents[2] / "actions" / "js"
NODE = shutil.which("node")
needs_node = pytest.mark.skipif(NODE is None, reason="node is not installed on this host")

# Loads the action as OpenWhisk's runner.js does (a function body that returns main), calls it with the
# params, awaits a promise, and prints the console.log lines, then the result as the last line.
HARNESS = """
const fs = require("fs");
const [file, params] = process.argv.slice(1);
const main = new Function(fs.readFileSync(file, "utf8") + "\\nreturn main;")();
Promise.resolve(main(JSON.parse(params))).then((result) => console.log(JSON.stringify(result)));
"""


def run_js(name: str, params: dict[str, Any] | str) -> Run:
    """Run actions/js/<name>.js in the host's node; stdout is its console.log lines, then the result."""
    assert NODE is not None
    text = params if isinstance(params, str) else json.dumps(params)
    started = time.perf_counter()
    done = subprocess.run(
        [NODE, "-e", HARNESS, str(JS / f"{name}.js"), text], capture_output=True, timeout=60, check=False
    )
    seconds = time.perf_counter() - started
    assert done.returncode == 0, done.stderr
    return Run(done.stdout.decode(), seconds)


def same_as_c_and_python(name: str, params: dict[str, Any] | str, python_logs: bool = True) -> dict[str, Run]:
    runs = {"js": run_js(name, params), "wasm": run_wasm(name, params), "python": run_python(name, params)}
    results = {how: run.result for how, run in runs.items()}
    assert len({json.dumps(r, sort_keys=True) for r in results.values()}) == 1, results
    assert runs["js"].logs == runs["wasm"].logs, (runs["js"].logs, runs["wasm"].logs)
    if python_logs:
        assert runs["js"].logs == runs["python"].logs
    return runs


@pytest.mark.parametrize("name", BENCHMARKS)
def test_every_benchmark_has_a_plain_javascript_twin(name: str) -> None:
    code = (JS / f"{name}.js").read_text()
    assert "function main(args)" in code
    # No Node built-ins: the same file runs on the WASM executor's JavaScript engine.
    assert "require(" not in code and "process." not in code and "Buffer" not in code


@needs_node
@pytest.mark.parametrize(
    ("params", "text", "n"),
    [
        ({"input": "abc", "iterations": 1}, "abc", 1),
        ({"input": "", "iterations": 1}, "", 1),
        ({"input": "pywhisk", "iterations": 1000}, "pywhisk", 1000),
        ({}, "pywhisk", 1000),
        ({"input": "héllo wörld ✓ 🚀 中文", "iterations": 10}, "héllo wörld ✓ 🚀 中文", 10),
        ({"input": 'tab\tquote"back\\slash', "iterations": 2}, 'tab\tquote"back\\slash', 2),
        ({"input": "a" * 119, "iterations": 1}, "a" * 119, 1),  # padding spills into a second block
        ({"input": 42, "iterations": 3}, "pywhisk", 3),
        ({"input": "x", "iterations": "10"}, "x", 10),
        ({"input": "x", "iterations": 10.9}, "x", 10),
        ({"input": "x", "iterations": 0}, "x", 1),
        ({"input": "x", "iterations": -5}, "x", 1),
        ({"input": "x", "iterations": True}, "x", 1000),
        ({"input": "x", "iterations": "abc"}, "x", 1000),
    ],
)
def test_hash_js_is_the_same_as_c_and_python(params: dict[str, Any], text: str, n: int) -> None:
    runs = same_as_c_and_python("hash", params)
    assert runs["js"].result == {"hash": reference_hash(text, n), "iterations": n}


@needs_node
def test_hash_js_cuts_the_input_at_nul_like_c() -> None:
    runs = same_as_c_and_python("hash", {"input": "ab\u0000cd", "iterations": 1})
    assert runs["js"].result["hash"] == reference_hash("ab", 1)


@needs_node
def test_hash_js_reads_raw_utf8_json() -> None:
    text = "naïve café 🚀"
    runs = same_as_c_and_python("hash", json.dumps({"input": text, "iterations": 5}, ensure_ascii=False))
    assert runs["js"].result["hash"] == reference_hash(text, 5)


@needs_node
@pytest.mark.parametrize(
    ("params", "n", "prime"),
    [
        ({"n": 1}, 1, 2),
        ({"n": 10}, 10, 29),
        ({"n": 1000}, 1000, 7919),
        ({"n": "10"}, 10, 29),
        ({"n": 0}, 1, 2),
        ({"n": -3}, 1, 2),
        ({"n": 25.5}, 25, 97),
        ({"n": False}, 10000, 104729),
    ],
)
def test_prime_js_is_the_same_as_c_and_python(params: dict[str, Any], n: int, prime: int) -> None:
    runs = same_as_c_and_python("prime", params)
    assert runs["js"].result == {"prime": prime, "n": n}
    assert runs["js"].logs == [f"prime: searching for prime #{n}"]


@needs_node
@pytest.mark.parametrize(
    ("name", "key", "log"), [("net", "blocked_ms", "net: blocking"), ("sleep", "slept", "sleep: sleeping")]
)
@pytest.mark.parametrize("ms", [0, 40, "40", -1])
def test_net_and_sleep_js_block_for_ms_like_c_and_python(name: str, key: str, log: str, ms: int | str) -> None:
    runs = same_as_c_and_python(name, {"ms": ms})
    expected = max(int(ms), 0)
    assert runs["js"].result == {key: expected}
    assert runs["js"].logs == [f"{log} {expected} ms"]
    assert runs["js"].seconds >= expected / 1000


@pytest.mark.parametrize(("name", "default"), [("net", 300), ("sleep", 5000)])
def test_blocking_js_defaults_are_the_documented_values(name: str, default: int) -> None:
    assert f"let ms = {default};" in (JS / f"{name}.js").read_text()


@needs_node
@pytest.mark.parametrize(
    ("params", "greeting"),
    [
        ({"name": "Ada"}, "Hello, Ada!"),
        ({}, "Hello, stranger!"),
        ({"name": "Zoë 🚀"}, "Hello, Zoë 🚀!"),
        ({"name": 42}, "Hello, 42!"),  # like hello.c: a non-string name is its JSON text
    ],
)
def test_hello_js_is_the_same_as_c(params: dict[str, Any], greeting: str) -> None:
    runs = same_as_c_and_python("hello", params, python_logs=False)  # python/hello.py logs nothing
    assert runs["js"].result == {"greeting": greeting}
    assert runs["js"].logs == [f"hello: greeting {greeting[7:-1]}"]
