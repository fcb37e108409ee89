"""``DockerSettings``: the Docker executor's own knobs, read from ``PYWHISK_DOCKER_*`` environment variables.

As ``executor_wasm/settings.py``: what only this executor reads lives here; the plugin reads it (plugin.py)
and tests pass one explicitly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# The OCI runtimes an action container can run under; dockerd must know them by these names.
ContainerRuntime = Literal["runc", "crun"]
# Who starts action containers: dockerd, or crun driven by the executor itself (oci.py).
ContainerEngine = Literal["dockerd", "crun-direct"]


class DockerSettings(BaseSettings):
    """Configuration of the Docker executor.

    Fields (environment variable, default):

    - ``tmpfs_mb`` (``PYWHISK_DOCKER_TMPFS_MB``, 64): the disk quota of an action container. Its root
      filesystem is read-only and each of ``writable_paths`` is a tmpfs of this size, so an action can
      never write to the host's disk; what it writes there is also charged to its memory limit (tmpfs
      pages belong to the container's memory cgroup), so the host's RAM is bounded too. A write past
      it fails inside the action with ENOSPC (docs/security.md "Disk").
    - ``writable_paths`` (``PYWHISK_DOCKER_WRITABLE_PATHS``, ``["/tmp"]``): the only writable
      directories of an action container (JSON list). pywhisk's runtime images write only to ``/tmp``
      (their ``HOME``, and the proxy's working directories); a ``blackbox`` image that writes elsewhere
      needs its path listed here.
    - ``runtime`` (``PYWHISK_DOCKER_RUNTIME``, ``runc``): the OCI runtime dockerd starts action containers
      with, ``runc`` or ``crun`` (Debian's, registered with dockerd by ``deploy/local/dockerd.sh``). A kind's
      ``containerRuntime`` in ``runtimes.json`` wins over it. Both run the same images under the same
      limits; crun starts a container ~20 ms sooner here (docs/benchmarks.md "crun beside runc").
    - ``engine`` (``PYWHISK_DOCKER_ENGINE``, ``dockerd``): ``crun-direct`` starts the containers of actions
      annotated ``network: false`` with crun itself, without dockerd (oci.py; docs/deployment.md "Fresh
      containers without dockerd"); every other container still goes through dockerd.
    - ``oci_cache_dir`` (``PYWHISK_DOCKER_OCI_CACHE_DIR``, ``~/.cache/pywhisk/oci``): the direct engine's
      exported image filesystems, one per image id, shared read-only by its containers.
    - ``oci_state_dir`` (``PYWHISK_DOCKER_OCI_STATE_DIR``, ``/run/pywhisk/oci``): its per-container bundles
      (``config.json`` and the proxy's socket directory); a tmpfs, as they die with the host.
    """

    model_config = SettingsConfigDict(env_prefix="PYWHISK_DOCKER_", extra="ignore")

    tmpfs_mb: int = Field(default=64, ge=1)
    writable_paths: list[str] = Field(default_factory=lambda: ["/tmp"])
    runtime: ContainerRuntime = "runc"
    engine: ContainerEngine = "dockerd"
    oci_cache_dir: Path = Path("~/.cache/pywhisk/oci")
    oci_state_dir: Path = Path("/run/pywhisk/oci")

    @field_validator("writable_paths")
    @classmethod
    def _absolute(cls, paths: list[str]) -> list[str]:
        for path in paths:
            if not path.startswith("/") or ":" in path or "," in path:
                raise ValueError(f"a writable path must be absolute, without ':' or ',': {path!r}")
        return paths

    def tmpfs(self) -> dict[str, str]:
        """Docker's ``--tmpfs`` mounts: sized, and executable (the native skeleton runs what it wrote)."""
        options = f"rw,exec,nosuid,nodev,size={self.tmpfs_mb}m,mode=1777"
        return {path: options for path in self.writable_paths}
