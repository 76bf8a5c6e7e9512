"""Group commit: audit events of many callers, one durable transaction.

An event that is not part of a larger write (a read, a refusal: :meth:`AuditLog.record`)
needs a transaction of its own, and a durable commit (SQLite ``synchronous=FULL``: an
fsync) costs about a millisecond, so one transaction per event caps the station at
about 1,000 events/s however many requests arrive together. Here each caller queues its
event and waits; one writer thread appends everything queued in one transaction (the
same sequence, chain and Merkle logic: :meth:`AuditLog.append_many`), commits, and only
then releases each caller with its own outcome. An event is therefore durable before
the request that caused it answers: a crash loses only events whose callers were still
waiting, and they get no answer.

Errors reach exactly the callers they concern: an event that is not valid fails alone;
a row the database refuses sends the batch back one event per transaction so the
others still commit; a transaction that cannot be made at all fails every caller in it.
The queue is bounded (callers wait for room: back-pressure, not unbounded memory), and
:meth:`GroupCommitter.close` refuses new events, commits everything queued, and stops.
"""

from __future__ import annotations

import copy
import threading
from collections import deque

from sqlalchemy.exc import SQLAlchemyError

from archive.audit.log import Appended, AuditLog, EventSpec
from archive.catalog.db import writer
from integrity.errors import AuditError, CatalogError, EvidockError

__all__ = ["GroupCommitter"]


class _Pending:
    """One caller's event and, once settled, its outcome."""

    __slots__ = ("_done", "event", "outcome")

    def __init__(self, event: EventSpec) -> None:
        self.event = event
        self.outcome: Appended | BaseException | None = None
        # A plain lock as a one-shot signal: cheaper than threading.Event.
        self._done = threading.Lock()
        self._done.acquire()

    def settle(self, outcome: Appended | BaseException) -> None:
        self.outcome = outcome
        self._done.release()

    def wait(self) -> Appended:
        self._done.acquire()
        if isinstance(self.outcome, Appended):
            return self.outcome
        assert self.outcome is not None
        raise _for_caller(self.outcome) from self.outcome


def _for_caller(exc: BaseException) -> BaseException:
    """The error to raise in one waiting thread: its own copy (several threads may raise
    an error shared by a batch, and raising sets the instance's traceback)."""
    if isinstance(exc, EvidockError):
        try:
            return copy.copy(exc)
        except Exception:  # noqa: BLE001 - a subclass that cannot be copied: wrap it
            pass
    return AuditError(f"audit event not recorded: {exc.__class__.__name__}: {exc}")


class GroupCommitter:
    """Commits queued audit events in batches on one writer thread (see module doc)."""

    def __init__(self, *, log: AuditLog, capacity: int = 4096, max_batch: int = 1024,
                 name: str = "audit-group-commit") -> None:
        if capacity < 1 or max_batch < 1:
            raise ValueError("capacity and max_batch must be at least 1")
        self.log, self.capacity, self.max_batch = log, capacity, max_batch
        self._engine = writer(log.catalog.engine)
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        self._queue: deque[_Pending] = deque()
        self._closed = False
        self.batches = 0  # transactions committed (for tests and the bench)
        self.high_water = 0  # the most events ever queued at once (≤ capacity)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def record(self, event: EventSpec) -> Appended:
        """Queue ``event`` and wait until it is committed (or failed: raised here)."""
        pending = _Pending(event)
        with self._not_full:
            while len(self._queue) >= self.capacity and not self._closed:
                self._not_full.wait()
            if self._closed:
                raise AuditError("the audit log is shutting down; the event was not "
                                 "recorded", action=event.action)
            self._queue.append(pending)
            self.high_water = max(self.high_water, len(self._queue))
            # notify_all: the writer, and anyone in wait_queued (tests, benches).
            self._not_empty.notify_all()
        return pending.wait()

    def wait_queued(self, count: int, timeout: float | None = None) -> bool:
        """Until at least ``count`` events wait in the queue (False on timeout)."""
        with self._not_empty:
            return self._not_empty.wait_for(lambda: len(self._queue) >= count, timeout)

    def close(self, timeout: float | None = None) -> None:
        """Refuse new events, commit every queued one, stop the writer."""
        with self._lock:
            self._closed = True
            self._not_empty.notify_all()
            self._not_full.notify_all()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    # ------------------------------------------------------------------ the writer

    def _run(self) -> None:
        try:
            while (batch := self._take()) is not None:
                self._commit(batch)
        finally:
            self._fail_queued()

    def _take(self) -> list[_Pending] | None:
        """The next batch (all queued, up to max_batch); None once closed and drained."""
        with self._not_empty:
            while not self._queue:
                if self._closed:
                    return None
                self._not_empty.wait()
            batch = [self._queue.popleft()
                     for _ in range(min(len(self._queue), self.max_batch))]
            self._not_full.notify(len(batch))
        return batch

    def _commit(self, batch: list[_Pending]) -> None:
        outcomes: list[Appended | BaseException]
        try:
            with self._engine.begin() as conn:  # SQLite: BEGIN IMMEDIATE
                outcomes = list(self.log.append_batch(conn, [p.event for p in batch]))
        except AuditError as exc:
            if len(batch) > 1:  # a row the database refused: find whose, alone
                for pending in batch:
                    self._commit([pending])
                return
            outcomes = [exc]
        except SQLAlchemyError as exc:  # no transaction: nobody's event is in
            outcomes = [CatalogError(f"catalog write failed: {exc.__class__.__name__}: "
                                     f"{exc}")] * len(batch)
        except BaseException as exc:  # noqa: BLE001 - never leave a caller waiting
            outcomes = [exc] * len(batch)
        else:
            self.batches += 1
        for pending, outcome in zip(batch, outcomes, strict=True):
            pending.settle(outcome)

    def _fail_queued(self) -> None:
        """Never leave a caller waiting on a writer that stopped."""
        with self._lock:
            self._closed = True
            left = list(self._queue)
            self._queue.clear()
            self._not_full.notify_all()
        for pending in left:
            pending.settle(AuditError("the audit writer stopped; the event was not "
                                      "recorded", action=pending.event.action))
