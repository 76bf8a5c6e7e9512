"""The center's mirror of a station log (archive/witness/feed.py) on real logs, with the
center's catalog on SQLite and on PostgreSQL.

A real station log (SQLite, real keys) is pushed into a real center catalog in batches
of every size, repeated, out of step and from two threads at once; the mirror must hold
each event once and hash to the station's root. Events sent again with another body, a
gap and a leaf that is not the event's are refused, and only the first is blamed on the
station (a fork, kept with the evidence).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from audit_support import T0, fill, make_log
from evidock_testing import migrated
from pg_support import pg_cluster
from sqlmodel import Session, select

from archive.audit.log import AuditLog
from archive.audit.rows import build_row
from archive.catalog import Catalog
from archive.witness.book import WitnessConflict
from archive.witness.feed import Feed
from archive.witness.mirror import Incoming, NamedBlob, StationEvent, parse_event
from integrity.errors import LogFork, WitnessRefused

STATION = "station-01"


def _no_blobs(blob: NamedBlob) -> str | None:
    raise AssertionError(f"these events name no blob, yet {blob} was checked")


@pytest.fixture
def station(tmp_path: Path) -> AuditLog:
    log = make_log(tmp_path / "station")
    fill(log, 60)
    return log


@pytest.fixture(scope="module")
def pg() -> Iterator[Callable[[], str]]:
    with pg_cluster() as make:
        yield make


@pytest.fixture(params=["sqlite", "postgresql"])
def feed(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Feed]:
    """A center's catalog, on the embedded default and on PostgreSQL (a central one)."""
    url = f"sqlite:///{tmp_path / 'center.sqlite3'}" if request.param == "sqlite" \
        else request.getfixturevalue("pg")()
    catalog = Catalog.open(migrated(url))
    yield Feed(audit=AuditLog(catalog=catalog))
    catalog.close()


def _events(log: AuditLog, start: int, n: int) -> list[Incoming]:
    return [parse_event(d) for d in log.export(start, n)]


def _receive(feed: Feed, events: list[Incoming]) -> int:
    return feed.receive(STATION, events, check_blob=_no_blobs, actor="user:station",
                        at=T0).kept


def test_batches_of_any_size_repeated_keep_each_event_once(station: AuditLog,
                                                           feed: Feed) -> None:
    pos, kept = 0, 0
    for n in (1, 2, 7, 3, 13, 1, 20, 13):
        kept += _receive(feed, _events(station, max(0, pos - 2), n + 2))  # overlaps
        pos = feed.mirror.next_seq(STATION)
    kept += _receive(feed, _events(station, 0, 100))  # everything again, and the rest
    assert kept == feed.mirror.next_seq(STATION) == 60
    root = station.consistency(0, 60)["new_root"]
    assert feed.mirror.root(STATION, 60) == root  # from the frontier kept with the events
    assert feed.mirror.root(STATION, 37) == station.consistency(0, 37)["new_root"]  # leaves
    assert feed.mirror.root(STATION, 61) is None  # not all held


def test_two_pushes_at_once_keep_each_event_once(station: AuditLog, feed: Feed) -> None:
    batch = _events(station, 0, 60)
    go = threading.Barrier(2)
    kept: list[int] = []

    def push() -> None:
        go.wait()
        try:
            kept.append(_receive(feed, batch))
        except WitnessRefused:  # "the mirror moved while checking; push again"
            kept.append(_receive(feed, batch))

    threads = [threading.Thread(target=push) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(kept) == [0, 60]
    with Session(feed.audit.catalog.engine) as s:
        rows = s.exec(select(StationEvent)).all()
    assert len(rows) == 60
    assert feed.mirror.root(STATION, 60) == station.consistency(0, 60)["new_root"]


def test_an_event_sent_again_with_another_body_is_a_fork(station: AuditLog,
                                                         feed: Feed) -> None:
    _receive(feed, _events(station, 0, 30))
    honest = _events(station, 10, 1)[0]
    spec = replace(honest.spec, details={**honest.spec.details, "note": "edited"})
    edited = replace(honest, spec=spec, leaf=build_row(10, honest.prev, spec).leaf)
    with pytest.raises(LogFork) as caught:
        _receive(feed, [edited])
    assert caught.value.details["seq"] == 10
    with Session(feed.audit.catalog.engine) as s:
        [conflict] = s.exec(select(WitnessConflict)).all()
    assert (conflict.head["leaf_hash"], conflict.witnessed["leaf_hash"]) == (edited.leaf,
                                                                              honest.leaf)
    assert feed.mirror.next_seq(STATION) == 30  # nothing kept


def test_gaps_and_wrong_leaves_are_refused_without_blame(station: AuditLog,
                                                         feed: Feed) -> None:
    _receive(feed, _events(station, 0, 10))
    with pytest.raises(WitnessRefused, match="in order"):
        _receive(feed, _events(station, 11, 5))
    nxt = _events(station, 10, 1)[0]
    with pytest.raises(WitnessRefused, match="does not hash"):
        _receive(feed, [replace(nxt, leaf="00" * 32)])
    with pytest.raises(WitnessRefused, match="does not hash"):  # body edited, leaf kept
        _receive(feed, [replace(nxt, spec=replace(nxt.spec, actor="user:mallory"))])
    assert feed.mirror.next_seq(STATION) == 10
    with Session(feed.audit.catalog.engine) as s:
        assert s.exec(select(WitnessConflict)).all() == []
