"""python:3 actions on the WASM executor (annotation executor=wasm), through a real server in both modes."""

from __future__ import annotations

import hashlib
import math
import re

import httpx
import pytest

from executor_wasm.python.runner import Runner
from tests.conftest import REPO
from tests.integration.helpers import annotations, invoke
from tests.python_wasm import create_wasm_python_action, python_runner  # noqa: F401

pytestmark = pytest.mark.integration

HELLO = (REPO / "actions" / "python" / "hello.py").read_text()


@pytest.fixture(autouse=True)
def _runner(python_runner: Runner) -> None:  # noqa: F811
    """Every test here needs the runner component (built once, cached)."""


def test_hello_py_on_wasm_is_cold_then_warm_with_init_and_wait_times(api: httpx.Client, unique_name: str) -> None:
    create_wasm_python_action(api, unique_name, HELLO.replace("def main", "print('hi from wasm')\n\ndef main"))

    cold = invoke(api, unique_name, {"name": "Ada"})
    warm = invoke(api, unique_name, {"name": "Grace"})

    assert cold.status_code == 200, cold.text
    assert cold.json()["response"]["result"] == {"greeting": "Hello, Ada!"}
    assert warm.json()["response"]["result"] == {"greeting": "Hello, Grace!"}
    assert {"waitTime", "initTime"} <= set(annotations(cold.json()))
    assert "waitTime" in annotations(warm.json()) and "initTime" not in annotations(warm.json())
    # Each invocation runs the module afresh in a new instance: the top-level print is in both logs.
    assert any(line.endswith("stdout: hi from wasm") for line in cold.json()["logs"])
    assert any(line.endswith("stdout: hi from wasm") for line in warm.json()["logs"])


def test_nothing_survives_between_invocations(api: httpx.Client, unique_name: str) -> None:
    code = "count = 0\n\ndef main(args):\n    global count\n    count += 1\n    return {'count': count}\n"
    create_wasm_python_action(api, unique_name, code)

    results = [invoke(api, unique_name, result="true").json() for _ in range(3)]

    assert results == [{"count": 1}] * 3


def test_the_standard_library_works(api: httpx.Client, unique_name: str) -> None:
    code = (
        "import base64, collections, dataclasses, datetime, hashlib, itertools, json, math, re, statistics\n"
        "@dataclasses.dataclass\nclass P:\n    x: int\n"
        "def main(args):\n"
        "    return {\n"
        "        'sha': hashlib.sha256(b'abc').hexdigest(),\n"
        "        'b64': base64.b64encode(b'pywhisk').decode(),\n"
        "        'counts': collections.Counter('banana').most_common(1),\n"
        "        'pairs': list(itertools.combinations('abc', 2)),\n"
        "        'words': re.findall(r'[a-z]+', 'Hello wasm world'),\n"
        "        'pi': math.pi, 'mean': statistics.mean([1, 2, 3, 4]),\n"
        "        'date': datetime.date(2024, 2, 29).isoformat(), 'year': datetime.datetime.now().year,\n"
        "        'p': dataclasses.asdict(P(3)), 'json': json.loads('[1, 2]'),\n"
        "    }\n"
    )
    create_wasm_python_action(api, unique_name, code)

    result = invoke(api, unique_name, result="true").json()

    assert result["sha"] == hashlib.sha256(b"abc").hexdigest()
    assert result["b64"] == "cHl3aGlzaw=="
    assert result["counts"] == [["a", 3]]
    assert result["pairs"] == [["a", "b"], ["a", "c"], ["b", "c"]]
    assert result["words"] == ["ello", "wasm", "world"]
    assert result["pi"] == math.pi and result["mean"] == 2.5
    assert result["date"] == "2024-02-29" and result["year"] >= 2025
    assert result["p"] == {"x": 3} and result["json"] == [1, 2]


def test_print_logging_and_ow_environment_reach_the_record(api: httpx.Client, unique_name: str) -> None:
    code = (
        "import logging, os, sys\n"
        "def main(args):\n"
        "    print('to stdout')\n"
        "    print('to stderr', file=sys.stderr)\n"
        "    logging.warning('a warning')\n"
        "    return {'id': os.environ['__OW_ACTIVATION_ID'], 'name': os.environ['__OW_ACTION_NAME']}\n"
    )
    create_wasm_python_action(api, unique_name, code)

    record = invoke(api, unique_name).json()

    assert record["response"]["result"] == {"id": record["activationId"], "name": f"/guest/{unique_name}"}
    logs = record["logs"]
    assert any(line.endswith("stdout: to stdout") for line in logs), logs
    assert any(line.endswith("stderr: to stderr") for line in logs), logs
    assert any(line.endswith("stderr: WARNING:root:a warning") for line in logs), logs


BROKEN = {
    "exception": ("def main(args):\n    raise ValueError('no good')\n", {}),
    "syntax": ("def main(args) return {}\n", {}),
    "no-main": ("def handler(args):\n    return {}\n", {}),
    "timeout": ("def main(args):\n    while True:\n        pass\n", {"timeout": 1000}),
    "memory-bomb": (
        "def main(args):\n    hog = []\n    while True:\n        hog.append(bytearray(16 * 1024 * 1024))\n",
        {"memory": 128},
    ),
    "native-import": ("import numpy\n\ndef main(args):\n    return {}\n", {}),
    "socket-import": ("import socket\n\ndef main(args):\n    return {}\n", {}),
    "file-access": ("def main(args):\n    return {'passwd': open('/etc/passwd').read()}\n", {}),
    "non-dict": ("def main(args):\n    return 42\n", {}),
    "exit": ("import sys\n\ndef main(args):\n    sys.exit(3)\n", {}),
    "os-exit": ("import os\n\ndef main(args):\n    os._exit(3)\n", {}),
    "os-exit-at-init": ("import os\nos._exit(4)\n\ndef main(args):\n    return {}\n", {}),
}


@pytest.mark.parametrize(
    ("case", "status", "message", "logged"),
    [
        ("exception", "application error", "no good", "ValueError: no good"),
        ("syntax", "action developer error", "Cannot initialize the action: SyntaxError: ", "SyntaxError"),
        ("no-main", "action developer error", "the action has no function named 'main'", None),
        ("timeout", "action developer error", "The action exceeded its time limits of 1000 milliseconds.", None),
        ("memory-bomb", "action developer error", "The action exhausted its memory and was aborted.", None),
        ("native-import", "action developer error", "No module named 'numpy' (the WASM executor offers", "numpy"),
        ("socket-import", "action developer error", "No module named 'socket'", "socket"),
        ("file-access", "application error", "No such file or directory: '/etc/passwd'", "FileNotFoundError"),
        ("non-dict", "action developer error", "The action did not return a dictionary or array.", None),
        ("exit", "action developer error", "command exited", None),
        ("os-exit", "action developer error", "The action exited with status 3.", None),
        ("os-exit-at-init", "action developer error", "The action exited with status 4.", None),
    ],
)
def test_broken_python_actions_on_wasm_get_openwhisk_statuses_and_the_invoker_keeps_serving(
    api: httpx.Client, unique_name: str, case: str, status: str, message: str, logged: str | None
) -> None:
    code, limits = BROKEN[case]
    create_wasm_python_action(api, unique_name, code, **limits)

    response = invoke(api, unique_name)

    assert response.status_code == 502, response.text
    record = response.json()
    assert record["response"]["status"] == status
    assert message in str(record["response"]["result"]["error"])
    if logged is not None:
        assert any(logged in line for line in record["logs"]), record["logs"]
    if case == "timeout":
        assert annotations(record)["timeout"] is True
    create_wasm_python_action(api, f"{unique_name}-ok", HELLO)
    assert invoke(api, f"{unique_name}-ok", {"name": "after"}, result="true").json() == {"greeting": "Hello, after!"}


def test_an_exception_traceback_names_the_actions_line_not_the_runners(api: httpx.Client, unique_name: str) -> None:
    create_wasm_python_action(api, unique_name, "def main(args):\n    return {'x': 1 / 0}\n")

    record = invoke(api, unique_name).json()

    assert record["response"]["result"] == {"error": "division by zero"}
    text = "\n".join(record["logs"])
    assert re.search(r'File "__main__.py", line 2, in main', text), text
    assert "app.py" not in text


def test_a_print_flood_past_the_log_limit_is_cut_with_the_notice_and_the_result_still_returned(
    api: httpx.Client, unique_name: str
) -> None:
    # 10 MB of prints against a 1 MB log limit (the smallest OpenWhisk allows): the host's cap refuses
    # the writes, and the runner drops them instead of failing the action with an I/O error.
    code = "def main(args):\n    for i in range(100_000):\n        print('x' * 100)\n    return {'printed': i + 1}\n"
    create_wasm_python_action(api, unique_name, code, logs=1)

    record = invoke(api, unique_name).json()

    assert record["response"]["status"] == "success", record["response"]
    assert record["response"]["result"] == {"printed": 100_000}
    assert record["logs"][-1].endswith(
        "stderr: Logs were truncated because the total bytes size exceeds the limit of 1048576 bytes."
    )
