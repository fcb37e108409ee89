"""`pywsk action create NAME hello.py --executor wasm`: the README's Python-on-WASM tour, with the real CLI."""

from __future__ import annotations

import pytest

from executor_wasm.python.runner import Runner
from tests.conftest import REPO
from tests.e2e.test_cli_tour import Pywsk, pywsk  # noqa: F401
from tests.python_wasm import python_runner  # noqa: F401

pytestmark = pytest.mark.e2e


def test_create_with_executor_wasm_runs_hello_py_cold_then_warm(
    pywsk: Pywsk,  # noqa: F811
    python_runner: Runner,  # noqa: F811
    unique_name: str,
) -> None:
    hello = REPO / "actions" / "python" / "hello.py"
    created = pywsk("action", "create", unique_name, str(hello), "--executor", "wasm")
    assert created.stdout.strip() == f"ok: created action {unique_name}"
    action = pywsk.json_after_ok("action", "get", unique_name)
    assert {"key": "executor", "value": "wasm"} in action["annotations"]  # type: ignore[operator]

    assert '"Hello, Ada!"' in pywsk("action", "invoke", unique_name, "-r", "-p", "name", "Ada").stdout
    cold = pywsk.json_after_ok("activation", "get", "--last")
    assert '"Hello, Grace!"' in pywsk("action", "invoke", unique_name, "-r", "-p", "name", "Grace").stdout
    warm = pywsk.json_after_ok("activation", "get", "--last")

    keys = {pair["key"] for pair in cold["annotations"]}  # type: ignore[attr-defined]
    assert {"waitTime", "initTime"} <= keys
    assert "initTime" not in {pair["key"] for pair in warm["annotations"]}  # type: ignore[attr-defined]
