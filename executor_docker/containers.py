"""The Docker side of the executor: blocking docker SDK calls, which the executor runs on its pool.

It uses the SDK's low-level ``APIClient``: ``containers.create`` of the high-level client inspects the
container again after creating it, an extra round trip to dockerd on every cold start.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import docker
import docker.errors
from docker.types import HostConfig, LogConfig, Ulimit

from executor_docker.settings import DockerSettings
from pywhisk.errors import ActionStartupError, ExecutorError

PYTHON_IMAGE = "pywhisk/action-python-v3.11:latest"
NODEJS_IMAGE = "pywhisk/action-nodejs-v18:latest"
SKELETON_IMAGE = "pywhisk/dockerskeleton:latest"  # blackbox without an image: OpenWhisk's native skeleton
PROXY_PORT = 8080
OWNER_LABEL = "pywhisk.owner"
INSTANCE_LABEL = "pywhisk.instance"
# A blackbox image found missing is not asked for again for this long: without a registry it cannot
# appear by itself, and each ``docker create`` of a missing image costs dockerd CPU that other tenants'
# containers share (issue 12: "noimage"). ``docker build``/``load`` of it is seen after at most this.
MISSING_IMAGE_TTL_S = 10.0
_MAX_MISSING_IMAGES = 1024

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StartedContainer:
    """A started container: where its proxy listens, its attach stream and its OOM counter."""

    container_id: str
    ip: str
    attach: socket.socket
    # The cgroup file that counts the container's OOM kills; None where the invoker cannot see it.
    oom_counter: Path | None


@dataclass(frozen=True, slots=True)
class PostMortem:
    """What became of a container after a failed ``/init`` or ``/run``."""

    memory_exhausted: bool
    running: bool


class DockerHost:
    """The containers of one invoker on one Docker daemon, all labelled with its ``owner`` name."""

    def __init__(self, client: docker.DockerClient, owner: str, settings: DockerSettings | None = None) -> None:
        self.client = client
        self.api = client.api
        self.owner = owner
        self.settings = settings or DockerSettings()
        self._missing: dict[str, float] = {}  # image → monotonic time until which it is known missing

    def start_container(
        self,
        instance_id: str,
        image: str,
        memory_mb: int,
        cpu_shares: int,
        users_image: bool = False,
        runtime: str | None = None,
    ) -> StartedContainer:
        """``docker create`` + attach + ``docker start`` + inspect; removes what it made if a step fails.

        ``users_image``: the image is a ``blackbox`` action's own, so that it missing or not starting is
        the action's fault (``ActionStartupError``), where a runtime image of the platform's is not.
        ``runtime``: the OCI runtime dockerd runs it with (``runc``, ``crun``); None is the setting's.
        """
        if users_image and self._missing.get(image, 0.0) > time.monotonic():
            raise ActionStartupError(image_pull_error(image))
        try:
            created = self.api.create_container(
                image,
                detach=True,
                labels={OWNER_LABEL: self.owner, INSTANCE_LABEL: instance_id},
                host_config=self.host_config(memory_mb, cpu_shares, runtime or self.settings.runtime),
            )
        except docker.errors.ImageNotFound:
            if users_image:  # [OW] DockerContainer.create: BlackboxStartupError(Messages.imagePullError)
                self._remember_missing(image)
                raise ActionStartupError(image_pull_error(image)) from None
            # No registry is assumed (measurements.md): pywhisk's runtime images are built locally.
            raise ExecutorError(f"image {image} not found; run deploy/local/build-images") from None
        except docker.errors.APIError as error:
            if users_image and error.status_code == 400:  # e.g. "invalid reference format"
                self._remember_missing(image)
                raise ActionStartupError(image_pull_error(image)) from None
            raise ExecutorError(f"docker create {image} failed: {error}") from error
        except docker.errors.DockerException as error:
            raise ExecutorError(f"docker create {image} failed: {error}") from error
        container_id: str = created["Id"]
        attach: socket.socket | None = None
        try:
            # Attach before start: nothing the proxy writes is missed, and nothing but the HTTP
            # response head can be sitting in the SDK's read buffer when the socket is handed over.
            attach = self._attach(container_id)
            self.api.start(container_id)
            state = self.api.inspect_container(container_id)
            ip = _container_ip(state)
            return StartedContainer(container_id, ip, attach, _oom_counter(int(state["State"]["Pid"])))
        except Exception as error:
            if attach is not None:
                attach.close()
            try:
                self.remove(container_id)
            except Exception as cleanup:  # the first error is the one to report
                logger.warning("removing the failed container %s: %s", container_id[:12], cleanup)
            if isinstance(error, ExecutorError):
                raise
            if users_image and isinstance(error, docker.errors.APIError) and error.status_code == 400:
                # dockerd answers 400 when the image's own configuration cannot start (measured: an
                # entrypoint that does not exist, "OCI runtime create failed ... exec: ... no such file").
                logger.info("the image %s of an action does not start: %s", image, error)
                raise ActionStartupError(image_start_error(image)) from None
            raise ExecutorError(f"starting a container of {image} failed: {error}") from error

    def _remember_missing(self, image: str) -> None:
        now = time.monotonic()
        if len(self._missing) >= _MAX_MISSING_IMAGES:  # bounded: drop what expired, or everything
            self._missing = {i: until for i, until in self._missing.items() if until > now}
            if len(self._missing) >= _MAX_MISSING_IMAGES:
                self._missing.clear()
        self._missing[image] = now + MISSING_IMAGE_TTL_S

    def known_runtimes(self) -> set[str]:
        """The OCI runtimes dockerd can start containers with (``docker info`` Runtimes)."""
        try:
            return set(self.api.info().get("Runtimes") or {})
        except docker.errors.DockerException as error:
            raise ExecutorError(f"docker info failed: {error}") from error

    def host_config(self, memory_mb: int, cpu_shares: int, runtime: str = "runc") -> HostConfig:
        """OpenWhisk's run args (reference/openwhisk.md §5.5), no privileges, and a disk quota.

        overlay2 can only size a container's writable layer on xfs with project quotas (``docker info``
        here: overlay2 on extfs), so instead the root filesystem is read-only and the writable paths are
        sized tmpfs mounts (settings.py): nothing an action writes reaches the host's disk.
        """
        return self.api.create_host_config(
            read_only=True,
            tmpfs=self.settings.tmpfs(),
            mem_limit=f"{memory_mb}m",
            memswap_limit=f"{memory_mb}m",  # = mem_limit: no swap on top of the action's memory
            cpu_shares=cpu_shares,
            pids_limit=1024,
            ulimits=[Ulimit(name="nofile", soft=1024, hard=1024)],
            # The proxy binds 8080 (> 1024) and writes only files it owns: it needs no capability.
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            # Logs reach the executor over the attach stream; the json-file (for `docker logs`) is
            # capped so that an action printing forever in a warm container cannot fill the disk.
            log_config=LogConfig(type="json-file", config={"max-size": "10m", "max-file": "1"}),
            runtime=runtime,
        )

    def kill(self, container_id: str) -> None:
        """SIGKILL the container (it stays, for inspection, until ``remove``)."""
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            self.api.kill(container_id)  # APIError: it is no longer running

    def remove(self, container_id: str) -> None:
        """Kill and remove the container (one API call with ``force``); idempotent."""
        try:
            self.api.remove_container(container_id, force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as error:
            if error.status_code != 409:  # 409: a removal of it is already in progress
                raise ExecutorError(f"docker rm {container_id[:12]} failed: {error}") from error

    def pause(self, container_id: str) -> None:
        """Freeze the container's processes (``docker pause``)."""
        self._call(self.api.pause, container_id, "pause")

    def unpause(self, container_id: str) -> None:
        """Thaw the container's processes (``docker unpause``)."""
        self._call(self.api.unpause, container_id, "unpause")

    def post_mortem(self, container_id: str, oom_counter: Path | None) -> PostMortem:
        """Did the container run out of memory, and is it still running?

        The cgroup's OOM counter comes first: when the kernel kills an action's child process, the
        proxy survives and answers, and dockerd 20.10 never sets ``State.OOMKilled`` (measured here);
        for a container that died the counter is gone with its cgroup, and the flag is set.
        """
        oom_killed = _oom_kills(oom_counter) > 0
        try:
            state = self.api.inspect_container(container_id)["State"]
        except docker.errors.NotFound:
            return PostMortem(memory_exhausted=oom_killed, running=False)
        return PostMortem(memory_exhausted=oom_killed or bool(state["OOMKilled"]), running=bool(state["Running"]))

    def remove_owned(self) -> int:
        """Remove every container labelled with this owner (orphans of an earlier run); how many."""
        found = self.api.containers(all=True, quiet=True, filters={"label": f"{OWNER_LABEL}={self.owner}"})
        for container in found:
            self.remove(container["Id"])
        return len(found)

    def remove_owned_by_gone_invokers(self, first_gone: int, owner_of: Callable[[int], str]) -> int:
        """Remove the containers of invokers ``first_gone`` and up whose owner is ``owner_of(id)`` (standalone
        workers that no longer run); how many."""
        found = self.api.containers(all=True, quiet=False, filters={"label": OWNER_LABEL})
        gone = 0
        for container in found:
            owner = (container.get("Labels") or {}).get(OWNER_LABEL, "")
            match = re.fullmatch(r"invoker(\d+)@.*", owner)
            if match and int(match[1]) >= first_gone and owner == owner_of(int(match[1])):
                self.remove(container["Id"])
                gone += 1
        return gone

    def _attach(self, container_id: str) -> socket.socket:
        params = {"stdout": 1, "stderr": 1, "stream": 1}
        raw = self.api.attach_socket(container_id, params=params)
        inner = getattr(raw, "_sock", raw)  # the socket under the SDK's SocketIO
        if isinstance(inner, ssl.SSLSocket):  # a duplicate fd would lose the TLS session
            raw.close()
            raise ExecutorError("the docker executor needs dockerd on a unix socket or plain TCP, not TLS")
        # A duplicate the event loop owns outright; closing the SDK's objects leaves it connected.
        attach = cast(socket.socket, inner.dup())
        raw.close()
        inner.close()
        return attach

    def _call(self, method: Any, container_id: str, what: str) -> None:
        try:
            method(container_id)
        except docker.errors.DockerException as error:
            raise ExecutorError(f"docker {what} {container_id[:12]} failed: {error}") from error


def unknown_runtime_error(runtime: str, known: set[str]) -> str:
    """What to do when dockerd does not know the OCI runtime asked for."""
    return (
        f"dockerd does not know the OCI runtime {runtime!r} (it knows: {', '.join(sorted(known)) or 'none'}); "
        "deploy/local/dockerd.sh up installs Debian's crun and registers it"
    )


def image_pull_error(image: str) -> str:
    """[OW] Messages.imagePullError, word for word."""
    return f"Failed to pull container image '{image}'."


def image_start_error(image: str) -> str:
    """The image is there but its own configuration does not start (OpenWhisk has no text for it)."""
    return f"Failed to start container image '{image}'."


def _container_ip(state: dict[str, Any]) -> str:
    settings = state["NetworkSettings"]
    ip = settings.get("IPAddress") or next(
        (net["IPAddress"] for net in (settings.get("Networks") or {}).values() if net.get("IPAddress")), ""
    )
    if not ip:
        raise ExecutorError("the container has no IP address (is it on a bridge network?)")
    return str(ip)


def _oom_counter(pid: int) -> Path | None:
    """The cgroup file counting the OOM kills of the container whose init process is ``pid``."""
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return None  # the invoker runs in another pid namespace
    paths: dict[str, str] = {}
    for line in lines:  # "4:memory:/docker/<id>" (v1) or "0::/docker/<id>" (v2)
        _, controllers, path = line.split(":", 2) if line.count(":") >= 2 else ("", "-", "")
        paths.setdefault(controllers, path)
    if "memory" in paths:  # cgroup v1: oom_kill in memory.oom_control (kernel >= 4.13)
        candidate = Path("/sys/fs/cgroup/memory") / paths["memory"].lstrip("/") / "memory.oom_control"
    elif "" in paths:  # cgroup v2: oom_kill in memory.events
        candidate = Path("/sys/fs/cgroup") / paths[""].lstrip("/") / "memory.events"
    else:
        return None
    return candidate if os.access(candidate, os.R_OK) else None


def _oom_kills(counter: Path | None) -> int:
    if counter is None:
        return 0
    try:
        for line in counter.read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
    except (OSError, ValueError):
        pass  # the cgroup went with the container
    return 0
