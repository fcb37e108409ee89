"""The runtime manifest: which exec kinds exist and which executor serves each (like runtimes.json)."""

from __future__ import annotations

import json
from importlib.resources import files

from pydantic import BaseModel, Field

from pywhisk.errors import BadRequest


class StemCellConfig(BaseModel):
    """Prewarmed instances to keep ready: ``{"count": 2, "memory": 256}`` (memory in MB)."""

    count: int
    memory: int = 256


class Runtime(BaseModel):
    kind: str
    executor: str
    default: bool = False
    binary: bool = False
    image: str | None = None
    # Docker kinds: the OCI runtime of their containers (``runc``, ``crun``), over the deployment's
    # PYWHISK_DOCKER_RUNTIME; None follows that setting. The Docker executor checks the name.
    containerRuntime: str | None = None
    aliases: list[str] = Field(default_factory=list)
    stemCells: list[StemCellConfig] = Field(default_factory=list)


class RuntimeManifest(BaseModel):
    """Kinds grouped by family (``wasm``, ``python``, ...), as in OpenWhisk's runtimes.json."""

    runtimes: dict[str, list[Runtime]]

    @classmethod
    def load_default(cls) -> RuntimeManifest:
        text = files("pywhisk").joinpath("runtimes.json").read_text()
        return cls.model_validate(json.loads(text))

    def all_runtimes(self) -> list[Runtime]:
        return [runtime for family in self.runtimes.values() for runtime in family]

    def _by_name(self) -> dict[str, Runtime]:
        table: dict[str, Runtime] = {}
        for family, runtimes in self.runtimes.items():
            for runtime in runtimes:
                table[runtime.kind] = runtime
                for alias in runtime.aliases:
                    table[alias] = runtime
                if runtime.default:
                    table[f"{family}:default"] = runtime
        return table

    def resolve(self, kind: str) -> Runtime:
        """The runtime for ``kind`` (aliases and ``family:default`` included), or 400."""
        table = self._by_name()
        if kind not in table:
            valid = ", ".join(sorted(table))
            raise BadRequest(
                f"The specified runtime '{kind}' is not supported by this platform. Valid values are: {valid}"
            )
        return table[kind]

    def names(self, runtime: Runtime) -> list[str]:
        """Every name ``resolve`` maps to ``runtime``: its kind, its aliases, ``family:default``."""
        return [name for name, found in self._by_name().items() if found is runtime]

    def executor_for(self, kind: str) -> str:
        return self.resolve(kind).executor
