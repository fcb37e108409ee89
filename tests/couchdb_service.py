"""A real CouchDB-API server for the tests: ``deploy/local/couchdb.sh up`` (pouchdb-server), once a session.

Import the fixture where it is used (``from tests.couchdb_service import couchdb_url  # noqa: F401``).
The server is left running after the session, like a developer's local service: the next session's
``up`` then returns at once. Tests isolate themselves with their own database prefix
(``unique_db_prefix``) and delete their databases when done (``drop_databases``).

``PYWHISK_TEST_COUCHDB_URL`` points the tests at another server (e.g. a CouchDB 3 with
``http://admin:password@host:5984``) instead of starting one.

``private_couchdb`` is a server of the test's own, on a free port with throwaway data, for tests that
stop or restart it (chaos); it is stopped when the test ends.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from launcher.testing import drop_databases  # noqa: F401  (re-exported: a deployment drops its databases too)

REPO = Path(__file__).resolve().parent.parent
COUCHDB_SH = REPO / "deploy" / "local" / "couchdb.sh"


def couchdb_up(env: dict[str, str] | None = None, timeout_s: float = 300.0) -> str:
    """Run ``couchdb.sh up`` (installing pouchdb-server on first use) and return the server's URL."""
    full_env = {**os.environ, **(env or {})}
    result = subprocess.run(
        ["bash", str(COUCHDB_SH), "up"], env=full_env, capture_output=True, text=True, timeout=timeout_s
    )
    if result.returncode != 0:
        raise RuntimeError(f"couchdb.sh up failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return f"http://127.0.0.1:{full_env.get('PYWHISK_COUCHDB_PORT', '5984')}"


def couchdb_down(env: dict[str, str] | None = None) -> None:
    """Run ``couchdb.sh down`` with the same environment that started the server."""
    subprocess.run(
        ["bash", str(COUCHDB_SH), "down"], env={**os.environ, **(env or {})}, check=True, capture_output=True
    )


def unique_db_prefix() -> str:
    """A database prefix no other test uses (CouchDB names: lowercase, a letter first)."""
    return f"t_{os.urandom(5).hex()}_"


@dataclass
class CouchDBServer:
    """A pouchdb-server of one test: its own port and data directory (kept across restarts)."""

    port: int
    data_dir: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        return {"PYWHISK_COUCHDB_PORT": str(self.port), "PYWHISK_DATA": str(self.data_dir)}

    def up(self) -> None:
        """Start it (its databases survive a down/up); returns when it answers."""
        couchdb_up(self.env)

    def down(self) -> None:
        """Stop it and wait until it has exited."""
        couchdb_down(self.env)


def require_couchdb_tools() -> None:
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not installed: cannot run pouchdb-server (apt-get install nodejs npm)")


@pytest.fixture
def private_couchdb(tmp_path: Path) -> Iterator[CouchDBServer]:
    """A CouchDB-API server for this test only (free port, data under tmp_path), stopped at the end."""
    require_couchdb_tools()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    server = CouchDBServer(port=port, data_dir=tmp_path / "couchdb")
    try:
        server.up()
        yield server
    finally:
        server.down()


@pytest.fixture(scope="session")
def couchdb_url() -> Iterator[str]:
    """The URL of a running CouchDB-API server (credentials, if any, in the URL's user info)."""
    external = os.environ.get("PYWHISK_TEST_COUCHDB_URL")
    if external:
        yield external
        return
    require_couchdb_tools()
    yield couchdb_up()
