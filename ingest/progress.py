"""How an offload reports progress; the CLI and the dock daemon supply their own."""

from __future__ import annotations

from typing import Protocol

from ingest.outcome import FileOutcome


class Progress(Protocol):
    def start(self, files: int, total_bytes: int) -> None: ...
    def file_started(self, display: str, size: int) -> None: ...
    def advance(self, nbytes: int) -> None: ...
    def file_done(self, outcome: FileOutcome) -> None: ...


class NullProgress:
    def start(self, files: int, total_bytes: int) -> None:
        return None

    def file_started(self, display: str, size: int) -> None:
        return None

    def advance(self, nbytes: int) -> None:
        return None

    def file_done(self, outcome: FileOutcome) -> None:
        return None
