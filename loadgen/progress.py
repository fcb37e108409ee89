"""The rich progress display the CLI gives the experiments (a :class:`loadgen.experiments.Reporter`)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn


class RichReporter:
    """One progress bar for the current phase, on stderr; notes are printed above it and kept."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True, soft_wrap=True)
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
        )
        self._task: TaskID | None = None

    def __enter__(self) -> RichReporter:
        self._progress.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.end()
        self._progress.stop()

    def begin(self, description: str, total: float | None = None) -> None:
        self.end()
        self._task = self._progress.add_task(description, total=total)

    def advance(self, steps: float = 1) -> None:
        if self._task is not None:
            self._progress.advance(self._task, steps)

    def describe(self, description: str) -> None:
        if self._task is not None:
            self._progress.update(self._task, description=description)

    def note(self, message: str) -> None:
        self._progress.console.print(message, highlight=False)

    def end(self) -> None:
        if self._task is not None:
            self._progress.remove_task(self._task)
            self._task = None
