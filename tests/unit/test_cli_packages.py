"""pywsk's packages, bindings, sequences and web-action flags against an in-memory fake of the REST API.

Followed: apache/openwhisk-cli commands/package.go, action.go (`augmentWebArg`, `augmentWebSecureArg`, `getExec`),
namespace.go (`namespaceGetCmd`, which `wsk list` runs), util.go (`printPackageSummary`, `parseShared`),
qualified_name.go; apache/openwhisk-client-go whisk/package.go and whisk/action.go (`ToSummaryRowString`,
`Compare`, `ActionURL`); the server's shapes and messages from apache/openwhisk Packages.scala and
common/.../http/ErrorResponse.scala (`Messages`).

Each test runs the CLI through typer's CliRunner with an `httpx.MockTransport` and checks what a user sees
(stdout, stderr, exit status) and what went over the wire.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner, Result

from pywsk.context import Config
from pywsk.entities import MAX_JS_INT
from pywsk.formatting import package_summary, sort_actions
from pywsk.main import app

pytestmark = pytest.mark.unit

OWN = "guest"
NOT_FOUND = "The requested resource does not exist."


def error(status: int, message: str) -> httpx.Response:
    return httpx.Response(status, json={"error": message, "code": "c0de"})


def pair_list(values: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": key, "value": value} for key, value in values.items()]


@dataclass
class PackageWhisk:
    """Packages, bindings and actions in packages, answered in OpenWhisk's shapes (`_` is the caller's own
    namespace `guest`; a binding's `GET` lists the bound package's actions)."""

    packages: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    actions: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # (namespace path, name)
    requests: list[httpx.Request] = field(default_factory=list)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path.removeprefix("/api/v1/namespaces/")
        namespace, _, rest = path.partition("/")
        namespace = OWN if namespace == "_" else namespace
        collection, _, entity = rest.partition("/")
        if collection == "packages":
            return self._packages(request, namespace, entity)
        if collection == "actions":
            return self._actions(request, namespace, entity)
        if collection in ("triggers", "rules") and not entity:
            return httpx.Response(200, json=[])  # no triggers or rules here (tests/unit/test_cli_triggers.py)
        return error(404, NOT_FOUND)

    def add_package(self, name: str, namespace: str = OWN, **fields: Any) -> dict[str, Any]:
        doc = {"namespace": namespace, "name": name, "version": "0.0.1", "publish": False, "annotations": [],
               "parameters": [], "binding": {}, "updated": 1_700_000_000_000, **fields}  # fmt: skip
        self.packages[(namespace, name)] = doc
        return doc

    def add_action(self, path: str, name: str, **fields: Any) -> dict[str, Any]:
        doc = {"namespace": path, "name": name, "version": "0.0.1", "publish": False, "parameters": [],
               "annotations": [{"key": "exec", "value": "wasm:default"}], **fields}  # fmt: skip
        self.actions[(path, name)] = doc
        return doc

    def sent(self, method: str) -> list[httpx.Request]:
        return [request for request in self.requests if request.method == method]

    def _packages(self, request: httpx.Request, namespace: str, name: str) -> httpx.Response:
        if not name:
            rows = [{k: v for k, v in doc.items() if k != "parameters"} for (ns, _), doc in self.packages.items()
                    if ns == namespace]  # fmt: skip
            return httpx.Response(200, json=rows)
        key = (namespace, name)
        if request.method == "PUT":
            return self._put_package(request, key)
        doc = self.packages.get(key)
        if doc is None:
            return error(404, NOT_FOUND)
        if request.method == "DELETE":
            contents = [a for (path, _), a in self.actions.items() if path == f"{namespace}/{name}"]
            if contents:
                entities = "entity" if len(contents) == 1 else "entities"
                return error(409, f"Package not empty (contains {len(contents)} {entities}). "
                                  "Set force param or delete package contents.")  # fmt: skip
            return httpx.Response(200, json=self.packages.pop(key))
        bound = doc["binding"] or {"namespace": namespace, "name": name}
        bound_path = f"{bound['namespace']}/{bound['name']}"
        actions = [{"name": a["name"], "version": a["version"], "annotations": a["annotations"]}
                   for (path, _), a in self.actions.items() if path == bound_path]  # fmt: skip
        return httpx.Response(200, json={**doc, "actions": actions})

    def _put_package(self, request: httpx.Request, key: tuple[str, str]) -> httpx.Response:
        if key in self.packages and request.url.params["overwrite"] == "false":
            return error(409, "resource already exists")
        body = json.loads(request.content)
        binding = body.get("binding") or {}
        if binding:
            bound = (OWN if binding["namespace"] == "_" else binding["namespace"], binding["name"])
            if bound not in self.packages:
                return error(400, "Binding references a package that does not exist.")
            binding = {"namespace": bound[0], "name": bound[1]}
        fields = {k: body[k] for k in ("publish", "annotations", "parameters") if k in body}
        return httpx.Response(200, json=self.add_package(key[1], key[0], binding=binding, **fields))

    def _actions(self, request: httpx.Request, namespace: str, entity: str) -> httpx.Response:
        package, _, name = entity.rpartition("/")
        path = f"{namespace}/{package}" if package else namespace
        if not name:
            return httpx.Response(200, json=[a for (p, _), a in self.actions.items() if p == path])
        if request.method == "PUT":
            body = json.loads(request.content)
            return httpx.Response(200, json=self.add_action(path, name, **body))
        if package and (namespace, package) in self.packages:
            binding = self.packages[(namespace, package)]["binding"]
            if binding:  # an action through a binding is the bound package's action
                path = f"{binding['namespace']}/{binding['name']}"
        action = self.actions.get((path, name))
        if action is None:
            return error(404, NOT_FOUND)
        if request.method == "POST":
            return httpx.Response(202, json={"activationId": "a" * 32})
        return httpx.Response(200, json=action)


@pytest.fixture(autouse=True)
def props_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "wskprops"
    monkeypatch.setenv("WSK_CONFIG_FILE", str(path))
    return path


@pytest.fixture
def whisk() -> PackageWhisk:
    return PackageWhisk()


@pytest.fixture
def run(whisk: PackageWhisk) -> Callable[..., Result]:
    def invoke(*args: str) -> Result:
        return CliRunner().invoke(app, list(args), obj=Config(transport=httpx.MockTransport(whisk.handle)))

    return invoke


def body(request: httpx.Request) -> Any:
    return json.loads(request.content)


# -- package create / update ------------------------------------------------------------------------------------


def test_package_create_sends_the_go_clients_body(
    run: Callable[..., Result], whisk: PackageWhisk, tmp_path: Path
) -> None:
    (tmp_path / "params.json").write_text('{"from_file": 1, "greeting": "file"}')

    result = run("package", "create", "demo", "-p", "greeting", "hi", "-P", str(tmp_path / "params.json"),
                 "-a", "description", "A demo", "--shared", "YES")  # fmt: skip

    assert (result.exit_code, result.stdout) == (0, "ok: created package demo\n")
    [put] = whisk.requests
    assert (put.url.path, dict(put.url.params)) == ("/api/v1/namespaces/_/packages/demo", {"overwrite": "false"})
    assert body(put) == {
        "namespace": "_",
        "name": "demo",
        "publish": True,
        "annotations": [{"key": "description", "value": "A demo"}],
        "parameters": [{"key": "from_file", "value": 1}, {"key": "greeting", "value": "hi"}],
    }


def test_package_create_without_flags_sends_no_publish_and_no_empty_lists(
    run: Callable[..., Result], whisk: PackageWhisk
) -> None:
    run("package", "create", "/other/demo")

    [put] = whisk.requests
    assert put.url.path == "/api/v1/namespaces/other/packages/demo"
    assert body(put) == {"namespace": "other", "name": "demo"}


def test_package_shared_must_be_yes_or_no(run: Callable[..., Result], whisk: PackageWhisk) -> None:
    result = run("package", "create", "demo", "--shared", "maybe")

    assert (result.exit_code, result.stderr) == (1, "error: Cannot use value 'maybe' for shared.\n")
    assert whisk.requests == []


def test_package_create_of_an_existing_package_exits_153(run: Callable[..., Result], whisk: PackageWhisk) -> None:
    whisk.add_package("demo")

    result = run("package", "create", "demo")

    assert result.exit_code == 409 - 256
    assert result.stderr == "error: Unable to create package 'demo': resource already exists (code c0de)\n"


def test_package_update_overwrites_and_reports_like_wsk(run: Callable[..., Result], whisk: PackageWhisk) -> None:
    whisk.add_package("demo")

    updated = run("package", "update", "demo", "--shared", "no", "-p", "n", "2")

    assert (updated.exit_code, updated.stdout) == (0, "ok: updated package demo\n")
    put = whisk.sent("PUT")[0]
    assert put.url.params["overwrite"] == "true"
    assert body(put) == {"namespace": "_", "name": "demo", "publish": False, "parameters": [{"key": "n", "value": 2}]}


def test_package_update_failure_message(run: Callable[..., Result]) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        return error(400, "Operation not permitted on package binding.")

    result = CliRunner().invoke(app, ["package", "update", "b"], obj=Config(transport=httpx.MockTransport(refuse)))

    assert result.exit_code == 400 - 256
    assert result.stderr == "error: Package update failed: Operation not permitted on package binding. (code c0de)\n"


def test_package_name_with_a_slash_goes_to_the_server_as_typed(run: Callable[..., Result], whisk: PackageWhisk) -> None:
    run("package", "create", "a/b")

    assert whisk.requests[0].url.path == "/api/v1/namespaces/_/packages/a/b"


# -- package bind ---------------------------------------------------------------------------------------------------


def test_bind_a_shared_package_of_another_namespace(run: Callable[..., Result], whisk: PackageWhisk) -> None:
    whisk.add_package("utils", "whisk.system", publish=True)

    result = run("package", "bind", "/whisk.system/utils", "myutils", "-p", "greeting", "bound", "-a", "x", "1")

    assert (result.exit_code, result.stdout) == (0, "ok: created binding myutils\n")
    [put] = whisk.requests
    assert (put.url.path, put.url.params["overwrite"]) == ("/api/v1/namespaces/_/packages/myutils", "false")
    assert body(put) == {
        "annotations": [{"key": "x", "value": 1}],
        "parameters": [{"key": "greeting", "value": "bound"}],
        "binding": {"namespace": "whisk.system", "name": "utils"},
    }


def test_bind_an_own_package_sends_the_default_namespace(run: Callable[..., Result], whisk: PackageWhisk) -> None:
    whisk.add_package("demo")

    run("package", "bind", "demo", "/guest/mine")

    [put] = whisk.requests
    assert put.url.path == "/api/v1/namespaces/guest/packages/mine"
    assert body(put) == {"binding": {"namespace": "_", "name": "demo"}}


def test_bind_a_missing_package_reports_the_servers_message(run: Callable[..., Result]) -> None:
    result = run("package", "bind", "nothere", "mine")

    assert result.exit_code == 400 - 256
    assert result.stderr == (
        "error: Binding creation failed: Binding references a package that does not exist. (code c0de)\n"
    )


def test_bind_needs_both_names(run: Callable[..., Result], whisk: PackageWhisk) -> None:
    result = run("package", "bind", "demo")

    assert result.exit_code == 2
    assert "BOUND_PACKAGE_NAME" in result.stderr
    assert whisk.requests == []


# -- package get ------------------------------------------------------------------------------------------------------


def test_package_get_prints_the_package_with_its_actions(run: Callable[..., Result], whisk: PackageWhisk) -> None:
    doc = whisk.add_package("demo", parameters=pair_list({"n": 1}))
    whisk.add_action("guest/demo", "hello")

    result = run("package", "get", "demo")

    expected = {**doc, "actions": [{"name": "hello", "version": "0.0.1",
                                    "annotations": [{"key": "exec", "value": "wasm:default"}]}]}  # fmt: skip
    assert result.stdout == "ok: got package demo\n" + json.dumps(expected, indent=4) + "\n"


def test_package_get_field_filter(run: Callable[..., Result], whisk: PackageWhisk) -> None:
    whisk.add_package("demo", parameters=pair_list({"n": 1}))

    result = run("package", "get", "demo", "Parameters")
    invalid = run("package", "get", "demo", "nope")

    assert result.stdout == 'ok: got package demo, displaying field Parameters\n[\n    {\n        "key": "n",\n' \
                            '        "value": 1\n    }\n]\n'  # fmt: skip
    assert (invalid.exit_code, invalid.stderr) == (1, "error: Invalid field filter 'nope'.\n")


def test_package_get_missing_exits_148(run: Callable[..., Result]) -> None:
    result = run("package", "get", "/guest/nothere")

    assert result.exit_code == 148
    assert result.stderr == f"error: Unable to get package 'nothere': {NOT_FOUND} (code c0de)\n"


def test_package_get_summary_lists_the_package_and_its_actions(run: Callable[..., Result], whisk: PackageWhisk) -> None:
    whisk.add_package("demo", parameters=pair_list({"b": 1, "a": 2}),
                      annotations=pair_list({"parameters": [{"name": "c"}, {"name": "a"}]}))  # fmt: skip
    whisk.add_action("guest/demo", "hello", annotations=pair_list({"description": "Says hello"}))
    whisk.add_action("guest/demo", "plain")

    result = run("package", "get", "demo", "--summary")

    assert result.stdout == (
        "package /guest/demo: Returns a result based on parameters a, b and c\n"
        "   (parameters: *a, *b, c)\n"
        " action /guest/demo/hello: Says hello\n"
        "   (parameters: none defined)\n"
        " action /guest/demo/plain\n"
        "   (parameters: none defined)\n"
    )


def test_summary_marks_final_parameters_with_two_stars() -> None:
    package = {"namespace": "ns", "name": "p", "parameters": pair_list({"x": 1}),
               "annotations": pair_list({"final": True})}  # fmt: skip

    assert package_summary(package) == [
        "package /ns/p: Returns a result based on parameter x",
        "   (parameters: **x)",
    ]


# -- package list / delete --------------------------------------------------------------------------------------------


def test_package_list_rows_say_shared_or_private(run: Callable[..., Result], whisk: PackageWhisk) -> None:
    whisk.add_package("zeta", publish=True)
    whisk.add_package("Alpha")

    plain = run("package", "list", "-l", "5", "-s", "1")
    by_name = run("package", "list", "/guest", "-n")

    assert dict(whisk.requests[0].url.params) == {"limit": "5", "skip": "1"}
    assert whisk.requests[1].url.path == "/api/v1/namespaces/guest/packages"
    assert plain.stdout == f"packages\n{'/guest/zeta':<70} shared\n{'/guest/Alpha':<70} private\n"
    assert by_name.stdout == f"packages\n{'/guest/Alpha':<70} private\n{'/guest/zeta':<70} shared\n"


def test_package_list_of_an_empty_namespace_prints_the_header(run: Callable[..., Result]) -> None:
    assert run("package", "list").stdout == "packages\n"


def test_package_list_refuses_an_entity_name(run: Callable[..., Result], whisk: PackageWhisk) -> None:
    result = run("package", "list", "demo")

    assert result.exit_code == 1
    assert result.stderr == (
        "error: An entity name, 'demo', was provided instead of a namespace. "
        "Valid namespaces are of the following format: /NAMESPACE.\n"
    )
    assert whisk.requests == []


def test_package_delete(run: Callable[..., Result], whisk: PackageWhisk) -> None:
    whisk.add_package("demo")

    result = run("package", "delete", "demo")

    assert (whisk.requests[0].method, result.stdout) == ("DELETE", "ok: deleted package demo\n")
    assert whisk.packages == {}


def test_deleting_a_non_empty_package_exits_153_with_openwhisks_message(
    run: Callable[..., Result], whisk: PackageWhisk
) -> None:
    whisk.add_package("demo")
    whisk.add_action("guest/demo", "hello")

    result = run("package", "delete", "demo")

    assert result.exit_code == 409 - 256
    assert result.stderr == (
        "error: Unable to delete package 'demo': Package not empty (contains 1 entity). "
        "Set force param or delete package contents. (code c0de)\n"
    )


# -- actions in packages ----------------------------------------------------------------------------------------------


def test_actions_in_packages_everywhere(run: Callable[..., Result], whisk: PackageWhisk, tmp_path: Path) -> None:
    whisk.add_package("demo")
    (tmp_path / "hello.wasm").write_bytes(b"\x00asm")

    created = run("action", "create", "demo/hello", str(tmp_path / "hello.wasm"))
    listed = run("action", "list", "demo")
    invoked = run("action", "invoke", "/guest/demo/hello")
    deleted = run("action", "delete", "demo/hello")

    assert created.stdout == "ok: created action demo/hello\n"
    assert listed.stdout == f"actions\n{'/guest/demo/hello':<70} private wasm:default\n"
    assert invoked.stdout == f"ok: invoked /guest/demo/hello with id {'a' * 32}\n"
    assert deleted.stdout == "ok: deleted action demo/hello\n"
    assert [(r.method, r.url.path) for r in whisk.requests] == [
        ("PUT", "/api/v1/namespaces/_/actions/demo/hello"),
        ("GET", "/api/v1/namespaces/_/actions/demo/"),
        ("POST", "/api/v1/namespaces/guest/actions/demo/hello"),
        ("DELETE", "/api/v1/namespaces/_/actions/demo/hello"),
    ]


def test_name_sort_puts_actions_outside_packages_first() -> None:
    actions = [{"namespace": ns, "name": name} for ns, name in
               [("guest/b", "z"), ("guest", "b"), ("guest/A", "y"), ("guest", "a")]]  # fmt: skip

    assert [f"{a['namespace']}/{a['name']}" for a in sort_actions(actions)] == [
        "guest/a", "guest/b", "guest/A/y", "guest/b/z"
    ]  # fmt: skip


# -- sequences --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [("--sequence", "a, pkg/b,/ns/c,ns/pkg/d"), ("a, pkg/b,/ns/c,ns/pkg/d", "--sequence")],
)
def test_sequence_components_are_fully_qualified(
    run: Callable[..., Result], whisk: PackageWhisk, args: tuple[str, str]
) -> None:
    result = run("action", "create", "seq", *args)

    assert (result.exit_code, result.stdout) == (0, "ok: created action seq\n")
    assert body(whisk.requests[0]) == {
        "exec": {"kind": "sequence", "components": ["/_/a", "/_/pkg/b", "/ns/c", "/ns/pkg/d"]}
    }


def test_sequence_in_a_package_with_the_namespace_from_the_properties(
    run: Callable[..., Result], whisk: PackageWhisk, props_file: Path
) -> None:
    props_file.write_text("NAMESPACE=guest\n")

    run("action", "update", "demo/seq", "--sequence", "hello,demo/hello", "--web", "true")

    [get, put] = whisk.requests
    assert (get.method, put.url.path) == ("GET", "/api/v1/namespaces/guest/actions/demo/seq")
    assert body(put)["exec"] == {"kind": "sequence", "components": ["/guest/hello", "/guest/demo/hello"]}
    assert body(put)["annotations"] == pair_list({"web-export": True, "raw-http": False, "final": True})


def test_sequence_without_components_or_with_a_kind_is_refused(run: Callable[..., Result], whisk: PackageWhisk) -> None:
    missing = run("action", "create", "seq", "--sequence")
    kind = run("action", "create", "seq", "a,b", "--sequence", "--kind", "nodejs:default")

    assert (missing.exit_code, missing.stderr) == (1, "error: An action name and code artifact are required.\n")
    assert kind.exit_code == 1
    assert whisk.requests == []


# -- --web-secure -----------------------------------------------------------------------------------------------------


def test_web_secure_true_draws_a_secret_a_javascript_number_can_hold(
    run: Callable[..., Result], whisk: PackageWhisk, tmp_path: Path
) -> None:
    (tmp_path / "a.wasm").write_bytes(b"\x00asm")

    result = run("action", "create", "a", str(tmp_path / "a.wasm"), "--web", "true", "--web-secure", "true")

    assert result.exit_code == 0
    annotations = body(whisk.requests[0])["annotations"]
    assert [item["key"] for item in annotations] == ["web-export", "raw-http", "final", "require-whisk-auth"]
    secret = annotations[-1]["value"]
    assert isinstance(secret, int) and 0 <= secret <= MAX_JS_INT


def test_web_secure_string_is_the_secret(run: Callable[..., Result], whisk: PackageWhisk, tmp_path: Path) -> None:
    (tmp_path / "a.wasm").write_bytes(b"\x00asm")

    run("action", "create", "a", str(tmp_path / "a.wasm"), "--web", "raw", "--web-secure", "s3cr3t")

    assert body(whisk.requests[0])["annotations"][-1] == {"key": "require-whisk-auth", "value": "s3cr3t"}


def test_web_secure_needs_a_web_action(run: Callable[..., Result], whisk: PackageWhisk, tmp_path: Path) -> None:
    (tmp_path / "a.wasm").write_bytes(b"\x00asm")
    whisk.add_action("guest", "web", annotations=pair_list({"web-export": True}))

    plain = run("action", "create", "a", str(tmp_path / "a.wasm"), "--web-secure", "true")
    disabled = run("action", "update", "web", "--web", "false", "--web-secure", "x")

    for result in (plain, disabled):
        assert (result.exit_code, result.stderr) == (
            1, "error: The --web-secure option is only valid when the --web option is enabled.\n"
        )  # fmt: skip
    assert whisk.sent("PUT") == []


def test_web_secure_on_update_keeps_a_numeric_secret_and_false_deletes_it(
    run: Callable[..., Result], whisk: PackageWhisk
) -> None:
    whisk.add_action("guest", "web", annotations=pair_list({"web-export": True, "require-whisk-auth": 1234}))

    kept = run("action", "update", "web", "--web-secure", "true")
    whisk.add_action("guest", "web", annotations=pair_list({"web-export": True, "require-whisk-auth": 1234}))
    dropped = run("action", "update", "web", "--web-secure", "false")

    assert kept.exit_code == dropped.exit_code == 0
    first, second = whisk.sent("PUT")
    assert body(first)["annotations"] == pair_list({"web-export": True, "require-whisk-auth": 1234})
    assert body(second) == {"annotations": pair_list({"web-export": True}), "delAnnotations": ["require-whisk-auth"]}


def test_web_with_explicit_annotations_carries_the_existing_secret_forward(
    run: Callable[..., Result], whisk: PackageWhisk
) -> None:
    whisk.add_action("guest", "web", annotations=pair_list({"web-export": True, "require-whisk-auth": "s"}))

    run("action", "update", "web", "--web", "true", "-a", "description", "d")

    assert body(whisk.sent("PUT")[0])["annotations"] == pair_list(
        {"description": "d", "web-export": True, "raw-http": False, "final": True, "require-whisk-auth": "s"}
    )


# -- action get --url -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "web", "url"),
    [
        ("hello", False, "http://127.0.0.1:3233/api/v1/namespaces/guest/actions/hello"),
        ("hello", True, "http://127.0.0.1:3233/api/v1/web/guest/default/hello"),
        ("demo/hello", False, "http://127.0.0.1:3233/api/v1/namespaces/guest/actions/demo/hello"),
        ("/guest/demo/hello", True, "http://127.0.0.1:3233/api/v1/web/guest/demo/hello"),
        ("bound/hello", True, "http://127.0.0.1:3233/api/v1/web/guest/bound/hello"),  # through the binding
    ],
)
def test_action_get_url_like_the_go_client(
    run: Callable[..., Result], whisk: PackageWhisk, name: str, web: bool, url: str
) -> None:
    annotations = pair_list({"web-export": True}) if web else []
    whisk.add_action("guest", "hello", annotations=annotations)
    whisk.add_package("demo")
    whisk.add_action("guest/demo", "hello", annotations=annotations)
    whisk.add_package("bound", binding={"namespace": "guest", "name": "demo"})

    result = run("action", "get", name, "--url")

    assert (result.exit_code, result.stdout) == (0, f"ok: got action hello\n{url}\n")


def test_action_url_escapes_names(run: Callable[..., Result], whisk: PackageWhisk) -> None:
    whisk.add_package("my pkg")
    whisk.add_action("guest/my pkg", "say hi", annotations=pair_list({"web-export": True}))

    result = run("action", "get", "my pkg/say hi", "-r")

    assert result.stdout.splitlines()[1] == "http://127.0.0.1:3233/api/v1/web/guest/my%20pkg/say%20hi"


# -- pywsk list / namespace get ---------------------------------------------------------------------------------


def test_list_shows_every_collection_of_the_namespace(run: Callable[..., Result], whisk: PackageWhisk) -> None:
    whisk.add_package("demo", publish=True)
    whisk.add_action("guest", "hello")
    whisk.add_action("guest/demo", "inner")

    result = run("list")

    assert result.exit_code == 0
    assert result.stdout == (
        "Entities in namespace: _\n"
        f"packages\n{'/guest/demo':<70} shared\n"
        f"actions\n{'/guest/hello':<70} private wasm:default\n"
        "triggers\nrules\n"
    )
    assert [(r.url.path, dict(r.url.params)) for r in whisk.requests] == [
        (f"/api/v1/namespaces/_/{collection}", {"limit": "0", "skip": "0"})
        for collection in ("packages", "actions", "triggers", "rules")
    ]


def test_namespace_get_of_an_explicit_namespace(run: Callable[..., Result], whisk: PackageWhisk) -> None:
    result = run("namespace", "get", "/guest", "-n")

    assert result.stdout == "Entities in namespace: guest\npackages\nactions\ntriggers\nrules\n"
    assert whisk.requests[0].url.path == "/api/v1/namespaces/guest/packages"


def test_list_failure_names_the_namespace(run: Callable[..., Result]) -> None:
    def unauthorized(request: httpx.Request) -> httpx.Response:
        return error(401, "The supplied authentication is invalid")

    result = CliRunner().invoke(app, ["list"], obj=Config(transport=httpx.MockTransport(unauthorized)))

    assert result.exit_code == 401 - 256
    assert result.stderr == (
        "error: Unable to obtain the list of entities for namespace '_': "
        "The supplied authentication is invalid (code c0de)\n"
    )


# -- help -----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "words"),
    [
        (("package",), ("create", "update", "bind", "get", "list", "delete")),
        (("package", "create"), ("--param", "--param-file", "--annotation", "--annotation-file", "--shared")),
        (("package", "bind"), ("PACKAGE_NAME", "BOUND_PACKAGE_NAME", "--param")),
        (("package", "get"), ("--summary", "FIELD_FILTER")),
        (("action", "create"), ("--sequence", "--web", "--web-secure")),
        (("list",), ("--name-sort",)),
    ],
)
def test_help_documents_the_commands(
    run: Callable[..., Result], command: tuple[str, ...], words: tuple[str, ...]
) -> None:
    result = run(*command, "--help")

    assert result.exit_code == 0
    for word in words:
        assert word in result.stdout
