"""The raw files every experiment writes to its ``--out`` directory, and reading them back.

- ``activations.jsonl``: one JSON object per measured activation (:class:`ActivationRow`), appended as it completes.
- ``summary.json``: the experiment, its parameters, the machine, the API host, per-level windows or outcomes, and
  whether it completed. Written when the experiment starts and rewritten when it ends.
- ``resources.jsonl`` (capacity only): CPU and memory samples, see :mod:`loadgen.resources`.

``loadgen report`` works from these files alone.
"""

from __future__ import annotations

import gzip
import json
import os
import platform
import sys
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Self, TypeVar

from loadgen import __version__
from loadgen.client import Invocation

ACTIVATIONS_FILE = "activations.jsonl"
SUMMARY_FILE = "summary.json"
RESOURCES_FILE = "resources.jsonl"
R = TypeVar("R", bound="ActivationRow")


@dataclass(frozen=True)
class ActivationRow:
    """One measured activation. Times in milliseconds; ``issued_s``/``completed_s`` from the run's start.

    ``waitTime``, ``initTime`` and ``duration`` come from the activation record (None without one; ``initTime`` is
    None on a warm start); ``client_ms`` is the blocking invoke's latency seen by the client.
    """

    experiment: str
    executor: str
    level: int
    run: int
    action: str
    activationId: str | None
    client_ms: float
    waitTime: float | None
    initTime: float | None
    duration: float | None
    status: str
    http_status: int | None
    start: int | None = None
    end: int | None = None
    issued_s: float = 0.0
    completed_s: float = 0.0
    error: str | None = None
    polled: bool = False
    blocking: bool = True

    @property
    def cold(self) -> bool:
        """A cold start: the record has an ``initTime`` annotation."""
        return self.initTime is not None

    @property
    def cold_start_ms(self) -> float | None:
        """The thesis's cold-start metric, ``waitTime + initTime`` (reference §6.1), or None when not cold."""
        if self.waitTime is None or self.initTime is None:
            return None
        return self.waitTime + self.initTime

    @property
    def succeeded(self) -> bool:
        """A successful activation answered within the blocking wait (non-blocking invokes: recorded as one)."""
        if not self.blocking:
            return self.status == "success"
        return self.http_status == 200 and self.status == "success" and not self.polled

    @classmethod
    def from_invocation(
        cls, invocation: Invocation, *, experiment: str, executor: str, level: int, run: int, origin: float
    ) -> Self:
        """The row of ``invocation``; ``origin`` is the monotonic time the run started."""
        record = invocation.record or {}
        return cls(
            experiment=experiment,
            executor=executor,
            level=level,
            run=run,
            action=invocation.action,
            activationId=invocation.activation_id,
            client_ms=round(invocation.client_ms, 3),
            waitTime=_number(invocation.annotation("waitTime")),
            initTime=_number(invocation.annotation("initTime")),
            duration=_number(record.get("duration")),
            status=invocation.status,
            http_status=invocation.http_status,
            start=_int(record.get("start")),
            end=_int(record.get("end")),
            issued_s=round(invocation.issued_at - origin, 6),
            completed_s=round(invocation.completed_at - origin, 6),
            error=invocation.error,
            polled=invocation.polled,
            blocking=invocation.blocking,
        )

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        """A row from its JSON object; unknown keys are ignored, so newer files stay readable."""
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})


@dataclass(frozen=True)
class IsolationRow(ActivationRow):
    """A request of the noisy-neighbour experiment (``loadgen isolation``): a victim's hello or an attacker's call.

    ``level`` is the index of the phase (``summary.json``'s ``phases``) the request was issued in, ``phase`` its
    name; ``operation`` is ``invoke``, ``create``, ``delete`` or ``list``; ``message`` is what the server said
    went wrong (the record's ``response.result.error`` or the HTTP error); ``expected`` says whether an
    attacker's outcome is one its class allows (None for the victim, whose every non-success is an error).
    """

    tenant: str = "victim"
    phase: str = ""
    attack: str | None = None
    operation: str = "invoke"
    message: str | None = None
    expected: bool | None = None


class RunWriter:
    """Writes one experiment's raw files into ``out``: rows as they come, the summary at start and end."""

    def __init__(self, out: Path, summary: dict[str, Any]) -> None:
        self.out = out
        self.summary = summary
        out.mkdir(parents=True, exist_ok=True)
        self._rows: IO[str] = (out / ACTIVATIONS_FILE).open("w", encoding="utf-8")
        self.count = 0
        self.write_summary()

    def add(self, row: ActivationRow) -> None:
        """Append one row (flushed, so a crashed run keeps what it measured)."""
        self._rows.write(json.dumps(asdict(row), separators=(",", ":")) + "\n")
        self._rows.flush()
        self.count += 1

    def write_summary(self) -> None:
        """(Re)write ``summary.json`` from :attr:`summary`."""
        path = self.out / SUMMARY_FILE
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.summary, indent=2, default=str) + "\n", encoding="utf-8")
        tmp.replace(path)

    def close(self, status: str, error: str | None = None) -> None:
        """Finish: record the status (``complete``/``failed``/``interrupted``), the end time and the row count."""
        self._rows.close()
        self.summary["status"] = status
        self.summary["finished"] = now_iso()
        self.summary["activations"] = self.count
        if error:
            self.summary["error"] = error
        self.write_summary()


def raw_file(path: Path) -> Path | None:
    """``path``, or its gzipped copy ``path.gz`` (how raw files are archived, e.g. in docs/), if either exists."""
    for candidate in (path, path.with_name(path.name + ".gz")):
        if candidate.is_file():
            return candidate
    return None


def _open_text(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open(encoding="utf-8")


def load_rows(run_dir: Path, row_type: type[R] = ActivationRow) -> list[R]:  # type: ignore[assignment]
    """Every row of ``run_dir/activations.jsonl`` or ``.jsonl.gz`` (a truncated last line from a crash is skipped)."""
    rows: list[R] = []
    path = raw_file(run_dir / ACTIVATIONS_FILE)
    if path is None:
        return rows
    with _open_text(path) as lines:
        for line in lines:
            if not line.strip():
                continue
            try:
                rows.append(row_type.from_json(json.loads(line)))
            except json.JSONDecodeError:
                continue
    return rows


def load_summary(run_dir: Path) -> dict[str, Any]:
    """``run_dir/summary.json``."""
    data: dict[str, Any] = json.loads((run_dir / SUMMARY_FILE).read_text(encoding="utf-8"))
    return data


def load_jsonl(path: Path) -> list[dict[str, Any]]:
    """The objects of a JSONL file (or of its ``.gz``); none if it does not exist."""
    found = raw_file(path)
    if found is None:
        return []
    items = []
    with _open_text(found) as text:
        lines = text.read().splitlines()
    for line in lines:
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(item, dict):
            items.append(item)
    return items


def now_iso() -> str:
    """The current UTC time, ISO 8601 with seconds."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def machine_info() -> dict[str, Any]:
    """The machine the load generator runs on: CPU count and model, memory, OS, Python, loadgen version, date."""
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_bytes": _memory_bytes(),
        "platform": platform.platform(),
        "hostname": platform.node(),
        "python": sys.version.split()[0],
        "loadgen": __version__,
        "date": now_iso(),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
