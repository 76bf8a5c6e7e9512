"""Group commit and the event list on a real PostgreSQL server (started for this module):
concurrent callers next to an ordinary appender in another connection, gap-free and
verified; filters and pages evaluated by PostgreSQL (subjects as jsonb)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from audit_support import T0
from evidock_testing import migrated
from pg_support import pg_cluster

from archive.audit.group import GroupCommitter
from archive.audit.log import Appended, AuditLog, EventSpec
from archive.audit.query import EventQuery, find_events
from archive.audit.verify import verify_log
from archive.catalog import Catalog


@pytest.fixture(scope="module")
def new_database() -> Iterator[Callable[[], str]]:
    with pg_cluster() as make:
        yield make


@pytest.fixture
def log(new_database: Callable[[], str]) -> Iterator[AuditLog]:
    catalog = Catalog.open(migrated(new_database()))
    yield AuditLog(catalog=catalog)
    catalog.close()


def _spec(i: int, *, action: str = "read.case.show", subjects: tuple[str, ...] = ()) -> EventSpec:
    return EventSpec(f"user:u{i % 3}", action, list(subjects) or [f"probe-{i}"], {"i": i},
                     T0 + timedelta(seconds=i))


def test_group_commit_beside_another_writer_is_gap_free(log: AuditLog) -> None:
    committer = GroupCommitter(log=AuditLog(catalog=log.catalog))
    results: list[object] = []
    barrier = threading.Barrier(21)

    def caller(i: int) -> None:
        barrier.wait()
        for k in range(10):
            results.append(committer.record(_spec(i * 100 + k)))

    def appender() -> None:  # an audited write of its own, as a desk's transaction is
        barrier.wait()
        for k in range(30):
            with log.catalog.transaction() as s:
                log.append(s, actor="station:station-01", action="ingest.file",
                           subjects=[f"own-{k}"], details={}, at=T0)

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(20)]
    threads.append(threading.Thread(target=appender))
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    committer.close(timeout=60)
    assert len(results) == 200 and all(isinstance(r, Appended) for r in results)
    report = verify_log(log.catalog.engine, keyring=None)
    assert report.ok and report.events == 230
    seqs = sorted(r.seq for r in results)  # type: ignore[attr-defined]
    assert len(set(seqs)) == 200 and committer.batches < 200


def test_event_filters_and_pages_on_postgresql(log: AuditLog) -> None:
    with log.catalog.transaction() as s:
        for i in range(12):
            log.append(s, **vars(_spec(i, action="read.case.show" if i % 2 else
                                        "access.refused",
                                        subjects=(f"case:{i % 4}", "卷宗〔2019〕第001号"))))
    engine = log.catalog.engine
    page = find_events(engine, EventQuery(subject="case:1", limit=2))
    assert [e["seq"] for e in page.events] == [1, 5] and page.next_after == 5
    last = find_events(engine, EventQuery(subject="case:1", limit=2, after=5))
    assert [e["seq"] for e in last.events] == [9] and last.next_after is None
    assert len(find_events(engine, EventQuery(subject="卷宗〔2019〕第001号",
                                              limit=100)).events) == 12
    assert find_events(engine, EventQuery(subject="case:", limit=100)).events == ()
    reads = find_events(engine, EventQuery(action="read.*", actor="user:u1", limit=100))
    assert [e["seq"] for e in reads.events] == [1, 7]
    window = find_events(engine, EventQuery(since=T0 + timedelta(seconds=3),
                                            until=T0 + timedelta(seconds=6)))
    assert [e["seq"] for e in window.events] == [3, 4, 5]
    assert window.events[0]["at"] == "2026-11-23T08:00:03.000000Z"
