"""Session fixtures: a real platform (``pywhisk standalone``, or controllers and invokers over Kafka and the
CouchDB API) and clients for it. The processes are started by ``launcher.testing``, shared with ``bench/``."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from launcher.testing import (  # noqa: F401  (re-exported: the test modules import them from here)
    GUEST_AUTH,
    Server,
    free_port,
    start_deployment,
    start_standalone,
    stop_standalone,
)
from tests.couchdb_service import couchdb_url, private_couchdb  # noqa: F401
from tests.kafka_service import kafka_broker, private_kafka_broker  # noqa: F401

REPO = Path(__file__).resolve().parent.parent
WASM_DIR = REPO / "actions" / "wasm"

# The test platform's own settings (not defaults): with no identity cache, a key or limit changed with
# `pywhisk admin` holds from the next request on, so the tenancy suite waits on nothing.
TEST_CONTROLLER_ENV = {"PYWHISK_IDENTITY_CACHE_TTL_S": "0"}


def wasm_code(name: str) -> str:
    """The base64 code of a sample action from actions/wasm."""
    return base64.b64encode((WASM_DIR / f"{name}.wasm").read_bytes()).decode()


@pytest.fixture(scope="session")
def standalone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One standalone server shared by the session's integration and e2e tests."""
    server = start_standalone(tmp_path_factory.mktemp("standalone"), env=TEST_CONTROLLER_ENV)
    yield server
    code = stop_standalone(server)
    assert code == 0, f"standalone exited with {code}:\n{server.log_path.read_text()}"


@pytest.fixture(scope="session")
def distributed(kafka_broker: str, couchdb_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:  # noqa: F811
    """One controller and two invokers over the local Kafka and CouchDB-API services."""
    roomy = {"PYWHISK_USER_MEMORY_MB": "65536", "PYWHISK_WASM_THREADS": "32"}
    deployment = start_deployment(
        kafka_broker,
        couchdb_url,
        tmp_path_factory.mktemp("distributed"),
        invoker_env=roomy,
        controller_env=TEST_CONTROLLER_ENV,
    )
    yield deployment.server()
    deployment.stop()


@pytest.fixture(scope="session", params=["standalone", pytest.param("distributed", marks=pytest.mark.kafka)])
def platform(request: pytest.FixtureRequest) -> Server:
    """The API suites run against both modes: the same answers are expected from each."""
    server: Server = request.getfixturevalue(request.param)
    return server


@pytest.fixture
def api(platform: Server) -> Iterator[httpx.Client]:
    with platform.client() as client:
        yield client


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> str:
    """An action name unique to the test, so tests sharing a server do not collide."""
    return f"{request.node.name[:60]}-{os.urandom(3).hex()}".replace("[", "-").replace("]", "")
