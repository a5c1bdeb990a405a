"""Progress reporting on stderr (rich), silent under --quiet or when stderr is not a terminal.

Library functions accept a ``Progress``; the default one does nothing, so library callers and
tests see no output. Methods are thread-safe (rich's are), as workers report from threads.
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.progress import Progress as RichProgress


class Progress:
    """No-op progress; the base for the terminal one."""

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def task(self, description: str, total: float | None, unit: str = "bytes") -> Any:
        return None

    def advance(self, task: Any, amount: float) -> None:
        return None

    def done(self, task: Any) -> None:
        """Mark a task complete (totals are estimates: table sizes on disk vs bytes dumped)."""
        return None

    def log(self, message: str) -> None:
        return None

    def warn(self, message: str) -> None:
        print(f"ybrewind: warning: {message}", file=sys.stderr)


class TerminalProgress(Progress):
    """Bars on stderr; plain lines when stderr is not a TTY."""

    def __init__(self) -> None:
        self.console = Console(stderr=True)
        self._rich = RichProgress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
            disable=not self.console.is_terminal,
        )

    def __enter__(self) -> TerminalProgress:
        self._rich.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._rich.stop()

    def task(self, description: str, total: float | None, unit: str = "bytes") -> TaskID:
        return self._rich.add_task(description, total=total)

    def advance(self, task: Any, amount: float) -> None:
        if task is not None:
            self._rich.advance(task, amount)

    def done(self, task: Any) -> None:
        if task is not None:
            completed = self._rich.tasks[task].completed if task < len(self._rich.tasks) else 0
            self._rich.update(task, total=completed or 1, completed=completed or 1)

    def log(self, message: str) -> None:
        self.console.print(message, highlight=False, markup=False)

    def warn(self, message: str) -> None:
        self.console.print(f"ybrewind: warning: {message}", highlight=False, markup=False, style="yellow")
