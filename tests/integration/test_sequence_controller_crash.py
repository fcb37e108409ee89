"""Nothing lost: a sequence whose controller is killed mid-run still ends with a record, written by a peer.

Two controllers over Kafka and pouchdb-server. The sequence is invoked non-blocking on controller 0, which
journals it (controller/sequence_journal.py) before answering 202, and is killed with SIGKILL while its first
component runs. Controller 1 records it as a whisk internal error once its deadline has passed. OpenWhisk has no
equivalent (a sequence lives in its controller's memory: SequenceActions.scala), so the record's shape is the
sequence record's (kind ``sequence``, ``topmost``) with OpenWhisk's whisk-error status. The deadline is made short
with ``PYWHISK_COMPOSITION_TIMEOUT_ADDON_MS`` (OpenWhisk's controller ``timeout-addon``, a minute by default).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from controller.sequence_journal import LOST_MESSAGE
from launcher.testing import Deployment, start_deployment
from tests.conftest import TEST_CONTROLLER_ENV, wasm_code

pytestmark = [pytest.mark.integration, pytest.mark.kafka]

ADDON_MS = 1000
STEP_TIMEOUT_MS = 3000


@pytest.fixture(scope="module")
def two_controllers(
    kafka_broker: str,
    couchdb_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Deployment]:
    env = {
        **TEST_CONTROLLER_ENV,
        "PYWHISK_COMPOSITION_TIMEOUT_ADDON_MS": str(ADDON_MS),
        "PYWHISK_SEQUENCE_JOURNAL_PERIOD_S": "0.5",
    }
    deployment = start_deployment(
        kafka_broker,
        couchdb_url,
        tmp_path_factory.mktemp("sequence-crash"),
        controllers=2,
        invokers=1,
        controller_env=env,
    )
    yield deployment
    deployment.stop()


def put(api: httpx.Client, name: str, body: dict[str, Any]) -> None:
    response = api.put(f"/namespaces/_/actions/{name}", json=body)
    assert response.status_code == 200, response.text


def test_a_sequence_whose_controller_dies_is_recorded_by_a_peer(two_controllers: Deployment) -> None:
    with two_controllers.client(0) as api:
        put(
            api,
            "nap",
            {"exec": {"kind": "wasm:wasi", "code": wasm_code("sleep")}, "limits": {"timeout": STEP_TIMEOUT_MS}},
        )
        put(api, "naps", {"exec": {"kind": "sequence", "components": ["/guest/nap", "/guest/nap"]}})
        accepted = api.post("/namespaces/_/actions/naps", json={"ms": 2000})
        assert accepted.status_code == 202, accepted.text
        sequence_id = accepted.json()["activationId"]
        invoked_at = time.time() * 1000
    two_controllers.kill_controller(0)

    # Two components of 3 s each, each waited for 1 s beyond, and a 1 s margin: the deadline is ~9 s away.
    deadline_ms = invoked_at + 2 * (STEP_TIMEOUT_MS + ADDON_MS) + ADDON_MS
    with two_controllers.client(1) as peer:
        end = time.monotonic() + 60
        record = peer.get(f"/namespaces/_/activations/{sequence_id}")
        while record.status_code == 404 and time.monotonic() < end:
            time.sleep(0.2)  # polling the peer for the record, with a deadline
            record = peer.get(f"/namespaces/_/activations/{sequence_id}")
        recorded_at = time.time() * 1000

    assert record.status_code == 200, f"no record of the sequence after 60 s:\n{two_controllers.logs()}"
    body = record.json()
    assert body["response"]["status"] == "whisk internal error"
    assert body["response"]["result"] == {"error": LOST_MESSAGE}
    annotations = {a["key"]: a["value"] for a in body["annotations"]}
    assert annotations["kind"] == "sequence" and annotations["topmost"] is True
    # Recorded by the peer after the deadline, never while the sequence could still have been running.
    assert recorded_at >= deadline_ms - 500
