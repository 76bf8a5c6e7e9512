"""procrastinate's tables in the catalog database: created once (also by two workers
starting together), recorded with the library's version, upgraded by its own migration
files past that version."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from evidock_testing import station_on
from sqlalchemy import text

from evidock.jobqueue import schema
from evidock.wiring import Services


@pytest.fixture
def pg(tmp_path: Path) -> Iterator[Services]:
    with station_on("postgresql", tmp_path / "home") as svc:
        yield svc


def test_two_workers_starting_together_create_the_tables_once(pg: Services) -> None:
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(
        schema.ensure_schema(pg.catalog.engine))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(results) == ["created", "current"]
    assert schema.ensure_schema(pg.catalog.engine) == "current"
    with pg.catalog.engine.connect() as conn:
        recorded = conn.execute(text("SELECT procrastinate FROM evidock_queue_schema")).all()
        assert conn.execute(text("SELECT count(*) FROM procrastinate_jobs")).scalar() == 0
    assert recorded == [(schema.installed_version(),)]


def test_only_the_migrations_past_the_recorded_version_are_chosen() -> None:
    chosen = [p.name for p in schema._migrations_after((3, 3, 0), (3, 4, 0))]
    assert chosen and all(n.startswith("03.04.00_") for n in chosen)
    assert schema._migrations_after(schema._version(schema.installed_version()),
                                    schema._version(schema.installed_version())) == []
    assert schema._version("03.10.00_01_pre_x.sql") == (3, 10, 0)
