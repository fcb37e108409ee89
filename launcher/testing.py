"""Real pywhisk processes on free ports, for the test suite and the benchmarks in ``bench/``.

``start_standalone`` runs ``python -m pywhisk standalone`` in a data directory of its own;
``start_deployment`` runs controllers and invokers over the local Kafka broker and CouchDB-API server
(``deploy/local/services``), kept apart from everything else on them by a topic and database prefix that
``Deployment.stop`` drops again. Both wait until the API answers, and both start the processes exactly as
an operator would, so what the tests and benchmarks see is what a user gets.

It lives here, beside the launcher, rather than in ``tests/`` because the benchmarks need it too and must not
import the test suite (the way ``starlette.testclient`` ships with the framework it exercises). The tests
choose their own test-only settings through ``env``/``controller_env``; nothing here changes a default.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from pywhisk.identity import GUEST_KEY, GUEST_UUID

GUEST_AUTH = f"{GUEST_UUID}:{GUEST_KEY}"
STARTUP_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 40.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def admin(env: Mapping[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``pywhisk admin ARGS`` in its own process with ``env`` naming the store (``Server.admin_env``).

    Raises ``AssertionError`` with its output when it fails, unless ``check`` is False.
    """
    done = subprocess.run(
        [sys.executable, "-m", "pywhisk", "admin", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    if check:
        assert done.returncode == 0, f"pywhisk admin {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done


@dataclass
class Server:
    """A running platform's API: a ``pywhisk standalone`` process, or one controller of a deployment."""

    apihost: str
    auth: str
    data_dir: Path
    process: subprocess.Popen[bytes]
    log_path: Path
    # The environment that points `pywhisk admin` at this platform's store.
    admin_env: dict[str, str] = field(default_factory=dict)

    def admin(self, *args: str) -> str:
        """``pywhisk admin ARGS`` against this platform's store, as an operator would run it; its output."""
        return admin(self.admin_env, *args).stdout.strip()

    def client(self, timeout: float = 70.0) -> httpx.Client:
        """An API client (``/api/v1``) authenticated with the server's key."""
        uuid_, key = self.auth.split(":")
        return httpx.Client(base_url=f"{self.apihost}/api/v1", auth=(uuid_, key), timeout=timeout)

    def async_client(self, timeout: float = 70.0, **kwargs: Any) -> httpx.AsyncClient:
        """The async twin of ``client``; ``kwargs`` go to ``httpx.AsyncClient`` (e.g. ``limits``)."""
        uuid_, key = self.auth.split(":")
        return httpx.AsyncClient(base_url=f"{self.apihost}/api/v1", auth=(uuid_, key), timeout=timeout, **kwargs)


def start_standalone(data_dir: Path, *extra: str, env: dict[str, str] | None = None) -> Server:
    """Start ``pywhisk standalone`` on a free port with its data in ``data_dir``; return once it answers.

    ``extra`` are more command-line options, ``env`` is added to this process's environment.
    """
    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / "server.log"
    with log_path.open("wb") as log_file:  # the child keeps its own descriptor
        process = subprocess.Popen(
            [sys.executable, "-m", "pywhisk", "standalone", "--port", str(port), "--data-dir", str(data_dir), *extra],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
    apihost = f"http://127.0.0.1:{port}"
    try:
        _wait_until(_answers(apihost), "standalone", process, lambda: log_path.read_text())
    except BaseException:
        process.kill()
        process.wait()
        raise
    admin_env = {"PYWHISK_STORE": "sqlite", "PYWHISK_DATA_DIR": str(data_dir)}
    return Server(apihost, GUEST_AUTH, data_dir, process, log_path, admin_env)


def stop_standalone(server: Server) -> int:
    """SIGTERM, as an operator's Ctrl-C; returns the exit code (killed if it does not stop in 40 s)."""
    server.process.send_signal(signal.SIGTERM)
    try:
        return server.process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        server.process.kill()
        return server.process.wait()


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
        """The environment every process of the deployment starts with."""
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
        """Start controller ``index`` on a free port; return once its API answers."""
        port = free_port()
        process = self._spawn(
            f"controller{index}", "controller", "--id", str(index), "--port", str(port), extra=self.controller_env
        )
        apihost = f"http://127.0.0.1:{port}"
        self.controller_procs[index] = (process, apihost)
        _wait_until(_answers(apihost), f"controller{index}", process, self.logs)

    def start_invoker(self, index: int) -> None:
        """Start invoker ``index``; ``wait_for_invokers`` tells when the controllers see it."""
        self.invoker_procs[index] = self._spawn(
            f"invoker{index}", "invoker", "--id", str(index), extra=self.invoker_env
        )

    def wait_for_invokers(self, statuses: dict[str, str], controller: int = 0) -> None:
        """Until the controller reports exactly these invoker states (e.g. {"invoker0": "up"})."""
        apihost = self.apihost(controller)

        def seen() -> bool:
            health = httpx.get(f"{apihost}/invokers", timeout=1).json()
            return all(health.get(name) == status for name, status in statuses.items())

        _wait_until(seen, f"invokers {statuses}", None, self.logs)

    def kill_invoker(self, index: int) -> None:
        """SIGKILL invoker ``index``: no draining, as a crash."""
        process = self.invoker_procs.pop(index)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    def kill_controller(self, index: int) -> None:
        """SIGKILL controller ``index``: no draining, as a crash (its entry stays, for its log and apihost)."""
        process, _ = self.controller_procs[index]
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM every process (killed after 40 s), then drop the deployment's CouchDB databases."""
        for process in self.invoker_procs.values():
            process.send_signal(signal.SIGTERM)
        for process, _ in self.controller_procs.values():
            process.send_signal(signal.SIGTERM)
        for process in [*self.invoker_procs.values(), *(p for p, _ in self.controller_procs.values())]:
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
        drop_databases(self.couchdb_url, self.prefix)

    def logs(self) -> str:
        """The tail of every process's log, for a failure message."""
        return "\n".join(f"--- {log.name}\n{log.read_text()[-3000:]}" for log in sorted(self.work_dir.glob("*.log")))

    def _spawn(self, name: str, *args: str, extra: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        with (self.work_dir / f"{name}.log").open("ab") as log:  # the child keeps its own descriptor
            return subprocess.Popen(
                [sys.executable, "-m", "pywhisk", *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**self.env, **(extra or {})},
            )


def start_deployment(
    bootstrap_servers: str,
    couchdb_url: str,
    work_dir: Path,
    controllers: int = 1,
    invokers: int = 2,
    *,
    invoker_env: dict[str, str] | None = None,
    controller_env: dict[str, str] | None = None,
) -> Deployment:
    """Start ``controllers`` controllers and ``invokers`` invokers; return once every controller sees every
    invoker up. On a failure to start, whatever did start is stopped again."""
    deployment = Deployment(
        bootstrap_servers,
        couchdb_url,
        work_dir,
        controllers=controllers,
        invoker_env=invoker_env or {},
        controller_env=controller_env or {},
    )
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


def drop_databases(url: str, prefix: str) -> None:
    """Delete every CouchDB database whose name starts with ``prefix`` (a deployment's or a test's cleanup)."""
    with httpx.Client(base_url=url, timeout=30) as client:
        for db in client.get("/_all_dbs").json():
            if db.startswith(prefix):
                client.delete(f"/{db}")


# helpers --------------------------------------------------------------------------------------------


def _answers(apihost: str) -> Callable[[], bool]:
    return lambda: httpx.get(f"{apihost}/api/v1", timeout=1).status_code == 200


def _wait_until(
    ready: Callable[[], bool], what: str, process: subprocess.Popen[bytes] | None, logs: Callable[[], str]
) -> None:
    """Poll ``ready`` until it holds; fail at once if ``process`` exits, and after STARTUP_TIMEOUT_S."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what} exited early:\n{logs()}")
        try:
            if ready():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{what} not ready after {STARTUP_TIMEOUT_S:.0f} s:\n{logs()}")
