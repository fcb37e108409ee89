"""The four experiments (reference §6-7): cold start, the closed-loop ramps (concurrency, mixed) and capacity.

Each takes a :class:`Context` (the client, the executor, where the actions are, where to write) and writes its raw
files through :class:`loadgen.records.RunWriter`; progress goes to a :class:`Reporter`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from loadgen.actions import Executor
from loadgen.client import WhiskClient
from loadgen.records import RunWriter, machine_info, now_iso


class Reporter(Protocol):
    """Where experiments report progress: one phase at a time, each with an optional total of steps."""

    def begin(self, description: str, total: float | None = None) -> None:
        """Start a phase (a level, a wait, a ramp)."""

    def advance(self, steps: float = 1) -> None:
        """Count steps of the current phase."""

    def describe(self, description: str) -> None:
        """Change the current phase's description."""

    def note(self, message: str) -> None:
        """A line worth keeping in the output (a level's outcome, a warning)."""

    def end(self) -> None:
        """The current phase is over."""


class SilentReporter:
    """A reporter that reports nothing (tests, library use)."""

    def begin(self, description: str, total: float | None = None) -> None:
        pass

    def advance(self, steps: float = 1) -> None:
        pass

    def describe(self, description: str) -> None:
        pass

    def note(self, message: str) -> None:
        pass

    def end(self) -> None:
        pass


@dataclass
class Context:
    """What every experiment needs."""

    client: WhiskClient
    executor: Executor
    actions_dir: Path
    out: Path
    reporter: Reporter = field(default_factory=SilentReporter)
    server_info: dict[str, Any] = field(default_factory=dict)

    def writer(self, experiment: str, parameters: dict[str, Any]) -> RunWriter:
        """A writer for ``out`` with the common summary fields filled in."""
        summary: dict[str, Any] = {
            "experiment": experiment,
            "executor": self.executor,
            "apihost": self.client.target.apihost,
            "server": self.server_info,
            "parameters": parameters,
            "machine": machine_info(),
            "started": now_iso(),
            "status": "running",
        }
        return RunWriter(self.out, summary)
