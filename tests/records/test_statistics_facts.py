"""The statistics facts the catalog keeps per recording (``recordingstat``, migration
0015), on SQLite and on a real PostgreSQL server: the triggers keep them equal to their
recomputation from the evidence tables through every write path (recordings, second
renditions, links, unlinks, relinks), the statistics read from them agree with counts
made here by hand, and the migration's backfill gives the very rows the triggers keep."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, timedelta

import pytest
from alembic import command
from sqlalchemy import inspect
from stats_support import (
    A,
    B,
    C,
    assert_facts_kept,
    facts_from_evidence,
    footage,
    kept_facts,
    local,
    stats_station,
)

from archive.catalog.db import writer
from archive.catalog.migrations import config as migration_config
from archive.catalog.models import Rendition, Segment
from archive.footage_model import footage_of
from evidock.wiring import Services
from records.statistics import StatsQuery
from records.statistics_sql import StatisticsDesk

STAGES = ("现场检查", "听证", "查封扣押")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def station(request: pytest.FixtureRequest,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    yield from stats_station(request.param, tmp_path_factory, "facts")


def _second_rendition(svc: Services, rid: str, n: int, seconds: float) -> None:
    """Another ok rendition of ``rid``, stored as ingest/process.py stores one."""
    digest = svc.catalog.recording(rid).blake3
    rendition = Rendition(id=f"r-{rid}-{n}", recording_id=rid, status="ok", code="OK",
                          source_blake3=digest, media={"duration_s": seconds},
                          created_at=local(2021, 1, 1))
    segs = [Segment(rendition_id=rendition.id, index=0, name="0.mp4", start_us=0,
                    end_us=round(seconds * 1e6), size=1, blake3=digest)]
    with svc.catalog.transaction() as s:
        s.add(rendition)
        s.flush()
        s.add_all([*segs, footage_of(rendition, segs)])


def _random_history(svc: Services, rng: random.Random, tag: str) -> None:
    """Recordings, renditions, links, unlinks and relinks in a random order."""
    desk, chief = svc.cases(), svc.gate().by_name("chief")
    made: list[str] = []
    active: list[int] = []
    for n in range(60):
        step = rng.random()
        if step < 0.35 or not made:
            rid = f"{tag}{n}"
            start = None if rng.random() < 0.2 else local(2019, rng.randint(1, 12),
                                                          rng.randint(1, 28), 9, 0)
            offloaded = (start or local(2020, 6, 1, 8, 0)) + timedelta(
                hours=rng.choice([1, 23.9, 24, 30, 72]))
            seconds = None if rng.random() < 0.2 else rng.choice([30.0, 600.5, 3600.0])
            footage(svc, rid, start=start, offloaded=offloaded, seconds=seconds,
                    officer=rng.choice([None, "100001", "100007"]),
                    segments=rng.random() < 0.8)
            made.append(rid)
        elif step < 0.5:
            _second_rendition(svc, rng.choice(made), n, rng.choice([10.0, 5000.0]))
        elif step < 0.8 or not active:
            active.append(desk.link(chief, rng.choice([A, B, C]), rng.choice(made),
                                    stage=rng.choice(STAGES), reason="关联").id)
        else:
            desk.unlink(chief, active.pop(rng.randrange(len(active))), reason="撤回")


@pytest.mark.parametrize("seed", [1, 2])
def test_facts_follow_every_write_and_the_counts_agree(station: Services,
                                                       seed: int) -> None:
    _random_history(station, random.Random(seed), f"h{seed}-")
    assert_facts_kept(station)
    truth = facts_from_evidence(station)
    desk = StatisticsDesk(catalog=station.catalog, gate=station.gate(), clock=station.clock)
    report = desk.run(station.gate().by_name("supervisor"),
                      StatsQuery(zone=UTC, zone_name="UTC", offload_deadline_h=24))
    late = [rid for rid, (_o, _at, start, off, secs, _n) in truth.items()
            if start is not None and off - (start + (secs or 0.0)) > 24 * 3600]
    assert report.hidden == 0, "the supervisor is cleared for everything"
    assert report.total.recordings == len(truth)
    assert report.total.seconds == pytest.approx(sum(f[4] or 0.0 for f in truth.values()))
    assert report.total.unknown_duration == sum(f[4] is None for f in truth.values())
    assert report.total.late == len(late)
    assert report.total.links == sum(f[5] for f in truth.values())


def test_the_backfill_gives_the_rows_the_triggers_keep(station: Services) -> None:
    """Down to 0014 (no table, no triggers: writes then keep nothing) and up again: the
    backfill computes exactly the kept rows, including for what was written between."""
    kept = kept_facts(station)
    assert kept, "the station has recordings"
    with writer(station.catalog.engine).begin() as conn:
        command.downgrade(migration_config(conn), "0014")
        assert not inspect(conn).has_table("recordingstat")
        assert "ix_caselink_unlinks" not in {i["name"] for i in
                                             inspect(conn).get_indexes("caselink")}
    # Written while the catalog has no facts table: the triggers went with it.
    footage(station, "between", start=local(2019, 5, 1, 9, 0),
            offloaded=local(2019, 5, 3, 9, 0), seconds=45.0, officer="100001")
    with writer(station.catalog.engine).begin() as conn:
        command.upgrade(migration_config(conn), "head")
    again = kept_facts(station)
    assert {k: v for k, v in again.items() if k != "between"} == kept, "bit for bit"
    assert again["between"][4:] == (45.0, 0)
    assert_facts_kept(station)
