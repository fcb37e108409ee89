"""A real Docker daemon and pywhisk's runtime images for the tests that need containers.

Import the fixture where it is used::

    from tests.docker_service import docker_daemon  # noqa: F401

``docker_daemon`` runs ``deploy/local/dockerd.sh up`` (installs Debian's docker.io if needed, reuses a
daemon that answers, else starts one) and ``deploy/local/build-images`` (builds the runtime images from
Debian packages, or finds them up to date) once per session. The daemon is left running afterwards, like
the other local services: other sessions may be using it, and ``dockerd.sh down`` is for humans.
The tests skip only when Docker cannot be had on this machine (not root, or apt cannot install it).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DOCKERD_SH = REPO / "deploy" / "local" / "dockerd.sh"
BUILD_IMAGES = REPO / "deploy" / "local" / "build-images"
# Both scripts exit with 4 when Docker cannot be had here (not root, apt cannot install).
UNAVAILABLE = 4
# A cold build installs mmdebstrap and downloads ~25 MB of packages; dockerd may need installing too.
BUILD_TIMEOUT_S = 900


@dataclass(frozen=True)
class RuntimeImages:
    """The runtime images built for this session (``:latest`` tags of the local daemon)."""

    python: str = "pywhisk/action-python-v3.11:latest"
    native: str = "pywhisk/dockerskeleton:latest"
    build_seconds: float = 0.0
    build_output: str = ""


def run_script(script: Path, *args: str) -> str:
    """Run a deploy/local script; skip the test on status 4, fail it with the output on any other error."""
    result = subprocess.run(
        ["bash", str(script), *args],
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
        check=False,
    )
    output = result.stdout + result.stderr
    if result.returncode == UNAVAILABLE:
        reason = (result.stderr.strip().splitlines() or ["exit status 4"])[-1]
        pytest.skip(f"Docker is not available on this machine: {reason}")
    if result.returncode != 0:
        raise RuntimeError(f"{script.name} {' '.join(args)} failed ({result.returncode}):\n{output}")
    return output


@pytest.fixture(scope="session")
def docker_daemon() -> Iterator[RuntimeImages]:
    """A Docker daemon that answers, with pywhisk's runtime images built; yields the image names."""
    started = time.monotonic()
    output = run_script(DOCKERD_SH, "up")
    output += run_script(BUILD_IMAGES)
    yield RuntimeImages(build_seconds=time.monotonic() - started, build_output=output)
