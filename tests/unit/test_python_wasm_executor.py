"""Python on the WASM executor without running wasm: kind selection, source decoding, answers."""

from __future__ import annotations

import base64
import io
import zipfile
from pathlib import Path

import pytest
import wasmtime

from executor_wasm.python import runner
from executor_wasm.python.build import runner_artifact, runner_digest
from executor_wasm.python.executor import PYTHON_KINDS, WasmPythonExecutor, decode_source
from executor_wasm.settings import WasmSettings, module_cache_dir
from invoker.pool import Pool
from invoker.proxy import ActivationRunner
from pywhisk.entities import Action, Exec, KeyValue
from pywhisk.runtimes import RuntimeManifest
from pywhisk.store.sqlite import SqliteStore
from tests.doubles import ScriptedExecutor

pytestmark = pytest.mark.unit


class _Docker(ScriptedExecutor):
    name = "docker"

    def kinds(self) -> set[str]:
        return {"python:3.11", "python:3", "python:default", "blackbox"}


def _action(kind: str, **annotations: str) -> Action:
    return Action(
        namespace="guest",
        name="a",
        exec=Exec(kind=kind, code="def main(args):\n    return {}\n"),
        annotations=[KeyValue(key=key, value=value) for key, value in annotations.items()],
    )


@pytest.fixture
def activation_runner(tmp_path: Path) -> ActivationRunner:
    """The invoker's per-activation runner, which chooses the executor of each action."""
    wasm = WasmPythonExecutor(WasmSettings(python_cache_dir=tmp_path / "cache"), module_cache_dir(tmp_path))
    return ActivationRunner(
        actions=SqliteStore(tmp_path / "store.sqlite3"),  # never read: choosing an executor reads no action
        pool=Pool(4096, 600.0, 10.0),
        executors={"wasm": wasm, "docker": _Docker()},
        manifest=RuntimeManifest.load_default(),
        max_record_bytes=7_000_000,
    )


@pytest.mark.parametrize("kind", sorted(PYTHON_KINDS))
def test_python_kinds_run_on_wasm_when_the_executor_annotation_says_so(
    activation_runner: ActivationRunner, kind: str
) -> None:
    chosen = activation_runner.executor_for(_action(kind, executor="wasm"))

    assert isinstance(chosen, WasmPythonExecutor)


@pytest.mark.parametrize("kind", sorted(PYTHON_KINDS))
def test_without_the_annotation_the_runtime_manifest_sends_python_to_docker(
    activation_runner: ActivationRunner, kind: str
) -> None:
    assert isinstance(activation_runner.executor_for(_action(kind)), _Docker)


def test_the_wasm_executor_still_serves_wasm_wasi(tmp_path: Path) -> None:
    executor = WasmPythonExecutor(WasmSettings(), module_cache_dir(tmp_path))

    assert {"wasm:wasi", "wasm:default"} | PYTHON_KINDS == executor.kinds()


def test_source_text_is_taken_as_is_and_a_zip_must_hold_only_main_py() -> None:
    assert decode_source("def main(a): return {}", binary=False) == "def main(a): return {}"
    assert decode_source(_zip({"__main__.py": "x = 1\n"}), binary=True) == "x = 1\n"

    with pytest.raises(ValueError, match=r"a zip must hold only __main__.py \(found: __main__.py, helper.py\)"):
        decode_source(_zip({"__main__.py": "", "helper.py": ""}), binary=True)
    with pytest.raises(ValueError, match="not a zip of Python source"):
        decode_source(base64.b64encode(b"not a zip").decode(), binary=True)
    with pytest.raises(ValueError, match="not a zip of Python source"):
        decode_source("***", binary=True)


def test_the_runner_artifact_is_keyed_by_guest_sources_and_engine(tmp_path: Path) -> None:
    path = runner_artifact(tmp_path)

    assert path.parent == tmp_path
    assert path.name.startswith(f"runner-{runner_digest()}-") and path.suffix == ".cwasm"
    assert runner_digest() == runner_digest()


def test_guest_answers_become_proxy_results() -> None:
    ok = runner._answer((200, '{"x": 1}'), ["log"])
    failed = runner._answer((502, '{"error": "The action did not return a dictionary or array."}'), [])
    memory = runner._answer((runner.MEMORY_EXHAUSTED, ""), ["before"])
    timed_out = runner._answer("timed out", [])
    trapped = runner._answer(wasmtime.WasmtimeError("boom"), [])

    assert (ok.status, ok.body, ok.logs) == (200, '{"x": 1}', ["log"])
    assert failed.status == 502 and "dictionary" in failed.body
    assert memory.status is None and memory.memory_exhausted and memory.logs == ["before"]
    assert timed_out.status is None and timed_out.timed_out
    assert trapped.status == 502 and "The action trapped: boom" in trapped.body


def _zip(members: dict[str, str]) -> str:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in members.items():
            archive.writestr(name, text)
    return base64.b64encode(buffer.getvalue()).decode()
