"""Shared by the executor tests: requests, log lines, sample modules and the WASM service in a thread.

The executor contract (tests/integration/test_executor_contract.py) and each executor's own module
(test_wasm_executor.py, test_wasm_executor_http.py, test_docker_executor.py, ...) build on these.
"""

from __future__ import annotations

import base64
import socket
import threading
import time
import uuid
from pathlib import Path

import pytest
import uvicorn

from executor_wasm.executor import WasmExecutor
from executor_wasm.service import create_app
from pywhisk.executor import ProxyResult, RunRequest

WASM_DIR = Path(__file__).resolve().parent.parent / "actions" / "wasm"
# OpenWhisk's largest log limit (10 MB): nothing is cut unless a test asks for less.
LOG_LIMIT = 10 * 1_048_576
# A formatted log line is ``<30-character timestamp> <stream>: <text>`` (pywhisk.activation.format_log_line).
TIMESTAMP_CHARS = 31


def run_request(value: dict[str, object] | None = None, *, action_name: str = "/guest/test") -> RunRequest:
    """A ``/run`` body for a fresh activation of ``action_name`` with ``value`` as its params."""
    return RunRequest(
        value=value or {},
        namespace="guest",
        action_name=action_name,
        action_version="0.0.1",
        activation_id=uuid.uuid4().hex,
        transaction_id="tid",
        deadline=str(int(time.time() * 1000) + 60_000),
        api_key="user:key",
    )


def log_text(result: ProxyResult) -> list[str]:
    """``stream: line`` of each log line (without the timestamp)."""
    return [line[TIMESTAMP_CHARS:] for line in result.logs]


def wasm_module(name: str) -> bytes:
    """A sample action of actions/wasm; the test skips if it is not built (actions/build.sh)."""
    path = WASM_DIR / f"{name}.wasm"
    if not path.exists():
        pytest.skip(f"{path} is not built (run actions/build.sh)")
    return path.read_bytes()


def wasm_code(name: str) -> str:
    """The base64 ``exec.code`` of a sample action of actions/wasm."""
    return base64.b64encode(wasm_module(name)).decode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class WasmService:
    """``executor`` served as ``pywhisk executor-wasm`` on a free port, by uvicorn in a thread.

    The app's lifespan starts and closes the executor, in the service thread's own event loop.
    """

    def __init__(self, executor: WasmExecutor) -> None:
        self.executor = executor
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(create_app(executor), port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="wasm-service", daemon=True)

    def __enter__(self) -> WasmService:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "the service did not start"
            time.sleep(0.01)  # polls a flag uvicorn sets; nothing to wait on instead
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
