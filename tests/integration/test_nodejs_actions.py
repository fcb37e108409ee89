"""JavaScript actions on Docker (kind ``nodejs:18``, alias ``nodejs:default``): the image and the whole path.

The first half speaks the action-proxy protocol (reference/openwhisk.md §4) straight to containers of
``pywhisk/action-nodejs-v18``, built by deploy/local/build-images, and expects the answers of OpenWhisk's
Node.js runtime (apache/openwhisk-runtime-nodejs core/nodejsActionBase/src/service.js, runner.js). The second
half creates and invokes the sample actions of ``actions/js`` through a real standalone server (and one
distributed deployment), with the CLI and with the official ``openwhisk`` npm client.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import threading
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import REPO, Server, wasm_code
from tests.docker_service import RuntimeImages, docker_daemon  # noqa: F401
from tests.integration.helpers import annotations, invoke
from tests.integration.test_runtime_images import (  # noqa: F401  (fixtures)
    RUN_META,
    SENTINEL,
    RuntimeContainer,
    b64,
    docker_client,
    images,
    start_runtime,
)

pytestmark = [pytest.mark.integration, pytest.mark.docker]

JS = REPO / "actions" / "js"
NODEJS_IMAGE = "pywhisk/action-nodejs-v18:latest"
JS_CLIENT_DIR = REPO / "tests" / "clients" / "js"
INSTALL_CLIENTS = REPO / "deploy" / "local" / "install-clients.sh"

Start = Callable[[str], RuntimeContainer]


@pytest.fixture
def start(start_runtime: Start) -> Start:  # noqa: F811
    """Starts a container of the nodejs image (removed after the test)."""
    return start_runtime


def source(name: str) -> str:
    return (JS / f"{name}.js").read_text()


def zipped(files: dict[str, str]) -> str:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    return b64(buffer.getvalue())


# --- the image, through the proxy protocol ---------------------------------------------------------------


def test_nodejs_image_runs_the_sample_actions_and_frames_their_logs(start: Start) -> None:
    runtime = start(NODEJS_IMAGE)
    init = runtime.init(source("hash"))
    assert (init.status_code, init.json()) == (200, {"OK": True})
    run = runtime.run({"input": "abc", "iterations": 1})
    expected = {"hash": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", "iterations": 1}
    assert (run.status_code, run.json()) == (200, expected)
    assert runtime.run({}).json()["iterations"] == 1000
    again = runtime.init(source("hash"))
    assert (again.status_code, again.json()) == (403, {"error": "Cannot initialize the action more than once."})

    stdout = runtime.logs(stdout=True, stderr=False, count=2).splitlines()
    assert stdout == [
        "hash: 1 x sha256 over 3 input bytes",
        SENTINEL,
        "hash: 1000 x sha256 over 7 input bytes",
        SENTINEL,
    ]
    stderr = runtime.logs(stdout=False, stderr=True, count=2).splitlines()
    assert stderr[:2] == [SENTINEL, SENTINEL]  # then the refused init's "Internal system error" line


def test_nodejs_image_is_debians_node_18_run_unprivileged_with_the_ow_environment(start: Start) -> None:
    runtime = start(NODEJS_IMAGE)
    runtime.init(
        "function main(args, context) {\n"
        "  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => k.includes('OW_')));\n"
        "  return {node: process.version, uid: process.getuid(), env, activationId: context.activationId};\n"
        "}\n"
    )
    result = runtime.run().json()
    assert result["node"].startswith("v18.")
    assert result["uid"] == 1000
    assert result["env"]["__OW_ACTIVATION_ID"] == RUN_META["activation_id"] == result["activationId"]
    assert result["env"]["__OW_DEADLINE"] == RUN_META["deadline"]
    assert result["env"]["__OW_ACTION_NAME"] == RUN_META["action_name"]
    assert result["env"]["OW_EXECUTION_ENV"] == "pywhisk/action-nodejs-v18"


ENTRY_POINTS = {
    "function main": ("function main(args) { return {via: 'function', n: args.n}; }", "main"),
    "a main named in init": ("function niam(args) { return {via: 'niam', n: args.n}; }", "niam"),
    "module.exports.main": ("module.exports.main = (args) => ({via: 'module.exports', n: args.n});", "main"),
    "exports.main": ("exports.main = (args) => ({via: 'exports', n: args.n});", "main"),
    "ESM export": ("export function main(args) { return {via: 'esm', n: args.n}; }", "main"),
    "async function": ("async function main(args) { return {via: 'async', n: args.n}; }", "main"),
    "returned promise": (
        "function main(args) { return new Promise((ok) => setTimeout(() => ok({via: 'promise', n: args.n}), 20)); }",
        "main",
    ),
}


@pytest.mark.parametrize("form", list(ENTRY_POINTS))
def test_nodejs_image_finds_main_as_openwhisks_node_runtime_does(start: Start, form: str) -> None:
    code, main = ENTRY_POINTS[form]
    runtime = start(NODEJS_IMAGE)
    init = runtime.init(code, main=main)
    assert init.status_code == 200, init.text
    assert runtime.run({"n": 7}).json()["n"] == 7


def test_nodejs_image_runs_zip_actions_with_package_json_and_node_modules(start: Start) -> None:
    with_package = zipped(
        {
            "package.json": json.dumps({"name": "z", "main": "lib/entry.js"}),
            "lib/entry.js": "const dep = require('dep');\nexports.main = (args) => ({dep: dep.value, n: args.n});\n",
            "node_modules/dep/index.js": "module.exports = {value: 'from node_modules'};\n",
        }
    )
    runtime = start(NODEJS_IMAGE)
    assert runtime.init(with_package, binary=True).status_code == 200
    assert runtime.run({"n": 1}).json() == {"dep": "from node_modules", "n": 1}

    # `file.fn` takes fn from file.js, as OpenWhisk's splitMainHandler.
    named = zipped({"handlers.js": "exports.hello = () => ({from: 'handlers.hello'});\n"})
    runtime = start(NODEJS_IMAGE)
    assert runtime.init(named, binary=True, main="handlers.hello").status_code == 200
    assert runtime.run().json() == {"from": "handlers.hello"}

    empty = zipped({"README": "no code here\n"})
    runtime = start(NODEJS_IMAGE)
    response = runtime.init(empty, binary=True)
    assert response.status_code == 502
    assert response.json() == {
        "error": "Initialization has failed due to: "
        "Zipped functions must contain either package.json or index.[m]js at the root."
    }


def test_nodejs_image_answers_errors_with_openwhisks_status_and_message(start: Start) -> None:
    broken = start(NODEJS_IMAGE)
    response = broken.init(source("syntaxerror"))
    assert response.status_code == 502
    assert response.json()["error"].startswith("Initialization has failed due to: SyntaxError: ")
    stderr = broken.logs(stdout=False, stderr=True)
    assert "Error during initialization: SyntaxError" in stderr and stderr.rstrip().endswith(SENTINEL)

    no_main = start(NODEJS_IMAGE)
    response = no_main.init(source("nomain"))
    expected = {"error": "Initialization has failed due to: Function entrypoint 'main' is not a function."}
    assert (response.status_code, response.json()) == (502, expected)

    no_code = start(NODEJS_IMAGE)
    response = no_code.client.post("/init", json={"value": {"main": "main", "code": ""}})
    assert (response.status_code, response.json()) == (403, {"error": "Missing main/no code to execute."})
    response = no_code.run()
    assert (response.status_code, response.json()) == (403, {"error": "System not initialized."})

    throws = start(NODEJS_IMAGE)
    throws.init(source("throw"))
    response = throws.run()
    expected = {"error": "An error has occurred: Error: something went wrong"}
    assert (response.status_code, response.json()) == (502, expected)

    rejects = start(NODEJS_IMAGE)
    rejects.init(source("reject"))
    response = rejects.run()
    assert response.status_code == 200
    error = response.json()["error"]
    assert (error["name"], error["message"]) == ("Error", "promise rejected")
    assert error["stack"].startswith("Error: promise rejected\n    at ")
    assert rejects.run().status_code == 200, "a rejection is a result: the container goes on"

    not_a_dict = start(NODEJS_IMAGE)
    not_a_dict.init(source("notdict"))
    response = not_a_dict.run()
    assert (response.status_code, response.json()) == (502, {"error": "The action did not return a dictionary."})
    assert 'Result must be of type object but has type "string"' in not_a_dict.logs(stdout=False, stderr=True)


def test_nodejs_image_runs_activations_concurrently(start: Start) -> None:
    """__OW_ALLOW_CONCURRENT=true in the image: a second /run is taken while the first waits on a timer."""
    runtime = start(NODEJS_IMAGE)
    runtime.init(source("sleep"))
    answers: list[httpx.Response] = []

    def run() -> None:
        with httpx.Client(base_url=str(runtime.client.base_url), timeout=30) as client:
            answers.append(client.post("/run", json={"value": {"ms": 600}, **RUN_META}))

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [a.json() for a in answers] == [{"slept": 600}] * 3
    # Each run logged its line before sleeping: all three were in flight before the first sentinel.
    stdout = runtime.logs(stdout=True, stderr=False, count=3).splitlines()
    assert stdout[:3] == ["sleep: sleeping 600 ms"] * 3


# --- through a real server -------------------------------------------------------------------------------


def create_js_action(api: httpx.Client, name: str, code: str, **extra: Any) -> None:
    body: dict[str, Any] = {"exec": {"kind": "nodejs:default", "code": code}, **extra}
    response = api.put(f"/namespaces/_/actions/{name}", json=body)
    assert response.status_code == 200, response.text


def log_texts(record: dict[str, Any]) -> list[str]:
    """The activation's log lines without their timestamps (``stdout: text``), stdout's before stderr's.

    Each stream keeps its order, but a container's two streams reach the invoker separately (through
    dockerd), so a stderr line written just after a stdout line may be stamped first: compare per stream.
    """
    texts = [line.split(maxsplit=1)[1] for line in record["logs"]]
    return sorted(texts, key=lambda text: not text.startswith("stdout:"))


@pytest.fixture(scope="module")
def server(standalone: Server, docker_daemon: RuntimeImages) -> Server:  # noqa: F811
    return standalone


@pytest.fixture
def api(server: Server) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


@pytest.mark.parametrize(
    ("name", "params"),
    [("hello", {"name": "Ada"}), ("hash", {"input": "pywhisk", "iterations": 500}), ("prime", {"n": 1000})],
)
def test_sample_actions_cold_and_warm_match_the_c_builds(
    api: httpx.Client, unique_name: str, name: str, params: dict[str, Any]
) -> None:
    create_js_action(api, unique_name, source(name))
    twin = f"{unique_name}-c"
    response = api.put(f"/namespaces/_/actions/{twin}", json={"exec": {"kind": "wasm:wasi", "code": wasm_code(name)}})
    assert response.status_code == 200, response.text

    cold = invoke(api, unique_name, params).json()
    warm = invoke(api, unique_name, params).json()
    c = invoke(api, twin, params).json()

    assert "initTime" in annotations(cold) and "initTime" not in annotations(warm)
    assert annotations(cold)["kind"] == "nodejs:18"
    assert cold["response"]["status"] == warm["response"]["status"] == "success"
    assert cold["response"]["result"] == warm["response"]["result"] == c["response"]["result"]
    assert log_texts(cold) == log_texts(warm) == log_texts(c)
    assert log_texts(cold), "every sample action logs"


BROKEN: dict[str, tuple[str, dict[str, int], str, str | re.Pattern[str]]] = {
    "syntax error": (
        source("syntaxerror"),
        {},
        "action developer error",
        re.compile(r"^Initialization has failed due to: SyntaxError: "),
    ),
    "missing main": (
        source("nomain"),
        {},
        "action developer error",
        "Initialization has failed due to: Function entrypoint 'main' is not a function.",
    ),
    "thrown error": (
        source("throw"),
        {},
        "action developer error",
        "An error has occurred: Error: something went wrong",
    ),
    "infinite loop": (
        source("loop"),
        {"timeout": 1000},
        "action developer error",
        "The action exceeded its time limits of 1000 milliseconds.",
    ),
    "memory bomb": (
        source("membomb"),
        {"memory": 128},
        "action developer error",
        "The action exhausted its memory and was aborted.",
    ),
    "non-object result": (
        source("notdict"),
        {},
        "action developer error",
        "The action did not return a dictionary.",
    ),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_js_actions_get_openwhisk_statuses_and_messages(api: httpx.Client, unique_name: str, case: str) -> None:
    code, limits, status, message = BROKEN[case]
    create_js_action(api, unique_name, code, **({"limits": limits} if limits else {}))
    record = invoke(api, unique_name).json()
    assert record["response"]["status"] == status, record
    error = record["response"]["result"]["error"]
    if isinstance(message, re.Pattern):
        assert message.search(error), error
    else:
        assert error == message


def test_rejected_promise_is_an_application_error_with_the_serialized_reason(
    api: httpx.Client, unique_name: str
) -> None:
    create_js_action(api, unique_name, source("reject"))
    first = invoke(api, unique_name).json()
    second = invoke(api, unique_name).json()
    assert first["response"]["status"] == "application error"
    error = first["response"]["result"]["error"]
    assert (error["name"], error["message"]) == ("Error", "promise rejected")
    assert "initTime" not in annotations(second), "an application error keeps the container warm"
    assert any(line.endswith("stdout: reject: about to reject") for line in first["logs"])


def test_concurrency_above_one_runs_activations_in_one_container_at_once(api: httpx.Client, unique_name: str) -> None:
    code = (
        "const boot = Math.random().toString(36).slice(2);  // one value per container\n"
        "async function main(args) {\n"
        "  const start = Date.now();\n"
        "  await new Promise((done) => setTimeout(done, args.ms || 0));\n"
        "  return {boot, start, end: Date.now()};\n"
        "}\n"
    )
    create_js_action(api, unique_name, code, limits={"concurrency": 3})
    assert invoke(api, unique_name).status_code == 200  # warm one container
    results: list[dict[str, Any]] = []

    def run() -> None:
        results.append(invoke(api, unique_name, {"ms": 700}).json())

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    outcomes = [r["response"]["result"] for r in results]
    assert len({o["boot"] for o in outcomes}) == 1, "all three ran in the same container"
    assert max(o["start"] for o in outcomes) < min(o["end"] for o in outcomes), "and they overlapped"
    assert all("initTime" not in annotations(r) for r in results)


def test_pywsk_creates_a_js_file_as_nodejs_default_and_invokes_it(server: Server, tmp_path: Path) -> None:
    env = {**os.environ, "WSK_CONFIG_FILE": str(tmp_path / "wskprops")}

    def pywsk(*args: str) -> str:
        done = subprocess.run(["pywsk", *args], capture_output=True, text=True, env=env, timeout=120, check=False)
        assert done.returncode == 0, f"pywsk {' '.join(args)}: {done.stderr}"
        return done.stdout

    name = f"cli-hello-{os.urandom(3).hex()}"
    pywsk("property", "set", "--apihost", server.apihost, "--auth", server.auth)
    pywsk("action", "create", name, str(JS / "hello.js"))
    got = pywsk("action", "get", name)
    assert json.loads(got.partition("\n")[2])["exec"]["kind"] == "nodejs:18"
    assert json.loads(pywsk("action", "invoke", name, "-r", "-p", "name", "CLI")) == {"greeting": "Hello, CLI!"}


@pytest.fixture(scope="module")
def js_client() -> Path:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node/npm is not installed: cannot run the openwhisk npm client")
    done = subprocess.run(
        ["bash", str(INSTALL_CLIENTS), "--js-only"], capture_output=True, text=True, timeout=900, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return JS_CLIENT_DIR


def test_the_official_js_client_creates_and_invokes_a_js_action(server: Server, js_client: Path) -> None:
    script = """
const openwhisk = require('openwhisk');
const [apihost, api_key, name, code] = process.argv.slice(1);
const ow = openwhisk({apihost, api_key, namespace: '_'});
(async () => {
  await ow.actions.create({name, action: code});  // a string: exec {kind: 'nodejs:default', code}
  const action = await ow.actions.get({name});
  const result = await ow.actions.invoke({name, blocking: true, result: true, params: {input: 'abc', iterations: 1}});
  console.log(JSON.stringify({kind: action.exec.kind, result}));
  await ow.actions.delete({name});
})().catch((e) => { console.error(e); process.exit(1); });
"""
    name = f"jsclient-hash-{os.urandom(3).hex()}"
    node = shutil.which("node")
    assert node is not None
    done = subprocess.run(
        [node, "-e", script, server.apihost, server.auth, name, source("hash")],
        capture_output=True,
        text=True,
        cwd=js_client,
        env={**os.environ, "NODE_PATH": str(js_client / "node_modules")},
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    expected = {"hash": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", "iterations": 1}
    assert json.loads(done.stdout) == {"kind": "nodejs:18", "result": expected}


@pytest.mark.kafka
def test_hello_js_in_distributed_mode(distributed: Server, docker_daemon: RuntimeImages, unique_name: str) -> None:  # noqa: F811
    with distributed.client() as api:
        create_js_action(api, unique_name, source("hello"))
        record = invoke(api, unique_name, {"name": "Kafka"}).json()
    assert record["response"]["result"] == {"greeting": "Hello, Kafka!"}
    assert log_texts(record) == ["stdout: hello: greeting Kafka", "stderr: hello: this line goes to stderr"]


def test_loadgen_setup_creates_the_benchmark_actions_in_javascript(server: Server, api: httpx.Client) -> None:
    from typer.testing import CliRunner

    from loadgen.cli import app

    for executor in ("nodejs", "nodejs-wasm"):
        result = CliRunner().invoke(
            app, ["--apihost", server.apihost, "--auth", server.auth, "setup", "--executor", executor]
        )
        assert result.exit_code == 0, result.output
    for name in ("hello", "hash", "prime", "net", "sleep"):
        on_docker = api.get(f"/namespaces/_/actions/lg-nodejs-{name}").json()
        on_wasm = api.get(f"/namespaces/_/actions/lg-nodejs-wasm-{name}").json()
        assert on_docker["exec"]["kind"] == on_wasm["exec"]["kind"] == "nodejs:18"
        assert on_docker["exec"]["code"] == on_wasm["exec"]["code"] == source(name)
        assert {"key": "executor", "value": "wasm"} in on_wasm["annotations"]
        assert all(pair["key"] != "executor" for pair in on_docker["annotations"])
    hashed = invoke(api, "lg-nodejs-hash", {"input": "abc", "iterations": 1}).json()["response"]["result"]
    assert hashed == {"hash": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", "iterations": 1}
