"""Offload bench: `evidock ingest` against `cp -r && sync` and `b3sum`, in one run.

    .venv/bin/python -m bench.offload [--gib 2] [--bigfile-gib 4] [--runs 3] [--warm]
        [--data DIR] [--no-keep] [--no-doc] [--compare LABEL=EXE ...]
        [--variant LABEL:SECTION__KEY=VALUE ...]

Builds once (cached under bench/data/ or --data) a --gib GiB camera tree and a single
--bigfile-gib GiB file with fixtures.camera. Then, --runs times, alternating, cold by
default (page cache dropped before every run): the real client ``evidock ingest TREE
--device ZFY0001 --json --no-process`` (the offload; renditions are timed once apart)
against a fresh ``evidock serve`` with a fresh EVIDOCK_HOME on the same filesystem
(wall of the client; CPU and peak RSS of client and service);
``cp -r TREE DEST`` then ``sync`` (and then a cold ``b3sum`` of the copy); the disk
floor of a proven copy (``cp -r`` while ``cat`` reads a second, cold copy of the tree
from the same disk, then ``sync``); ``b3sum`` of the same files; and any other evidock
build given with --compare. Reports medians, MB/s, ratios, the peak RSS of ingesting the
big file, a phase breakdown, and writes them to docs/BENCHMARKS.md ("## Offload").
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from bench.camera import _env as _client_env
from bench.camera import _proc_cpu, _proc_hwm_mib, station
from bench.common import (
    REPO,
    ChildResult,
    GiB,
    cached_build,
    cpu_seconds,
    fadvise_dontneed,
    machine_info,
    mb_per_s,
    real_ram,
    remove_tree,
    run_chain,
    run_child,
    set_cache_state,
    total_size,
    tree_files,
    write_section,
)
from bench.offload_report import FLOOR, doc_body

DEVICE = "ZFY0001"
EVIDOCK = REPO / ".venv" / "bin" / "evidock"
PHASES = ("copy + BLAKE3/SHA-256", "fsync", "verify re-read, BLAKE3 (DONTNEED first)",
          "media check (MP4 index, ffprobe header, box walk)")


@dataclass
class Bench:
    args: argparse.Namespace
    tree: Path
    files: list[Path]
    scratch: Path
    nbytes: int
    cache_mode: str = ""
    runs: dict[str, list[ChildResult]] = field(default_factory=dict)
    extra: dict[str, tuple[ChildResult, int]] = field(default_factory=dict)  # 1-run figures
    phases: dict[str, tuple[float, float]] = field(default_factory=dict)  # wall, cpu
    floor_files: list[Path] = field(default_factory=list)  # a second copy, read by "floor"
    ram: str = ""  # what real_ram did


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.offload", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gib", type=float, default=2.0, help="size of the camera tree (GiB)")
    p.add_argument("--single", action="store_true",
                   help="the tree is ONE file of --gib GiB (figures go to \"## Offload, "
                        "one big file\")")
    p.add_argument("--bigfile-gib", type=float, default=4.0,
                   help="size of the single-file ingest for peak RSS (0: skip)")
    p.add_argument("--runs", type=int, default=3, help="runs per contender (median)")
    p.add_argument("--data", type=Path, default=REPO / "bench" / "data",
                   help="cache for the built trees and scratch space (same filesystem)")
    p.add_argument("--keep", action=argparse.BooleanOptionalAction, default=True,
                   help="keep the built trees for the next run (default: keep)")
    p.add_argument("--real-ram", action=argparse.BooleanOptionalAction, default=True,
                   help="hold the VM's free page reporting and back the memory a run "
                        "will fill before each run (bench.common.real_ram): without it a "
                        "fresh page-cache page faults on the host, which costs whoever "
                        "runs after a contender that freed memory")
    p.add_argument("--station-warm", action="store_true",
                   help="cold camera files only (dropped with posix_fadvise) instead of "
                        "drop_caches: the station's programs stay cached, as on a running "
                        "station")
    p.add_argument("--warm", action="store_true",
                   help="run every contender warm (tree read once first) instead of cold")
    p.add_argument("--breakdown", action=argparse.BooleanOptionalAction, default=True,
                   help="time the ingest's phases and an evict_before_verify=false run")
    p.add_argument("--renditions", action=argparse.BooleanOptionalAction, default=True,
                   help="time one default ingest (offload + renditions) too")
    p.add_argument("--doc", action=argparse.BooleanOptionalAction, default=True,
                   help="write the figures to docs/BENCHMARKS.md (## Offload)")
    p.add_argument("--evidock", default=str(EVIDOCK), help="evidock executable to bench")
    p.add_argument("--compare", action="append", default=[], metavar="LABEL=EXE",
                   help="also bench another evidock build, in the same rounds")
    p.add_argument("--variant", action="append", default=[],
                   metavar="LABEL:SECTION__KEY=VALUE",
                   help="also bench this build with a station setting changed (e.g. "
                        "direct:INGEST__DIRECT_WRITES=true), in the same rounds")
    return p.parse_args(argv)


# --- fixtures -----------------------------------------------------------------------------


def camera_tree(data: Path, gib: float) -> Path:
    from fixtures.camera import build_big_camera

    def build(root: Path) -> int:
        tree = build_big_camera(root, total_bytes=int(gib * GiB), serial=DEVICE,
                                cache_dir=data / "cache")
        return len(tree.files)

    return cached_build(data, f"camera-{gib:g}gib", build)


def big_file_tree(data: Path, gib: float) -> Path:
    """A camera tree holding one file of ``gib`` GiB, named so that it parses."""
    from fixtures.camera import DEFAULT_START, build_big_file, media_relpath

    def build(root: Path) -> int:
        rel = media_relpath("A", serial=DEVICE, officer="123456", start=DEFAULT_START,
                            seq=1, kind="video")
        build_big_file(root / rel, total_bytes=int(gib * GiB), cache_dir=data / "cache")
        return 1

    return cached_build(data, f"bigfile-{gib:g}gib", build)


# --- contenders ---------------------------------------------------------------------------


@cache
def _has_no_process(exe: str) -> bool:
    """Whether this evidock build can offload without making renditions."""
    res = subprocess.run([exe, "ingest", "--help"], capture_output=True, text=True,
                         check=False, timeout=60, env={**os.environ, "COLUMNS": "200"})
    return "--no-process" in res.stdout


def ingest_once(b: Bench, tree: Path, *, exe: str | None = None, process: bool = False,
                overrides: dict[str, str] | None = None) -> ChildResult:
    """The real client `evidock ingest` against a fresh `evidock serve` of the same build
    (fresh EVIDOCK_HOME; ``overrides``: the service's settings); fails loudly unless every
    file is ingested. Wall: the client's, start to answer (the offload runs in the
    service); CPU: the client's plus the service's during the request (its ffprobe/ffmpeg
    children included); peak RSS: the larger of the client and the service (VmHWM)."""
    exe = exe or b.args.evidock
    argv = [exe, "ingest", str(tree), "--device", DEVICE, "--json"]
    if not process and _has_no_process(exe):
        argv.append("--no-process")
    home, out = b.scratch / "home", b.scratch / "ingest.json"
    try:
        with station(home, None, exe=exe, service_env=overrides) as service:
            before = _proc_cpu(service.pid)
            with open(out, "wb") as fh:
                res = run_child(argv, env=_client_env(home), stdout=fh.fileno(), check=False)
            cpu, hwm = _proc_cpu(service.pid) - before, _proc_hwm_mib(service.pid)
        try:
            summary = json.loads(out.read_bytes())["summary"]
        except (ValueError, KeyError):
            raise SystemExit(f"{exe} ingest exited {res.returncode} without a JSON "
                             "report (see its stderr above)") from None
        if res.returncode != 0 or summary["ingested"] != summary["files"]:
            raise SystemExit(f"{exe} ingest did not ingest every file: {summary}")
    finally:
        remove_tree(home)
    return ChildResult(res.wall_s, max(res.maxrss_kib, int(hwm * 1024)), res.returncode,
                       res.cpu_s + cpu)


def cp_once(b: Bench, *, verify: bool = False) -> ChildResult:
    """``cp -r`` + ``sync``; with ``verify``, then drop the copy's pages and ``b3sum`` it
    (the same three passes over the disk as the ingest: read, write, re-read)."""
    dest = b.scratch / "cp"
    remove_tree(dest)
    try:
        res = run_chain(["cp", "-r", b.tree, dest], ["sync"])
        if not verify:
            return res
        t = time.perf_counter()
        fadvise_dontneed(copies := tree_files(dest))
        again = run_child(["b3sum", *copies])
        return ChildResult(res.wall_s + time.perf_counter() - t, max(
            res.maxrss_kib, again.maxrss_kib), 0, res.cpu_s + again.cpu_s)
    finally:
        remove_tree(dest)


def floor_once(b: Bench) -> ChildResult:
    """The disk work of a proven copy and nothing else, perfectly overlapped: ``cp -r``
    while ``cat`` reads another copy of the tree from the same disk, cold (what the
    re-read of the copy reads), then ``sync``. No copy can be read back from this disk
    faster: the offload's re-read can only trail its writer (issue 14, target 2)."""
    if not b.floor_files:
        other = b.scratch / "floor-copy"
        run_chain(["cp", "-r", b.tree, other], ["sync"])
        b.floor_files = tree_files(other)
    dest = b.scratch / "cp"
    remove_tree(dest)
    fadvise_dontneed(b.floor_files)
    try:
        t = time.perf_counter()
        with ThreadPoolExecutor(max_workers=1) as pool:
            reread = pool.submit(run_child, ["cat", *b.floor_files])
            copy = run_child(["cp", "-r", b.tree, dest])
            read = reread.result()
        flush = run_child(["sync"])
        return ChildResult(time.perf_counter() - t, max(copy.maxrss_kib, read.maxrss_kib), 0,
                           copy.cpu_s + read.cpu_s + flush.cpu_s)
    finally:
        remove_tree(dest)


def b3sum_once(b: Bench) -> ChildResult:
    return run_child(["b3sum", *b.files])


def prepare(b: Bench, files: Sequence[Path]) -> None:
    """Put every contender in the same cache state before it starts."""
    # cp+sync+b3sum and the disk floor fill the page cache with 3× the data at most.
    backed = 3 * total_size(files) + GiB if b.args.real_ram else 0
    b.cache_mode = set_cache_state(files, warm=b.args.warm,
                                   station_warm=b.args.station_warm, backed=backed)


def contenders(b: Bench) -> dict[str, Callable[[], ChildResult]]:
    out: dict[str, Callable[[], ChildResult]] = {"ingest": lambda: ingest_once(b, b.tree)}
    for spec in b.args.compare:
        label, _, exe = spec.partition("=")
        out[f"ingest[{label}]"] = functools.partial(ingest_once, b, b.tree, exe=exe)
    for spec in b.args.variant:
        label, _, setting = spec.partition(":")
        key, _, value = setting.partition("=")
        out[f"ingest[{label}]"] = functools.partial(
            ingest_once, b, b.tree, overrides={f"EVIDOCK_{key}": value})
    out["cp+sync"] = lambda: cp_once(b)
    out["cp+sync+b3sum(copy)"] = lambda: cp_once(b, verify=True)
    out[FLOOR] = lambda: floor_once(b)
    out["b3sum"] = lambda: b3sum_once(b)
    return out


def _show(label: str, res: ChildResult, nbytes: int) -> None:
    print(f"  {label:28} {res.wall_s:7.2f}s {mb_per_s(nbytes, res.wall_s):6.0f} MB/s  "
          f"cpu {res.cpu_s:6.2f}s  peak RSS {res.maxrss_kib / 1024:5.0f} MiB", flush=True)


def run_rounds(b: Bench) -> None:
    actions = contenders(b)
    for i in range(b.args.runs):
        for name, action in actions.items():
            prepare(b, b.files)
            b.runs.setdefault(name, []).append(res := action())
            _show(f"run {i + 1}/{b.args.runs} {name}", res, b.nbytes)


def run_extras(b: Bench) -> None:
    """One-run figures: the big single file, renditions, no eviction before verify."""
    empty = b.scratch / "empty-camera"
    empty.mkdir()
    b.extra["empty"] = (ingest_once(b, empty), 0)
    if b.args.bigfile_gib > 0:
        big = big_file_tree(b.args.data, b.args.bigfile_gib)
        files = tree_files(big)
        prepare(b, files)
        b.extra["big"] = (ingest_once(b, big), total_size(files))
    if b.args.renditions:
        prepare(b, b.files)
        b.extra["renditions"] = (ingest_once(b, b.tree, process=True), b.nbytes)
    if b.args.breakdown:
        prepare(b, b.files)
        b.extra["no_evict"] = (ingest_once(
            b, b.tree, overrides={"EVIDOCK_INGEST__EVICT_BEFORE_VERIFY": "false"}), b.nbytes)
        b.phases = phase_breakdown(b)
    for key, (res, nbytes) in b.extra.items():
        _show(key, res, nbytes)


# --- breakdown ----------------------------------------------------------------------------


def phase_breakdown(b: Bench) -> dict[str, tuple[float, float]]:
    """The offloader's steps on the same files, in-process, one after the other, cold:
    the same library calls with the default settings. Returns phase -> (wall, cpu)."""
    from archive.store import reread_file
    from ingest.media import Prober
    from integrity.digest import copy_and_hash

    prober, stage = Prober(), b.scratch / "phases"
    steps: list[Callable[[Path, Path], object]] = [
        lambda src, dst: _copy_file(copy_and_hash, src, dst),
        lambda src, dst: _fsync(dst),
        lambda src, dst: reread_file(dst, evict=True, sha256=False),
        lambda src, dst: prober.check(dst, kind="video", ext="mp4"),
    ]
    totals = dict.fromkeys(PHASES, (0.0, 0.0))
    remove_tree(stage)
    stage.mkdir(parents=True)
    prepare(b, b.files)
    try:
        for i, src in enumerate(b.files):
            for name, step in zip(PHASES, steps, strict=True):
                t, c = time.perf_counter(), cpu_seconds()
                step(src, stage / f"{i}.part")
                w, u = totals[name]
                totals[name] = (w + time.perf_counter() - t, u + cpu_seconds() - c)
    finally:
        remove_tree(stage)
    return totals


def _copy_file(copy_and_hash: Callable[..., object], src: Path, dst: Path) -> None:
    """As Stager.copy writes (direct, behind the reads), without the follower."""
    from archive.staging import StagingWriter

    with open(src, "rb", buffering=0) as fin, open(dst, "xb", buffering=0) as fout:
        os.posix_fadvise(fin.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)
        copy_and_hash(fin, StagingWriter(fout.fileno(), direct=True), write_behind=True)


def _fsync(path: Path) -> None:
    with open(path, "rb+", buffering=0) as fh:
        os.fsync(fh.fileno())


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    args.data = args.data.resolve()
    args.data.mkdir(parents=True, exist_ok=True)
    cmd = " ".join([".venv/bin/python -m bench.offload",
                    *(sys.argv[1:] if argv is None else argv)])
    tree = (big_file_tree if args.single else camera_tree)(args.data, args.gib)
    files = tree_files(tree)
    b = Bench(args, tree, files, args.data / f"scratch-{os.getpid()}", total_size(files))
    b.scratch.mkdir(parents=True)
    try:
        with real_ram(args.real_ram) as b.ram:
            run_rounds(b)
            run_extras(b)
    finally:
        remove_tree(b.scratch)
        if not args.keep:
            for name in (tree.name, f"bigfile-{args.bigfile_gib:g}gib"):
                remove_tree(args.data / name)
                (args.data / f"{name}.done").unlink(missing_ok=True)
    body = doc_body(b, machine_info(), cmd)
    print("\n" + body)
    if args.doc:
        title = "Offload, one big file" if args.single else "Offload"
        write_section(title, body)
        print(f"\nwrote ## {title} to docs/BENCHMARKS.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
