"""Session fixtures: a real ``pywhisk standalone`` process and clients for it."""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from pywhisk.identity import GUEST_KEY, GUEST_UUID
from tests.couchdb_service import couchdb_url, private_couchdb  # noqa: F401
from tests.kafka_service import kafka_broker, private_kafka_broker  # noqa: F401

REPO = Path(__file__).resolve().parent.parent
WASM_DIR = REPO / "actions" / "wasm"
GUEST_AUTH = f"{GUEST_UUID}:{GUEST_KEY}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wasm_code(name: str) -> str:
    """The base64 code of a sample action from actions/wasm."""
    return base64.b64encode((WASM_DIR / f"{name}.wasm").read_bytes()).decode()


@dataclass
class Server:
    """A running ``pywhisk standalone`` process."""

    apihost: str
    auth: str
    data_dir: Path
    process: subprocess.Popen[bytes]
    log_path: Path
    # The environment that points `pywhisk admin` at this platform's store.
    admin_env: dict[str, str] = field(default_factory=dict)

    def client(self, timeout: float = 70.0) -> httpx.Client:
        uuid, key = self.auth.split(":")
        return httpx.Client(base_url=f"{self.apihost}/api/v1", auth=(uuid, key), timeout=timeout)

    def async_client(self, timeout: float = 70.0, **kwargs: object) -> httpx.AsyncClient:
        uuid, key = self.auth.split(":")
        return httpx.AsyncClient(
            base_url=f"{self.apihost}/api/v1",
            auth=(uuid, key),
            timeout=timeout,
            **kwargs,  # type: ignore[arg-type]
        )


def start_standalone(data_dir: Path, *extra: str, env: dict[str, str] | None = None) -> Server:
    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / "server.log"
    log_file = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "pywhisk", "standalone", "--port", str(port), "--data-dir", str(data_dir), *extra],
        stdout=log_file,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
    )
    apihost = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"standalone exited early:\n{log_path.read_text()}")
        try:
            if httpx.get(f"{apihost}/api/v1", timeout=1).status_code == 200:
                admin_env = {"PYWHISK_STORE": "sqlite", "PYWHISK_DATA_DIR": str(data_dir)}
                return Server(apihost, GUEST_AUTH, data_dir, process, log_path, admin_env)
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"standalone did not answer within 60 s:\n{log_path.read_text()}")


def stop_standalone(server: Server) -> int:
    server.process.send_signal(signal.SIGTERM)
    try:
        return server.process.wait(timeout=40)
    except subprocess.TimeoutExpired:
        server.process.kill()
        return server.process.wait()


@pytest.fixture(scope="session")
def standalone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One standalone server shared by the session's integration and e2e tests."""
    server = start_standalone(tmp_path_factory.mktemp("standalone"))
    yield server
    code = stop_standalone(server)
    assert code == 0, f"standalone exited with {code}:\n{server.log_path.read_text()}"


@pytest.fixture(scope="session")
def distributed(kafka_broker: str, couchdb_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:  # noqa: F811
    """One controller and two invokers over the local Kafka and CouchDB-API services."""
    from tests.distributed import start_deployment

    roomy = {"PYWHISK_USER_MEMORY_MB": "65536", "PYWHISK_WASM_THREADS": "32"}
    deployment = start_deployment(kafka_broker, couchdb_url, tmp_path_factory.mktemp("distributed"), invoker_env=roomy)
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
