"""pywsk against an in-memory fake of the OpenWhisk REST API (reference/openwhisk.md §1, §6).

Over 400 lines because every pywsk command is checked against one in-memory fake of the API.

Each test runs the CLI through typer's CliRunner with an `httpx.MockTransport` and checks what a user sees
(stdout, stderr, exit status) and what went over the wire (method, path, query, body).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner, Result

from pywsk import props
from pywsk.context import Config
from pywsk.main import app, main

pytestmark = pytest.mark.unit

GUEST = props.GUEST_AUTH
ACTIVATION_ID = "c7bb1339cb4f40e3a6ccead6c99f804e"
OTHER_ID = "0123456789abcdef0123456789abcdef"


def error_body(message: str, code: str = "abc") -> dict[str, str]:
    return {"error": message, "code": code}


def activation(
    activation_id: str = ACTIVATION_ID,
    *,
    name: str = "hello",
    status: str = "success",
    result: Any = None,
    start: int = 1_700_000_000_000,
    duration: int = 64,
    cold: bool = True,
    logs: list[str] | None = None,
) -> dict[str, Any]:
    annotations: list[dict[str, Any]] = [
        {"key": "path", "value": f"guest/{name}"},
        {"key": "kind", "value": "python:3.11"},
        {"key": "waitTime", "value": 5},
    ]
    if cold:
        annotations.append({"key": "initTime", "value": 30})
    return {
        "activationId": activation_id,
        "namespace": "guest",
        "name": name,
        "subject": "guest",
        "version": "0.0.1",
        "publish": False,
        "start": start,
        "end": start + duration,
        "duration": duration,
        "response": {"status": status, "success": status == "success", "result": result or {"ok": True}},
        "logs": logs or [],
        "annotations": annotations,
    }


@dataclass
class FakeWhisk:
    """Just enough of the controller's REST API: actions, invokes and activations, in memory."""

    actions: dict[str, dict[str, Any]] = field(default_factory=dict)
    activations: list[dict[str, Any]] = field(default_factory=list)  # newest first
    invoke_answer: tuple[int, Any] = (202, {"activationId": ACTIVATION_ID})
    requests: list[httpx.Request] = field(default_factory=list)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path.removeprefix("/api/v1")
        if request.headers.get("authorization") != "Basic " + base64.b64encode(GUEST.encode()).decode():
            return httpx.Response(401, json=error_body("The supplied authentication is invalid"))
        if path == "":
            return httpx.Response(200, json={"description": "OpenWhisk API", "build": "2024-01-01", "buildno": "42"})
        if path == "/namespaces":
            return httpx.Response(200, json=["guest"])
        _namespace, _, rest = path.removeprefix("/namespaces/").partition("/")
        collection, _, entity = rest.partition("/")
        if collection == "actions":
            return self._actions(request, entity)
        if collection == "activations":
            return self._activations(request, entity)
        return httpx.Response(404, json=error_body("The requested resource does not exist."))

    def _actions(self, request: httpx.Request, name: str) -> httpx.Response:
        query = request.url.params
        if not name:
            summaries = [{k: v for k, v in doc.items() if k != "exec"} for doc in self.actions.values()]
            return httpx.Response(200, json=summaries)
        if request.method == "PUT":
            if name in self.actions and query["overwrite"] == "false":
                return httpx.Response(409, json=error_body("resource already exists", "123"))
            body = json.loads(request.content)
            kind = body.get("exec", {}).get("kind", "python:3.11")
            doc = {"namespace": "guest", "name": name, "version": "0.0.1", "exec": body.get("exec"),
                   "annotations": [*body.get("annotations", []), {"key": "exec", "value": kind}]}  # fmt: skip
            self.actions[name] = doc
            return httpx.Response(200, json=doc)
        if name not in self.actions:
            return httpx.Response(404, json=error_body("The requested resource does not exist."))
        if request.method == "POST":
            status, body = self.invoke_answer
            return httpx.Response(status, json=body)
        if request.method == "DELETE":
            return httpx.Response(200, json=self.actions.pop(name))
        return httpx.Response(200, json=self.actions[name])

    def _activations(self, request: httpx.Request, entity: str) -> httpx.Response:
        if not entity:
            params = request.url.params
            since, name = int(params.get("since", 0)), params.get("name")
            found = [a for a in self.activations if a["start"] >= since and name in (None, a["name"])]
            return httpx.Response(200, json=found[: int(params.get("limit", 30)) or 200])
        activation_id, _, part = entity.partition("/")
        found = [record for record in self.activations if record["activationId"] == activation_id]
        if not found:
            return httpx.Response(404, json=error_body("The requested resource does not exist."))
        if part == "result":
            return httpx.Response(200, json=found[0]["response"])
        if part == "logs":
            return httpx.Response(200, json={"logs": found[0]["logs"]})
        return httpx.Response(200, json=found[0])

    def sent(self, method: str | None = None) -> list[httpx.Request]:
        return [request for request in self.requests if method is None or request.method == method]


def query(request: httpx.Request) -> dict[str, str]:
    return dict(request.url.params)


def body(request: httpx.Request) -> Any:
    return json.loads(request.content)


@pytest.fixture(autouse=True)
def props_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "wskprops"
    monkeypatch.setenv("WSK_CONFIG_FILE", str(path))
    return path


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def whisk() -> FakeWhisk:
    return FakeWhisk()


@pytest.fixture
def run(whisk: FakeWhisk) -> Callable[..., Result]:
    def invoke(*args: str, config: Config | None = None) -> Result:
        config = config or Config(transport=httpx.MockTransport(whisk.handle))
        return CliRunner().invoke(app, list(args), obj=config)

    return invoke


def hello_action(whisk: FakeWhisk, **annotations: Any) -> None:
    whisk.actions["hello"] = {
        "namespace": "guest",
        "name": "hello",
        "version": "0.0.1",
        "publish": False,
        "exec": {"kind": "python:3.11", "binary": False},
        "annotations": [{"key": k, "value": v} for k, v in {**annotations, "exec": "python:3.11"}.items()],
    }


# -- properties -------------------------------------------------------------------------------------------------


def test_property_set_writes_the_props_file_and_keeps_other_keys(run: Callable[..., Result], props_file: Path) -> None:
    props_file.write_text("# mine\nFOO=bar\nAPIHOST=old:1\n")

    result = run("property", "set", "--apihost", "http://localhost:3233", "--auth", "u:k", "--apiversion", "v1")

    assert result.exit_code == 0
    assert result.stdout == (
        "ok: whisk auth set. Run 'pywsk property get --auth' to see the new value.\n"
        "ok: whisk API host set to http://localhost:3233\n"
        "ok: whisk API version set to v1\n"
    )
    assert props_file.read_text() == "# mine\nFOO=bar\nAPIHOST=http://localhost:3233\nAUTH=u:k\nAPIVERSION=v1\n"


def test_property_get_shows_defaults_when_nothing_is_configured(run: Callable[..., Result]) -> None:
    assert run("property", "get", "--apihost").stdout == "whisk API host\t\thttp://127.0.0.1:3233\n"
    assert run("property", "get", "--auth").stdout == f"whisk auth\t\t{GUEST}\n"
    assert run("property", "get", "--namespace").stdout == "whisk namespace\t\t_\n"


def test_property_get_reads_the_props_file(run: Callable[..., Result], props_file: Path) -> None:
    props_file.write_text("APIHOST = example.com:443\nNAMESPACE=guest\n")

    assert run("property", "get", "--apihost").stdout == "whisk API host\t\texample.com:443\n"
    assert run("property", "get", "--namespace").stdout == "whisk namespace\t\tguest\n"


def test_property_get_apibuild_asks_the_server(run: Callable[..., Result], whisk: FakeWhisk) -> None:
    result = run("property", "get", "--apibuild")

    assert result.stdout == "whisk API build\t\t2024-01-01\n"
    assert str(whisk.requests[0].url) == "http://127.0.0.1:3233/api/v1"


def test_property_unset_removes_the_key(run: Callable[..., Result], props_file: Path) -> None:
    props_file.write_text("APIHOST=h\nAUTH=a:b\n")

    result = run("property", "unset", "--apihost")

    assert result.stdout == "ok: whisk API host unset.\n"
    assert props_file.read_text() == "AUTH=a:b\n"


def test_property_set_namespace_must_be_one_of_the_users(run: Callable[..., Result], props_file: Path) -> None:
    assert run("property", "set", "--namespace", "guest").stdout == "ok: whisk namespace set to guest\n"
    assert props_file.read_text() == "NAMESPACE=guest\n"

    result = run("property", "set", "--namespace", "other")

    assert result.exit_code == 1
    assert result.stderr == "error: Namespace 'other' is not in the list of entitled namespaces\n"


def test_apihost_without_scheme_gets_https(run: Callable[..., Result], whisk: FakeWhisk, props_file: Path) -> None:
    props_file.write_text(f"APIHOST=whisk.example.com:8443\nAUTH={GUEST}\n")

    run("namespace", "list")

    assert str(whisk.requests[0].url) == "https://whisk.example.com:8443/api/v1/namespaces"


def test_requests_carry_basic_auth_and_user_agent(run: Callable[..., Result], whisk: FakeWhisk) -> None:
    result = run("namespace", "list")

    assert result.stdout == "namespaces\nguest\n"
    request = whisk.requests[0]
    assert request.headers["authorization"] == "Basic " + base64.b64encode(GUEST.encode()).decode()
    assert request.headers["user-agent"].startswith("pywsk/")


def test_global_flags_work_before_and_after_the_command(run: Callable[..., Result], whisk: FakeWhisk) -> None:
    run("--apihost", "http://one:1", "action", "list")
    result = run("action", "list", "--apihost", "http://two:2", "-u", "x:y")

    assert [str(request.url.netloc, "ascii") for request in whisk.requests] == ["one:1", "two:2"]
    assert whisk.requests[1].headers["authorization"] == "Basic " + base64.b64encode(b"x:y").decode()
    assert result.exit_code == 145  # 401 - 256
    assert result.stderr == (
        "error: Unable to obtain the list of actions for namespace '_': "
        "The supplied authentication is invalid (code abc)\n"
    )


def test_verbose_prints_requests_and_responses_to_stderr(run: Callable[..., Result]) -> None:
    result = run("-v", "namespace", "list")

    assert result.stdout == "namespaces\nguest\n"
    assert "REQUEST:\n[GET]\thttp://127.0.0.1:3233/api/v1/namespaces\n" in result.stderr
    assert "authorization: Basic ********" in result.stderr
    assert GUEST.split(":")[1] not in result.stderr
    assert "RESPONSE:\nGot response with code 200\n" in result.stderr


def test_unreachable_server_gets_a_clear_message_and_exit_3(run: Callable[..., Result]) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("Connection refused", request=request)

    result = run("action", "list", config=Config(transport=httpx.MockTransport(refuse)))

    assert result.exit_code == 3
    assert result.stderr == (
        "error: Unable to connect to http://127.0.0.1:3233: is the server running? Start it with `pywhisk standalone`\n"
    )


def test_tls_failure_suggests_an_http_apihost(run: Callable[..., Result], props_file: Path) -> None:
    props_file.write_text("APIHOST=127.0.0.1:3233\n")

    def tls_to_plain_http(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[SSL: WRONG_VERSION_NUMBER] wrong version number", request=request)

    result = run("action", "list", config=Config(transport=httpx.MockTransport(tls_to_plain_http)))

    assert result.exit_code == 3
    assert result.stderr.startswith("error: Unable to connect to https://127.0.0.1:3233: TLS failed")
    assert "set the API host with an http:// prefix" in result.stderr


def test_error_without_an_openwhisk_body_reports_the_status(run: Callable[..., Result]) -> None:
    def gateway(request: httpx.Request) -> httpx.Response:
        return httpx.Response(504, text="<html>Gateway Timeout</html>")

    result = run("action", "delete", "hello", config=Config(transport=httpx.MockTransport(gateway)))

    assert result.exit_code == 504 - 256
    assert result.stderr == (
        "error: Unable to delete action 'hello': "
        "The server answered HTTP 504 Gateway Timeout without an OpenWhisk error body.\n"
    )


# -- action create / update -----------------------------------------------------------------------------------


def test_create_python_action_sends_the_code_as_text(
    run: Callable[..., Result], whisk: FakeWhisk, tmp_path: Path
) -> None:
    code = "def main(args):\n    return {'greeting': 'hi'}\n"
    (tmp_path / "hello.py").write_text(code)

    result = run("action", "create", "hello", str(tmp_path / "hello.py"))

    assert (result.exit_code, result.stdout) == (0, "ok: created action hello\n")
    [put] = whisk.sent("PUT")
    assert put.url.path == "/api/v1/namespaces/_/actions/hello"
    assert query(put) == {"overwrite": "false"}
    assert body(put) == {"exec": {"kind": "python:default", "code": code}}


def test_create_wasm_action_infers_the_kind_and_sends_base64(
    run: Callable[..., Result], whisk: FakeWhisk, tmp_path: Path
) -> None:
    module = b"\x00asm\x01\x00\x00\x00"
    (tmp_path / "add.wasm").write_bytes(module)

    result = run("action", "create", "add", str(tmp_path / "add.wasm"), "--main", "run")

    assert result.exit_code == 0
    assert body(whisk.sent("PUT")[0]) == {
        "exec": {"kind": "wasm:default", "code": base64.b64encode(module).decode(), "main": "run"}
    }


def test_create_js_action_and_explicit_kind(run: Callable[..., Result], whisk: FakeWhisk, tmp_path: Path) -> None:
    (tmp_path / "a.js").write_text("function main() {}")
    (tmp_path / "b.txt").write_text("print(1)")

    run("action", "create", "a", str(tmp_path / "a.js"))
    run("action", "create", "b", str(tmp_path / "b.txt"), "--kind", "python:3.11")

    assert [body(request)["exec"]["kind"] for request in whisk.sent("PUT")] == ["nodejs:default", "python:3.11"]


def test_create_zip_requires_kind_and_is_sent_base64(
    run: Callable[..., Result], whisk: FakeWhisk, tmp_path: Path
) -> None:
    archive = tmp_path / "bundle.zip"
    archive.write_bytes(b"PK\x03\x04 fake zip")

    refused = run("action", "create", "bundle", str(archive))
    accepted = run("action", "create", "bundle", str(archive), "--kind", "python:3.11")

    assert refused.exit_code == 1
    assert refused.stderr == (
        "error: creating an action from a .zip artifact requires specifying the action kind explicitly\n"
    )
    assert accepted.exit_code == 0
    assert body(whisk.sent("PUT")[0])["exec"]["code"] == base64.b64encode(archive.read_bytes()).decode()


def test_create_with_unknown_extension_or_missing_file_fails_without_a_request(
    run: Callable[..., Result], whisk: FakeWhisk, tmp_path: Path
) -> None:
    (tmp_path / "notes.txt").write_text("hello")

    unknown = run("action", "create", "x", str(tmp_path / "notes.txt"))
    missing = run("action", "create", "x", str(tmp_path / "absent.py"))
    no_code = run("action", "create", "x")

    assert unknown.stderr == "error: '.txt' is not a supported action runtime; give --kind.\n"
    assert missing.stderr.startswith(f"error: File '{tmp_path / 'absent.py'}' is not a valid file or it does not exist")
    assert no_code.stderr == "error: An action name and code artifact are required.\n"
    assert {unknown.exit_code, missing.exit_code, no_code.exit_code} == {1}
    assert whisk.requests == []


def test_params_are_json_when_valid_else_strings(run: Callable[..., Result], whisk: FakeWhisk, tmp_path: Path) -> None:
    (tmp_path / "hello.py").write_text("x")

    run("action", "create", "hello", str(tmp_path / "hello.py"),
        "-p", "n", "1", "-p", "s", "hello world", "--param", "o", '{"a": [1, 2]}',
        "-p", "q", '"quoted"', "-p", "t", "true", "-p", "nan", "NaN", "-p", "dash", "-v")  # fmt: skip

    assert body(whisk.sent("PUT")[0])["parameters"] == [
        {"key": "n", "value": 1},
        {"key": "s", "value": "hello world"},
        {"key": "o", "value": {"a": [1, 2]}},
        {"key": "q", "value": "quoted"},
        {"key": "t", "value": True},
        {"key": "nan", "value": "NaN"},
        {"key": "dash", "value": "-v"},  # a pair's value is never read as a flag, as in wsk
    ]


def test_param_without_a_value_is_an_error(run: Callable[..., Result], whisk: FakeWhisk) -> None:
    result = run("action", "invoke", "hello", "-p", "lonely")

    assert result.exit_code == 1
    assert result.stderr == "error: Arguments for '-p' must be a KEY VALUE pair.\n"
    assert whisk.requests == []


def test_param_file_is_merged_under_explicit_params(
    run: Callable[..., Result], whisk: FakeWhisk, tmp_path: Path
) -> None:
    hello_action(whisk)
    (tmp_path / "params.json").write_text('{"name": "file", "count": 2}')

    run("action", "invoke", "hello", "-P", str(tmp_path / "params.json"), "-p", "name", "flag")

    assert body(whisk.sent("POST")[0]) == {"name": "flag", "count": 2}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "error: Invalid JSON in parameter file"),
        ("[1, 2]", "error: The parameter file"),
    ],
)
def test_bad_param_file_is_a_client_error(
    run: Callable[..., Result], whisk: FakeWhisk, tmp_path: Path, content: str, message: str
) -> None:
    (tmp_path / "params.json").write_text(content)

    result = run("action", "invoke", "hello", "-P", str(tmp_path / "params.json"))

    assert result.exit_code == 1
    assert result.stderr.startswith(message)
    assert whisk.requests == []


def test_create_existing_action_reports_the_conflict(
    run: Callable[..., Result], whisk: FakeWhisk, tmp_path: Path
) -> None:
    hello_action(whisk)
    (tmp_path / "hello.py").write_text("x")

    result = run("action", "create", "hello", str(tmp_path / "hello.py"))

    assert result.exit_code == 153  # 409 - 256
    assert result.stderr == "error: Unable to create action 'hello': resource already exists (code 123)\n"


def test_update_sends_only_the_given_fields(run: Callable[..., Result], whisk: FakeWhisk, tmp_path: Path) -> None:
    hello_action(whisk)

    memory = run("action", "update", "hello", "-m", "512")
    limits = run("action", "update", "hello", "-t", "1000", "-c", "4", "-l", "5")
    params = run("action", "update", "hello", "-p", "a", "1")

    assert memory.stdout == "ok: updated action hello\n"
    assert [query(request) for request in whisk.sent("PUT")] == [{"overwrite": "true"}] * 3
    assert [body(request) for request in whisk.sent("PUT")] == [
        {"limits": {"memory": 512}},
        {"limits": {"timeout": 1000, "logs": 5, "concurrency": 4}},
        {"parameters": [{"key": "a", "value": 1}]},
    ]
    assert limits.exit_code == params.exit_code == 0


def test_update_with_web_keeps_the_existing_annotations(run: Callable[..., Result], whisk: FakeWhisk) -> None:
    hello_action(whisk, description="greets", final=False)

    result = run("action", "update", "hello", "--web", "true")

    assert result.exit_code == 0
    get, put = whisk.requests
    assert (get.method, query(get)) == ("GET", {"code": "false"})
    assert body(put) == {
        "annotations": [
            {"key": "description", "value": "greets"},
            {"key": "exec", "value": "python:3.11"},
            {"key": "web-export", "value": True},
            {"key": "raw-http", "value": False},
            {"key": "final", "value": True},
        ]
    }


@pytest.mark.parametrize(
    ("web", "expected"),
    [("raw", [True, True, True]), ("false", [False, False, False]), ("yes", [True, False, True])],
)
def test_create_web_action_annotations(
    run: Callable[..., Result], whisk: FakeWhisk, tmp_path: Path, web: str, expected: list[bool]
) -> None:
    (tmp_path / "hello.js").write_text("x")

    run("action", "create", "hello", str(tmp_path / "hello.js"), "--web", web, "-a", "description", "d")

    assert body(whisk.sent("PUT")[0])["annotations"] == [
        {"key": "description", "value": "d"},
        *(
            {"key": key, "value": value}
            for key, value in zip(["web-export", "raw-http", "final"], expected, strict=True)
        ),
    ]


def test_invalid_web_value_is_rejected(run: Callable[..., Result], tmp_path: Path) -> None:
    (tmp_path / "hello.js").write_text("x")

    result = run("action", "create", "hello", str(tmp_path / "hello.js"), "--web", "maybe")

    assert result.exit_code == 1
    assert "Invalid argument 'maybe' for --web flag" in result.stderr


def test_docker_and_executor_flags(run: Callable[..., Result], whisk: FakeWhisk, tmp_path: Path) -> None:
    (tmp_path / "add.wasm").write_bytes(b"\x00asm")

    run("action", "create", "img", "--docker", "user/image:1")
    run("action", "create", "add", str(tmp_path / "add.wasm"), "--executor", "wasm", "-A", str(tmp_path / "none"))
    run("action", "create", "add", str(tmp_path / "add.wasm"), "--executor", "wasm")

    first, second = whisk.sent("PUT")
    assert body(first) == {"exec": {"kind": "blackbox", "image": "user/image:1"}}
    assert body(second)["annotations"] == [{"key": "executor", "value": "wasm"}]


def test_sequence_and_del_annotation(run: Callable[..., Result], whisk: FakeWhisk) -> None:
    hello_action(whisk)

    run("action", "create", "seq", "--sequence", "hello,/other/pkg/b")
    run("action", "update", "hello", "--del-annotation", "description", "--del-annotation", "final")

    create, update = whisk.sent("PUT")
    assert body(create) == {"exec": {"kind": "sequence", "components": ["/_/hello", "/other/pkg/b"]}}
    assert body(update) == {"delAnnotations": ["description", "final"]}


def test_update_without_a_file_ignores_nothing(run: Callable[..., Result], whisk: FakeWhisk) -> None:
    result = run("action", "update", "hello", "--kind", "python:3.11")

    assert (result.exit_code, result.stderr) == (1, "error: --kind and --main need the action's code file.\n")
    assert whisk.requests == []


def test_qualified_names_map_to_namespace_and_package(
    run: Callable[..., Result], whisk: FakeWhisk, tmp_path: Path
) -> None:
    (tmp_path / "a.py").write_text("x")

    run("action", "create", "/other/pkg/a", str(tmp_path / "a.py"))
    run("action", "create", "pkg/a", str(tmp_path / "a.py"))
    run("action", "delete", "/other/a")
    bad = run("action", "delete", "a/b/c/d")

    assert [request.url.path for request in whisk.requests] == [
        "/api/v1/namespaces/other/actions/pkg/a",
        "/api/v1/namespaces/_/actions/pkg/a",
        "/api/v1/namespaces/other/actions/a",
    ]
    assert bad.exit_code == 1
    assert bad.stderr.startswith("error: 'a/b/c/d' is not a valid qualified name")


# -- action get / list / delete ---------------------------------------------------------------------------------


def test_get_prints_the_action_with_four_space_indent(run: Callable[..., Result], whisk: FakeWhisk) -> None:
    hello_action(whisk)

    result = run("action", "get", "hello")

    assert query(whisk.requests[0]) == {"code": "false"}
    assert result.stdout == "ok: got action hello\n" + json.dumps(whisk.actions["hello"], indent=4) + "\n"
    assert result.stdout.splitlines()[2] == '    "namespace": "guest",'


def test_get_missing_action_exits_148(run: Callable[..., Result]) -> None:
    result = run("action", "get", "nope")

    assert result.exit_code == 148  # 404 - 256
    assert result.stderr == "error: Unable to get action 'nope': The requested resource does not exist. (code abc)\n"


def test_get_save_decodes_binary_code(
    run: Callable[..., Result], whisk: FakeWhisk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = b"\x00asm\x01\x00\x00\x00"
    code = base64.b64encode(module).decode()
    whisk.actions["add"] = {
        "namespace": "guest",
        "name": "add",
        "exec": {"kind": "wasm:default", "binary": True, "code": code},
    }
    monkeypatch.chdir(tmp_path)

    saved = run("action", "get", "add", "--save")
    again = run("action", "get", "add", "--save")

    assert query(whisk.requests[0]) == {"code": "true"}
    assert saved.stdout == f"ok: saved action code to {tmp_path / 'add.wasm'}\n"
    assert (tmp_path / "add.wasm").read_bytes() == module
    assert (again.exit_code, again.stderr) == (1, "error: The file 'add.wasm' already exists\n")


def test_get_summary(run: Callable[..., Result], whisk: FakeWhisk) -> None:
    hello_action(whisk, description="Says hello")
    whisk.actions["hello"]["parameters"] = [{"key": "name", "value": "World"}]

    assert run("action", "get", "hello", "-s").stdout == ("action /guest/hello: Says hello\n   (parameters: *name)\n")


def test_list_shows_one_row_per_action(run: Callable[..., Result], whisk: FakeWhisk) -> None:
    hello_action(whisk)
    whisk.actions["pub"] = {"namespace": "guest/pkg", "name": "pub", "publish": True,
                            "annotations": [{"key": "exec", "value": "wasm:default"}]}  # fmt: skip

    result = run("action", "list", "-l", "5", "-s", "1")

    assert query(whisk.requests[0]) == {"limit": "5", "skip": "1"}
    # wsk prints "private" for every action, published or not ([GOC] whisk/action.go ToSummaryRowString).
    assert result.stdout == (
        f"actions\n{'/guest/hello':<70} private python:3.11\n{'/guest/pkg/pub':<70} private wasm:default\n"
    )


def test_list_of_a_package(run: Callable[..., Result], whisk: FakeWhisk) -> None:
    run("action", "list", "pkg")

    assert whisk.requests[0].url.path == "/api/v1/namespaces/_/actions/pkg/"


def test_delete(run: Callable[..., Result], whisk: FakeWhisk) -> None:
    hello_action(whisk)

    result = run("action", "delete", "hello")

    assert (whisk.requests[0].method, result.stdout) == ("DELETE", "ok: deleted action hello\n")
    assert whisk.actions == {}


# -- action invoke ------------------------------------------------------------------------------------------------


def test_non_blocking_invoke_prints_the_activation_id(run: Callable[..., Result], whisk: FakeWhisk) -> None:
    hello_action(whisk)

    result = run("action", "invoke", "hello")

    [post] = whisk.requests
    assert (post.url.path, query(post), body(post)) == (
        "/api/v1/namespaces/_/actions/hello",
        {"blocking": "false", "result": "false"},
        {},
    )
    assert (result.exit_code, result.stdout) == (0, f"ok: invoked /_/hello with id {ACTIVATION_ID}\n")


def test_blocking_invoke_prints_the_activation(run: Callable[..., Result], whisk: FakeWhisk) -> None:
    hello_action(whisk)
    record = activation(result={"greeting": "hi"})
    whisk.invoke_answer = (200, record)

    result = run("action", "invoke", "hello", "-b", "-p", "name", "Ann")

    assert query(whisk.requests[0]) == {"blocking": "true", "result": "false"}
    assert body(whisk.requests[0]) == {"name": "Ann"}
    assert result.exit_code == 0
    assert result.stdout == f"ok: invoked /_/hello with id {ACTIVATION_ID}\n" + json.dumps(record, indent=4) + "\n"


def test_result_invoke_prints_only_the_result(run: Callable[..., Result], whisk: FakeWhisk) -> None:
    hello_action(whisk)
    whisk.invoke_answer = (200, {"greeting": "hi", "n": [1, 2]})

    result = run("action", "invoke", "hello", "-r")

    assert query(whisk.requests[0]) == {"blocking": "true", "result": "true"}
    assert result.stdout == '{\n    "greeting": "hi",\n    "n": [\n        1,\n        2\n    ]\n}\n'


def test_blocking_invoke_that_times_out_exits_202(run: Callable[..., Result], whisk: FakeWhisk) -> None:
    hello_action(whisk)
    whisk.invoke_answer = (202, {"activationId": ACTIVATION_ID})

    result = run("action", "invoke", "/guest/hello", "--blocking")

    assert result.exit_code == 202
    assert result.stdout == ""
    assert result.stderr == (
        f"ok: invoked /guest/hello, but the request has not yet finished, with id {ACTIVATION_ID}\n"
    )


def test_application_error_prints_the_record_and_exits_246(run: Callable[..., Result], whisk: FakeWhisk) -> None:
    hello_action(whisk)
    record = activation(status="application error", result={"error": "boom"})
    whisk.invoke_answer = (502, record)

    result = run("action", "invoke", "hello", "-b")

    assert result.exit_code == 246  # 502 - 256
    assert result.stdout == ""
    assert result.stderr == f"ok: invoked /_/hello with id {ACTIVATION_ID}\n" + json.dumps(record, indent=4) + "\n"


def test_application_error_with_result_prints_the_error(run: Callable[..., Result], whisk: FakeWhisk) -> None:
    hello_action(whisk)
    whisk.invoke_answer = (502, {"error": "boom"})

    result = run("action", "invoke", "hello", "-r")

    assert (result.exit_code, result.stdout) == (246, "")
    assert result.stderr == '{\n    "error": "boom"\n}\n'


def test_blocking_200_with_unsuccessful_response_counts_as_failure(
    run: Callable[..., Result], whisk: FakeWhisk
) -> None:
    hello_action(whisk)
    whisk.invoke_answer = (200, activation(status="action developer error", result={"error": "crashed"}))

    result = run("action", "invoke", "hello", "-b")

    assert result.exit_code == 246
    assert result.stdout == ""
    assert result.stderr.startswith(f"ok: invoked /_/hello with id {ACTIVATION_ID}\n{{\n")


def test_invoke_of_missing_action_is_an_api_error(run: Callable[..., Result]) -> None:
    result = run("action", "invoke", "nope", "-r")

    assert result.exit_code == 148
    assert result.stderr == (
        "error: Unable to invoke action 'nope': The requested resource does not exist. (code abc)\n"
    )


# -- activations --------------------------------------------------------------------------------------------------


def test_activation_list_prints_wsk_table(run: Callable[..., Result], whisk: FakeWhisk, utc: None) -> None:
    summary = {k: v for k, v in activation(OTHER_ID, cold=False, duration=1500).items() if k not in ("logs",)}
    summary["statusCode"] = 1
    whisk.activations = [summary, activation(duration=64)]

    result = run("activation", "list", "hello", "-l", "2", "--since", "5")

    assert query(whisk.requests[0]) == {"limit": "2", "skip": "0", "name": "hello", "since": "5"}
    assert result.stdout.splitlines() == [
        "Datetime            Activation ID                    Kind        Start Duration   Status            Entity",
        f"2023-11-14 22:13:20 {OTHER_ID} python:3.11 warm  1.5s       application error guest/hello:0.0.1",
        f"2023-11-14 22:13:20 {ACTIVATION_ID} python:3.11 cold  64ms       success           guest/hello:0.0.1",
    ]


def test_activation_list_full_prints_records(run: Callable[..., Result], whisk: FakeWhisk) -> None:
    whisk.activations = [activation()]

    result = run("activation", "list", "-f")

    assert query(whisk.requests[0]) == {"limit": "30", "skip": "0", "docs": "true"}
    assert result.stdout == "activations\n" + json.dumps(activation(), indent=4) + "\n"


def test_activation_get_last_fetches_the_newest(run: Callable[..., Result], whisk: FakeWhisk) -> None:
    whisk.activations = [activation(), activation(OTHER_ID)]

    result = run("activation", "get", "--last")

    listing, get = whisk.requests
    assert (listing.url.path, query(listing)) == ("/api/v1/namespaces/_/activations", {"limit": "1", "skip": "0"})
    assert get.url.path == f"/api/v1/namespaces/_/activations/{ACTIVATION_ID}"
    assert result.stdout == f"ok: got activation {ACTIVATION_ID}\n" + json.dumps(activation(), indent=4) + "\n"


def test_activation_get_last_without_activations(run: Callable[..., Result]) -> None:
    result = run("activation", "get", "-l")

    assert (result.exit_code, result.stderr) == (1, "error: Activation list does not contain any activations.\n")


def test_activation_get_unknown_id_exits_148(run: Callable[..., Result]) -> None:
    result = run("activation", "get", OTHER_ID)

    assert result.exit_code == 148
    assert result.stderr == (
        f"error: Unable to get activation '{OTHER_ID}': The requested resource does not exist. (code abc)\n"
    )


def test_activation_result_prints_the_result_field(run: Callable[..., Result], whisk: FakeWhisk) -> None:
    whisk.activations = [activation(result={"sum": 3})]

    result = run("activation", "result", ACTIVATION_ID)

    assert whisk.requests[0].url.path == f"/api/v1/namespaces/_/activations/{ACTIVATION_ID}/result"
    assert result.stdout == '{\n    "sum": 3\n}\n'


def test_activation_logs_plain_and_stripped(run: Callable[..., Result], whisk: FakeWhisk) -> None:
    lines = [
        f"{'2024-01-01T00:00:00.000000Z':<30} stdout: hello world",
        f"{'2024-01-01T00:00:00.123456789Z':<30} stderr: oops: not fatal",
        "no timestamp here",
    ]
    whisk.activations = [activation(logs=lines)]

    plain = run("activation", "logs", ACTIVATION_ID)
    stripped = run("activation", "logs", "--last", "--strip")

    assert whisk.requests[0].url.path == f"/api/v1/namespaces/_/activations/{ACTIVATION_ID}/logs"
    assert plain.stdout == "".join(f"{line}\n" for line in lines)
    assert stripped.stdout == "hello world\noops: not fatal\nno timestamp here\n"


def test_activation_poll_prints_new_activations_until_ctrl_c(run: Callable[..., Result], whisk: FakeWhisk) -> None:
    t0 = 1_700_000_000_000
    whisk.activations = [activation(start=t0, logs=["old"])]
    newer = activation(OTHER_ID, start=t0 + 5000, logs=[f"{'2024-01-01T00:00:00.0Z':<30} stdout: hi"])
    naps: list[float] = []

    def sleep(seconds: float) -> None:
        naps.append(seconds)
        if len(naps) == 1:
            whisk.activations.insert(0, newer)  # an activation arrives while pywsk sleeps
        if len(naps) == 3:
            raise KeyboardInterrupt

    config = Config(transport=httpx.MockTransport(whisk.handle), sleep=sleep)
    result = run("activation", "poll", config=config)

    assert result.exit_code == 0
    assert result.stdout == (
        "Enter Ctrl-c to exit.\nPolling for activation logs\n"
        f"\nActivation: 'hello' ({OTHER_ID})\n"
        '[\n    "2024-01-01T00:00:00.0Z         stdout: hi"\n]\n'
        "Poll terminated\n"
    )
    assert naps == [2.0, 2.0, 2.0]
    start, *polls = [query(request) for request in whisk.requests]
    assert start == {"limit": "1", "skip": "0", "docs": "true"}  # polling starts after the newest activation
    assert polls == [
        {"limit": "0", "skip": "0", "since": str(t0 + 1), "docs": "true"},
        {"limit": "0", "skip": "0", "since": str(t0 + 1), "docs": "true"},
        {"limit": "0", "skip": "0", "since": str(t0 + 5001), "docs": "true"},
    ]


def test_activation_poll_since_seconds_looks_back(run: Callable[..., Result], whisk: FakeWhisk) -> None:
    def stop(_: float) -> None:
        raise KeyboardInterrupt

    before = int(time.time() * 1000)
    run("activation", "poll", "hello", "--since-seconds", "10", "--since-minutes", "1",
        config=Config(transport=httpx.MockTransport(whisk.handle), sleep=stop))  # fmt: skip

    [poll] = whisk.requests
    assert query(poll)["name"] == "hello"
    assert before - 70_000 <= int(query(poll)["since"]) <= int(time.time() * 1000) - 70_000


def test_activation_poll_stops_after_exit_seconds(run: Callable[..., Result], whisk: FakeWhisk) -> None:
    clock = iter([0.0, 0.5, 3.0])
    config = Config(transport=httpx.MockTransport(whisk.handle), sleep=lambda _: None, clock=lambda: next(clock))

    result = run("activation", "poll", "-e", "1", config=config)

    assert result.exit_code == 0
    first, second = whisk.requests
    assert query(first) == {"limit": "1", "skip": "0", "docs": "true"}
    assert query(second) == {"limit": "0", "skip": "0", "docs": "true"}


# -- help and entry point ---------------------------------------------------------------------------------------------


def test_help_lists_the_groups_and_options(run: Callable[..., Result]) -> None:
    top = run("--help")
    create = run("action", "create", "--help")

    assert top.exit_code == create.exit_code == 0
    for group in ("action", "activation", "namespace", "property"):
        assert group in top.stdout
    for option in ("--param", "--param-file", "--kind", "--web", "--memory", "--insecure"):
        assert option in create.stdout


def test_main_takes_a_transport(whisk: FakeWhisk, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["namespace", "list"], transport=httpx.MockTransport(whisk.handle))

    assert exited.value.code == 0
    assert capsys.readouterr().out == "namespaces\nguest\n"
