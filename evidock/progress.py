"""A rich progress bar for interactive offloads (files, bytes, throughput)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from ingest.outcome import FileOutcome


class RichProgress:
    def __init__(self, console: Console) -> None:
        self._bar = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn(),
            console=console, transient=False,
        )
        self._files: TaskID | None = None
        self._bytes: TaskID | None = None

    def start(self, files: int, total_bytes: int) -> None:
        self._bar.start()
        self._files = self._bar.add_task("files", total=files)
        self._bytes = self._bar.add_task("bytes", total=total_bytes)

    def file_started(self, display: str, size: int) -> None:
        if self._files is not None:
            self._bar.update(self._files, description=display[-40:])

    def advance(self, nbytes: int) -> None:
        if self._bytes is not None:
            self._bar.advance(self._bytes, nbytes)

    def file_done(self, outcome: FileOutcome) -> None:
        if self._files is not None:
            self._bar.advance(self._files, 1)
        if outcome.status not in ("ingested", "duplicate"):
            self._bar.console.print(f"[yellow]{outcome.status}[/] {outcome.code} "
                                    f"{outcome.display}: {outcome.reason}")

    def stop(self) -> None:
        self._bar.stop()
