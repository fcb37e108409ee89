"""Packages, bindings, sequences and web actions with the real `pywsk` console script against a real standalone
server, with real WebAssembly actions (actions/wasm).

Followed: apache/openwhisk-cli commands/package.go and action.go (outputs and exit codes), apache/openwhisk
docs/packages.md (binding parameters over the package's, the action's over both, the invoke's over all),
docs/actions.md "Creating action sequences", docs/webactions.md (the `.json` extension) and
core/controller/.../Packages.scala (deleting a non-empty package is a 409).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import httpx
import pytest

from launcher.testing import Server
from tests.conftest import REPO, WASM_DIR

pytestmark = pytest.mark.e2e


class Pywsk:
    """`pywsk ARGS` as a user runs it, with its own properties file."""

    def __init__(self, config: Path) -> None:
        self.env = {**os.environ, "WSK_CONFIG_FILE": str(config)}

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["pywsk", *args], capture_output=True, text=True, env=self.env, cwd=REPO, timeout=120, check=False
        )
        if check:
            assert result.returncode == 0, f"pywsk {' '.join(args)} exited {result.returncode}:\n{result.stderr}"
        return result

    def ok_then_json(self, *args: str) -> object:
        """Output like wsk's: an `ok: ...` line, then a JSON document."""
        first, _, rest = self(*args).stdout.partition("\n")
        assert first.startswith("ok: "), first
        return json.loads(rest)


@pytest.fixture(scope="module")
def pywsk(standalone: Server, tmp_path_factory: pytest.TempPathFactory) -> Pywsk:
    cli = Pywsk(tmp_path_factory.mktemp("pywsk") / "wskprops")
    cli("property", "set", "--apihost", standalone.apihost, "--auth", standalone.auth)
    return cli


@pytest.fixture
def prefix(unique_name: str) -> str:
    """A short unique prefix for this test's packages (names must not clash on the shared server)."""
    return unique_name[-6:] + "-" + unique_name[:12].strip("-_")


def test_package_lifecycle_and_a_binding_that_overrides_parameters(pywsk: Pywsk, prefix: str) -> None:
    package, binding = f"{prefix}-pkg", f"{prefix}-bound"
    created = pywsk("package", "create", package, "-p", "from_package", "p", "-p", "overridden", "package",
                    "-a", "description", "demo package")  # fmt: skip
    assert created.stdout == f"ok: created package {package}\n"
    pywsk("action", "create", f"{package}/echo", str(WASM_DIR / "echo.wasm"), "-p", "from_action", "a",
          "-p", "both", "action")  # fmt: skip
    bound = pywsk("package", "bind", package, binding, "-p", "overridden", "binding", "-p", "both", "binding")
    assert bound.stdout == f"ok: created binding {binding}\n"

    through_binding = json.loads(pywsk("action", "invoke", f"{binding}/echo", "-r", "-p", "invoked", "i").stdout)
    assert {
        key: through_binding.get(key) for key in ("from_package", "overridden", "from_action", "both", "invoked")
    } == {
        "from_package": "p",  # the package's parameter reaches the action through the binding
        "overridden": "binding",  # the binding's parameter wins over the package's
        "from_action": "a",
        "both": "action",  # the action's wins over the binding's
        "invoked": "i",
    }
    direct = json.loads(pywsk("action", "invoke", f"{package}/echo", "-r").stdout)
    assert (direct.get("overridden"), direct.get("both")) == ("package", "action")

    got = pywsk.ok_then_json("package", "get", package)
    assert isinstance(got, dict)
    assert [action["name"] for action in got["actions"]] == ["echo"]
    summary = pywsk("package", "get", package, "--summary").stdout.splitlines()
    # A package's listing of its actions carries no parameters, so the action's line has none to show.
    assert summary == [
        f"package /guest/{package}: demo package",
        "   (parameters: *from_package, *overridden)",
        f" action /guest/{package}/echo",
        "   (parameters: none defined)",
    ]
    listed = pywsk("package", "list").stdout.splitlines()
    assert listed[0] == "packages"
    assert any(row.split()[0].endswith(f"/{package}") and row.endswith("private") for row in listed)
    assert any(row.split()[0].endswith(f"/{binding}") for row in listed)
    everything = pywsk("list").stdout
    assert everything.startswith("Entities in namespace: _\npackages\n")
    # OpenWhisk's actions view emits a package's actions under the root namespace too
    # (ansible/files/whisks_design_document_for_entities_db_v2.1.0.json), so `wsk list` shows them.
    assert f"/guest/{package}/echo" in everything

    not_empty = pywsk("package", "delete", package, check=False)
    assert not_empty.returncode == 409 - 256
    assert not_empty.stderr.startswith(
        f"error: Unable to delete package '{package}': Package not empty (contains 1 entity). "
        "Set force param or delete package contents. (code "
    )
    pywsk("action", "delete", f"{package}/echo")
    assert pywsk("package", "delete", binding).stdout == f"ok: deleted package {binding}\n"
    assert pywsk("package", "delete", package).stdout == f"ok: deleted package {package}\n"
    missing = pywsk("package", "get", package, check=False)
    assert missing.returncode == 404 - 256
    assert missing.stderr.startswith(f"error: Unable to get package '{package}': The requested resource ")
    assert "does not exist." in missing.stderr


def test_binding_to_a_missing_package_fails_like_wsk(pywsk: Pywsk, prefix: str) -> None:
    result = pywsk("package", "bind", f"{prefix}-nothere", f"{prefix}-bound", check=False)

    assert result.returncode != 0
    assert result.stderr.startswith("error: Binding creation failed: ")


def test_sequence_of_wasm_actions_one_in_a_package(pywsk: Pywsk, prefix: str) -> None:
    package = f"{prefix}-seqpkg"
    pywsk("package", "create", package)
    pywsk("action", "create", f"{package}/echo", str(WASM_DIR / "echo.wasm"))
    pywsk("action", "create", f"{prefix}-echo", str(WASM_DIR / "echo.wasm"))
    pywsk("action", "create", f"{prefix}-hello", str(WASM_DIR / "hello.wasm"))

    created = pywsk("action", "create", f"{prefix}-seq", "--sequence",
                    f"{package}/echo,{prefix}-echo,{prefix}-hello")  # fmt: skip

    assert created.stdout == f"ok: created action {prefix}-seq\n"
    action = pywsk.ok_then_json("action", "get", f"{prefix}-seq")
    assert isinstance(action, dict)
    assert action["exec"]["kind"] == "sequence"
    assert [name.rsplit("/", 1)[1] for name in action["exec"]["components"]] == ["echo", f"{prefix}-echo",
                                                                                 f"{prefix}-hello"]  # fmt: skip
    result = json.loads(pywsk("action", "invoke", f"{prefix}-seq", "-r", "-p", "name", "Sequence").stdout)
    assert result == {"greeting": "Hello, Sequence!"}


def test_web_action_url_answers(pywsk: Pywsk, prefix: str) -> None:
    package = f"{prefix}-webpkg"
    pywsk("package", "create", package)
    pywsk("action", "create", f"{package}/echo", str(WASM_DIR / "echo.wasm"), "--web", "true")
    pywsk("action", "create", f"{prefix}-plain", str(WASM_DIR / "echo.wasm"))

    lines = pywsk("action", "get", f"{package}/echo", "--url").stdout.splitlines()
    plain = pywsk("action", "get", f"{prefix}-plain", "--url").stdout.splitlines()

    assert lines[0] == "ok: got action echo"
    url = lines[1]
    assert url.endswith(f"/api/v1/web/guest/{package}/echo")
    assert plain[1].endswith(f"/api/v1/namespaces/guest/actions/{prefix}-plain")
    # No credentials: a web action is public.
    answer = httpx.get(f"{url}.json", params={"from_query": "q"}, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.json()["from_query"] == "q"
    assert answer.json()["__ow_method"] == "get"
    assert httpx.get(f"{plain[1].replace('/namespaces/guest/actions/', '/web/guest/default/')}.json",
                     timeout=30).status_code == 404  # fmt: skip


def test_secured_web_action_needs_its_secret(pywsk: Pywsk, prefix: str) -> None:
    name = f"{prefix}-secured"
    pywsk("action", "create", name, str(WASM_DIR / "echo.wasm"), "--web", "true", "--web-secure", "s3cret")
    url = pywsk("action", "get", name, "--url").stdout.splitlines()[1]

    refused = httpx.get(f"{url}.json", timeout=30)
    allowed = httpx.get(f"{url}.json", headers={"X-Require-Whisk-Auth": "s3cret"}, timeout=30)

    assert refused.status_code == 401
    assert allowed.status_code == 200, allowed.text


def test_binding_the_system_utils_package(pywsk: Pywsk, prefix: str) -> None:
    binding = f"{prefix}-utils"
    listed = pywsk("package", "list", "/whisk.system").stdout.splitlines()
    assert f"{'/whisk.system/utils':<70} shared" in listed

    pywsk("package", "bind", "/whisk.system/utils", binding, "-p", "bound", "yes")

    result = json.loads(pywsk("action", "invoke", f"{binding}/echo", "-r", "-p", "invoked", "too").stdout)
    assert {key: result.get(key) for key in ("bound", "invoked")} == {"bound": "yes", "invoked": "too"}
    pywsk("package", "delete", binding)
