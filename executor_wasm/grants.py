"""What a ``wasm:wasi`` action may reach beyond its stdio: grants by annotation, bounded by the operator.

By default a module sees no files, no host environment and no network (DESIGN.md, kind ``wasm:wasi``).
An action asks for more with annotations, after WoW's capabilities
(reference/wow-and-thesis-benchmarks.md §2.2, §4), and gets it only where the operator's settings allow:

========================  ===========================================  ==================================
annotation                what it grants                               operator bound (``PYWHISK_*``)
========================  ===========================================  ==================================
``dir``: path or list     the host directory, preopened **read-only**  ``WASM_GRANT_DIRS``: directories
                          at the same path in the guest                (and their subdirectories) that
                                                                       may be granted; default none
``env``: name or list     those host environment variables, read      ``WASM_GRANT_ENV``: names that may
                          when the action is initialised               be granted; default none
``net_access``: true      WoW's ``http.get() -> i32`` import (the      ``WASM_GRANT_NET``: default false
                          host blocks 300 ms and returns 0)
========================  ===========================================  ==================================

"Network" means exactly that import: WASI preview 1 cannot open sockets (``sock_*`` calls work only
on preopened sockets, and the executor never preopens one), so no grant gives a module a real socket.
A request outside the operator's bounds fails the action's ``/init`` with a message saying why.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import wasmtime

from executor_wasm.settings import WasmSettings
from executor_wasm.sleeps import define_poll_oneoff, host_sleep
from executor_wasm.stdio import define_fd_write

DIR_ANNOTATION = "dir"
ENV_ANNOTATION = "env"
NET_ANNOTATION = "net_access"
# WoW's http.get stand-in: "Re-implement blocking http.get" (a 300 ms host sleep), reference §4.
HTTP_GET_BLOCK_S = 0.3


class GrantDenied(Exception):
    """An annotation asks for more than the operator allows; the message says what and why."""


@dataclass(frozen=True, slots=True)
class Grants:
    """What one action was granted: read-only preopens (guest path, host path), env, net."""

    preopens: tuple[tuple[str, str], ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    net_access: bool = False


NO_GRANTS = Grants()


class GrantPolicy:
    """The operator's bounds (from settings), applied to an action's annotations."""

    def __init__(self, dirs: Sequence[Path], env_names: Sequence[str], net: bool) -> None:
        # Resolved once: a grant is judged against where the allowed directories really are.
        self.dirs = tuple(Path(os.path.realpath(d)) for d in dirs)
        self.env_names = frozenset(env_names)
        self.net = net

    @classmethod
    def from_settings(cls, settings: WasmSettings) -> GrantPolicy:
        """The policy of ``PYWHISK_WASM_GRANT_DIRS``, ``_ENV`` and ``_NET``."""
        return cls(settings.grant_dirs, settings.grant_env, settings.grant_net)

    def grant(self, annotations: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> Grants:
        """The grants ``annotations`` ask for; raises :class:`GrantDenied` for anything not allowed."""
        if not any(key in annotations for key in (DIR_ANNOTATION, ENV_ANNOTATION, NET_ANNOTATION)):
            return NO_GRANTS
        preopens = tuple(self._dir(path) for path in _names(annotations.get(DIR_ANNOTATION), DIR_ANNOTATION))
        host_env = os.environ if environ is None else environ
        env: dict[str, str] = {}
        for name in _names(annotations.get(ENV_ANNOTATION), ENV_ANNOTATION):
            if name not in self.env_names:
                raise GrantDenied(f"The environment variable {name} is not granted by the operator.")
            if name in host_env:  # an allowed name the host does not set is simply absent
                env[name] = host_env[name]
        net = annotations.get(NET_ANNOTATION, False)
        if net not in (True, False, "true", "false", None):
            raise GrantDenied(f"The annotation {NET_ANNOTATION} must be true or false.")
        net_access = net in (True, "true")
        if net_access and not self.net:
            raise GrantDenied("Network access (net_access) is not granted by the operator.")
        return Grants(preopens=preopens, env=env, net_access=net_access)

    def _dir(self, requested: str) -> tuple[str, str]:
        if not os.path.isabs(requested):
            raise GrantDenied(f"The directory {requested} is not an absolute path.")
        guest = os.path.normpath(requested)
        real = Path(os.path.realpath(requested))
        # Judged on the resolved path: neither `..` nor a symlink in the request can leave the allow-list.
        if not any(real == allowed or allowed in real.parents for allowed in self.dirs):
            raise GrantDenied(f"The directory {requested} is not granted by the operator.")
        if not real.is_dir():
            raise GrantDenied(f"The directory {requested} does not exist on the invoker.")
        return guest, str(real)


def apply_preopens(wasi: wasmtime.WasiConfig, grants: Grants) -> None:
    """Preopen the granted directories read-only (directories and files alike are immutable)."""
    for guest, host in grants.preopens:
        wasi.preopen_dir(host, guest, fs_mutable=False)


def create_linker(engine: wasmtime.Engine, net_access: bool) -> wasmtime.Linker:
    """WASI preview 1, plus ``http.get`` when the action was granted ``net_access``.

    Without the grant the import is not defined at all, so a module that imports it fails to link
    at ``/init`` ("unknown import: `http::get` has not been defined"), as under WoW.
    """
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    define_poll_oneoff(linker)
    define_fd_write(linker)
    if net_access:
        linker.define_func("http", "get", wasmtime.FuncType([], [wasmtime.ValType.i32()]), _http_get)
    return linker


def _http_get() -> int:
    host_sleep(HTTP_GET_BLOCK_S)  # gives up the compute slot and ends at the run's deadline
    return 0


def _names(value: Any, annotation: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return list(value)
    raise GrantDenied(f"The annotation {annotation} must be a string or a list of strings.")
