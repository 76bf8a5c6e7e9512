"""The text of bench.center's section in docs/BENCHMARKS.md."""

from __future__ import annotations

import argparse
import statistics
import time
from typing import TYPE_CHECKING, Any

from bench.center_search import EXTRA_INDEXES, search_table
from bench.common import markdown_table

if TYPE_CHECKING:
    from bench.center import Run

READING = """Reading. The first run at 10⁶ (2026-12-04 18:32 UTC, the code of then) pushed
1,107 recordings/s, 0.04× the baseline: cProfile put 86 % of `Feed.receive` in
`archive.witness.index.project`, which folded each event with its own statements (~3
round trips per recording); the index now folds a batch with one executemany per table.
Witnessing then recomputed the mirror's root from every leaf (40 heads/s at 13,600
events a station); migration 0018 keeps a Merkle frontier per station instead. "By case
number" then matched `recording_id IN (...)` without the station, which the primary key
(station_id, recording_id) cannot serve: EXPLAIN showed `Index Scan using
centralrecording_pkey`, `Index Cond: recording_id = ...`, 32.7 ms a loop × 30 linked
recordings (272,880 buffers), p50 996 ms (5.1 ms with an index on recording_id); the desk
now matches the link at the recording's own station (EXISTS), which the key serves, and
a case of one station no longer lists another station's recording with the same id.
Still open: the searches fetch up to 4000 rows (`MAX_ROWS * 4`) and the cases governing
every one of them to show 100; that, not an index, is most of "by station" (an index on
(station_id, ingested_at) does not change it). With a real object store the blob checks
come first: run one after another they cost more per recording than the database does
(second figure); checking a batch's blobs concurrently, or naming the signed record's
SHA-256 and size in the event (a HEAD instead of a GET), would cut that.
"""


def _rates(batches: list[tuple[int, int, float, float]]) -> tuple[float, float, float]:
    """(events/s, recordings/s, baseline events/s) over ``batches``."""
    ev, rec = sum(b[0] for b in batches), sum(b[1] for b in batches)
    took, floor = sum(b[2] for b in batches), sum(b[3] for b in batches)
    return ev / took, rec / took, ev / floor


def push_lines(run: Run) -> list[str]:
    tenth = max(1, len(run.batches) // 10)
    rows = []
    for name, part in (("whole run", run.batches), ("first 10 % of batches",
                                                     run.batches[:tenth]),
                       ("last 10 % of batches", run.batches[-tenth:])):
        ev, rec, floor = _rates(part)
        rows.append((name, f"{ev:,.0f}", f"{rec:,.0f}", f"{floor:,.0f}", f"{ev / floor:.2f}×"))
    heads = sorted(run.heads)
    return [markdown_table(("push (Feed.receive)", "events/s", "recordings/s",
                            "baseline events/s", "÷ baseline"), rows), "",
            f"- witness: {len(heads)} heads judged and countersigned, "
            f"{len(heads) / sum(heads):,.1f} heads/s (p50 {statistics.median(heads) * 1e3:.1f}"
            f" ms, max {heads[-1] * 1e3:.0f} ms; each also checked against the mirror's own "
            "root at that size, as the witness desk does)",
            f"- wall of the whole push phase {run.wall_s:.0f} s (of it in Feed.receive "
            f"{sum(b[2] for b in run.batches):.0f} s, in the baseline "
            f"{sum(b[3] for b in run.batches):.0f} s, in witnessing {sum(heads):.0f} s; the "
            "rest is the stations' simulation: building rows, signing heads, proofs)"]


def s3_lines(s3: Any) -> list[str]:
    if s3 is None:
        return ["- object store: not measured in this run (--s3-blobs 0)"]
    return [f"- **not in the push figures: the object store.** The real check "
            f"(`ObjectCheck`) against SeaweedFS on 127.0.0.1 (booted in {s3.boot_s:.1f} s, "
            f"{s3.blobs} blobs): an original (64 KiB, named with size + SHA-256) p50 "
            f"{s3.original_p50_ms:.1f} ms / p95 {s3.original_p95_ms:.1f} ms "
            f"({s3.gets_original} of {s3.blobs // 2} needed a GET), a signed record (BLAKE3 "
            f"only: HEAD + GET + re-hash; {s3.gets_record} GETs) p50 "
            f"{s3.record_p50_ms:.1f} ms / p95 {s3.record_p95_ms:.1f} ms: "
            f"~{s3.per_recording_ms():.1f} ms per recording, "
            f"i.e. at most ~{1000 / s3.per_recording_ms():,.0f} recordings/s from one pusher "
            "before any database work (the checks run one after another)"]


def report(args: argparse.Namespace, info: dict[str, str], run: Run, *,
           sizes: tuple[str, int, int, int], passes: list[tuple[str, dict[str, Any]]],
           floor: list[float], plans: dict[str, str], s3: Any) -> str:
    dbname, size, rss, leaves = sizes
    events, recs = sum(b[0] for b in run.batches), sum(b[1] for b in run.batches)
    extra = " --extra-index" if args.extra_index else ""
    lines = [
        f"- date: {info['date']}; machine: {info['machine']}; python {info['python']}; "
        f"{info['load']} at the end (shared VM)",
        f"- command: `python -m bench.center --stations {args.stations} --recordings "
        f"{args.recordings} --db {args.db}{extra}`",
        f"- data: {args.stations} stations, {recs:,} recordings, {events:,} events "
        "(per dock session a `dock.session.start` and 20 `ingest.file`; every 5 sessions a "
        "`case.create` and `case.link` for 30 % of their recordings), made with the "
        "station's row builder and exported as `AuditLog.export` gives them; pushed "
        "through `Feed.receive` in batches of 500 (order, chain, leaf hash, blobs named, "
        "index rows, `feed.received`, one transaction), stations interleaved; a head "
        "signed by the station's key judged and countersigned every 4 of its batches",
        f"- database: {dbname} on the same 2 cores ({_where(args.db)}); at the end "
        f"{size / 2**20:,.0f} MiB, {size / max(recs, 1):,.0f} bytes per recording",
        f"- peak RSS of the bench process {rss / 2**20:,.0f} MiB (the simulated stations' "
        f"leaf hashes {leaves / 2**20:,.1f} MiB of it)",
        "- baseline: the same rows, one `INSERT` executemany per batch into a bare copy of "
        "`stationevent` (no checks, no index rows, no triggers, no audit event), timed "
        "right after each batch, so at the same table sizes", "",
        *push_lines(run), *s3_lines(s3), "", search_table(passes, floor), "",
        "Searches as `inspector-1` (role inspector, 2 of 4 units, no clearance), random "
        "keys; every search also appends its `read.center.*` audit event (a commit). "
        "ANALYZE ran before the searches; `head + extra` = after creating in this scratch "
        "database: " + "; ".join(f"`{d.split(' ON ')[1]}`" for d in EXTRA_INDEXES)
        + " (not in the migrations).", "", READING.rstrip(),
        *[f"\nEXPLAIN (ANALYZE, BUFFERS) of the slowest SELECT of one {k}:\n\n```\n"
          + plan_text(v) + "\n```" for k, v in plans.items() if v]]
    return "\n".join(lines)


def plan_text(plan: str, *, lines: int = 30, width: int = 150) -> str:
    """A plan as shown: its first ``lines`` lines, each cut at ``width`` characters
    (the desk's IN lists of 500 ids make lines of many kilobytes)."""
    return "\n".join(ln if len(ln) <= width else ln[:width] + " …"
                     for ln in plan.splitlines()[:lines])


def _where(kind: str) -> str:
    return ("the tests' throwaway cluster, unix socket, fsync turned on for the run"
            if kind == "postgresql" else "a file in /tmp, as the catalog opens it")


def progress(run: Run, start: float) -> None:
    ev, rec, _floor = _rates(run.batches[-200:])
    print(f"  {len(run.batches)} batches, {sum(b[1] for b in run.batches):,} recordings, "
          f"{time.perf_counter() - start:.0f} s; last 200: {ev:,.0f} events/s, "
          f"{rec:,.0f} recordings/s", flush=True)
