"""A real distributed deployment for tests: controller and invoker processes over the local Kafka
broker and CouchDB-API server, kept apart from other tests by topic and database prefixes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.conftest import GUEST_AUTH, Server, free_port
from tests.couchdb_service import drop_databases

STARTUP_TIMEOUT_S = 60


@dataclass
class Deployment:
    """Controllers (HTTP) and invokers (no port) sharing one Kafka prefix and one CouchDB prefix."""

    bootstrap_servers: str
    couchdb_url: str
    work_dir: Path
    controllers: int = 1
    invoker_env: dict[str, str] = field(default_factory=dict)
    controller_env: dict[str, str] = field(default_factory=dict)
    prefix: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:10]}_")
    controller_procs: dict[int, tuple[subprocess.Popen[bytes], str]] = field(default_factory=dict)
    invoker_procs: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "PYWHISK_BUS": "kafka",
            "PYWHISK_STORE": "couchdb",
            "PYWHISK_KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
            "PYWHISK_KAFKA_TOPIC_PREFIX": self.prefix,
            "PYWHISK_COUCHDB_URL": self.couchdb_url,
            "PYWHISK_COUCHDB_DB_PREFIX": self.prefix,
            "PYWHISK_DATA_DIR": str(self.work_dir / "data"),
            "PYWHISK_CONTROLLERS": str(self.controllers),
        }

    def apihost(self, controller: int = 0) -> str:
        return self.controller_procs[controller][1]

    def server(self, controller: int = 0) -> Server:
        """The controller as a ``Server``, so standalone helpers work against it."""
        process, apihost = self.controller_procs[controller]
        log = self.work_dir / f"controller{controller}.log"
        return Server(apihost, GUEST_AUTH, self.work_dir, process, log, self.admin_env)

    @property
    def admin_env(self) -> dict[str, str]:
        """The environment that points `pywhisk admin` at this deployment's CouchDB databases."""
        return {
            "PYWHISK_STORE": "couchdb",
            "PYWHISK_COUCHDB_URL": self.couchdb_url,
            "PYWHISK_COUCHDB_DB_PREFIX": self.prefix,
        }

    def client(self, controller: int = 0, timeout: float = 90.0) -> httpx.Client:
        return self.server(controller).client(timeout=timeout)

    # processes ------------------------------------------------------------------------------------

    def start_controller(self, index: int) -> None:
        port = free_port()
        process = self._spawn(
            f"controller{index}", "controller", "--id", str(index), "--port", str(port), extra=self.controller_env
        )
        apihost = f"http://127.0.0.1:{port}"
        self.controller_procs[index] = (process, apihost)
        self._wait(lambda: httpx.get(f"{apihost}/api/v1", timeout=1).status_code == 200, f"controller{index}", process)

    def start_invoker(self, index: int) -> None:
        self.invoker_procs[index] = self._spawn(
            f"invoker{index}", "invoker", "--id", str(index), extra=self.invoker_env
        )

    def wait_for_invokers(self, statuses: dict[str, str], controller: int = 0) -> None:
        """Until the controller reports exactly these invoker states (e.g. {"invoker0": "up"})."""
        apihost = self.apihost(controller)

        def seen() -> bool:
            health = httpx.get(f"{apihost}/invokers", timeout=1).json()
            return all(health.get(name) == status for name, status in statuses.items())

        self._wait(seen, f"invokers {statuses}", None)

    def kill_invoker(self, index: int) -> None:
        process = self.invoker_procs.pop(index)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    def stop(self) -> None:
        for process in self.invoker_procs.values():
            process.send_signal(signal.SIGTERM)
        for process, _ in self.controller_procs.values():
            process.send_signal(signal.SIGTERM)
        for process in [*self.invoker_procs.values(), *(p for p, _ in self.controller_procs.values())]:
            try:
                process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                process.kill()
        drop_databases(self.couchdb_url, self.prefix)

    def logs(self) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text()[-3000:]}" for log in sorted(self.work_dir.glob("*.log")))

    def _spawn(self, name: str, *args: str, extra: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        log = (self.work_dir / f"{name}.log").open("ab")
        return subprocess.Popen(
            [sys.executable, "-m", "pywhisk", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**self.env, **(extra or {})},
        )

    def _wait(self, ready: object, what: str, process: subprocess.Popen[bytes] | None) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"{what} exited early:\n{self.logs()}")
            try:
                if ready():  # type: ignore[operator]
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{what} not ready after {STARTUP_TIMEOUT_S} s:\n{self.logs()}")


def start_deployment(
    bootstrap_servers: str, couchdb_url: str, work_dir: Path, controllers: int = 1, invokers: int = 2, **kwargs: object
) -> Deployment:
    deployment = Deployment(bootstrap_servers, couchdb_url, work_dir, controllers=controllers, **kwargs)  # type: ignore[arg-type]
    try:
        for index in range(controllers):
            deployment.start_controller(index)
        for index in range(invokers):
            deployment.start_invoker(index)
        for index in range(controllers):
            deployment.wait_for_invokers({f"invoker{i}": "up" for i in range(invokers)}, controller=index)
    except BaseException:
        deployment.stop()
        raise
    return deployment
