"""Benchmark (not a test): a WASM web action's cold and warm latency, end to end, against a warm blocking invoke
of the same action, measured by the client in one run.

    python bench/web_action.py                  # starts its own standalone server in a temp dir
    python bench/web_action.py --distributed    # 1 controller + 2 invokers over deploy/local/services
    python bench/web_action.py --apihost http://127.0.0.1:3233 --auth UUID:KEY

Cold: N distinct web actions of hello.wasm, each requested once (``GET /api/v1/web/guest/default/NAME.json``):
a fresh instance each. Warm: sequential requests of one action, alternating in rounds between the web URL (no
credentials) and the blocking invoke (``POST .../actions/NAME?blocking=true&result=true``), so both see the
same machine state. Target (issue 13): warm web within 10 % of warm invoke.
"""

from __future__ import annotations

import argparse
import base64
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from launcher.testing import GUEST_AUTH, start_deployment, start_standalone, stop_standalone

REPO = Path(__file__).resolve().parent.parent
WEB = [{"key": "web-export", "value": True}, {"key": "raw-http", "value": False}, {"key": "final", "value": True}]


def summary(values: list[float]) -> str:
    values = sorted(values)

    def p(q: float) -> float:
        return values[min(len(values) - 1, int(q * len(values)))]

    return (
        f"n={len(values)} mean={statistics.fmean(values):.2f} p50={p(0.5):.2f} "
        f"p95={p(0.95):.2f} p99={p(0.99):.2f} max={values[-1]:.2f}"
    )


def timed(client: httpx.Client, method: str, url: str, **kwargs: object) -> float:
    started = time.perf_counter()
    response = client.request(method, url, **kwargs)  # type: ignore[arg-type]
    elapsed = (time.perf_counter() - started) * 1000
    assert response.status_code == 200, response.text
    return elapsed


def run(apihost: str, auth: str, cold_n: int, warm_n: int) -> None:
    uuid, key = auth.split(":")
    code = base64.b64encode((REPO / "actions" / "wasm" / "hello.wasm").read_bytes()).decode()
    body = {"exec": {"kind": "wasm:wasi", "code": code}, "annotations": WEB}
    stamp = int(time.time())
    with (
        httpx.Client(base_url=f"{apihost}/api/v1", auth=(uuid, key), timeout=70) as api,
        httpx.Client(base_url=f"{apihost}/api/v1/web/guest/default", timeout=70) as web,
    ):
        names = [f"bench-web-{stamp}-{i}" for i in range(cold_n + 1)]
        for name in names:
            assert api.put(f"/namespaces/_/actions/{name}", json=body).status_code == 200
        cold = [timed(web, "GET", f"/{name}.json", params={"name": "Ada"}) for name in names[1:]]

        hello = names[0]
        for _ in range(20):  # warm both paths (instance, caches, connections)
            timed(web, "GET", f"/{hello}.json", params={"name": "Ada"})
            timed(api, "POST", f"/namespaces/_/actions/{hello}", params={"blocking": "true", "result": "true"})
        web_ms: list[float] = []
        invoke_ms: list[float] = []
        for _ in range(warm_n // 10):  # rounds of 10 each way, alternating
            web_ms += [timed(web, "GET", f"/{hello}.json", params={"name": "Ada"}) for _ in range(10)]
            invoke_ms += [
                timed(
                    api,
                    "POST",
                    f"/namespaces/_/actions/{hello}",
                    params={"blocking": "true", "result": "true"},
                    json={"name": "Ada"},
                )
                for _ in range(10)
            ]
    print(f"cold web action (ms):      {summary(cold)}")
    print(f"warm web action (ms):      {summary(web_ms)}")
    print(f"warm blocking invoke (ms): {summary(invoke_ms)}")
    ratio = statistics.median(web_ms) / statistics.median(invoke_ms)
    print(f"warm web / warm invoke, p50: {ratio:.3f} (target <= 1.10)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--apihost")
    parser.add_argument("--auth", default=GUEST_AUTH)
    parser.add_argument("--distributed", action="store_true")
    parser.add_argument("--cold", type=int, default=20)
    parser.add_argument("--warm", type=int, default=1000)
    options = parser.parse_args()
    if options.apihost:
        run(options.apihost, options.auth, options.cold, options.warm)
        return
    with tempfile.TemporaryDirectory() as tmp:
        if options.distributed:
            deployment = start_deployment("127.0.0.1:9092", "http://127.0.0.1:5984", Path(tmp))
            try:
                run(deployment.apihost(), GUEST_AUTH, options.cold, options.warm)
            finally:
                deployment.stop()
        else:
            server = start_standalone(Path(tmp))
            try:
                run(server.apihost, server.auth, options.cold, options.warm)
            finally:
                stop_standalone(server)


if __name__ == "__main__":
    main()
