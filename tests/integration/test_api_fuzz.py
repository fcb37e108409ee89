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
import orjson
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
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


# Attack classes the document does not describe: deep nesting and hostile Host headers ----------------

MAX_JSON_DEPTH = Settings().max_json_depth


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


@st.composite
def nested_parameters(draw: st.DrawFn) -> bytes:
    """An invoke body: a JSON object nesting arrays, objects and brackets inside strings to a drawn depth."""
    depth = draw(st.integers(min_value=1, max_value=3 * MAX_JSON_DEPTH))
    value: Any = draw(st.one_of(st.integers(-(2**53), 2**53), st.text(alphabet='[]{}"\\ab', max_size=8)))
    for _ in range(depth - 1):
        value = draw(st.sampled_from([lambda v: [v], lambda v: {"k": v}, lambda v: [1, v, "]"]]))(value)
    return orjson.dumps({"p": value})


@given(body=nested_parameters())
@settings(max_examples=60, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
def test_nested_parameters_are_refused_past_the_depth_limit_and_accepted_within_it(fuzzed: Server, body: bytes) -> None:
    with fuzzed.client(timeout=30) as api:
        response = api.post(
            "/namespaces/_/actions/no-such-action", content=body, headers={"content-type": "application/json"}
        )
    if _depth(orjson.loads(body)) > MAX_JSON_DEPTH:
        assert response.status_code == 400, response.text
        assert response.json()["error"].startswith("The request content was malformed:\n")
    else:
        assert response.status_code == 404, response.text  # parsed, then the action was looked up


@given(
    path=st.sampled_from(
        [
            "/api/v1/",
            "/api/v1/namespaces/",
            "/api/v1/namespaces/_/actions/",
            "/api/v1/namespaces/_/actions/x/",
            "/api/v1/namespaces/_/activations/",
            "/api/v1/namespaces/_/limits/",
            "/docs/",
            "/api/v1/openapi.json/",
        ]
    ),
    host=st.from_regex(r"\A[a-z0-9.-]{1,40}(:[0-9]{1,5})?\Z"),
)
@settings(max_examples=60, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_answer_redirects_to_the_clients_host(fuzzed: Server, path: str, host: str) -> None:
    uuid, key = fuzzed.auth.split(":")
    response = httpx.get(f"{fuzzed.apihost}{path}", headers={"host": host}, auth=(uuid, key), timeout=30)
    assert not response.is_redirect, (path, response.status_code, response.headers.get("location"))
    assert host not in response.headers.get("location", "")
