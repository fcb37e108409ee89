"""Measurement (not a test): how close to its minutes an ``interval`` alarm of one minute fires, on the real clock.

    python bench/alarms.py                       # starts its own standalone server in a temp dir, 3 fires
    python bench/alarms.py --fires 5             # longer
    python bench/alarms.py --apihost http://127.0.0.1:3233 --auth UUID:KEY   # a running platform

Creates a trigger with a rule to the ``echo`` WASM action, attaches ``/whisk.system/alarms/interval`` with
``minutes: 1`` and ``startDate`` the next whole minute, and waits for ``--fires`` fires (the first at the start
date, then one a minute). For each, the trigger activation's ``start`` (the controller's clock when it fired)
against the tick it was for, and, from the rule's echo activation, when the action ran. The target is each fire
within ±1 s of its minute. The alarm's feed is deleted at the end.
"""

from __future__ import annotations

import argparse
import base64
import json
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from launcher.testing import GUEST_AUTH, start_standalone, stop_standalone

REPO = Path(__file__).resolve().parent.parent
MINUTE_MS = 60_000


def put(api: httpx.Client, path: str, body: dict[str, Any]) -> None:
    response = api.put(f"/namespaces/_/{path}?overwrite=true", json=body)
    assert response.status_code == 200, response.text


def feed(api: httpx.Client, event: str, trigger: str, **params: Any) -> dict[str, Any]:
    body = {"lifecycleEvent": event, "triggerName": f"/_/{trigger}", "authKey": "unused", **params}
    response = api.post("/namespaces/whisk.system/actions/alarms/interval?blocking=true", json=body)
    record: dict[str, Any] = response.json()
    assert record["response"]["success"], json.dumps(record)
    return record


def fires(api: httpx.Client, trigger: str) -> list[dict[str, Any]]:
    response = api.get(f"/namespaces/_/activations?name={trigger}&docs=true&limit=100")
    return sorted(response.json(), key=lambda r: r["start"])


def bench(api: httpx.Client, count: int) -> list[int]:
    """Each fire's offset (ms) from its minute."""
    name = f"bench-alarm-{uuid.uuid4().hex[:6]}"
    code = base64.b64encode((REPO / "actions" / "wasm" / "echo.wasm").read_bytes()).decode()
    put(api, f"actions/{name}-echo", {"exec": {"kind": "wasm:wasi", "code": code}})
    put(api, f"triggers/{name}", {})
    put(api, f"rules/{name}-rule", {"trigger": f"/_/{name}", "action": f"/_/{name}-echo"})
    now = int(time.time() * 1000)
    start = now - now % MINUTE_MS + MINUTE_MS
    if start - now < 5000:  # leave time to create the alarm before its first tick
        start += MINUTE_MS
    feed(api, "CREATE", name, minutes=1, startDate=start, trigger_payload={"bench": name})
    print(f"interval alarm of 1 minute from {time.strftime('%H:%M:%S', time.gmtime(start / 1000))} UTC, {count} fires")
    offsets: list[int] = []
    try:
        deadline = start + (count - 1) * MINUTE_MS + 30_000
        while len(offsets) < count and time.time() * 1000 < deadline:
            records = fires(api, name)
            for record in records[len(offsets) :]:
                tick = start + len(offsets) * MINUTE_MS
                offset = record["start"] - tick
                offsets.append(offset)
                at = time.strftime("%H:%M:%S", time.gmtime(tick / 1000))
                print(f"fire {len(offsets)}: tick {at}  offset {offset:+d} ms")
            time.sleep(0.5)
    finally:
        feed(api, "DELETE", name)
    return offsets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fires", type=int, default=3)
    parser.add_argument("--apihost", help="a running platform (default: start a standalone server)")
    parser.add_argument("--auth", default=GUEST_AUTH)
    args = parser.parse_args()
    server = None
    apihost = args.apihost
    if apihost is None:
        server = start_standalone(Path(tempfile.mkdtemp(prefix="bench-alarms-")))
        apihost = server.apihost
    uuid_, key = args.auth.split(":")
    try:
        with httpx.Client(base_url=f"{apihost}/api/v1", auth=(uuid_, key), timeout=70) as api:
            offsets = bench(api, args.fires)
    finally:
        if server is not None:
            stop_standalone(server)
    worst = max((abs(o) for o in offsets), default=None)
    print(f"{len(offsets)} of {args.fires} fires; worst offset {worst} ms (target: within ±1000 ms)")


if __name__ == "__main__":
    main()
