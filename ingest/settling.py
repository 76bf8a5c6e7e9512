"""The settling thread of an offload: file N is verified, judged, committed and wiped
while file N+1 is copied from the camera (ingest/offload.py)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from ingest.outcome import FileOutcome
from ingest.progress import Progress

T = TypeVar("T")


class Settling:
    """One thread that settles files in camera order while the next one is copied.

    At most one file is settling at a time: :meth:`submit` follows a :meth:`drain`, so
    a file is copied only while the one before it is verified, judged and committed,
    and commits and wipes stay in camera order. Leaving waits for the file in hand.
    """

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="offload-settle")
        self._ahead = ThreadPoolExecutor(max_workers=1, thread_name_prefix="offload-check")
        self._pending: Future[FileOutcome] | None = None

    def __enter__(self) -> Settling:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True)  # never leave a file half-settled behind
        self._ahead.shutdown(wait=True)  # nor a check reading a staged file

    def ahead(self, judge: Callable[..., T], *args: object, **kwargs: object) -> Future[T]:
        """Start a read-only judgement of a copied file (its media check) on a thread of
        its own, so that it runs while the file is fsynced and re-read from the disk. The
        copying thread calls this once per file as its last byte is written; one thread
        runs them, in camera order, at most one at a time."""
        return self._ahead.submit(judge, *args, **kwargs)

    def submit(self, settle: Callable[..., FileOutcome], *args: object) -> None:
        assert self._pending is None, "drain before submitting"
        self._pending = self._pool.submit(settle, *args)

    def drain(self, outcomes: list[FileOutcome], progress: Progress) -> None:
        """Wait for the settling file; its outcome joins ``outcomes`` (its error is
        raised here, in the offload's thread)."""
        pending, self._pending = self._pending, None
        if pending is not None:
            outcomes.append(pending.result())
            progress.file_done(outcomes[-1])


__all__ = ["Settling"]
