"""A real Apache Kafka broker for integration tests, run by deploy/local/kafka.sh.

Import the fixtures where they are used::

    from tests.kafka_service import kafka_broker  # noqa: F401

``kafka_broker`` starts the shared local broker (127.0.0.1:9092, or ``PYWHISK_KAFKA_PORT``) once per
session and leaves it running afterwards: other sessions may be using it, and ``kafka.sh down`` is
for humans. Tests sharing it keep apart by naming: give each test its own topic prefix
(``unique_prefix``), which ``KafkaBus`` puts in front of topic *and* group names.

``private_kafka_broker`` is a broker of the test's own, on free ports with throwaway data, for tests
that stop or restart the broker; it is stopped when the test ends.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

REPO = Path(__file__).resolve().parent.parent
KAFKA_SH = REPO / "deploy" / "local" / "kafka.sh"
CACHE = Path(os.environ.get("PYWHISK_CACHE", Path.home() / ".cache" / "pywhisk"))
# kafka.sh waits up to 90 s for the broker; the first run also downloads ~45 MB of jars.
KAFKA_SH_TIMEOUT_S = 600


@dataclass
class KafkaBroker:
    """A broker managed by deploy/local/kafka.sh on ``port`` (its controller listens on port+1)."""

    port: int = 9092
    env: dict[str, str] = field(default_factory=dict)

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def up(self) -> None:
        """Start the broker (or find it running); returns when it serves clients."""
        self._run("up")

    def down(self) -> None:
        """Stop the broker and wait until it has exited."""
        self._run("down")

    def _run(self, command: str) -> None:
        env = {**os.environ, **self.env, "PYWHISK_KAFKA_PORT": str(self.port)}
        result = subprocess.run(
            ["bash", str(KAFKA_SH), command],
            env=env,
            capture_output=True,
            text=True,
            timeout=KAFKA_SH_TIMEOUT_S,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"kafka.sh {command} failed ({result.returncode}):\n{result.stdout}{result.stderr}")


def require_kafka_tools() -> None:
    """Skip the test when the machine cannot run a broker at all (no Java, or no Maven and no jars yet)."""
    if shutil.which("java") is None:
        pytest.skip("java is not installed: the Kafka broker (deploy/local/kafka.sh) needs Java 17+")
    if shutil.which("mvn") is None and not (CACHE / "kafka" / "libs").is_dir():
        pytest.skip("mvn is not installed and the Kafka jars are not cached: deploy/local/kafka.sh cannot get them")


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[str]:
    """The bootstrap servers of the shared local broker, started if needed and left running."""
    require_kafka_tools()
    broker = KafkaBroker(port=int(os.environ.get("PYWHISK_KAFKA_PORT", "9092")))
    broker.up()
    yield broker.bootstrap_servers


@pytest.fixture
def private_kafka_broker(tmp_path: Path) -> Iterator[KafkaBroker]:
    """A broker for this test only (free ports, data under tmp_path), stopped at the end."""
    require_kafka_tools()
    broker = KafkaBroker(port=free_port_pair(), env={"PYWHISK_DATA": str(tmp_path)})
    try:
        broker.up()
        yield broker
    finally:
        broker.down()


def unique_prefix(request: pytest.FixtureRequest) -> str:
    """A topic/group prefix no other test or session uses: ``t.<test name>.<random>.``."""
    name = re.sub(r"[^a-zA-Z0-9_-]", "-", request.node.name)[:80]
    return f"t.{name}.{uuid.uuid4().hex[:8]}."


async def delete_topics(bootstrap_servers: str, prefix: str) -> None:
    """Delete every topic whose name starts with ``prefix`` (a test's cleanup on the shared broker)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=10_000)
    await admin.start()
    try:
        topics = [name for name in await admin.list_topics() if name.startswith(prefix)]
        if topics:
            await admin.delete_topics(topics)
    finally:
        await admin.close()


def free_port_pair() -> int:
    """A free port whose successor is free too (kafka.sh puts the controller on port+1)."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port < 65535 and _is_free(port + 1):
            return port
    raise RuntimeError("no two adjacent free ports found")


def _is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
