"""A real CouchDB-API server for the tests: ``deploy/local/couchdb.sh up`` (pouchdb-server), once a session.

Import the fixture where it is used (``from tests.couchdb_service import couchdb_url  # noqa: F401``).
The server is left running after the session, like a developer's local service: the next session's
``up`` then returns at once. Tests isolate themselves with their own database prefix
(``unique_db_prefix``) and delete their databases when done (``drop_databases``).

``PYWHISK_TEST_COUCHDB_URL`` points the tests at another server (e.g. a CouchDB 3 with
``http://admin:password@host:5984``) instead of starting one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

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


def drop_databases(url: str, prefix: str) -> None:
    """Delete every database whose name starts with ``prefix`` (a test's cleanup)."""
    with httpx.Client(base_url=url, timeout=30) as client:
        for db in client.get("/_all_dbs").json():
            if db.startswith(prefix):
                client.delete(f"/{db}")


@pytest.fixture(scope="session")
def couchdb_url() -> Iterator[str]:
    """The URL of a running CouchDB-API server (credentials, if any, in the URL's user info)."""
    external = os.environ.get("PYWHISK_TEST_COUCHDB_URL")
    if external:
        yield external
        return
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not installed: cannot run pouchdb-server (apt-get install nodejs npm)")
    yield couchdb_up()
