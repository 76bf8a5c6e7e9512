"""Camera-speed offload: cameras on throttled read-only loop devices, `evidock ingest`
against a plain `cat` of the same files under the same throttle, in one run.

    .venv/bin/python -m bench.camera [--cameras 8] [--mb 256] [--rate 35] [--bays-at 100]
        [--data DIR] [--no-doc]

Builds once (cached under bench/data/ or --data) one camera tree of --mb MB per camera
with ``fixtures.camera.build_big_camera`` (serial ZFY000k, so names match the docked
device and no two cameras share bytes) and an ext4 image of it (``mkfs.ext4 -d``: this
kernel has no vfat/exFAT module), left on the data disk and attached with direct I/O
(``losetup --direct-io=on``): the loop device's reads go to the virtual disk, whose
host delivers the bytes, as a USB camera's controller DMAs them, instead of a kernel
thread copying every byte out of a tmpfs on this guest's 2 cores (--images-in /dev/shm
--no-loop-direct-io, the rig until 2026-12-05: 9–15 CPU-s of memcpy for 2.2 GB).
Sharing the store's disk is the harder case, not the easier: the cameras' reads queue
with the store's writes and re-reads. Each image is attached read-only (``losetup -r``),
mounted read-only, and its loop device throttled at --rate MB/s in one cgroup v1 blkio
group (``blkio.throttle.read_bps_device``, one line per device) that every reader runs
in. Cold cameras, warm station: before each contender every camera file's pages, the
loop devices' buffers and the images' pages are dropped (``evict_cameras``), not the
station's programs (ffmpeg and ffprobe are run once at the start, as a running station
has them cached).

- baseline: N parallel ``cat FILES > /dev/null``, one per camera;
- contender: N parallel ``evidock ingest MOUNT --device ZFY000k --json --no-process``
  clients of one fresh ``evidock serve`` (a fresh EVIDOCK_HOME on the same filesystem
  as bench/data). The service is the process that reads the cameras, so it runs in the
  throttled group; its CPU is read from /proc before and after (it includes the
  ffprobe/ffmpeg children it reaped), the clients' from ``os.wait4``.

Target (issue 14): every camera's ingest ≤ 1.1× its cat, all --cameras at --rate; then
at --bays-at MB/s for 1, 2, 4, 8 cameras: the largest N where every ratio is ≤ 1.1×.
Writes "## Camera-speed offload" to docs/BENCHMARKS.md. Root and cgroup v1 blkio only.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import FrameType

from bench.camera_reads import machine_cpu
from bench.common import (
    MB,
    REPO,
    GiB,
    MiB,
    back_free_memory,
    cached_build,
    fadvise_dontneed,
    real_ram,
    total_size,
    tree_files,
    write_section,
)

TARGET = 1.1
SLOWED = 1.05  # a cat this much slower than its throttle allows marks a round as disturbed
BLKIO = Path("/sys/fs/cgroup/blkio")
EVIDOCK = REPO / ".venv" / "bin" / "evidock"
CLK_TCK = os.sysconf("SC_CLK_TCK")
USERS = """
[[access.users]]
name = "bench"
os_users = ["root"]
roles = ["clerk"]
"""
SCOPE = ("This measures the offload pipeline (`evidock ingest` through the station "
         "service: the same Offloader the dock daemon runs), not the daemon's udev path "
         "(bench/dock.py measures that, on unthrottled trees). The camera images are "
         "ext4, not vfat/exFAT: this kernel has no vfat/exFAT module.")
VIA = {
    "dock": "ingest = the dock daemon (`python -m evidock.cmd_dock run`, udev source, "
            "one bay per camera, all at once, no wipe, no renditions) in the throttled "
            "group; every camera plugged in at once as a USB disk (umockdev testbed, "
            "`fixtures/umock.py`) whose node is its loop device; the daemon identifies, "
            "mounts read-only (mount(2)), offloads, unmounts; ingest s = plugged in → "
            "the daemon's \"done\" for its bay; offload s = its \"offload\" event's own "
            "time (bench/camera_dock.py). The camera images are ext4, not vfat/exFAT: this "
            "kernel has no vfat/exFAT module.",
    "cli": "ingest = `evidock ingest MOUNT --device ZFY000k --json --no-process` per "
           "camera, all at once, against one fresh `evidock serve` (fresh EVIDOCK_HOME on "
           "the data disk) running in the throttled group\n- " + SCOPE,
}



@dataclass(frozen=True)
class Camera:
    serial: str
    image: Path
    loop: str
    mount: Path
    files: tuple[Path, ...]
    nbytes: int
    devno: str  # "MAJ:MIN" of the loop device


@dataclass(frozen=True)
class Run:
    wall_s: tuple[float, ...]  # per camera, from the common start to that process's exit
    cpu_s: float
    rss_mib: float
    offload_s: tuple[float, ...] = ()  # the Offloader's own time per camera (its report)
    read_s: tuple[float, ...] = ()  # plugged in → its last byte read (bench/camera_reads.py)
    machine_s: float = 0.0  # the whole machine's busy CPU-s during the round (/proc/stat)
    steal_s: float = 0.0  # CPU-s the host took from this guest during the round


@dataclass(frozen=True)
class Round:
    n: int
    rate: float
    cat: Run
    ingest: Run
    throttle_s: float  # what the throttle alone allows for the largest camera

    def ratios(self) -> list[float]:
        return [i / c for i, c in zip(self.ingest.wall_s, self.cat.wall_s, strict=True)]

    def cat_slowed(self) -> bool:
        """The baseline itself ran slower than its throttle: the machine slowed this round
        (on this VM, host faults on fresh page cache), so its ratio says little."""
        return max(self.cat.wall_s) > self.throttle_s * SLOWED

    def verdict(self) -> str:
        if self.cat_slowed():
            return "not counted (cat slowed)"
        return "met" if max(self.ratios()) <= TARGET else "missed"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.camera", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cameras", type=int, default=8, help="cameras docked at once")
    p.add_argument("--via", choices=("dock", "cli"), default="dock",
                   help="dock: the dock daemon offloads cameras plugged in over udev "
                        "(bench/camera_dock.py); cli: `evidock ingest` clients of a service")
    p.add_argument("--mb", type=int, default=256, help="MB of footage per camera")
    p.add_argument("--rate", type=float, default=35.0, help="read MB/s per camera (USB 2)")
    p.add_argument("--bays-at", type=float, default=100.0,
                   help="rate (MB/s, USB 3) for the 1, 2, 4, 8 bays sweep (0: skip)")
    p.add_argument("--data", type=Path, default=REPO / "bench" / "data",
                   help="cache for trees and images, scratch for the station home")
    p.add_argument("--images-in", type=Path, default=Path(""),
                   help="copy the camera images here for the run (e.g. /dev/shm); '' "
                        "(the default) keeps them under --data")
    p.add_argument("--loop-direct-io", action=argparse.BooleanOptionalAction, default=True,
                   help="attach the images with `losetup --direct-io=on` (default): the "
                        "disk delivers the bytes, not a kernel thread's memcpy")
    p.add_argument("--real-ram", action=argparse.BooleanOptionalAction, default=True,
                   help="hold the VM's free page reporting and back the memory a round "
                        "fills before it (bench.common.real_ram), as on a real machine")
    p.add_argument("--set", action="append", default=[], metavar="SECTION__KEY=VALUE",
                   help="a station setting for this run, as its environment variable "
                        "without EVIDOCK_ (e.g. INGEST__READ_AHEAD=0); repeatable")
    p.add_argument("--doc", action=argparse.BooleanOptionalAction, default=True,
                   help="write the figures to docs/BENCHMARKS.md")
    return p.parse_args(argv)


def preflight() -> None:
    if os.geteuid() != 0:
        raise SystemExit("bench.camera needs root (loop devices, mounts, cgroups, "
                         "page cache eviction)")
    if not (BLKIO / "blkio.throttle.read_bps_device").exists():
        raise SystemExit(f"bench.camera needs cgroup v1 blkio mounted at {BLKIO} "
                         "(blkio.throttle.read_bps_device not found)")
    for tool in ("mkfs.ext4", "losetup", "mount", "umount", "cat"):
        if shutil.which(tool) is None:
            raise SystemExit(f"bench.camera needs {tool}")


# --- cameras ------------------------------------------------------------------------------


def camera_image(data: Path, mb: int, serial: str) -> Path:
    """``data/camera-<mb>mb/<serial>/camera.ext4``, built once from its own tree."""
    from fixtures.camera import build_big_camera

    def build(root: Path) -> int:
        tree = build_big_camera(root / "tree", total_bytes=mb * MB, serial=serial,
                                cache_dir=data / "cache")
        image, nbytes = root / "camera.ext4", total_size(tree_files(root / "tree"))
        with open(image, "wb") as fh:  # room for the metadata of a few big files
            fh.truncate((int(nbytes * 1.05) + 16 * MiB) // 4096 * 4096)
        subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", "-O", "^has_journal", "-d",
                        str(root / "tree"), str(image)], check=True, timeout=600)
        return len(tree.files)

    return cached_build(data / f"camera-{mb}mb", serial, build) / "camera.ext4"


def attach(stack: contextlib.ExitStack, image: Path, mount: Path, serial: str, *,
           direct_io: bool = False) -> Camera:
    """Loop device (read-only) + read-only mount, both undone by ``stack``."""
    dio = ["--direct-io=on"] if direct_io else []
    loop = subprocess.run(["losetup", "-f", "--show", "-r", *dio, str(image)], check=True,
                          capture_output=True, text=True, timeout=60).stdout.strip()
    stack.callback(subprocess.run, ["losetup", "-d", loop], check=False, timeout=60)
    mount.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-o", "ro,nosuid,nodev,noexec", loop, str(mount)], check=True,
                   timeout=60)
    stack.callback(subprocess.run, ["umount", str(mount)], check=False, timeout=60)
    rdev = os.stat(loop).st_rdev
    files = tuple(tree_files(mount))
    return Camera(serial, image, loop, mount, files, total_size(files),
                  f"{os.major(rdev)}:{os.minor(rdev)}")


def own_disk(stack: contextlib.ExitStack, images: Sequence[Path], where: Path) -> list[Path]:
    """Copies of the images in ``where`` (e.g. a tmpfs), removed by ``stack``. The old rig:
    with the images on the store's disk and loop devices without direct I/O, 8 cameras at
    35 MB/s copied at ~30 MB/s each; from a tmpfs the loop devices' memcpy then cost
    9–15 CPU-s per round, so direct I/O on the data disk is the default now."""
    where.mkdir(parents=True)
    stack.callback(shutil.rmtree, where, ignore_errors=True)
    out = []
    for image in images:
        dest = where / f"{image.parent.name}.ext4"
        shutil.copyfile(image, dest)
        out.append(dest)
    return out


def make_cgroup(stack: contextlib.ExitStack) -> Path:
    group = BLKIO / f"evidock-bench-camera-{os.getpid()}"
    group.mkdir()
    stack.callback(_remove_cgroup, group)
    return group


def _remove_cgroup(group: Path) -> None:
    for pid in (group / "cgroup.procs").read_text().split():  # strays back to the root
        with contextlib.suppress(OSError):
            (BLKIO / "cgroup.procs").write_text(pid)
    group.rmdir()


def throttle(group: Path, cameras: Sequence[Camera], rate: float) -> None:
    for cam in cameras:  # one write per device: each line sets (or replaces) one limit
        (group / "blkio.throttle.read_bps_device").write_text(
            f"{cam.devno} {int(rate * MB)}\n")


def read_bytes(group: Path) -> dict[str, int]:
    """Bytes read per device by the members of ``group`` so far."""
    out = {}
    for line in (group / "blkio.throttle.io_service_bytes").read_text().splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] == "Read":
            out[parts[0]] = int(parts[2])
    return out


def check_throttled(group: Path, before: dict[str, int], cameras: Sequence[Camera],
                    who: str) -> None:
    """Every camera's bytes were read by the throttled group, or the figures mean nothing."""
    after = read_bytes(group)
    short = [c.serial for c in cameras
             if after.get(c.devno, 0) - before.get(c.devno, 0) < c.nbytes]
    if short:
        raise SystemExit(f"{who}: the reads of {short} did not all go through the throttled "
                         "cgroup (page cache not dropped, or the reader outside the group)")


def evict_cameras(cameras: Sequence[Camera], backed: int = 0) -> None:
    """Cold cameras, warm station: drop the cached pages of every camera file, of the
    loop devices' buffers and of their image files, and nothing else. (Dropping all
    caches would also make the station load its own Python modules and ffmpeg's
    libraries from the disk, which a running station never does per camera, while the
    `cat` baseline has nothing to load.) check_throttled proves the reads then reached
    the throttled devices."""
    os.sync()
    for cam in cameras:
        fadvise_dontneed(cam.files)
        subprocess.run(["blockdev", "--flushbufs", cam.loop], check=True, timeout=60)
        fadvise_dontneed([cam.image])
    if backed:
        back_free_memory(backed)  # --real-ram: memory as on a real machine


# --- children -----------------------------------------------------------------------------


@contextlib.contextmanager
def in_group(group: Path) -> Iterator[None]:
    """Children started inside inherit ``group``: every read they do is throttled. (This
    process joins it for the moment of the fork; a ``preexec_fn`` is unsafe with threads.)"""
    (group / "cgroup.procs").write_text(str(os.getpid()))
    try:
        yield
    finally:
        (BLKIO / "cgroup.procs").write_text(str(os.getpid()))


def run_parallel(argvs: Sequence[Sequence[str]], group: Path, *, env: dict[str, str],
                 outs: Sequence[Path | None]) -> Run:
    """Start every command at once in ``group``; each one's wall from the common start."""
    walls, cpu, rss, codes = [0.0] * len(argvs), [0.0], [0], [0] * len(argvs)
    lock = threading.Lock()

    def reap(i: int, pid: int, start: float) -> None:
        _, status, usage = os.wait4(pid, 0)
        walls[i] = time.perf_counter() - start
        with lock:
            codes[i] = os.waitstatus_to_exitcode(status)
            cpu[0] += usage.ru_utime + usage.ru_stime
            rss[0] = max(rss[0], usage.ru_maxrss)

    start, threads = time.perf_counter(), []
    with in_group(group):
        for i, (argv, out) in enumerate(zip(argvs, outs, strict=True)):
            with open(out or os.devnull, "wb") as fh:
                # Reaped with os.wait4 (its rusage) by a thread each, not proc.wait.
                proc = subprocess.Popen(list(argv), env=env,  # noqa: SIM115
                                        stdin=subprocess.DEVNULL, stdout=fh)
            threads.append(threading.Thread(target=reap, args=(i, proc.pid, start)))
            threads[-1].start()
    for t in threads:
        t.join()
    if any(codes):
        raise SystemExit(f"{argvs[0][0]} failed: exit codes {codes}")
    return Run(tuple(walls), cpu[0], rss[0] / 1024)


def cat_round(cameras: Sequence[Camera], group: Path, backed: int = 0) -> Run:
    evict_cameras(cameras, backed)
    with machine_busy() as busy:
        run = run_parallel([["cat", *map(str, c.files)] for c in cameras], group,
                           env=dict(os.environ), outs=[None] * len(cameras))
    return busy.into(run)


@dataclass
class MachineBusy:
    busy_s: float = 0.0
    steal_s: float = 0.0

    def into(self, run: Run) -> Run:
        return replace(run, machine_s=self.busy_s, steal_s=self.steal_s)


@contextlib.contextmanager
def machine_busy() -> Iterator[MachineBusy]:
    """The machine's busy and stolen CPU-s over the block (bench/camera_reads.py)."""
    out, (busy, steal) = MachineBusy(), machine_cpu()
    try:
        yield out
    finally:
        now_busy, now_steal = machine_cpu()
        out.busy_s, out.steal_s = now_busy - busy, now_steal - steal


# --- the station --------------------------------------------------------------------------


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVIDOCK_")}
    return {**env, "EVIDOCK_HOME": str(home), "EVIDOCK_SOCKET": str(home / "bench.sock")}


@contextlib.contextmanager
def station(home: Path, group: Path | None, *, exe: str | Path = EVIDOCK,
            service_env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """A fresh home and its `evidock serve` (of build ``exe``, with ``service_env`` added
    to its environment), in the throttled group (it reads the cameras; None: no group,
    for bench/clients.py and bench/offload.py)."""
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    env = _env(home)
    subprocess.run([str(exe), "init", "--account", "root"], env=env, check=True,
                   capture_output=True, timeout=300)
    with (home / "evidock.toml").open("a", encoding="utf-8") as fh:
        fh.write(USERS)
    notify = home / "notify.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(notify))
    listener.settimeout(120)
    with in_group(group) if group is not None else contextlib.nullcontext():
        proc = subprocess.Popen([str(exe), "serve", "--socket", env["EVIDOCK_SOCKET"]],
                                env={**env, **(service_env or {}),
                                     "NOTIFY_SOCKET": str(notify)},
                                stdout=subprocess.DEVNULL)
    try:
        with listener:
            while b"READY=1" not in listener.recv(4096):
                pass
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=120)
        shutil.rmtree(home, ignore_errors=True)


def _proc_cpu(pid: int) -> float:
    """CPU-s of a live process and the children it has reaped (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return sum(int(f) for f in fields[11:15]) / CLK_TCK


def _proc_hwm_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def ingest_round(cameras: Sequence[Camera], group: Path, scratch: Path,
                 settings: dict[str, str], backed: int = 0) -> Run:
    with station(scratch / "home", group, service_env=settings) as service:
        evict_cameras(cameras, backed)
        outs = [scratch / f"ingest-{c.serial}.json" for c in cameras]
        argvs = [[str(EVIDOCK), "ingest", str(c.mount), "--device", c.serial, "--json",
                  "--no-process"] for c in cameras]
        before = _proc_cpu(service.pid)
        with machine_busy() as busy:
            clients = run_parallel(argvs, group, env=_env(scratch / "home"), outs=outs)
        service_cpu = _proc_cpu(service.pid) - before
        hwm = _proc_hwm_mib(service.pid)
    inner = []
    for cam, out in zip(cameras, outs, strict=True):
        summary = json.loads(out.read_bytes())["summary"]
        if summary["ingested"] != summary["files"] or summary["files"] != len(cam.files):
            raise SystemExit(f"{cam.serial}: not every file was ingested: {summary}")
        inner.append(float(summary["seconds"]))
    return busy.into(Run(clients.wall_s, clients.cpu_s + service_cpu,
                         max(hwm, clients.rss_mib), tuple(inner)))


def station_settings(pairs: Sequence[str]) -> dict[str, str]:
    """``--set`` pairs as the station's environment variables."""
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise SystemExit(f"--set {pair!r}: want SECTION__KEY=VALUE")
        out[f"EVIDOCK_{name.upper()}"] = value
    return out


def measure(cameras: Sequence[Camera], group: Path, scratch: Path, rate: float,
            via: str = "dock", *, settings: dict[str, str] | None = None,
            real_memory: bool = False) -> Round:
    from bench.camera_dock import dock_round

    # The page cache a round fills at most: the camera files and the station's copies.
    backed = 2 * sum(c.nbytes for c in cameras) + GiB if real_memory else 0
    throttle(group, cameras, rate)
    before = read_bytes(group)
    cat = cat_round(cameras, group, backed)
    check_throttled(group, before, cameras, "cat")
    before = read_bytes(group)
    ingest = dock_round(cameras, group, scratch, settings or {}, backed) if via == "dock" \
        else ingest_round(cameras, group, scratch, settings or {}, backed)
    check_throttled(group, before, cameras, "ingest")
    r = Round(len(cameras), rate, cat, ingest, max(c.nbytes for c in cameras) / (rate * MB))
    print(f"  {r.n} camera(s) at {rate:g} MB/s: cat {max(cat.wall_s):.2f}s, ingest "
          f"{max(ingest.wall_s):.2f}s, worst ratio {max(r.ratios()):.2f}×", flush=True)
    return r


# --- main ---------------------------------------------------------------------------------


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # so the cleanup in ``finally`` runs


def sweep_sizes(cameras: int) -> list[int]:
    return sorted({n for n in (1, 2, 4, 8) if n <= cameras} | {cameras} - {0})


def run(args: argparse.Namespace, stack: contextlib.ExitStack) -> tuple[
        list[Camera], Round, list[Round]]:
    serials = [f"ZFY{k:04d}" for k in range(1, args.cameras + 1)]
    scratch = args.data / f"camera-scratch-{os.getpid()}"
    scratch.mkdir(parents=True)
    stack.callback(shutil.rmtree, scratch, ignore_errors=True)
    images = [camera_image(args.data, args.mb, s) for s in serials]
    if str(args.images_in) not in ("", "."):
        images = own_disk(stack, images, args.images_in / f"evidock-bench-{os.getpid()}")
    cams = [attach(stack, img, scratch / "mnt" / s, s, direct_io=args.loop_direct_io)
            for img, s in zip(images, serials, strict=True)]
    group = make_cgroup(stack)
    print(VIA[args.via], flush=True)
    settings = station_settings(args.set)
    args.memory = stack.enter_context(real_ram(args.real_ram))
    main_round = measure(cams, group, scratch, args.rate, args.via, settings=settings,
                         real_memory=args.real_ram)
    sweep = [measure(cams[:n], group, scratch, args.bays_at, args.via, settings=settings,
                     real_memory=args.real_ram)
             for n in (sweep_sizes(args.cameras) if args.bays_at > 0 else [])]
    return cams, main_round, sweep


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    preflight()
    for tool in ("ffmpeg", "ffprobe"):  # their libraries cached, as on a running station
        subprocess.run([tool, "-version"], check=True, capture_output=True, timeout=60)
    args.data = args.data.resolve()
    args.data.mkdir(parents=True, exist_ok=True)
    cmd = " ".join([".venv/bin/python -m bench.camera", *(sys.argv[1:] if argv is None
                                                          else argv)])
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        with contextlib.ExitStack() as stack:  # umount, losetup -d, rmdir: even on Ctrl-C
            cams, main_round, sweep = run(args, stack)
    except KeyboardInterrupt:
        print("interrupted; mounts, loop devices and the cgroup were removed", file=sys.stderr)
        return 130
    from bench.camera_report import doc_body

    body = doc_body(args, cams, main_round, sweep, cmd)
    print("\n" + body)
    if args.doc:
        write_section("Camera-speed offload", body)
        print("\nwrote ## Camera-speed offload to docs/BENCHMARKS.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
