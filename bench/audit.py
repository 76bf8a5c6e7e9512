"""Audit log bench: append rate (durable and batched), verify time, proof size, peak RSS.

    .venv/bin/python -m bench.audit [--durable 2000] [--batched 100000] [--batch 1000]
                                    [--verify 1000000] [--callers 40,100] [--grouped 20000]
                                    [--per-event 2000] [--data DIR] [--no-doc]

Every phase runs in its own child process (peak RSS via os.wait4) on a fresh SQLite
catalog in WAL mode on the same filesystem, with the same realistic ``ingest.file``
events:

- ``raw-durable`` / ``raw-normal``: baselines, raw ``sqlite3`` INSERT of precomputed
  rows, one commit each, synchronous=FULL (the fsync floor of this disk) and NORMAL;
- ``raw-batched``: baseline, raw ``sqlite3`` ``executemany`` of the same precomputed rows
  in one transaction (no hashing, no JSON, no SQLAlchemy);
- ``durable`` / ``durable-normal``: ``AuditLog.append`` one event per
  ``Catalog.transaction()``, synchronous=FULL (the catalog default: survives power loss)
  and NORMAL (WAL: survives a process crash, may lose the last commits on power loss);
- ``batched``: ``AuditLog.append`` with ``--batch`` events per transaction (FULL);
- ``verify``: ``verify_log`` over a log of ``--verify`` events (built with batched
  appends in a child of its own), and the size of an inclusion proof in it;
- ``grouped-N`` / ``per-event-N``: N concurrent callers (``--callers``; the service's
  request threads) each recording single events with ``AuditLog.record`` (as a read or a
  refusal does), ``--grouped`` events in all through the ``GroupCommitter`` and
  ``--per-event`` with one transaction each (FULL both), run alternately; the ratio is
  grouped/per-event at the same N.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import REPO, machine_info, markdown_table, run_child, write_section

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
TARGET_RATE = 5000
TARGET_VERIFY_S = 60
TARGET_GROUPED = 10_000


def _event(i: int) -> dict[str, Any]:
    b3 = format(i * 2654435761 % 2**256, "064x")
    return {"actor": "station:station-01", "action": "ingest.file",
            "subjects": [f"session-{i // 100}", f"rec-{i:08d}", b3],
            "details": {"path": f"DCIM/100MEDIA/ZFY0001_123456_20261120{i % 240000:06d}_"
                                f"{i % 10000:04d}.MP4", "status": "ingested",
                        "code": "I_INGESTED", "size": 100_000_000 + i, "blake3": b3,
                        "sha256": b3[::-1], "flags": [], "new_blob": True},
            "at": T0 + timedelta(microseconds=i * 1000)}


def _catalog(db: Path, synchronous: str = "FULL") -> Any:
    from sqlalchemy import event

    from archive.audit.log import AuditLog
    from archive.catalog import Catalog

    catalog = Catalog.create(f"sqlite:///{db}")  # migrated (a no-op once at head)
    if synchronous != "FULL":
        def pragma(conn: Any, _rec: Any) -> None:
            conn.execute(f"PRAGMA synchronous={synchronous}")
        event.listen(catalog.engine, "connect", pragma)
        catalog.engine.dispose()
    return AuditLog(catalog=catalog)


def phase_append(db: Path, n: int, batch: int, synchronous: str) -> dict[str, Any]:
    log = _catalog(db, synchronous)
    seconds = 0.0
    for i in range(0, n, batch):
        events = [_event(j) for j in range(i, min(n, i + batch))]  # made outside the clock
        start = time.perf_counter()
        with log.catalog.transaction() as s:
            for ev in events:
                log.append(s, **ev)
        seconds += time.perf_counter() - start
    return {"events": n, "seconds": seconds}


def _raw_rows(n: int) -> list[tuple[Any, ...]]:
    from archive.audit.log import GENESIS, encode, event_body, leaf_hex

    rows, prev = [], GENESIS
    for i in range(n):
        ev = _event(i)
        body = event_body(prev=prev, **ev)
        leaf = leaf_hex(encode(body))
        rows.append((i, ev["at"].strftime("%Y-%m-%d %H:%M:%S.%f"), ev["actor"], ev["action"],
                     json.dumps(ev["subjects"]), json.dumps(ev["details"], sort_keys=True),
                     prev, leaf))
        prev = leaf
    return rows


def phase_raw(db: Path, n: int, batch: int, synchronous: str) -> dict[str, Any]:
    _catalog(db).catalog.close()  # same schema, triggers and indexes as the real log
    rows = _raw_rows(n)
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    sql = ("INSERT INTO auditevent (seq, at, actor, action, subjects, details, prev_hash, "
           "leaf_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
    start = time.perf_counter()
    for i in range(0, n, batch):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(sql, rows[i:i + batch])
        conn.execute("COMMIT")
    seconds = time.perf_counter() - start
    conn.close()
    return {"events": n, "seconds": seconds}


def phase_verify(db: Path) -> dict[str, Any]:
    from archive.audit.verify import verify_log

    log = _catalog(db)
    start = time.perf_counter()
    report = verify_log(log.catalog.engine, keyring=None)
    seconds = time.perf_counter() - start
    if not report.ok:
        raise SystemExit(f"verify found {len(report.findings)} findings in a clean log")
    return {"events": report.events, "seconds": seconds}


def phase_proof(db: Path) -> dict[str, Any]:
    log = _catalog(db)
    size = log.size()
    start = time.perf_counter()
    doc = log.prove(size // 3, tree_size=size)
    seconds = time.perf_counter() - start
    consistency = log.consistency(size // 2, size)
    return {"events": size, "seconds": seconds, "path": len(doc["proof"]["path"]),
            "bytes": len(json.dumps(doc)), "consistency_path": len(consistency["proof"]["path"])}


def phase_concurrent(db: Path, n: int, threads: int, grouped: bool) -> dict[str, Any]:
    """``threads`` callers record single events (``n`` in all) as request threads do."""
    from archive.audit.group import GroupCommitter
    from archive.audit.log import AuditLog
    from archive.audit.verify import verify_log

    log = _catalog(db)
    committer = GroupCommitter(log=AuditLog(catalog=log.catalog)) if grouped else None
    recorder = AuditLog(catalog=log.catalog, committer=committer)
    events = iter([_event(i) for i in range(n)])  # made outside the clock
    barrier = threading.Barrier(threads + 1)

    def caller() -> None:
        barrier.wait()
        for ev in events:  # next() on a list iterator is atomic: each event once
            recorder.record(**ev)

    pool = [threading.Thread(target=caller) for _ in range(threads)]
    for t in pool:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in pool:
        t.join()
    seconds = time.perf_counter() - start
    out: dict[str, Any] = {"events": n, "seconds": seconds, "threads": threads}
    if committer is not None:
        committer.close()
        out.update(batches=committer.batches, high_water=committer.high_water)
    report = verify_log(log.catalog.engine, keyring=None)
    if not (report.ok and report.events == n):
        raise SystemExit(f"{report.events} events, {len(report.findings)} findings; "
                         f"expected {n} and none")
    return out


PHASES = {"append", "raw", "verify", "proof", "concurrent"}


def child_main(args: argparse.Namespace) -> None:
    if args.phase == "append":
        out = phase_append(args.db, args.n, args.batch, args.synchronous)
    elif args.phase == "raw":
        out = phase_raw(args.db, args.n, args.batch, args.synchronous)
    elif args.phase == "verify":
        out = phase_verify(args.db)
    elif args.phase == "concurrent":
        out = phase_concurrent(args.db, args.n, args.threads, args.group)
    else:
        out = phase_proof(args.db)
    out["maxrss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out), flush=True)


def run_phase(scratch: Path, name: str, db: Path, *extra: str) -> dict[str, Any]:
    out = scratch / f"{name}.json"
    with open(out, "wb") as fh:
        res = run_child([sys.executable, "-m", "bench.audit", "--child", "--db", str(db),
                         *extra], stdout=fh.fileno(), env=dict(os.environ, PYTHONPATH=str(REPO)))
    result: dict[str, Any] = json.loads(out.read_bytes())
    result["wall_s"], result["child_rss_mib"] = res.wall_s, res.maxrss_kib / 1024
    rate = result["events"] / result["seconds"] if result["seconds"] else 0.0
    print(f"  {name:15} {result['events']:>9} events {result['seconds']:8.2f}s "
          f"{rate:9.0f}/s  peak RSS {result['child_rss_mib']:5.0f} MiB", flush=True)
    return result


def _rate(r: dict[str, Any]) -> float:
    return float(r["events"] / r["seconds"])


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.audit", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--durable", type=int, default=1000, help="events, one per transaction")
    p.add_argument("--batched", type=int, default=50_000, help="events in batches")
    p.add_argument("--runs", type=int, default=3, help="runs of each append phase (median)")
    p.add_argument("--batch", type=int, default=1000, help="events per batched transaction")
    p.add_argument("--verify", type=int, default=1_000_000, help="events in the verified log")
    p.add_argument("--callers", type=_ints, default=[40, 100],
                   help="concurrent callers, comma-separated (the service's request "
                   "threads: anyio's default pool is 40)")
    p.add_argument("--grouped", type=int, default=20_000,
                   help="single events recorded through the group committer")
    p.add_argument("--per-event", type=int, default=2000,
                   help="single events recorded one transaction each (0: skip both)")
    p.add_argument("--data", type=Path, default=REPO / "bench" / "data",
                   help="scratch space (same filesystem as a real catalog)")
    p.add_argument("--doc", action=argparse.BooleanOptionalAction, default=True,
                   help="write the figures to docs/BENCHMARKS.md (## Audit log)")
    # internal: one phase in a child process
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)
    p.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--n", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--synchronous", default="FULL", help=argparse.SUPPRESS)
    p.add_argument("--group", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def run_all(args: argparse.Namespace, scratch: Path) -> dict[str, dict[str, Any]]:
    """Append phases --runs times in alternation (medians: the disk is shared), then
    the 10^6-event log is built, verified and proven once."""
    specs: dict[str, tuple[str, int, int, str, tuple[str, ...]]] = {
        # name: (phase, events, events per transaction, synchronous, more arguments)
        "raw-durable": ("raw", args.durable, 1, "FULL", ()),
        "durable": ("append", args.durable, 1, "FULL", ()),
        "raw-normal": ("raw", args.durable, 1, "NORMAL", ()),
        "durable-normal": ("append", args.durable, 1, "NORMAL", ()),
        "raw-batched": ("raw", args.batched, args.batched, "FULL", ()),
        "batched": ("append", args.batched, args.batch, "FULL", ()),
    }
    for callers in args.callers if args.per_event else []:
        threads = ("--threads", str(callers))
        specs[f"per-event-{callers}"] = ("concurrent", args.per_event, 1, "FULL", threads)
        specs[f"grouped-{callers}"] = ("concurrent", args.grouped, 1, "FULL",
                                       (*threads, "--group"))

    def one(name: str, i: int) -> dict[str, Any]:
        phase, n, batch, sync, more = specs[name]
        return run_phase(scratch, name, scratch / f"{name}-{i}.sqlite3", "--phase", phase,
                         "--n", str(n), "--batch", str(batch), "--synchronous", sync, *more)

    runs: dict[str, list[dict[str, Any]]] = {}
    for i in range(args.runs):
        for name in specs:
            runs.setdefault(name, []).append(one(name, i))
    r = {name: _median_run(rs) for name, rs in runs.items()}
    if args.verify:
        specs["build"] = ("append", args.verify, 10_000, "FULL", ())
        r["build"] = one("build", 0)
        big = scratch / "build-0.sqlite3"
        r["verify"] = run_phase(scratch, "verify", big, "--phase", "verify")
        r["proof"] = run_phase(scratch, "proof", big, "--phase", "proof")
    return r


def _median_run(rs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median rate (its RSS and sizes come with it)."""
    ordered = sorted(rs, key=_rate)
    return ordered[len(ordered) // 2]


def report(args: argparse.Namespace, r: dict[str, dict[str, Any]]) -> str:
    def row(name: str, what: str, base: str | None) -> list[object]:
        ratio = f"{_rate(r[name]) / _rate(r[base]):.2f}× {base}" if base else "baseline"
        return [what, f"{r[name]['events']:,}", f"{_rate(r[name]):,.0f}", ratio,
                f"{r[name]['child_rss_mib']:.0f} MiB"]

    info = machine_info()
    lines = [f"`.venv/bin/python -m bench.audit` ({args.runs} alternating runs of each "
             f"append phase, medians) — {info['date']}, {info['machine']}, "
             f"Python {info['python']}. SQLite WAL on the repository's filesystem; each "
             "phase a child process (peak RSS via `os.wait4`). Events are realistic "
             "`ingest.file` events (~600 bytes of JSON). Target: ≥ 5,000 events/s, "
             "verify 10⁶ events < 60 s, O(log n) proofs.", "",
             markdown_table(["phase", "events", "events/s", "vs baseline", "peak RSS"], [
                 row("raw-durable", "baseline: raw sqlite3, 1 row per commit, FULL", None),
                 row("durable", "AuditLog.append, 1 event per transaction, FULL",
                     "raw-durable"),
                 row("raw-normal", "baseline: raw sqlite3, 1 row per commit, NORMAL",
                     None),
                 row("durable-normal", "AuditLog.append, 1 event per transaction, NORMAL",
                     "raw-normal"),
                 row("raw-batched", "baseline: raw sqlite3 executemany, 1 transaction",
                     None),
                 row("batched", f"AuditLog.append, {args.batch} events per transaction, "
                     "FULL", "raw-batched")])]
    if "verify" in r:
        v, p = r["verify"], r["proof"]
        lines += ["", f"- verify: {v['events']:,} events in {v['seconds']:.1f} s "
                  f"({_rate(v):,.0f} events/s: every event re-hashed from its stored fields, "
                  f"chain, Merkle root), peak RSS {v['child_rss_mib']:.0f} MiB "
                  f"({'meets' if v['seconds'] < TARGET_VERIFY_S else 'MISSES'} < 60 s).",
                  f"- inclusion proof in a log of {p['events']:,}: {p['path']} hashes, "
                  f"{p['bytes']:,} bytes of JSON with the event; consistency proof "
                  f"{p['consistency_path']} hashes; making one (one streaming pass over the "
                  f"leaf hashes) took {p['seconds']:.1f} s, peak RSS "
                  f"{p['child_rss_mib']:.0f} MiB.",
                  f"- building that log with batched appends (10,000 per transaction): "
                  f"{_rate(r['build']):,.0f} events/s."]
    durable, batched = _rate(r["durable"]), _rate(r["batched"])
    lines += ["", f"One event per transaction does not reach 5,000/s: {durable:,.0f}/s "
              f"durable (synchronous=FULL, the catalog default; the fsync floor of this disk "
              f"is {_rate(r['raw-durable']):,.0f}/s for raw sqlite3) and "
              f"{_rate(r['durable-normal']):,.0f}/s with synchronous=NORMAL, where the "
              "cost is the transaction itself (a SQLAlchemy session, BEGIN IMMEDIATE, the "
              "head lookup, the commit: about 0.5 ms). Batched appends (many events per "
              f"transaction, as an offload session or a fixity run writes them) reach "
              f"{batched:,.0f}/s, {'meeting' if batched >= TARGET_RATE else 'missing'} the "
              "target with full durability."]
    if args.per_event and args.callers:
        lines += ["", *_concurrent_report(args.callers, r)]
    return "\n".join(lines)


def _concurrent_report(callers: Sequence[int], r: dict[str, dict[str, Any]]) -> list[str]:
    """Group commit vs one transaction per event, same callers, same run."""
    rows, verdicts = [], []
    for n in callers:
        p, g = r[f"per-event-{n}"], r[f"grouped-{n}"]
        rows.append([n, f"{_rate(p):,.0f}", f"{_rate(g):,.0f}",
                     f"{_rate(g) / _rate(p):.1f}×",
                     f"{g['batches']:,} ({g['events'] / max(1, g['batches']):.0f} each)",
                     g["high_water"], f"{p['child_rss_mib']:.0f} / "
                     f"{g['child_rss_mib']:.0f} MiB"])
        verdicts.append(f"{_rate(g):,.0f}/s with {n} callers "
                        f"({'meets' if _rate(g) >= TARGET_GROUPED else 'misses'})")
    first = r[f"grouped-{callers[0]}"]
    return [
        "### Concurrent single events: group commit", "",
        "N threads (the service's request threads) each record single events with "
        "`AuditLog.record`, as a read or a refusal does, until the events are used up "
        f"({r[f'per-event-{callers[0]}']['events']:,} one transaction each, "
        f"{first['events']:,} through the `GroupCommitter`); synchronous=FULL; a call "
        "returns only once its event is committed. Phases alternate (medians); the log "
        "is verified after each (every event once, gap-free).", "",
        markdown_table(["callers", "per-event events/s", "grouped events/s", "ratio",
                        "grouped transactions", "most queued", "peak RSS (per-event / "
                        "grouped)"], rows), "",
        f"Target ≥ {TARGET_GROUPED:,} events/s: " + "; ".join(verdicts) + ". A caller "
        "waits for the transaction in progress and then its own, so N callers get at "
        "most about N / (2 × (fsync + the batch's CPU)) events/s: the rate grows with "
        "the callers until the one writer thread is busy. The service's request threads "
        "(anyio's pool, 40 by default) bound N."]


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child:
        child_main(args)
        return
    args.data.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="audit-", dir=args.data))
    try:
        results = run_all(args, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    text = report(args, results)
    print("\n" + text)
    if args.doc:
        write_section("Audit log", text)


if __name__ == "__main__":
    main()
