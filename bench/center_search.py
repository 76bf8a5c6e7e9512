"""The central desk's searches for bench.center: p50/p95 per kind, the floor, EXPLAIN.

Each kind runs ``--queries`` times with random keys through
:class:`records.centraldesk.CentralDesk` as a realistic reader; the slowest SELECT of
each kind is kept for ``EXPLAIN (ANALYZE, BUFFERS)`` on PostgreSQL. With
``--extra-index`` the searches run again after creating the indexes migration 0016
lacks (in this scratch database only).
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import event, text

from archive.audit.log import AuditLog
from bench.common import markdown_table

if TYPE_CHECKING:
    from bench.center import Center, Station

UNITS = ("城东中队", "城西中队", "城南中队", "城北中队")
EXTRA_INDEXES = (
    "CREATE INDEX bench_rec_station_at ON centralrecording (station_id, ingested_at)",
    "CREATE INDEX bench_rec_officer_at ON centralrecording (officer, ingested_at)",
    "CREATE INDEX bench_rec_id ON centralrecording (recording_id)",
    "CREATE INDEX bench_link_case ON centrallink (station_id, case_id)")


class SlowestSelect:
    """The slowest SELECT of a call, with its parameters (for EXPLAIN)."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.found: tuple[float, str, Any] = (0.0, "", {})
        self._t = 0.0

    def _before(self, *_args: Any) -> None:
        self._t = time.perf_counter()

    def _after(self, _conn: Any, _cur: Any, statement: str, params: Any, *_rest: Any) -> None:
        took = time.perf_counter() - self._t
        if statement.lstrip().upper().startswith("SELECT") and took > self.found[0]:
            self.found = (took, statement, params)

    @contextmanager
    def watching(self) -> Iterator[None]:
        event.listen(self.engine, "before_cursor_execute", self._before)
        event.listen(self.engine, "after_cursor_execute", self._after)
        try:
            yield
        finally:
            event.remove(self.engine, "before_cursor_execute", self._before)
            event.remove(self.engine, "after_cursor_execute", self._after)


def search_kinds(desk: Any, actor: Any, stations: list[Station],
                 ) -> dict[str, tuple[Callable[[str], Any], list[str]]]:
    officers = [o for st in stations for o in st.officers]
    numbers = [n for st in stations for n in st.numbers]
    ids = [st.id for st in stations]
    return {
        "recordings by officer": (lambda k: desk.recordings(actor, officer=k), officers),
        "recordings by station": (lambda k: desk.recordings(actor, station=k), ids),
        "recordings by case number": (lambda k: desk.recordings(actor, case_number=k),
                                      numbers),
        "cases by number": (lambda k: desk.cases(actor, number=k), numbers),
        "cases by station": (lambda k: desk.cases(actor, station=k), ids)}


def time_searches(center: Center, kinds: dict[str, tuple[Callable[[str], Any], list[str]]],
                  queries: int, budget_s: float) -> dict[str, tuple[list[float], Any]]:
    """Each kind ``queries`` times with random keys (or until ``budget_s``); the times
    and the slowest SELECT seen, for EXPLAIN."""
    rng, out = random.Random(7), {}
    for name, (call, keys) in kinds.items():
        spy, start = SlowestSelect(center.catalog.engine), time.perf_counter()
        times: list[float] = []
        with spy.watching():
            while len(times) < queries and time.perf_counter() - start < budget_s:
                t = time.perf_counter()
                call(rng.choice(keys))
                times.append(time.perf_counter() - t)
        out[name] = (times, spy.found)
        print(f"  {name}: {len(times)} queries, p50 {statistics.median(times) * 1000:.1f} ms",
              flush=True)
    return out


def floor_lookup(center: Center, stations: list[Station], queries: int) -> list[float]:
    """The floor of a search: one recording by its primary key, plain SQL."""
    rng, times = random.Random(11), []
    keys = [(st.id, r) for st in stations for r in st.sample]
    sql = text("SELECT * FROM centralrecording WHERE station_id = :s AND recording_id = :r")
    with center.catalog.engine.connect() as conn:
        for _ in range(queries):
            s, r = rng.choice(keys)
            t = time.perf_counter()
            conn.execute(sql, {"s": s, "r": r}).all()
            times.append(time.perf_counter() - t)
    return times


def explain(center: Center, found: Any) -> str:
    _took, statement, params = found
    if not statement or center.catalog.engine.dialect.name != "postgresql":
        return ""
    with center.catalog.engine.connect() as conn:
        rows = conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + statement, params)
        return "\n".join(str(r[0]) for r in rows)


def _q(times: list[float], q: int) -> float:
    return (statistics.quantiles(times, n=100)[q - 1] if len(times) > 1 else times[0]) * 1e3


def search_table(passes: list[tuple[str, dict[str, tuple[list[float], Any]]]],
                 floor: list[float]) -> str:
    base = statistics.median(floor) * 1e3
    rows = [("primary-key lookup (floor, plain SQL)", "-", len(floor), f"{base:.2f}",
             f"{_q(floor, 95):.2f}", "1×")]
    for label, found in passes:
        for name, (times, _f) in found.items():
            p50 = statistics.median(times) * 1e3
            rows.append((name, label, len(times), f"{p50:.1f}", f"{_q(times, 95):.1f}",
                         f"{p50 / base:,.0f}×"))
    return markdown_table(("search (CentralDesk)", "indexes", "queries", "p50 ms", "p95 ms",
                           "p50 ÷ floor"), rows)


def searches(center: Center, stations: list[Station], args: argparse.Namespace,
             ) -> tuple[list[tuple[str, dict[str, Any]]], list[float], dict[str, str]]:
    from config.access import AccessSettings
    from records.centraldesk import CentralDesk
    from records.permissions import DEFAULT_ROLES, Actor, Gate

    with center.catalog.engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")  # as autovacuum would have by then
    clock = lambda: datetime.now(UTC)  # noqa: E731
    gate = Gate(access=AccessSettings(), audit=AuditLog(catalog=center.catalog), clock=clock)
    desk = CentralDesk(gate=gate, catalog=center.catalog, clock=clock)
    actor = Actor(name="inspector-1", display="inspector", roles=("inspector",),
                  permissions=DEFAULT_ROLES["inspector"], units=frozenset(UNITS[:2]),
                  clearances=frozenset())
    kinds = search_kinds(desk, actor, stations)
    passes = [("head", time_searches(center, kinds, args.queries, args.budget))]
    floor = floor_lookup(center, stations, args.queries)
    plans = {k: explain(center, f) for k, (t, f) in passes[0][1].items()
             if statistics.median(t) > 0.05}
    if args.extra_index:
        with center.catalog.engine.begin() as conn:
            for ddl in EXTRA_INDEXES:
                conn.exec_driver_sql(ddl)
            conn.exec_driver_sql("ANALYZE")
        passes.append(("head + extra", time_searches(center, kinds, args.queries,
                                                     args.budget)))
        plans.update({f"{k} (extra indexes)": explain(center, passes[1][1][k][1])
                      for k in plans})
    return passes, floor, plans
