"""A blackbox image found missing is not asked of dockerd again for a while (issue 12, the "noimage" attack):
each ``docker create`` of a missing image costs dockerd CPU every tenant's containers share."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import docker.errors
import pytest

from executor_docker import containers
from executor_docker.containers import DockerHost
from pywhisk.errors import ActionStartupError, ExecutorError

pytestmark = [pytest.mark.unit]


class CountingApi:
    """``APIClient.create_container`` that answers as dockerd does for an image it does not have."""

    def __init__(self) -> None:
        self.creates: list[str] = []

    def create_container(self, image: str, **_: Any) -> dict[str, str]:
        self.creates.append(image)
        raise docker.errors.ImageNotFound(f"No such image: {image}")

    def create_host_config(self, **_: Any) -> dict[str, Any]:
        return {}


def host(api: CountingApi) -> DockerHost:
    return DockerHost(SimpleNamespace(api=api), owner="test")  # type: ignore[arg-type]


def test_a_missing_users_image_is_remembered_until_the_ttl_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(containers.time, "monotonic", lambda: now[0])
    api = CountingApi()
    docker_host = host(api)

    for _ in range(5):
        with pytest.raises(ActionStartupError, match="Failed to pull container image 'nope:1'"):
            docker_host.start_container("i", "nope:1", 256, 2, users_image=True)
    assert api.creates == ["nope:1"]

    now[0] += containers.MISSING_IMAGE_TTL_S + 0.1
    with pytest.raises(ActionStartupError):
        docker_host.start_container("i", "nope:1", 256, 2, users_image=True)
    assert api.creates == ["nope:1", "nope:1"]


def test_a_missing_platform_image_is_asked_for_every_time() -> None:
    api = CountingApi()
    docker_host = host(api)

    for _ in range(2):
        with pytest.raises(ExecutorError, match="run deploy/local/build-images"):
            docker_host.start_container("i", "pywhisk/action-python-v3.11:latest", 256, 2)
    assert len(api.creates) == 2


def test_the_memory_of_missing_images_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(containers, "_MAX_MISSING_IMAGES", 3)
    docker_host = host(CountingApi())

    for n in range(10):
        with pytest.raises(ActionStartupError):
            docker_host.start_container("i", f"nope:{n}", 256, 2, users_image=True)
        assert len(docker_host._missing) <= 3
