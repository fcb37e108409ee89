"""``loadgen isolation`` keeps its own work out of the victim's numbers (issue 12): payloads are made before
the attack, the victim runs in a process of its own, and each phase's client CPU and server CPU are kept.

The API here is a fake (httpx's MockTransport, and a small HTTP server on the loopback for the victim's
process, which makes its own connections): these test the client, not the platform."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from loadgen import hostile
from loadgen.client import Invocation, WhiskClient
from loadgen.config import Target
from loadgen.errors import LoadgenError
from loadgen.experiments import attacks
from loadgen.experiments.attacks import ATTACKS, Attacker, Knobs, prepare_payloads
from loadgen.experiments.isolation import IsolationParams, Phase, _server_cpu_s, _victim, judge

pytestmark = pytest.mark.unit

SMALL = Knobs(bomb_mib=64, compile_locals=8, compile_statements=20, compile_modules=3, nested_depth=10)
RECORD = {"activationId": "a" * 32, "response": {"status": "success", "result": {"greeting": "hi"}}}


def test_every_class_payloads_are_made_up_front_and_the_compile_modules_differ() -> None:
    payloads = prepare_payloads(list(ATTACKS), SMALL)
    assert set(payloads) == set(ATTACKS)
    assert set(payloads["zipbomb"]["code"]) == {"deflate", "deflate-lying", "bzip2", "bzip2-lying"}
    modules = payloads["compile"]["modules"]
    assert len(modules) == 3 and len(set(modules)) == 3, "each compile round needs new bytes"
    assert payloads["nested"]["bodies"] == [hostile.nested_parameters(d) for d in (5, 10, 20)]
    assert set(payloads["hostcall"]) == {"poll", "fdwrite"} and set(payloads["memory"]) == {"multi", "table", "grow"}


def test_the_compile_attack_sends_the_modules_made_beforehand_and_makes_none_while_it_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    payloads = prepare_payloads(["compile"], SMALL)["compile"]
    made_during_attack: list[int] = []
    real = hostile.slow_compile_module
    monkeypatch.setattr(hostile, "slow_compile_module", lambda *a, **k: made_during_attack.append(1) or real(*a, **k))
    sent: list[bytes] = []

    def api(request: httpx.Request) -> httpx.Response:
        if request.method == "PUT":
            sent.append(base64.b64decode(json.loads(request.content)["exec"]["code"]))
            return httpx.Response(200, json={})
        if request.method == "POST":
            return httpx.Response(200, json=RECORD, headers={"x-openwhisk-activation-id": "a" * 32})
        return httpx.Response(200, json={})

    async def attack() -> None:
        knobs = Knobs(max_requests=6, compile_modules=3)  # 3 rounds of PUT + invoke
        client = WhiskClient(Target("http://api.test", "u:k"), transport=httpx.MockTransport(api))
        async with client:
            view = Attacker(
                ATTACKS["compile"], client, knobs, Path("."), time.monotonic() + 30, lambda *_: None, print, {},
                payloads,
            )  # fmt: skip
            await attacks.compile_(view)

    asyncio.run(attack())
    assert sent == payloads["modules"]
    assert made_during_attack == []


@pytest.fixture
def fake_api() -> Iterator[tuple[str, list[str]]]:
    """A loopback HTTP server answering every invoke with a successful record; the paths it was asked."""
    asked: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, body: object) -> None:
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._answer({} if self.path == "/api/v1" else [])

        def do_POST(self) -> None:
            asked.append(self.path)
            self.rfile.read(int(self.headers.get("content-length") or 0))
            self._answer(RECORD)

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", asked
    finally:
        server.shutdown()
        server.server_close()


def test_the_victim_runs_in_its_own_process_until_told_to_stop(fake_api: tuple[str, list[str]]) -> None:
    apihost, asked = fake_api
    rows: list[Invocation] = []

    async def run() -> None:
        client = WhiskClient(Target(apihost, "u:k"))
        params = IsolationParams(attacker_auth="x", victim_rate=50.0)
        stop, ready = asyncio.Event(), asyncio.Event()
        began: list[bool] = []

        def sink(outcome: Invocation) -> None:
            assert ready.is_set(), "no hello is measured before the victim's process is ready"
            assert began, "the quiet phase begins before the first hello's line is handed on"
            rows.append(outcome)
            if len(rows) == 5:
                stop.set()

        await asyncio.wait_for(
            _victim(client, "lg-wasm-hello", params, stop, sink, ready, lambda: began.append(True)), 60
        )
        await client.aclose()

    asyncio.run(run())
    assert len(rows) >= 5 and all(r.status == "success" and r.succeeded for r in rows)
    assert all("/actions/lg-wasm-hello?" in path for path in asked)
    assert len(asked) == len(rows), "every hello the process made is handed back"


def test_a_victim_process_that_cannot_reach_the_api_is_an_error_not_a_quiet_run() -> None:
    async def run() -> None:
        client = WhiskClient(Target("http://127.0.0.1:9", "u:k"))
        await _victim(
            client, "hello", IsolationParams(attacker_auth="x"), asyncio.Event(), print, asyncio.Event(), lambda: None
        )

    with pytest.raises(LoadgenError, match="exit status"):
        asyncio.run(run())


def test_each_verdict_carries_the_attack_phases_server_and_client_cpu() -> None:
    phases = [
        Phase(0, "quiet", None, 0, 1, 0.1),
        Phase(1, "attack:cpu", "cpu", 1, 2, 0.7),
        Phase(2, "after:cpu", "cpu", 2, 3),
    ]
    samples = [
        {"t": 0.5, "level": 0, "server": {"pids": [1], "cpu_percent": 10.0, "rss_bytes": 1}},
        {"t": 1.0, "level": 1, "server": {"pids": [1], "cpu_percent": 100.0, "rss_bytes": 1}},
        {"t": 1.5, "level": 1, "server": {"pids": [1], "cpu_percent": 200.0, "rss_bytes": 1}},
        {"t": 2.5, "level": 2, "server": {"pids": [1], "cpu_percent": 50.0, "rss_bytes": 1}},
    ]
    (verdict,) = judge([], phases, samples, IsolationParams(attacker_auth="x"))
    assert verdict.server_cpu_s == pytest.approx(0.5 * 1.0 + 0.5 * 2.0)
    assert verdict.client_cpu_s == 0.7
    assert _server_cpu_s(samples, {7}) is None
