"""bench.camera's report: the per-camera table, the CPU budget of a round, the bays at
100 MB/s, and the section written to docs/BENCHMARKS.md."""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence
from functools import cache

from bench.camera import SLOWED, TARGET, VIA, Camera, Round, Run
from bench.common import MB, GiB, machine_info, markdown_table, mb_per_s


def per_camera_table(r: Round, cameras: Sequence[Camera]) -> str:
    reads = r.ingest.read_s or (float("nan"),) * len(cameras)
    rows = [[c.serial, f"{c.nbytes / MB:.0f}", f"{cw:.2f}", f"{iw:.2f}",
             f"{mb_per_s(c.nbytes, iw):.1f}", f"**{iw / cw:.2f}×**", f"{ow:.2f}",
             f"{ow / cw:.2f}×", f"{rw:.2f}", f"{rw / cw:.2f}×", f"{iw - rw:.2f}"]
            for c, cw, iw, ow, rw in zip(cameras, r.cat.wall_s, r.ingest.wall_s,
                                         r.ingest.offload_s, reads, strict=True)]
    return markdown_table(["camera", "MB", "cat s", "ingest s", "ingest MB/s",
                           "ingest ÷ cat", "of which offload s (its report)",
                           "offload ÷ cat", "last byte read s", "read ÷ cat",
                           "tail s (last byte → done)"], rows)


def cpu_budget(r: Round) -> tuple[float, float]:
    """(CPU-s the whole machine was busy during the ingest round, CPU-s its cores offer
    within ``TARGET`` × the throttle's time): a round that needed more could not meet the
    target on this machine, however its work was scheduled."""
    return r.ingest.machine_s, (os.cpu_count() or 1) * TARGET * r.throttle_s


@cache
def hash_cpu_per_gib() -> float:
    """CPU-s per GiB of the hashing the guarantees require, on this CPU, measured now:
    SHA-256 and BLAKE3 while copying, BLAKE3 again over the re-read."""
    import hashlib

    import blake3

    buf, reps = bytes(8 << 20), 16
    start = time.process_time()
    for _ in range(reps):
        hashlib.sha256(buf)
        blake3.blake3(buf)
        blake3.blake3(buf)
    return (time.process_time() - start) * GiB / (reps * len(buf))


def budget_text(r: Round, nbytes: int) -> str:
    need, available = cpu_budget(r)
    others = max(need - r.ingest.cpu_s, 0.0)
    hashing = hash_cpu_per_gib() * nbytes / GiB
    return (f"- CPU budget (/proc/stat, the whole machine): the ingest round kept it busy "
            f"**{need:.1f} CPU-s** (host steal {r.ingest.steal_s:.1f} more): the station "
            f"{r.ingest.cpu_s:.1f} (of which the hashing the guarantees require, SHA-256 + "
            f"BLAKE3 twice, is {hashing:.1f} at {hash_cpu_per_gib():.2f} CPU-s/GiB on this "
            f"CPU), the kernel's threads (the loop devices serving the emulated cameras, "
            f"the store's writeback) and anything else {others:.1f}. Within {TARGET}× the "
            f"throttle's {r.throttle_s:.2f} s, {os.cpu_count()} cores offer "
            f"**{available:.1f} CPU-s** ({need / available:.2f}× of it was needed). The cat "
            f"round: {r.cat.machine_s:.1f} CPU-s busy, {r.cat.cpu_s:.1f} in the cats")


def _cpu_per_gib(run: Run, nbytes: int) -> str:
    return f"{run.cpu_s / (nbytes / GiB):.1f}"


def _need(r: Round) -> str:
    need, available = cpu_budget(r)
    return f"{need / available:.2f}×"


def sweep_table(rounds: Sequence[Round], cameras: Sequence[Camera]) -> str:
    rows = []
    for r in rounds:
        nbytes = sum(c.nbytes for c in cameras[:r.n])
        rows.append([r.n, f"{r.throttle_s:.2f}", f"{max(r.cat.wall_s):.2f}",
                     f"{mb_per_s(nbytes, max(r.cat.wall_s)):.0f}",
                     f"{max(r.ingest.wall_s):.2f}", f"{max(r.ratios()):.2f}×",
                     f"{max(r.ingest.wall_s) / r.throttle_s:.2f}×",
                     _cpu_per_gib(r.ingest, nbytes), _need(r), f"{r.ingest.rss_mib:.0f}",
                     r.verdict()])
    return markdown_table(["bays", "throttle allows s", "slowest cat s", "cat aggregate MB/s",
                           "slowest ingest s", "worst ingest ÷ cat",
                           "slowest ingest ÷ throttle", "ingest CPU-s/GiB",
                           "machine CPU ÷ available", "peak RSS MiB",
                           f"≤ {TARGET}×"], rows)


def main_text(r: Round, cameras: Sequence[Camera], via: str = "dock") -> str:
    nbytes = sum(c.nbytes for c in cameras)
    worst = max(r.ratios())
    verdict = f"**{r.verdict()}**"
    if via == "dock":
        cpu_of, rss_of = "the dock daemon + its ffprobe/ffmpeg children", "the dock daemon"
        meaning = ("ingest s is plugged in → done (identify, mount, offload, unmount); "
                   "offload s is the Offloader's own time from the daemon's event")
    else:
        cpu_of = f"service + its ffprobe/ffmpeg children + the {r.n} CLI clients"
        rss_of = "`evidock serve`; the largest client or child counted if larger"
        meaning = ("ingest s is the CLI's wall (what the user waits for: client start-up, "
                   "the request, the audited ingest.request, the offload); offload s is "
                   "the Offloader's own time from its JSON report")
    return (f"{r.n} cameras at once, each throttled to {r.rate:g} MB/s:\n\n"
            f"{per_camera_table(r, cameras)}\n\n"
            f"- slowest camera's ingest ÷ its cat: **{worst:.2f}×** (target ≤ {TARGET}×): "
            f"{verdict}; slowest ingest ÷ slowest cat "
            f"{max(r.ingest.wall_s) / max(r.cat.wall_s):.2f}×\n"
            f"- the throttle alone allows {r.throttle_s:.2f} s per camera: slowest cat "
            f"{max(r.cat.wall_s) / r.throttle_s:.2f}× that (over {SLOWED}×: the machine "
            f"slowed the round, its ratio is not counted), slowest ingest "
            f"{max(r.ingest.wall_s) / r.throttle_s:.2f}× that\n"
            f"- CPU-s per GiB: ingest {_cpu_per_gib(r.ingest, nbytes)} ({cpu_of}), cat "
            f"{_cpu_per_gib(r.cat, nbytes)}\n"
            f"- peak RSS: {r.ingest.rss_mib:.0f} MiB (VmHWM of {rss_of}), cat "
            f"{r.cat.rss_mib:.0f} MiB\n{budget_text(r, nbytes)}\n- {meaning}")


def bays_text(rounds: Sequence[Round], cameras: Sequence[Camera], rate: float) -> str:
    good = [r.n for r in rounds if r.verdict() == "met"]
    best = max(good) if good else 0
    return (f"Bays at {rate:g} MB/s each (USB 3):\n\n{sweep_table(rounds, cameras)}\n\n"
            f"- largest number of bays with every camera's ingest ≤ {TARGET}× its cat, in a "
            f"round whose cats ran at their throttle: **{best}**"
            + ("" if best else " (not even one)"))


def rig(args: argparse.Namespace) -> str:
    where = f"copied to {args.images_in}" if str(args.images_in) not in ("", ".") \
        else "on the store's own (virtual) disk"
    how = ("attached with direct I/O (`losetup --direct-io=on`: the disk's host delivers "
           "the bytes, as a USB controller DMAs them; no guest memcpy)"
           if args.loop_direct_io else "attached buffered (a kernel thread copies every "
           "byte out of the image)")
    return f"{where}, {how},"


def doc_body(args: argparse.Namespace, cameras: Sequence[Camera], main_round: Round,
             sweep: Sequence[Round], cmd: str) -> str:
    info = machine_info()
    head = (f"- date: {info['date']}; {info['load']} at the end (shared VM)\n"
            f"- machine: {info['machine']}\n- python {info['python']}, {info['ffmpeg']}\n"
            f"- command: `{cmd}`\n"
            f"- cameras: {len(cameras)} × {cameras[0].nbytes / MB:.0f} MB "
            f"({len(cameras[0].files)} MP4 files each, `fixtures.camera.build_big_camera`), "
            f"each an ext4 image (`mkfs.ext4 -d`) {rig(args)} on a "
            "read-only loop device mounted read-only, reads throttled per device with "
            "cgroup v1 "
            "`blkio.throttle.read_bps_device`; cold cameras, warm station: before each "
            "contender the camera files' pages, the loop devices' buffers and the images' "
            "pages are dropped (not the station's programs: ffmpeg/ffprobe ran once at "
            "the start, as on a running station); one run each\n"
            f"- memory: {args.memory}" + (", and 2× the cameras' data + 1 GiB of free "
            "memory touched and freed before each contender (`--real-ram`)"
            if args.real_ram else "") + "\n"
            "- cat = `cat FILES > /dev/null` per camera, all at once, in the throttled "
            f"group; {VIA[args.via]}")
    parts = [head, main_text(main_round, cameras, args.via)]
    if sweep:
        parts.append(bays_text(sweep, cameras, args.bays_at))
    return "\n\n".join(parts)
