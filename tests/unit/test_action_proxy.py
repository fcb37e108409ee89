"""The runtime images' action proxy (executor_docker/runtimes/proxy/actionproxy.py), run as a plain process.

Over 400 lines because it covers the whole proxy protocol (init, run, zip, sentinels, errors) of one program.

The same program is PID 1 in the runtime containers; here it runs on the host's Python on a free port,
so the protocol (reference/openwhisk.md §4) is checked without Docker.
"""

from __future__ import annotations

import base64
import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
PROXY = REPO / "executor_docker" / "runtimes" / "proxy" / "actionproxy.py"
HELLO = (REPO / "actions" / "python" / "hello.py").read_text()
SENTINEL = "XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX"
INIT_FAILED = "The action failed to generate or locate a binary. See logs for details."
NOT_A_DICTIONARY = "The action did not return a dictionary or array."

RUN_META = {
    "namespace": "guest",
    "action_name": "/guest/probe",
    "action_version": "0.0.1",
    "activation_id": "6a1b2c3d4e5f40718293a4b5c6d7e8f9",
    "transaction_id": "tid-42",
    "deadline": "1700000060000",
    "api_key": "23bc46b1-71f6-4ed5-8c54-816aa4f8c502:secret",
}


@dataclass
class RunningProxy:
    """An action proxy process and a keep-alive client for it."""

    process: subprocess.Popen[bytes]
    client: httpx.Client
    stdout_path: Path
    stderr_path: Path

    def init(
        self, code: str, *, main: str = "main", binary: bool = False, env: dict[str, str] | None = None
    ) -> httpx.Response:
        value: dict[str, Any] = {"name": "probe", "main": main, "code": code, "binary": binary}
        if env:
            value["env"] = env
        return self.client.post("/init", json={"value": value})

    def run(self, value: Any = None, **meta: str) -> httpx.Response:
        return self.client.post("/run", json={"value": {} if value is None else value, **meta})

    def stdout(self) -> str:
        return self.stdout_path.read_text()

    def stderr(self) -> str:
        return self.stderr_path.read_text()


def start_proxy(tmp_path: Path, env: dict[str, str] | None = None) -> RunningProxy:
    port = free_port()
    stdout_path, stderr_path = tmp_path / "stdout.log", tmp_path / "stderr.log"
    process = subprocess.Popen(
        [sys.executable, "-u", str(PROXY), str(port)],
        stdout=stdout_path.open("wb"),
        stderr=stderr_path.open("wb"),
        env={**os.environ, "TMPDIR": str(tmp_path), **(env or {})},
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"the proxy did not listen on {port}:\n{stderr_path.read_text()}") from None
            time.sleep(0.01)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
    return RunningProxy(process, client, stdout_path, stderr_path)


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[RunningProxy]:
    running = start_proxy(tmp_path)
    yield running
    stop(running)


@pytest.fixture
def native_proxy(tmp_path: Path) -> Iterator[RunningProxy]:
    running = start_proxy(tmp_path, {"OW_ACTION_KIND": "native"})
    yield running
    stop(running)


def stop(running: RunningProxy) -> None:
    running.client.close()
    running.process.terminate()
    running.process.wait(timeout=10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def zip_b64(files: dict[str, str], modes: dict[str, int] | None = None) -> str:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = ((modes or {}).get(name, 0o644)) << 16
            archive.writestr(info, text)
    return base64.b64encode(buffer.getvalue()).decode()


# --- Python actions -----------------------------------------------------------------------------------


def test_init_then_run_returns_the_actions_result(proxy: RunningProxy) -> None:
    init = proxy.init(HELLO)
    assert (init.status_code, init.json()) == (200, {"ok": True})
    run = proxy.run({"name": "Ada"}, **RUN_META)
    assert (run.status_code, run.json()) == (200, {"greeting": "Hello, Ada!"})
    assert run.headers["content-type"] == "application/json"


def test_module_state_survives_between_runs(proxy: RunningProxy) -> None:
    proxy.init("count = 0\ndef main(args):\n    global count\n    count += 1\n    return {'count': count}\n")
    assert [proxy.run().json()["count"] for _ in range(3)] == [1, 2, 3]


def test_second_init_is_rejected_with_403_and_keeps_the_first_action(proxy: RunningProxy) -> None:
    assert proxy.init(HELLO).status_code == 200
    again = proxy.init("def main(args):\n    return {'other': True}\n")
    assert (again.status_code, again.json()) == (403, {"error": "Cannot initialize the action more than once."})
    assert proxy.run({"name": "Bo"}).json() == {"greeting": "Hello, Bo!"}


@pytest.mark.parametrize("value", [{}, {"code": ""}, {"name": "x", "main": "main", "binary": False}])
def test_init_without_code_is_rejected_with_403(proxy: RunningProxy, value: dict[str, Any]) -> None:
    response = proxy.client.post("/init", json={"value": value})
    assert (response.status_code, response.json()) == (403, {"error": "Missing main/no code to execute."})


def test_run_before_init_is_500_and_leaves_no_trace_in_the_logs(proxy: RunningProxy) -> None:
    response = proxy.run({"name": "Ada"})
    assert (response.status_code, response.json()) == (500, {"error": "no action defined yet"})
    assert (proxy.stdout(), proxy.stderr()) == ("", "")


def test_custom_entry_point_from_value_main(proxy: RunningProxy) -> None:
    assert proxy.init("def greet(args):\n    return {'hi': args['who']}\n", main="greet").status_code == 200
    assert proxy.run({"who": "you"}).json() == {"hi": "you"}


def test_exception_in_main_is_an_application_error_with_the_traceback_in_stderr(proxy: RunningProxy) -> None:
    proxy.init("def main(args):\n    raise ValueError('boom: ' + args['why'])\n")
    response = proxy.run({"why": "bad input"})
    assert (response.status_code, response.json()) == (200, {"error": "boom: bad input"})
    stderr = proxy.stderr()
    assert "Traceback" in stderr and "ValueError: boom: bad input" in stderr
    assert stderr.index("ValueError") < stderr.index(SENTINEL)


@pytest.mark.parametrize("result", ["'a string'", "42", "None", "True"])
def test_result_that_is_not_a_dictionary_is_502(proxy: RunningProxy, result: str) -> None:
    proxy.init(f"def main(args):\n    return {result}\n")
    response = proxy.run()
    assert (response.status_code, response.json()) == (502, {"error": NOT_A_DICTIONARY})


def test_result_that_is_not_json_is_502(proxy: RunningProxy) -> None:
    proxy.init("def main(args):\n    return {'s': {1, 2}}\n")
    response = proxy.run()
    assert (response.status_code, response.json()) == (502, {"error": NOT_A_DICTIONARY})


def test_array_result_and_array_params_are_accepted(proxy: RunningProxy) -> None:
    proxy.init("def main(args):\n    return list(reversed(args))\n")
    response = proxy.run([1, "two", {"three": 3}])
    assert (response.status_code, response.json()) == (200, [{"three": 3}, "two", 1])


def test_unicode_in_params_result_and_logs(proxy: RunningProxy) -> None:
    proxy.init("def main(args):\n    print('λ says', args['w'])\n    return {'echo': args['w'] + ' ✓'}\n")
    assert proxy.run({"w": "héllo ☃"}).json() == {"echo": "héllo ☃ ✓"}
    assert "λ says héllo ☃" in proxy.stdout()


@pytest.mark.parametrize(
    ("code", "expected_in_stderr"),
    [
        ("def main(args)\n    return {}\n", "SyntaxError"),
        ("import no_such_module_xyz\ndef main(args):\n    return {}\n", "ModuleNotFoundError"),
        ("raise RuntimeError('fails at import')\n", "RuntimeError: fails at import"),
        ("def handler(args):\n    return {}\n", "no function named 'main'"),
        ("main = 42\n", "no function named 'main'"),
    ],
)
def test_action_that_cannot_load_fails_init_with_502_logs_and_sentinels(
    proxy: RunningProxy, code: str, expected_in_stderr: str
) -> None:
    response = proxy.init(code)
    assert (response.status_code, response.json()) == (502, {"error": INIT_FAILED})
    stderr = proxy.stderr()
    assert expected_in_stderr in stderr
    assert stderr.index(expected_in_stderr) < stderr.index(SENTINEL)
    assert proxy.stdout().count(SENTINEL) == 1
    # Not initialized: a run is refused, as actionloop does after a failed start.
    assert proxy.run().status_code == 500


def test_sys_exit_in_main_ends_the_action_like_a_dead_launcher(proxy: RunningProxy) -> None:
    proxy.init("import sys\ndef main(args):\n    sys.exit(3)\n")
    response = proxy.run()
    assert (response.status_code, response.json()) == (400, {"error": "command exited"})
    assert proxy.run().status_code == 500
    assert proxy.init(HELLO).status_code == 403


# --- zip actions --------------------------------------------------------------------------------------


def test_zip_action_runs_main_py_and_imports_its_sibling_modules(proxy: RunningProxy) -> None:
    code = zip_b64(
        {
            "__main__.py": "import helper\ndef main(args):\n    return {'shout': helper.shout(args['w'])}\n",
            "helper.py": "def shout(w):\n    return w.upper() + '!'\n",
            "data/words.txt": "unused\n",
        }
    )
    assert proxy.init(code, binary=True).status_code == 200
    assert proxy.run({"w": "hey"}).json() == {"shout": "HEY!"}


def test_zip_action_runs_in_its_own_directory(proxy: RunningProxy) -> None:
    code = zip_b64(
        {
            "__main__.py": "def main(args):\n    return {'text': open('data/words.txt').read().strip()}\n",
            "data/words.txt": "from the zip\n",
        }
    )
    proxy.init(code, binary=True)
    assert proxy.run().json() == {"text": "from the zip"}


def test_zip_action_uses_its_virtualenv_site_packages(proxy: RunningProxy) -> None:
    code = zip_b64(
        {
            "__main__.py": "import vendored\ndef main(args):\n    return {'v': vendored.VERSION}\n",
            "virtualenv/lib/python3.11/site-packages/vendored/__init__.py": "VERSION = '1.2.3'\n",
        }
    )
    assert proxy.init(code, binary=True).status_code == 200
    assert proxy.run().json() == {"v": "1.2.3"}


def test_zip_without_main_py_fails_init(proxy: RunningProxy) -> None:
    response = proxy.init(zip_b64({"main.py": "def main(args):\n    return {}\n"}), binary=True)
    assert (response.status_code, response.json()) == (502, {"error": INIT_FAILED})
    assert "__main__.py" in proxy.stderr()


def test_binary_code_that_is_not_base64_is_400(proxy: RunningProxy) -> None:
    response = proxy.init("not base64 at all!", binary=True)
    assert response.status_code == 400
    assert response.json()["error"].startswith("cannot decode the request")


def test_binary_code_that_is_not_a_zip_fails_init(proxy: RunningProxy) -> None:
    response = proxy.init(base64.b64encode(b"just some bytes").decode(), binary=True)
    assert (response.status_code, response.json()) == (502, {"error": INIT_FAILED})


# --- environment --------------------------------------------------------------------------------------


ENV_ACTION = (
    "import os\ndef main(args):\n    return {k: v for k, v in os.environ.items() if k.startswith(('__OW_', 'MY_'))}\n"
)


def test_run_metadata_is_exported_as_ow_environment_variables(proxy: RunningProxy) -> None:
    proxy.init(ENV_ACTION)
    env = proxy.run({"ignored": True}, **RUN_META).json()
    assert env == {
        "__OW_NAMESPACE": "guest",
        "__OW_ACTION_NAME": "/guest/probe",
        "__OW_ACTION_VERSION": "0.0.1",
        "__OW_ACTIVATION_ID": RUN_META["activation_id"],
        "__OW_TRANSACTION_ID": "tid-42",
        "__OW_DEADLINE": "1700000060000",
        "__OW_API_KEY": RUN_META["api_key"],
    }
    # Each run exports its own activation's values.
    again = proxy.run({}, **{**RUN_META, "activation_id": "second", "deadline": "1700000070000"}).json()
    assert (again["__OW_ACTIVATION_ID"], again["__OW_DEADLINE"]) == ("second", "1700000070000")


def test_init_env_is_visible_to_the_action_and_at_import_time(proxy: RunningProxy) -> None:
    code = "import os\nAT_IMPORT = os.environ.get('MY_SETTING')\n" + ENV_ACTION.replace(
        "return {", "return {'at_import': AT_IMPORT, **{"
    ).replace("}\n", "}}\n")
    env = {"MY_SETTING": "on", "__OW_NAMESPACE": "guest", "__OW_ACTION_NAME": "/guest/probe"}
    assert proxy.init(code, env=env).status_code == 200
    result = proxy.run().json()
    assert result["at_import"] == "on"
    assert (result["MY_SETTING"], result["__OW_NAMESPACE"]) == ("on", "guest")


def test_deadline_sent_as_a_number_is_exported_as_text(proxy: RunningProxy) -> None:
    proxy.init(ENV_ACTION)
    response = proxy.client.post("/run", json={"value": {}, "deadline": 1700000060000})
    assert response.json()["__OW_DEADLINE"] == "1700000060000"


# --- log framing --------------------------------------------------------------------------------------


def test_each_run_ends_with_a_sentinel_on_stdout_and_stderr(proxy: RunningProxy) -> None:
    proxy.init(
        "import sys\ndef main(args):\n    print('out', args['n'])\n"
        "    print('err', args['n'], file=sys.stderr)\n    return {}\n"
    )
    for n in range(3):
        assert proxy.run({"n": n}).status_code == 200
    lines = [line for line in proxy.stdout().splitlines() if line]
    assert lines == ["out 0", SENTINEL, "out 1", SENTINEL, "out 2", SENTINEL]
    lines = [line for line in proxy.stderr().splitlines() if line]
    assert lines == ["err 0", SENTINEL, "err 1", SENTINEL, "err 2", SENTINEL]


def test_successful_init_writes_nothing_to_the_logs(proxy: RunningProxy) -> None:
    assert proxy.init(HELLO).status_code == 200
    assert proxy.init(HELLO).status_code == 403
    assert (proxy.stdout(), proxy.stderr()) == ("", "")


# --- native (dockerskeleton) actions --------------------------------------------------------------------


SHELL_ACTION = """#!/bin/sh
echo "log line from $0"
echo "to stderr" >&2
read -r stdin_params
printf '{"argv": %s, "stdin": %s, "ns": "%s"}\\n' "$1" "$stdin_params" "$__OW_NAMESPACE"
"""


def test_native_executable_gets_params_as_argv1_and_stdin_and_its_last_line_is_the_result(
    native_proxy: RunningProxy,
) -> None:
    assert native_proxy.init(SHELL_ACTION).status_code == 200
    response = native_proxy.run({"name": "Ada"}, **RUN_META)
    assert (response.status_code, response.json()) == (
        200,
        {"argv": {"name": "Ada"}, "stdin": {"name": "Ada"}, "ns": "guest"},
    )
    stdout = [line for line in native_proxy.stdout().splitlines() if line]
    assert stdout[0].startswith("log line from ") and stdout[1:] == [SENTINEL]
    assert [line for line in native_proxy.stderr().splitlines() if line] == ["to stderr", SENTINEL]


def test_native_action_whose_last_line_is_not_json_is_502(native_proxy: RunningProxy) -> None:
    native_proxy.init("#!/bin/sh\necho '{\"fine\": true}'\necho 'but this is the last line'\n")
    response = native_proxy.run()
    assert (response.status_code, response.json()) == (502, {"error": NOT_A_DICTIONARY})
    assert "but this is the last line" in native_proxy.stdout()


def test_native_code_without_shebang_fails_init(native_proxy: RunningProxy) -> None:
    response = native_proxy.init("echo '{}'\n")
    assert (response.status_code, response.json()) == (502, {"error": INIT_FAILED})


def test_native_zip_with_exec_and_a_helper(native_proxy: RunningProxy) -> None:
    code = zip_b64(
        {"exec": '#!/bin/sh\n. ./lib.sh\necho "{\\"v\\": \\"$(value)\\"}"\n', "lib.sh": "value() { echo zipped; }\n"},
        modes={"exec": 0o644},  # not executable in the zip: the proxy makes it so
    )
    assert native_proxy.init(code, binary=True).status_code == 200
    assert native_proxy.run().json() == {"v": "zipped"}


def test_python_image_runs_a_binary_executable_natively(proxy: RunningProxy) -> None:
    code = base64.b64encode(b"#!/bin/sh\necho '{\"native\": true}'\n").decode()
    assert proxy.init(code, binary=True).status_code == 200
    assert proxy.run().json() == {"native": True}


def test_python_image_runs_a_zip_with_exec_natively(proxy: RunningProxy) -> None:
    code = zip_b64({"exec": "#!/bin/sh\necho '[1, 2]'\n"}, modes={"exec": 0o755})
    assert proxy.init(code, binary=True).status_code == 200
    assert proxy.run().json() == [1, 2]


def test_large_params_reach_a_native_action_on_stdin(native_proxy: RunningProxy) -> None:
    native_proxy.init('#!/bin/sh\nwc -c | tr -d " \\n" | sed \'s/.*/{"bytes": &}/\'\n')
    big = {"blob": "x" * 300_000}
    assert native_proxy.run(big).json() == {"bytes": len(json.dumps(big))}


# --- HTTP ---------------------------------------------------------------------------------------------


def test_keep_alive_runs_do_not_stall(proxy: RunningProxy) -> None:
    proxy.init(HELLO)
    proxy.run()
    started = time.perf_counter()
    for _ in range(50):
        assert proxy.run({"name": "x"}).status_code == 200
    # Nagle + delayed ACK would cost ~40 ms per answer on a reused connection.
    assert (time.perf_counter() - started) / 50 < 0.015


def test_runs_are_serialised(proxy: RunningProxy) -> None:
    proxy.init(
        "import time, threading\nactive = []\npeak = [0]\n"
        "def main(args):\n    active.append(1)\n    peak[0] = max(peak[0], len(active))\n"
        "    time.sleep(0.05)\n    active.pop()\n    return {'peak': peak[0]}\n"
    )
    base_url = str(proxy.client.base_url)
    results: list[int] = []

    def invoke() -> None:
        with httpx.Client(base_url=base_url, timeout=10) as client:
            results.append(client.post("/run", json={"value": {}}).json()["peak"])

    threads = [threading.Thread(target=invoke) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [1, 1, 1, 1]


def test_chunked_request_body_is_read(proxy: RunningProxy) -> None:
    proxy.init(HELLO)
    body = json.dumps({"value": {"name": "Chunk"}}).encode()
    response = proxy.client.post("/run", content=iter([body[:10], body[10:]]))
    assert response.json() == {"greeting": "Hello, Chunk!"}


def test_malformed_json_is_400(proxy: RunningProxy) -> None:
    for path in ("/init", "/run"):
        response = proxy.client.post(path, content=b"{not json")
        assert response.status_code == 400
        assert response.json()["error"].startswith("Error unmarshaling request")


def test_malformed_http_is_400_and_closes_the_connection(proxy: RunningProxy) -> None:
    port = proxy.client.base_url.port
    assert port is not None
    for request in (b"GARBAGE\r\n\r\n", b"POST /run HTTP/1.1\r\nContent-Length: ten\r\n\r\n"):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            conn.sendall(request)
            answer = b""
            while chunk := conn.recv(4096):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 400 ")
    assert proxy.stderr() == ""


def test_unknown_paths_and_methods_are_refused(proxy: RunningProxy) -> None:
    assert proxy.client.get("/").status_code == 404
    assert proxy.client.post("/stop").status_code == 404
    assert proxy.client.get("/run").status_code == 405


def test_sigterm_stops_the_proxy_at_once(proxy: RunningProxy) -> None:
    proxy.process.terminate()
    assert proxy.process.wait(timeout=2) == 0
