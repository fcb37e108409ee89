"""schemathesis against the controller's OpenAPI document, served by a real ``pywhisk standalone``.

Every operation of ``/api/v1/openapi.json`` gets generated requests (valid and invalid), with the guest
key; no answer may be a server error (5xx), and every answer must match the document (status code,
content type, body schema). Bounded for CI: a fixed number of examples per operation, derandomized.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from pywhisk.settings import Settings
from tests.conftest import Server, start_standalone, stop_standalone

pytestmark = pytest.mark.integration

EXAMPLES_PER_OPERATION = 40


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of its own: the fuzzer creates and deletes actions at will."""
    server = start_standalone(tmp_path_factory.mktemp("fuzz"))
    yield server
    assert stop_standalone(server) == 0, server.log_path.read_text()


def served_document() -> dict[str, Any]:
    """The document the controller app serves, built from the app itself (nothing is started)."""
    from controller.app import create_app
    from pywhisk.bus.memory import MemoryBus
    from pywhisk.store.sqlite import SqliteStore

    app = create_app(Settings(bus="memory", store="sqlite"), SqliteStore(Path("unused.sqlite3")), MemoryBus())
    return app.openapi()


DOCUMENT = served_document()
schema = schemathesis.openapi.from_dict(DOCUMENT)


def test_the_server_serves_the_document_under_test(fuzzed: Server) -> None:
    assert httpx.get(f"{fuzzed.apihost}/api/v1/openapi.json").json() == DOCUMENT


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    derandomize=True,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_every_answer_is_documented_and_none_is_a_server_error(case: Any, fuzzed: Server) -> None:
    uuid, key = fuzzed.auth.split(":")
    # Random namespaces are all someone else's (403); most cases go to the guest's own, so the
    # handlers behind the entitlement check get fuzzed too.
    parameters = case.path_parameters or {}
    if "namespace" in parameters and zlib.crc32(repr(sorted(parameters.items())).encode()) % 4:
        parameters["namespace"] = "_" if zlib.crc32(b"%d" % len(repr(case.body))) % 2 else "guest"
    case.call_and_validate(
        base_url=fuzzed.apihost,
        auth=(uuid, key),
        timeout=30,
        checks=[not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance],
    )
