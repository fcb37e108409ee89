"""Entry point ``pywhisk.executors: docker`` (declared in pyproject.toml)."""

from __future__ import annotations

import docker

from executor_docker.executor import DOCKER_THREADS, DockerExecutor
from executor_docker.settings import DockerSettings
from pywhisk.executor import ExecutorEnvironment


def create_executor(environment: ExecutorEnvironment) -> DockerExecutor:
    """The Docker executor on the daemon of ``DOCKER_HOST`` (default: the local socket).

    Raises when no daemon answers, so that the invoker starts without this executor and actions of
    its kinds get a clear error instead of failing one by one. Its own settings are ``PYWHISK_DOCKER_*``
    (settings.py).
    """
    # One HTTP connection to dockerd per pool thread, so that no thread waits for another's.
    client = docker.from_env(max_pool_size=DOCKER_THREADS)
    try:
        client.ping()
    except Exception:
        client.close()
        raise
    return DockerExecutor(environment, client, settings=DockerSettings())
