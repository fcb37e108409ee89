"""Entry point ``pywhisk.executors: docker`` (declared in pyproject.toml)."""

from __future__ import annotations

import docker

from executor_docker.containers import unknown_runtime_error
from executor_docker.executor import DOCKER_THREADS, DockerExecutor
from executor_docker.settings import DockerSettings
from pywhisk.errors import ExecutorError
from pywhisk.executor import ExecutorEnvironment
from pywhisk.runtimes import RuntimeManifest


def create_executor(environment: ExecutorEnvironment) -> DockerExecutor:
    """The Docker executor on the daemon of ``DOCKER_HOST`` (default: the local socket).

    Raises when no daemon answers, so that the invoker starts without this executor and actions of
    its kinds get a clear error instead of failing one by one; so does a daemon that does not know the
    deployment's OCI runtime (``PYWHISK_DOCKER_RUNTIME=crun`` before crun is registered). Its own settings
    are ``PYWHISK_DOCKER_*`` (settings.py); a kind's ``containerRuntime`` comes from runtimes.json.
    """
    settings = DockerSettings()
    # One HTTP connection to dockerd per pool thread, so that no thread waits for another's.
    client = docker.from_env(max_pool_size=DOCKER_THREADS)
    try:
        client.ping()
        known = set(client.api.info().get("Runtimes") or {})
        if settings.runtime not in known:
            raise ExecutorError(
                f"PYWHISK_DOCKER_RUNTIME={settings.runtime}: {unknown_runtime_error(settings.runtime, known)}"
            )
    except Exception:
        client.close()
        raise
    return DockerExecutor(environment, client, settings=settings, container_runtimes=pinned_runtimes())


def pinned_runtimes(manifest: RuntimeManifest | None = None) -> dict[str, str]:
    """Kind name (aliases included) → ``containerRuntime``, for the Docker kinds of runtimes.json that pin one."""
    manifest = manifest or RuntimeManifest.load_default()
    return {
        name: runtime.containerRuntime
        for runtime in manifest.all_runtimes()
        if runtime.executor == "docker" and runtime.containerRuntime
        for name in manifest.names(runtime)
    }
