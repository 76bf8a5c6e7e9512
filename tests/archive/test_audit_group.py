"""Group commit of audit events: many callers, one transaction, each caller its outcome."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from audit_support import T0, attacker, make_log

from archive.audit.group import GroupCommitter
from archive.audit.log import Appended, AuditLog, EventSpec
from archive.audit.verify import verify_log
from integrity.errors import AuditError, CatalogError


def _event(i: int, **overrides: object) -> EventSpec:
    fields: dict[str, object] = {"actor": f"user:u{i % 7}", "action": "read.case.show",
                                 "subjects": [f"probe-{i}"], "details": {"i": i},
                                 "at": T0 + timedelta(microseconds=i)}
    fields.update(overrides)
    return EventSpec(**fields)  # type: ignore[arg-type]


def _together(n: int, call: Callable[[int], object]) -> list[object]:
    """``call(i)`` on n threads released at once; each result or raised error."""
    results: list[object] = [None] * n
    barrier = threading.Barrier(n)

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = call(i)
        except Exception as exc:  # noqa: BLE001 - the outcome under test
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
        assert not t.is_alive()
    return results


@contextmanager
def _committer(log: AuditLog, **kwargs: int) -> Iterator[GroupCommitter]:
    committer = GroupCommitter(log=log, **kwargs)
    try:
        yield committer
    finally:
        committer.close(timeout=60)
    assert not committer.running


@contextmanager
def _write_locked(db: Path) -> Iterator[None]:
    """Another connection holds the database's write lock (as a second writer would)."""
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        conn.execute("ROLLBACK")
        conn.close()


def _by_subject(log: AuditLog) -> dict[str, list[int]]:
    seen: dict[str, list[int]] = {}
    for seq in range(log.size()):
        event = log.event(seq)
        assert event is not None, f"gap at {seq}"
        seen.setdefault(event.subjects[0], []).append(seq)
    return seen


def test_concurrent_callers_each_get_their_event_exactly_once(tmp_path: Path) -> None:
    log = make_log(tmp_path, signer=False)
    with _committer(log) as committer:
        recorder = AuditLog(catalog=log.catalog, committer=committer)
        results = _together(200, lambda i: recorder.record(**vars(_event(i))))
    assert all(isinstance(r, Appended) for r in results), results
    seen = _by_subject(log)
    assert seen == {f"probe-{i}": [r.seq]  # type: ignore[union-attr]
                    for i, r in enumerate(results)}
    assert sorted(r.seq for r in results) == list(range(200))  # type: ignore[union-attr]
    assert committer.batches < 200, "concurrent events shared transactions"
    assert verify_log(log.catalog.engine, keyring=None).ok  # chain, leaves, order


def test_an_invalid_event_fails_alone_and_takes_no_number(tmp_path: Path) -> None:
    log = make_log(tmp_path, signer=False)
    with log.catalog.transaction() as s:
        out = log.append_many(s, [_event(0), _event(1, details={"x": 1.5}), _event(2),
                                  _event(3, subjects="not-a-list"),
                                  _event(4, details=None), _event(5, at="today")])
    assert [type(o).__name__ for o in out] == ["Appended", "AuditError", "Appended",
                                               "AuditError", "AuditError", "AuditError"]
    assert [o.seq for o in out if isinstance(o, Appended)] == [0, 1]
    with _committer(log) as committer:  # and through the committer, among others
        results = _together(30, lambda i: committer.record(
            _event(i + 10, details={"x": 1.5} if i == 7 else {"i": i})))
    failed = [i for i, r in enumerate(results) if not isinstance(r, Appended)]
    assert failed == [7] and "canonical JSON" in str(results[7])
    assert isinstance(results[7], AuditError)
    assert log.size() == 2 + 29 and verify_log(log.catalog.engine, keyring=None).ok


def _try(committer: GroupCommitter, event: EventSpec) -> object:
    try:
        return committer.record(event)
    except AuditError as exc:
        return exc


def test_a_row_the_database_refuses_fails_only_its_caller(tmp_path: Path) -> None:
    db = tmp_path / "catalog.sqlite3"
    log = make_log(tmp_path, signer=False)
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TRIGGER poison BEFORE INSERT ON auditevent "
                     "WHEN NEW.action = 'poison' BEGIN SELECT RAISE(ABORT, 'poisoned'); END")
    with _committer(log) as committer:
        results = _together(40, lambda i: committer.record(
            _event(i, action="poison" if i == 17 else "read.case.show")))
    failed = [i for i, r in enumerate(results) if isinstance(r, AuditError)]
    assert failed == [17] and "poisoned" in str(results[17])
    assert sorted(_by_subject(log)) == sorted(f"probe-{i}" for i in range(40) if i != 17)
    assert verify_log(log.catalog.engine, keyring=None).ok


def test_a_failed_transaction_fails_every_caller_in_it_then_recovers(tmp_path: Path,
                                                                      ) -> None:
    db = tmp_path / "catalog.sqlite3"
    log = make_log(tmp_path, signer=False)
    with _committer(log) as committer:
        with attacker(db) as conn:
            conn.execute("ALTER TABLE auditevent RENAME TO hidden")
        results = _together(10, lambda i: committer.record(_event(i)))
        assert all(isinstance(r, CatalogError) for r in results), results
        with attacker(db) as conn:
            conn.execute("ALTER TABLE hidden RENAME TO auditevent")
        assert committer.record(_event(99)).seq == 0, "the writer lives on"
    assert log.size() == 1


def test_the_queue_is_bounded_and_close_drains_it(tmp_path: Path) -> None:
    db = tmp_path / "catalog.sqlite3"
    log = make_log(tmp_path, signer=False)
    committer = GroupCommitter(log=log, capacity=4, max_batch=4)
    results: list[object] = []
    threads = [threading.Thread(target=lambda i=i: results.append(_try(committer,
                                                                       _event(i))))
               for i in range(12)]
    with _write_locked(db):
        for t in threads:
            t.start()
        assert committer.wait_queued(4, timeout=60)  # the writer holds a batch too
        closing = threading.Thread(target=committer.close, kwargs={"timeout": 120})
        closing.start()
    closing.join(120)
    for t in threads:
        t.join(60)
    assert not committer.running and committer.high_water == 4
    committed = [r for r in results if isinstance(r, Appended)]
    refused = [r for r in results if isinstance(r, AuditError)]
    # Every caller that got in was committed; those still waiting for room when the
    # committer closed were told so. Nobody was left waiting.
    assert len(committed) + len(refused) == 12 and len(committed) >= 5
    assert all("shutting down" in r.message for r in refused)
    assert log.size() == len(committed) and verify_log(log.catalog.engine, keyring=None).ok
    with pytest.raises(AuditError, match="shutting down"):
        committer.record(_event(100))
