"""Executor plugins: what the kernel gives each one, how they are loaded, and the WASM executor's own settings."""

from __future__ import annotations

import logging
from pathlib import Path

import pydantic
import pytest

import pywhisk.executor
from executor_wasm.settings import WasmSettings, module_cache_dir
from pywhisk.executor import Executor, ExecutorEnvironment, load_executors
from pywhisk.settings import Settings
from tests.doubles import ScriptedExecutor

pytestmark = pytest.mark.unit


def test_the_environment_is_the_invokers_facts_and_cannot_change(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, invoker_id=3, user_memory_mb=8192)

    environment = ExecutorEnvironment.from_settings(settings)

    assert environment == ExecutorEnvironment(data_dir=tmp_path, invoker_id=3, user_memory_mb=8192)
    with pytest.raises(pydantic.ValidationError):
        environment.invoker_id = 4


def test_every_plugin_is_built_with_the_environment_and_one_that_cannot_start_is_left_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    given: list[ExecutorEnvironment] = []
    scripted = ScriptedExecutor()

    def third_party(environment: ExecutorEnvironment) -> Executor:
        given.append(environment)
        return scripted

    def no_daemon(environment: ExecutorEnvironment) -> Executor:
        raise ConnectionError("no daemon answers")

    factories = {"firecracker": third_party, "docker": no_daemon}
    monkeypatch.setattr(pywhisk.executor, "load_executor_factories", lambda: factories)
    environment = ExecutorEnvironment(data_dir=tmp_path)

    with caplog.at_level(logging.WARNING):
        executors = load_executors(environment)

    assert executors == {"firecracker": scripted}
    assert given == [environment]
    assert "executor 'docker' is not available: no daemon answers" in caplog.text


def test_the_wasm_settings_keep_the_environment_names_pywhisk_has_always_used(monkeypatch: pytest.MonkeyPatch) -> None:
    names = {
        "PYWHISK_WASM_EXECUTOR_URL": "http://127.0.0.1:9000",
        "PYWHISK_WASM_THREADS": "3",
        "PYWHISK_WASM_MAX_RUNS": "50",
        "PYWHISK_WASM_EXECUTOR_PORT": "9123",
        "PYWHISK_PYTHON_WASM_CACHE_DIR": "/var/cache/python-wasm",
        "PYWHISK_WASM_GRANT_DIRS": '["/srv/shared"]',
        "PYWHISK_WASM_GRANT_ENV": '["TZ"]',
        "PYWHISK_WASM_GRANT_NET": "true",
    }
    for name, value in names.items():
        monkeypatch.setenv(name, value)

    settings = WasmSettings()

    assert settings == WasmSettings(
        executor_url="http://127.0.0.1:9000",
        threads=3,
        max_runs=50,
        executor_port=9123,
        python_cache_dir=Path("/var/cache/python-wasm"),
        grant_dirs=[Path("/srv/shared")],
        grant_env=["TZ"],
        grant_net=True,
    )


def test_the_wasm_defaults_grant_nothing_and_run_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("EXECUTOR_URL", "THREADS", "MAX_RUNS", "EXECUTOR_PORT", "GRANT_DIRS", "GRANT_ENV", "GRANT_NET"):
        monkeypatch.delenv(f"PYWHISK_WASM_{name}", raising=False)
    monkeypatch.delenv("PYWHISK_PYTHON_WASM_CACHE_DIR", raising=False)

    settings = WasmSettings()

    assert (settings.executor_url, settings.threads, settings.max_runs, settings.executor_port) == (None, 8, 4096, 9000)
    assert settings.python_cache_dir == Path.home() / ".cache" / "pywhisk" / "python-wasm"
    assert (settings.grant_dirs, settings.grant_env, settings.grant_net) == ([], [], False)


def test_bad_wasm_settings_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYWHISK_WASM_THREADS", "0")
    with pytest.raises(pydantic.ValidationError, match="threads"):
        WasmSettings()


def test_the_kernel_settings_hold_no_executor_knobs() -> None:
    assert not [name for name in Settings.model_fields if "wasm" in name]


def test_compiled_modules_live_under_the_data_directory(tmp_path: Path) -> None:
    assert module_cache_dir(tmp_path) == tmp_path / "modules"
