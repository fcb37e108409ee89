"""The OCI runtime of action containers (issue 17): ``PYWHISK_DOCKER_RUNTIME`` per deployment, a kind's
``containerRuntime`` in runtimes.json over it, and a clear refusal when dockerd does not know the one asked for.

Which runtime a real container runs under is tested against dockerd in
tests/integration/test_docker_executor.py (``HostConfig.Runtime``)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import docker
import pydantic
import pytest

from executor_docker.containers import DockerHost
from executor_docker.plugin import create_executor, pinned_runtimes
from executor_docker.settings import DockerSettings
from pywhisk.errors import ExecutorError
from pywhisk.executor import ExecutorEnvironment
from pywhisk.runtimes import RuntimeManifest

pytestmark = [pytest.mark.unit]


def test_the_deployment_runs_containers_under_runc_unless_told_crun(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYWHISK_DOCKER_RUNTIME", raising=False)
    assert DockerSettings().runtime == "runc"
    monkeypatch.setenv("PYWHISK_DOCKER_RUNTIME", "crun")
    assert DockerSettings().runtime == "crun"


@pytest.mark.parametrize("value", ["", "kata", "CRUN", "crun ", "/usr/bin/crun"])
def test_a_runtime_setting_other_than_runc_or_crun_is_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("PYWHISK_DOCKER_RUNTIME", value)
    with pytest.raises(pydantic.ValidationError, match="runtime"):
        DockerSettings()


class RecordingApi:
    """``APIClient`` whose ``create_container`` records the host config and then fails like a missing image."""

    def __init__(self) -> None:
        self.host_configs: list[dict[str, Any]] = []
        self.real = docker.APIClient(base_url="unix:///nonexistent.sock", version="1.41")  # builds configs, no I/O

    def create_host_config(self, **options: Any) -> dict[str, Any]:
        config: dict[str, Any] = self.real.create_host_config(**options)
        return config

    def create_container(self, image: str, **options: Any) -> dict[str, str]:
        self.host_configs.append(options["host_config"])
        raise docker.errors.ImageNotFound(f"No such image: {image}")


@pytest.mark.parametrize(
    ("setting", "asked", "expected"), [("runc", None, "runc"), ("crun", None, "crun"), ("runc", "crun", "crun")]
)
def test_the_container_is_created_with_the_kinds_runtime_else_the_settings(
    setting: str, asked: str | None, expected: str
) -> None:
    api = RecordingApi()
    host = DockerHost(SimpleNamespace(api=api), owner="test", settings=DockerSettings(runtime=setting))  # type: ignore[arg-type]
    with pytest.raises(ExecutorError):
        host.start_container("i", "img:1", 256, 2, runtime=asked)
    assert api.host_configs[0]["Runtime"] == expected


def manifest(python: dict[str, Any]) -> RuntimeManifest:
    return RuntimeManifest.model_validate(
        {
            "runtimes": {
                "python": [
                    {"kind": "python:3.11", "executor": "docker", "default": True, "aliases": ["python:3"], **python}
                ],
                "nodejs": [{"kind": "nodejs:18", "executor": "docker", "default": True}],
                "wasm": [{"kind": "wasm:wasi", "executor": "wasm", "containerRuntime": "crun"}],
            }
        }
    )


def test_a_kind_pinned_in_the_manifest_pins_its_aliases_and_default_name_too() -> None:
    assert pinned_runtimes(manifest({"containerRuntime": "crun"})) == {
        "python:3.11": "crun",
        "python:3": "crun",
        "python:default": "crun",
    }


def test_kinds_without_a_container_runtime_follow_the_setting() -> None:
    assert pinned_runtimes(manifest({})) == {}
    assert manifest({}).resolve("python:3").containerRuntime is None
    assert pinned_runtimes(RuntimeManifest.load_default()) == {}, "the shipped manifest pins no kind"


class FakeClient:
    """``docker.from_env()`` of a daemon that answers and knows only ``runc``."""

    def __init__(self) -> None:
        self.api = SimpleNamespace(info=lambda: {"Runtimes": {"runc": {"path": "runc"}}})
        self.closed = False

    def ping(self) -> bool:
        return True

    def close(self) -> None:
        self.closed = True


def test_crun_asked_of_a_daemon_that_does_not_know_it_leaves_the_executor_out_with_the_remedy(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    client = FakeClient()
    monkeypatch.setattr(docker, "from_env", lambda **_: client)
    monkeypatch.setenv("PYWHISK_DOCKER_RUNTIME", "crun")
    with pytest.raises(
        ExecutorError,
        match=r"PYWHISK_DOCKER_RUNTIME=crun: dockerd does not know .*'crun' \(it knows: runc\).*dockerd.sh up",
    ):
        create_executor(ExecutorEnvironment(data_dir=tmp_path))
    assert client.closed

    monkeypatch.setenv("PYWHISK_DOCKER_RUNTIME", "runc")
    assert create_executor(ExecutorEnvironment(data_dir=tmp_path)).settings.runtime == "runc"
