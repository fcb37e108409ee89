"""Test doubles for the kernel seams (unit tests only)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from typing import Any

import orjson

from pywhisk.activation import format_log_line
from pywhisk.executor import InitRequest, InstanceSpec, ProxyResult, RunRequest


class ScriptedExecutor:
    """An in-memory ``Executor`` whose actions are Python callables chosen by the action's code.

    ``code`` names a behaviour: "echo", "fail-init", "timeout", "oom", "crash", "slow:<ms>", "error".
    """

    name = "wasm"

    def __init__(self) -> None:
        self.created: list[str] = []
        self.inits: list[str] = []
        self.runs: list[str] = []
        self.destroyed: list[str] = []
        self._code: dict[str, str] = {}

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def kinds(self) -> set[str]:
        return {"wasm:wasi"}

    async def create(self, spec: InstanceSpec) -> None:
        self.created.append(spec.instance_id)

    async def init(self, instance_id: str, request: InitRequest, timeout_ms: int, log_limit_bytes: int) -> ProxyResult:
        self.inits.append(instance_id)
        code = request.code or ""
        if request.binary:  # under a binary kind (wasm:wasi) a behaviour is sent base64-encoded
            with contextlib.suppress(UnicodeDecodeError):  # text that merely looks like base64
                code = base64.b64decode(code).decode()
        self._code[instance_id] = code
        if code == "fail-init":
            return ProxyResult(status=502, body='{"error": "bad module"}')
        return ProxyResult(status=200, body='{"ok": true}')

    async def run(self, instance_id: str, request: RunRequest, timeout_ms: int, log_limit_bytes: int) -> ProxyResult:
        self.runs.append(instance_id)
        code = self._code[instance_id]
        logs = [format_log_line("stdout", f"running {request.action_name}")]
        if code.startswith("slow:"):
            await asyncio.sleep(int(code.split(":")[1]) / 1000)
        if code == "timeout":
            return ProxyResult(status=None, timed_out=True, logs=logs)
        if code == "oom":
            return ProxyResult(status=None, memory_exhausted=True, logs=logs)
        if code == "crash":
            return ProxyResult(status=None, exited=True, logs=logs)
        if code == "error":
            return ProxyResult(status=200, body='{"error": "nope"}', logs=logs)
        body: Any = request.value
        return ProxyResult(status=200, body=orjson.dumps(body).decode(), logs=logs)

    async def destroy(self, instance_id: str) -> None:
        self.destroyed.append(instance_id)
