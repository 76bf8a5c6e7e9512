"""Retention runs against holds written concurrently, on a real PostgreSQL server.

PostgreSQL's READ COMMITTED lets another connection commit between two statements of a
transaction, so the executor's re-plan could miss a hold committed before its tombstone.
The deletion transaction takes the audit append lock before re-planning (every hold,
link, mark and case event commits holding it), so each test makes another connection
write a hold, a link or a mark at exactly the dangerous moment and checks that the
deletion and the write come out in one serial order: a hold committed first stops the
deletion; a write arriving during it waits until the deletion has committed.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from evidock_testing import StepClock, open_services, write_agency_config
from sqlalchemy.engine import make_url
from sqlmodel import Session, col, select

sys.path.insert(0, str(Path(__file__).parents[1] / "archive"))  # pg_support lives there

from pg_support import connect, pg_cluster  # noqa: E402

from archive.audit.log import AuditEvent  # noqa: E402
from config import load_settings  # noqa: E402
from evidock.wiring import Services  # noqa: E402
from ingest.outcome import OffloadRequest  # noqa: E402
from integrity.errors import Conflict, EvidockError  # noqa: E402
from retention.actions import RunReport  # noqa: E402
from retention.executor import RetentionExecutor  # noqa: E402
from retention.models import Hold  # noqa: E402

T0 = StepClock().now
RUN_DAY = 210  # the footage's 184 days are over, and the 7 days' grace since day 200
WAIT_S = 60.0


class Clock:
    """The station's clock, set by the test; each reading is a second after the last."""

    def __init__(self, start: datetime) -> None:
        self.now = start
        self._lock = threading.Lock()  # read by the run and the hold writer at once

    def __call__(self) -> datetime:
        with self._lock:
            self.now += timedelta(seconds=1)
            return self.now

    def to_day(self, days: float) -> datetime:
        self.now = T0 + timedelta(days=days)
        return self.now


@pytest.fixture(scope="module")
def new_database() -> Iterator[Callable[[], str]]:
    with pg_cluster() as make:
        yield make


@dataclass
class Station:
    svc: Services  # the retention run's connections
    other: Services  # another writer's: its own engine, so its own connections
    clock: Clock
    watcher: Any  # a third connection, looking at pg_locks

    def executor(self, before_tombstone: Callable[[str], None]) -> RetentionExecutor:
        svc = self.svc
        return RetentionExecutor(catalog=svc.catalog, store=svc.store, audit=svc.audit(),
                                 gate=svc.gate(), rules=svc.settings.retention,
                                 clock=self.clock, before_tombstone=before_tombstone)

    def someone_waits_for_a_lock(self) -> bool:
        row = self.watcher.execute("SELECT count(*) FROM pg_locks WHERE NOT granted "
                                   "AND locktype = 'advisory'").fetchone()
        return bool(row[0])

    def seq(self, action: str, subject: str) -> int:
        with Session(self.svc.catalog.engine) as s:
            found = [e.seq for e in s.exec(select(AuditEvent)
                                           .where(AuditEvent.action == action)
                                           .order_by(col(AuditEvent.seq)))
                     if subject in e.subjects]
        assert len(found) == 1, (action, subject, found)
        return found[0]


@pytest.fixture
def st(new_database: Callable[[], str], tmp_path: Path, camera: Path) -> Iterator[Station]:
    """A PostgreSQL station that offloaded a camera at T0; every recording is scheduled
    (supervisor) and approved (supervisor2) for deletion at day 200."""
    home = tmp_path / "home"
    write_agency_config(home)
    url = new_database()
    settings = load_settings(environ={"EVIDOCK_HOME": str(home),
                                      "EVIDOCK_PATHS__CATALOG_URL": url})
    clock = Clock(T0)
    svc = open_services(settings, clock=clock)
    other = Services.from_config(settings, clock=clock)
    watcher = connect(make_url(url))
    try:
        svc.keys.init()
        report = svc.offloader().run(OffloadRequest(source=camera, device_serial="ZFY0001",
                                                    officer_id="123456"))
        assert report.outcome == "completed"
        ex = svc.retention()
        for change in ex.schedule(svc.gate().by_name("supervisor"), clock.to_day(200)).changes:
            ex.approve(svc.gate().by_name("supervisor2"), change.recording_id)
        yield Station(svc, other, clock, watcher)
    finally:
        watcher.close()
        other.close()
        svc.close()


#: A write that keeps footage, by another user on the other connections: its audit
#: action and a subject naming it.
Write = Callable[[Services, str], tuple[str, str]]
NUMBER = "邵城管罚〔2025〕第007号"


def _officer_hold(other: Services, _recording_id: str) -> tuple[str, str]:
    hold = other.holds().add(other.gate().by_name("legal"), scope="officer",
                             target="123456", reason="诉讼")
    return "hold.add", f"hold:{hold.id}"


def _recording_hold(other: Services, recording_id: str) -> tuple[str, str]:
    hold = other.holds().add(other.gate().by_name("legal"), scope="recording",
                             target=recording_id, reason="诉讼")
    return "hold.add", f"hold:{hold.id}"


def _link_to_open_case(other: Services, recording_id: str) -> tuple[str, str]:
    other.cases().link(other.gate().by_name("clerk"), NUMBER, recording_id,
                       stage="现场检查", reason="检查记录")
    return "case.link", f"recording:{recording_id}"


def _evidence_mark(other: Services, recording_id: str) -> tuple[str, str]:
    other.cases().mark(other.gate().by_name("legal"), recording_id, mark="作为证据使用",
                       reason="诉讼")
    return "recording.mark.add", f"recording:{recording_id}"


@dataclass
class Writer:
    """At the first deletion's boundary (re-planned, no tombstone yet), another
    connection writes something that keeps that recording (``write``)."""

    st: Station
    write: Write
    recording: str | None = None
    waited: bool = False  # the write had to wait for the run's lock
    event: tuple[str, str] | None = None  # its audit event, once committed
    error: EvidockError | None = None
    done: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def __call__(self, recording_id: str) -> None:
        if self.thread is not None:
            return
        self.recording = recording_id
        self.thread = threading.Thread(target=self._write, args=(recording_id,))
        self.thread.start()
        self.waited = wait_until_done_or_blocked(self.done, self.st)

    def _write(self, recording_id: str) -> None:
        try:
            self.event = self.write(self.st.other, recording_id)
        except EvidockError as exc:
            self.error = exc
        finally:
            self.done.set()

    def join(self) -> None:
        assert self.thread is not None, "no deletion reached its tombstone"
        self.thread.join(timeout=WAIT_S)
        assert self.done.is_set()


def wait_until_done_or_blocked(done: threading.Event, st: Station) -> bool:
    """Until the other writer has finished (False) or waits for a lock (True).

    PostgreSQL announces no lock wait, so this looks at pg_locks each time the writer
    has not finished within a few ms (as PostgreSQL's own isolation tester does).
    """
    deadline = time.monotonic() + WAIT_S
    while not done.wait(0.005):
        if st.someone_waits_for_a_lock():
            return True
        assert time.monotonic() < deadline, "the other writer neither finished nor waited"
    return False


def _statuses(report: RunReport) -> dict[str, tuple[str, Any]]:
    return {o.recording_id: (o.status, o.details.get("rule")) for o in report.outcomes}


@pytest.mark.parametrize("write", [_officer_hold, _link_to_open_case, _evidence_mark],
                         ids=["officer-hold", "link", "mark"])
def test_a_write_arriving_during_a_deletion_waits_until_it_has_committed(
        st: Station, write: Write) -> None:
    st.svc.cases().create(st.svc.gate().by_name("clerk"), number=NUMBER,
                          case_type="行政检查", unit="城东中队")
    writer = Writer(st, write)
    run = st.executor(writer).run(st.svc.gate().by_name("admin"), st.clock.to_day(RUN_DAY))
    writer.join()

    first = writer.recording
    assert first is not None and writer.error is None and writer.event is not None
    statuses = _statuses(run)
    assert statuses.pop(first) == ("deleted", "base")
    # One serial order: the write was committed after the tombstone, never before it,
    # because it had to wait for the deletion's transaction.
    assert st.seq(*writer.event) > st.seq("retention.execute", f"recording:{first}")
    assert writer.waited
    if write is _officer_hold:  # it covers the rest: the run saw it once committed
        assert statuses and set(statuses.values()) == {("cancelled", "hold")}


def test_a_hold_on_the_recording_being_deleted_is_refused_once_it_is_gone(
        st: Station) -> None:
    writer = Writer(st, _recording_hold)
    run = st.executor(writer).run(st.svc.gate().by_name("admin"), st.clock.to_day(RUN_DAY))
    writer.join()

    assert _statuses(run)[writer.recording or ""] == ("deleted", "base")
    assert isinstance(writer.error, Conflict) and "already deleted" in writer.error.message
    assert writer.waited
    with Session(st.svc.catalog.engine) as s:
        assert s.exec(select(Hold)).all() == []


def test_a_hold_committing_when_the_deletion_starts_stops_it(st: Station) -> None:
    """The hold's transaction holds the lock (its audit event is appended) but has not
    committed when the run starts: the run waits for it, then sees the hold."""
    legal, admin = st.other.gate().by_name("legal"), st.svc.gate().by_name("admin")
    now = st.clock.to_day(RUN_DAY)
    result: list[RunReport | BaseException] = []
    done = threading.Event()

    def run() -> None:
        try:
            result.append(st.executor(lambda _rid: None).run(admin, now))
        except BaseException as exc:  # re-raised in the test's thread below
            result.append(exc)
        finally:
            done.set()

    runner = threading.Thread(target=run)
    with st.other.catalog.transaction() as s:  # as HoldDesk.add writes a hold
        hold = Hold(id="h-concurrent", scope="officer", target="123456", reason="诉讼",
                    placed_by=legal.name, placed_at=st.clock())
        s.add(hold)
        st.other.audit().append(s, actor=legal.audit_name, action="hold.add",
                                subjects=[f"hold:{hold.id}", "officer:123456"],
                                details={"scope": "officer", "target": "123456"},
                                at=hold.placed_at)
        runner.start()
        assert wait_until_done_or_blocked(done, st), "the run did not wait for the hold"
    runner.join(timeout=WAIT_S)

    [report] = result
    assert isinstance(report, RunReport), report
    assert report.count("deleted") == 0
    assert set(_statuses(report).values()) == {("cancelled", "hold")}
