"""Standalone killed with SIGKILL under non-blocking load loses no accepted activation (issue 12, item 2).

A real ``pywhisk standalone`` process takes a stream of non-blocking invokes (hellos, and sleeps still
running at the kill) and is killed with SIGKILL while invokes keep arriving; a new process on the same data
directory must then record every activation that was answered 202: each one exactly once, run either
before the crash or after the restart (pywhisk/bus/sqlite.py journals it before the 202).
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest

from launcher.testing import Server
from loadgen.transport import LendingTransport
from tests.conftest import start_standalone, stop_standalone
from tests.integration.helpers import create_wasm_action, record_counts

pytestmark = pytest.mark.integration

ACCEPTED_BEFORE_KILL = 300
SLEEPS = 12
SLEEP_MS = 4000
# Generous: the restarted server re-runs what was in flight (the sleeps take SLEEP_MS again).
AUDIT_TIMEOUT_S = 120.0


def test_every_activation_answered_202_has_exactly_one_record_after_a_kill_and_restart(tmp_path: Path) -> None:
    server = start_standalone(tmp_path)
    try:
        with server.client() as api:
            create_wasm_action(api, "hello", "hello", memory=128)
            create_wasm_action(api, "sleep", "sleep", memory=128)
        accepted = asyncio.run(_invoke_until_killed(server))
    finally:
        server.process.kill()
        server.process.wait()
    assert len(accepted) >= ACCEPTED_BEFORE_KILL + SLEEPS

    server = start_standalone(tmp_path)
    try:
        with server.client() as api:
            records = record_counts(
                api, ["hello", "sleep"], set(accepted), AUDIT_TIMEOUT_S, "/namespaces/_/activations"
            )
        assert set(records) == set(accepted), "accepted activations without a record"
        assert all(count == 1 for count in records.values()), {k: v for k, v in records.items() if v != 1}
        # The sleeps were mid-run at the kill: the restarted server ran them again (at-least-once).
        assert "delivering them again" in server.log_path.read_text()
    finally:
        assert stop_standalone(server) == 0


async def _invoke_until_killed(server: Server) -> dict[str, str]:
    """Sleeps first (so they are running at the kill), then hellos from 32 clients; SIGKILL once
    ACCEPTED_BEFORE_KILL hellos were answered 202, with invokes still in flight. Returns id → action."""
    accepted: dict[str, str] = {}
    killed = asyncio.Event()
    async with server.async_client(timeout=30, transport=LendingTransport(40)) as api:

        async def invoke(name: str, params: dict[str, Any]) -> bool:
            try:
                response = await api.post(f"/namespaces/_/actions/{name}", json=params)
            except httpx.TransportError:  # in flight at the kill: never answered, so never accepted
                return False
            assert response.status_code == 202, response.text
            accepted[response.json()["activationId"]] = name
            return True

        for _ in range(SLEEPS):
            assert await invoke("sleep", {"ms": SLEEP_MS})

        async def client() -> None:
            while not killed.is_set() and await invoke("hello", {"name": "crash"}):
                if len(accepted) >= ACCEPTED_BEFORE_KILL + SLEEPS and not killed.is_set():
                    server.process.send_signal(signal.SIGKILL)
                    killed.set()

        await asyncio.gather(*(client() for _ in range(32)))
    return accepted
