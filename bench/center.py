"""Center bench (issue 20): station logs pushed, mirrored, witnessed and searched.

    .venv/bin/python -m bench.center [--stations 100] [--recordings 1000000]
                                     [--db postgresql|sqlite] [--extra-index]
                                     [--queries 200] [--s3-blobs 1000] [--no-doc]

``--stations`` simulated stations write what an offload writes to their audit log (per
dock session a ``dock.session.start`` and 20 ``ingest.file`` events; every 5 sessions a
``case.create`` and ``case.link`` events for 30 % of those recordings), built with the
station's own row builder (:func:`archive.audit.rows.build_row`) and exported as
``AuditLog.export`` returns them. Their events go to a center catalog (a real PostgreSQL,
migrated to head) through :meth:`archive.witness.feed.Feed.receive` in batches of 500,
stations interleaved; every 4 batches of a station its head, signed with its own key, is
judged and countersigned (:meth:`WitnessBook.judge_and_keep`, the mirror's own root
checked as the witness desk does). The object store is replaced by a set of the blobs
"uploaded": its cost is measured apart (:mod:`bench.center_s3`). Then the central desk's
searches (:class:`records.centraldesk.CentralDesk`) at that size.

The default is the issue's size (10⁶ recordings from 100 stations): ~5 min on this
2-core machine with the batched index fold (3 min of push), ~25 min before it.
PostgreSQL is the tests' throwaway cluster (tests/archive/pg_support.py) with fsync
turned back on for the run.
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import MetaData, insert

from archive.audit.format import GENESIS, HeadSigner, SignedHead, iso
from archive.audit.log import AuditLog
from archive.audit.proofs import prove_consistency
from archive.audit.rows import EventSpec, build_row
from archive.catalog import Catalog
from archive.catalog.types import table_of
from archive.keystore import StationKeys
from archive.witness.book import WitnessBook
from archive.witness.cosign import Cosigner
from archive.witness.feed import Feed
from archive.witness.judge import Kind, Verdict, judge
from archive.witness.mirror import Mirror, NamedBlob, StationEvent, parse_event
from bench.center_report import progress, report
from bench.center_search import UNITS, searches
from bench.common import REPO, machine_info, write_section
from integrity.merkle import MerkleAccumulator
from records.feeddesk import BATCH

SESSION, CASE_EVERY, LINKED, WITNESS_EVERY, OFFICERS = 20, 5, 0.3, 4, 20
STAGES = ("现场检查", "调查取证", "查封扣押")
T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


def _hex(rng: random.Random, bits: int) -> str:
    return f"{rng.getrandbits(bits):0{bits // 4}x}"


class Station:
    """One station's audit log, made in memory as an offload and a clerk would."""

    def __init__(self, index: int, recordings: int, keys_dir: Path) -> None:
        self.id, self.index, self.rng = f"st-{index:03d}", index, random.Random(index)
        keys = StationKeys(directory=keys_dir / self.id)
        keys.init()
        self.signer, self.keyring = HeadSigner(keys=keys, station_id=self.id), keys.keyring()
        self.officers = [f"{index:03d}{k:03d}" for k in range(OFFICERS)]
        self.seq, self.prev, self.at = 0, GENESIS, T0 + timedelta(seconds=index)
        self.leaves, self.acc = bytearray(), MerkleAccumulator()
        self.witnessed: SignedHead | None = None
        self.batches, self.links = 0, 0
        self.numbers: list[str] = []
        self.sample: list[str] = []  # every 100th recording id (floor lookups)
        self.specs = self._events(recordings)

    def _spec(self, actor: str, action: str, subjects: list[str],
              details: dict[str, Any]) -> EventSpec:
        self.at += timedelta(seconds=self.rng.randint(1, 60))
        return EventSpec(actor, action, subjects, details, self.at)

    def _events(self, recordings: int) -> Iterator[EventSpec]:
        made, sessions, actor = 0, 0, f"station:{self.id}"
        recent: list[str] = []
        while made < recordings:
            sid, k = _hex(self.rng, 128), self.rng.randrange(OFFICERS)
            device, officer = f"ZFY{self.index:03d}{k:03d}", self.officers[k]
            yield self._spec(actor, "dock.session.start", [sid, device, officer], {
                "device": device, "officer": officer, "bay": k % 8, "camera_model": "generic",
                "source": f"/media/bay{k % 8}", "wipe_requested": False,
                "battery_percent": 80})
            for _ in range(min(SESSION, recordings - made)):
                rid, b3 = _hex(self.rng, 128), _hex(self.rng, 256)
                yield self._spec(actor, "ingest.file", [sid, rid, b3], {
                    "path": f"DCIM/100MEDIA/{rid[:8]}.MP4", "status": "ingested", "code": None,
                    "size": self.rng.randint(50 << 20, 900 << 20), "blake3": b3,
                    "sha256": _hex(self.rng, 256), "flags": [], "new_blob": True,
                    "record": _hex(self.rng, 256)})
                self.sample += [rid] if made % 100 == 0 else []
                made += 1
                recent.append(rid)
            sessions += 1
            if sessions % CASE_EVERY == 0:
                yield from self._case(recent)
                recent = []

    def _case(self, recent: list[str]) -> Iterator[EventSpec]:
        cid, actor = _hex(self.rng, 128), f"user:clerk-{self.id}"
        number = f"邵城管罚〔2026〕第{self.index:03d}{len(self.numbers):04d}号"
        self.numbers.append(number)
        label = "个人隐私" if self.rng.random() < 0.05 else "none"
        yield self._spec(actor, "case.create", [f"case:{cid}"], {
            "number": number, "type": "简易程序", "unit": self.rng.choice(UNITS),
            "sensitivity": label})
        for rid in self.rng.sample(recent, int(len(recent) * LINKED)):
            self.links += 1
            yield self._spec(actor, "case.link", [f"case:{cid}", f"recording:{rid}"], {
                "number": number, "link": self.links, "stage": self.rng.choice(STAGES),
                "start_us": None, "end_us": None, "reason": "取证"})

    def next_batch(self) -> tuple[list[dict[str, Any]], list[str], int]:
        """The next ≤ 500 events as exported, the blobs they name, their recordings."""
        docs, blobs, recs, leaves = [], [], 0, []
        for spec in self.specs:
            row = build_row(self.seq, self.prev, spec)
            docs.append({"seq": row.seq, "at": iso(spec.at), "actor": spec.actor,
                         "action": spec.action, "subjects": row.subjects,
                         "details": row.details, "prev_hash": row.prev,
                         "leaf_hash": row.leaf})
            if spec.action == "ingest.file":
                blobs += [row.details["blake3"], row.details["record"]]
                recs += 1
            leaves.append(bytes.fromhex(row.leaf))
            self.seq, self.prev = self.seq + 1, row.leaf
            if len(docs) >= BATCH:
                break
        self.leaves += b"".join(leaves)
        self.acc = self.acc.extend(leaves)
        return docs, blobs, recs

    def leaf_iter(self) -> Iterator[bytes]:
        view = memoryview(self.leaves)
        return (bytes(view[i:i + 32]) for i in range(0, len(view), 32))


@dataclass
class Center:
    catalog: Catalog
    feed: Feed
    book: WitnessBook
    cosigner: Cosigner
    bare: Any  # a bare copy of stationevent: the baseline's table

    @classmethod
    def open(cls, url: str, keys_dir: Path) -> Center:
        catalog = Catalog.create(url)  # migrated to head, as `evidock init` leaves it
        audit = AuditLog(catalog=catalog)
        keys = StationKeys(directory=keys_dir / "center")
        keys.init()
        bare = table_of(StationEvent).to_metadata(MetaData(), name="bench_bare_event")
        bare.create(catalog.engine)
        return cls(catalog, Feed(audit=audit), WitnessBook(catalog=catalog, audit=audit),
                   Cosigner(keys=keys, witness_id="center"), bare)

    def against_mirror(self, head: SignedHead, verdict: Verdict) -> Verdict:
        """As records.witnessdesk: an accepted head must be the mirror's own root."""
        if verdict.kind not in (Kind.FIRST, Kind.EXTENDS):
            return verdict
        root = Mirror(catalog=self.catalog).root(head.station_id, head.size)
        return verdict if root in (None, head.root) else Verdict(Kind.FORK, "not the mirror")


@dataclass
class Run:
    batches: list[tuple[int, int, float, float]] = field(default_factory=list)
    heads: list[float] = field(default_factory=list)
    wall_s: float = 0.0


def baseline(center: Center, station: str, docs: list[dict[str, Any]], at: datetime) -> float:
    """The floor: the same rows, one INSERT executemany into a bare table (no checks,
    no index rows, no audit event), one transaction."""
    t = time.perf_counter()
    rows = [{"station_id": station, "seq": d["seq"], "at": datetime.fromisoformat(d["at"]),
             "actor": d["actor"], "action": d["action"], "subjects": d["subjects"],
             "details": d["details"], "prev_hash": d["prev_hash"],
             "leaf_hash": d["leaf_hash"], "received_at": at} for d in docs]
    with center.catalog.engine.begin() as conn:
        conn.execute(insert(center.bare), rows)
    return time.perf_counter() - t


def witness(center: Center, st: Station) -> float:
    """Sign the station's head, prove it from the last witnessed one; time the center."""
    now = datetime.now(UTC)
    head = st.signer.sign(size=st.seq, root=st.acc.root(), at=now)
    old = st.witnessed
    proof = None if old is None else prove_consistency(st.leaf_iter(), old.size, st.seq)[0]
    t = time.perf_counter()
    outcome = center.book.judge_and_keep(
        head=head, proof=None if proof is None else proof.to_dict(),
        judge=lambda last: center.against_mirror(head, judge(
            station_id=st.id, last=None if last is None else last.head, new=head,
            proof=proof, keyring=st.keyring)),
        cosign=lambda h: center.cosigner.cosign(h, at=now), actor=f"user:{st.id}", at=now)
    took = time.perf_counter() - t
    if outcome.cosigned is None:
        raise RuntimeError(f"{st.id}: head not countersigned: {outcome.verdict}")
    st.witnessed = head
    return took


def push(center: Center, stations: list[Station], run: Run) -> None:
    uploaded: set[str] = set()

    def check_blob(blob: NamedBlob) -> str | None:
        return None if blob.blake3 in uploaded else "not in the object store yet"

    active, start = list(stations), time.perf_counter()
    while active:
        for st in list(active):
            docs, blobs, recs = st.next_batch()
            if not docs:
                active.remove(st)
                run.heads.append(witness(center, st))
                continue
            uploaded.update(blobs)
            t = time.perf_counter()
            done = center.feed.receive(st.id, [parse_event(d) for d in docs],
                                       check_blob=check_blob, actor=f"user:{st.id}",
                                       at=datetime.now(UTC))
            took = time.perf_counter() - t
            if done.kept != len(docs) or done.waiting is not None:
                raise RuntimeError(f"{st.id}: kept {done.kept} of {len(docs)}: {done}")
            uploaded.difference_update(blobs)
            run.batches.append((len(docs), recs, took,
                                baseline(center, st.id, docs, datetime.now(UTC))))
            st.batches += 1
            if st.batches % WITNESS_EVERY == 0:
                run.heads.append(witness(center, st))
            if len(run.batches) % 200 == 0:
                progress(run, start)
    run.wall_s = time.perf_counter() - start


# -- report and main --------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.center", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stations", type=int, default=100)
    p.add_argument("--recordings", type=int, default=1_000_000, help="in all stations")
    p.add_argument("--db", choices=("postgresql", "sqlite"), default="postgresql")
    p.add_argument("--queries", type=int, default=200, help="per search kind")
    p.add_argument("--budget", type=float, default=60.0, help="max seconds per kind")
    p.add_argument("--extra-index", action="store_true",
                   help="search again after creating the indexes migration 0016 lacks")
    p.add_argument("--s3-blobs", type=int, default=1000)
    p.add_argument("--no-doc", action="store_true")
    return p.parse_args(argv)


@contextmanager
def database(kind: str, tmp: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{tmp / 'center.sqlite3'}"
        return
    sys.path.insert(0, str(REPO / "tests" / "archive"))
    from pg_support import pg_cluster  # type: ignore[import-not-found]

    with pg_cluster() as make:
        url = make()
        catalog = Catalog(engine=_engine(url))
        with catalog.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.exec_driver_sql("ALTER SYSTEM SET fsync = on")  # durable, as a center runs
            c.exec_driver_sql("SELECT pg_reload_conf()")
        catalog.close()
        yield url


def _engine(url: str) -> Any:
    from archive.catalog.db import make_engine

    return make_engine(url)


def db_facts(center: Center, url: str) -> tuple[str, int]:
    """(the database and version, its size in bytes without the baseline's table)."""
    center.bare.drop(center.catalog.engine)
    if center.catalog.engine.dialect.name == "postgresql":
        with center.catalog.engine.connect() as conn:
            return ("PostgreSQL " + str(conn.exec_driver_sql("SHOW server_version")
                                        .scalar_one()),
                    int(conn.exec_driver_sql("SELECT pg_database_size(current_database())")
                        .scalar_one()))
    import sqlite3

    with center.catalog.engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM")
    return (f"SQLite {sqlite3.sqlite_version}",
            Path(url.removeprefix("sqlite:///")).stat().st_size)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    info = machine_info()
    with tempfile.TemporaryDirectory(prefix="evidock-center-") as tmp, \
            database(args.db, Path(tmp)) as url:
        center = Center.open(url, Path(tmp))
        per = args.recordings // args.stations
        stations = [Station(i, per, Path(tmp)) for i in range(args.stations)]
        run = Run()
        push(center, stations, run)
        dbname, size = db_facts(center, url)
        passes, floor, plans = searches(center, stations, args)
        leaves = sum(len(st.leaves) for st in stations)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    from bench.center_s3 import measure

    s3 = measure(args.s3_blobs) if args.s3_blobs else None
    body = report(args, info, run, sizes=(dbname, size, rss, leaves), passes=passes,
                  floor=floor, plans=plans, s3=s3)
    print(body)
    if not args.no_doc:
        write_section("Center", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
