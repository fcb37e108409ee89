"""Read-your-writes on the distributed deployment: a blocking invoke's record, result and logs read at once.

Over Kafka an invoker sends a blocking activation's record to its controller ahead of storing it
(``result_before_record``), and here its records linger a whole second for company before their CouchDB write
(``PYWHISK_COUCHDB_RECORD_LINGER_MS``), so the caller is answered long before the store has the record. The
controller that answered serves it from what it was answered with (controller/recent_results.py) until the
completion says it is stored, and only to the record's own namespace.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from launcher.testing import start_deployment
from tests.conftest import TEST_CONTROLLER_ENV
from tests.integration.helpers import create_wasm_action, invoke, stored_in_couchdb

pytestmark = [pytest.mark.integration, pytest.mark.kafka]

# The longest linger the settings allow: the window the reads below must fall in, with room for a busy machine.
LINGER = {"PYWHISK_COUCHDB_RECORD_LINGER_MS": "1000"}
STORED_TIMEOUT_S = 30.0
ATTEMPTS = 5


def test_a_blocking_invokes_record_result_and_logs_are_there_at_once(
    kafka_broker: str, couchdb_url: str, tmp_path: Path
) -> None:
    deployment = start_deployment(
        kafka_broker,
        couchdb_url,
        tmp_path,
        invokers=1,
        invoker_env=LINGER,
        controller_env={**TEST_CONTROLLER_ENV, **LINGER},
    )
    try:
        uuid_, key = deployment.server().admin("user", "create", "mallory", "--namespace", "mallory").split(":")
        with deployment.client() as api, deployment.client() as mallory:
            mallory.auth = httpx.BasicAuth(uuid_, key)
            create_wasm_action(api, "hello", "hello")
            invoke(api, "hello", {"name": "warm"}).raise_for_status()  # the cold start is not what is measured

            # The reads must fall inside the linger, before the record is stored, or they prove nothing. On a
            # machine busy with other tests six requests can outlast the second: the invoke is tried again.
            for _attempt in range(ATTEMPTS):
                record = invoke(api, "hello", {"name": "Ada"}).json()
                activation_id = record["activationId"]
                # An attacker who learned the id, asking as its own namespace, while the record is held in memory.
                for path in ("", "/result", "/logs"):
                    stolen = mallory.get(f"/namespaces/_/activations/{activation_id}{path}")
                    assert stolen.status_code == 404, stolen.text
                got = api.get(f"/namespaces/_/activations/{activation_id}")
                result = api.get(f"/namespaces/_/activations/{activation_id}/result")
                logs = api.get(f"/namespaces/_/activations/{activation_id}/logs")
                stored_by_then = stored_in_couchdb(deployment.couchdb_url, deployment.prefix, activation_id)

                assert got.status_code == 200, got.text
                assert got.json() == record
                assert result.status_code == 200, result.text
                assert result.json() == record["response"]
                assert result.json()["result"] == {"greeting": "Hello, Ada!"}
                assert logs.status_code == 200, logs.text
                assert [line.split(" ", 1)[1].strip() for line in logs.json()["logs"]] == [
                    "stdout: hello: greeting Ada",
                    "stderr: hello: this line goes to stderr",
                ]
                if not stored_by_then:
                    break
            assert not stored_by_then, f"in {ATTEMPTS} tries the reads never fell before the record was stored"

            # Once stored, the store answers the same record (and still not to another namespace).
            deadline = time.monotonic() + STORED_TIMEOUT_S
            while not stored_in_couchdb(deployment.couchdb_url, deployment.prefix, activation_id):
                assert time.monotonic() < deadline, f"{activation_id} never stored"
                time.sleep(0.05)
            assert api.get(f"/namespaces/_/activations/{activation_id}").json() == record
            assert mallory.get(f"/namespaces/_/activations/{activation_id}").status_code == 404
    finally:
        deployment.stop()
