"""Helpers shared by the benches: child timing and peak RSS, cache dropping, tables, docs.

Every external command runs as an argv list (never a shell). Wall times come from
``time.perf_counter`` around the child; peak RSS from ``os.wait4``'s rusage, which on
Linux is the largest resident set of the child *or any descendant it reaped* (for
``evidock ingest`` that includes its ffprobe/ffmpeg children).
"""

from __future__ import annotations

import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCHMARKS_MD = REPO / "docs" / "BENCHMARKS.md"
DOC_INTRO = """# Benchmarks

Figures are ratios against baselines (`cp`, `b3sum`, ...) measured in the same run, on a
2-core shared VM, so they say more than the absolute numbers, which move with the
neighbours' load. Each section is written by its bench under `bench/`; rerun the command
it names to refresh it. Other sections will be added by their owners.
"""
MB = 1_000_000
MiB = 1 << 20
GiB = 1 << 30


@dataclass(frozen=True)
class ChildResult:
    wall_s: float
    maxrss_kib: int  # largest RSS of the child or any descendant it reaped
    returncode: int
    cpu_s: float = 0.0  # user + system CPU of the child and its reaped descendants


def run_child(argv: Sequence[str | os.PathLike[str]], *, env: Mapping[str, str] | None = None,
              stdout: int | None = subprocess.DEVNULL, check: bool = True) -> ChildResult:
    """Run ``argv`` to completion; wall time and peak RSS via ``os.wait4``."""
    start = time.perf_counter()
    # Reaped with os.wait4 below (not proc.wait) to get its rusage.
    proc = subprocess.Popen(list(argv), env=None if env is None else dict(env),  # noqa: SIM115
                            stdin=subprocess.DEVNULL, stdout=stdout)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if check and proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, [str(a) for a in argv])
    return ChildResult(wall, usage.ru_maxrss, proc.returncode,
                       usage.ru_utime + usage.ru_stime)


def run_chain(*argvs: Sequence[str | os.PathLike[str]]) -> ChildResult:
    """Run commands one after the other (like ``a && b``); total wall, max RSS."""
    results = [run_child(argv) for argv in argvs]
    return ChildResult(sum(r.wall_s for r in results), max(r.maxrss_kib for r in results), 0,
                       sum(r.cpu_s for r in results))


def cpu_seconds() -> float:
    """User + system CPU of this process and its reaped children so far."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(
        resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def tree_files(root: Path) -> list[Path]:
    """Regular files under ``root``, sorted, symlinks not followed."""
    out = []
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            path = Path(dirpath) / name
            if path.is_file() and not path.is_symlink():
                out.append(path)
    return sorted(out)


def total_size(paths: Iterable[Path]) -> int:
    return sum(p.stat().st_size for p in paths)


def fadvise_dontneed(paths: Iterable[Path]) -> None:
    """Drop the cached pages of each file (clean pages only: call after a sync)."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def drop_caches(paths: Iterable[Path]) -> str:
    """Make the next read of ``paths`` come from the disk. Returns the method used."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w", encoding="ascii") as fh:
            fh.write("1\n")
        return "drop_caches"
    except OSError:
        fadvise_dontneed(paths)
        return "fadvise"


def warm_up(paths: Iterable[Path], chunk: int = 8 * MiB) -> None:
    """Read every file once so that the page cache holds it."""
    buf = bytearray(chunk)
    for path in paths:
        with open(path, "rb", buffering=0) as fh:
            while fh.readinto(buf):
                pass


#: Free page reporting (virtio-balloon): how long a freed page waits before the guest
#: hands it back to the host, after which its next use faults on the host.
PAGE_REPORTING_DELAY = Path("/sys/module/page_reporting/parameters/min_free_ms")


@contextmanager
def real_ram(enabled: bool = True) -> Iterator[str]:
    """Make this VM's memory behave like a machine's RAM for the duration: free pages
    are not handed back to the host (min_free_ms raised, restored after), so a page the
    guest frees and reuses does not fault on the host again. Says what it did."""
    if not enabled:
        yield "off (the VM's free page reporting as configured)"
        return
    try:
        before = PAGE_REPORTING_DELAY.read_text(encoding="ascii").strip()
        PAGE_REPORTING_DELAY.write_text("60000\n", encoding="ascii")  # its maximum here
    except OSError:
        yield "no free page reporting to hold here"
        return
    try:
        yield (f"free page reporting held for the run (min_free_ms {before} → 60000, "
               "restored after)")
    finally:
        PAGE_REPORTING_DELAY.write_text(f"{before}\n", encoding="ascii")


def back_free_memory(nbytes: int) -> int:
    """Touch ``nbytes`` of anonymous memory (at most what is available less 2 GiB) and
    free it, so that the page cache a run fills next is RAM the host has already
    backed, as on a real machine (here a first touch of a reported page faults on the
    host: cp -r of 1 GiB spent 3 s of kernel memcpy cold, 0.35 s after this)."""
    with open("/proc/meminfo", encoding="ascii") as fh:
        info = {ln.split(":")[0]: int(ln.split()[1]) * 1024 for ln in fh}
    n = max(0, min(nbytes, info.get("MemAvailable", 0) - 2 * GiB))
    if n:
        # In a child: a parent's peak RSS is inherited by the children it forks (Linux
        # copies the high-water mark with the mm), and would show as theirs.
        subprocess.run([sys.executable, "-c", _TOUCH, str(n)], check=True)
    return n


_TOUCH = """import sys
n = int(sys.argv[1])
buf = bytearray(n)
buf[::4096] = b"\\x01" * len(range(0, n, 4096))  # one byte per page, in C
"""


def set_cache_state(paths: Sequence[Path], *, warm: bool, station_warm: bool = False,
                    backed: int = 0) -> str:
    """Cold (page cache dropped) or warm (files read once) before a run; says which.
    ``station_warm``: cold data only (``paths`` dropped from the cache), the programs'
    files left as a running station has them (bench.camera does the same)."""
    if warm:
        os.sync()
        warm_up(paths)
        return "warm (files read once before each run)"
    if station_warm:
        os.sync()
        fadvise_dontneed(paths)
        how = ("cold camera, warm station: `sync` + posix_fadvise(DONTNEED) on every "
               "camera file before each run (programs and libraries stay cached, as on "
               "a running station)")
    elif drop_caches(paths) == "drop_caches":
        how = "cold: `sync; echo 1 > /proc/sys/vm/drop_caches` before each run"
    else:
        how = "cold: sync + posix_fadvise(DONTNEED) on every file before each run"
    if backed and (n := back_free_memory(backed)):
        how += f", then {n / GiB:.1f} GiB of free memory touched and freed (`real_ram`)"
    return how


def cached_build(data: Path, name: str, build: Callable[[Path], int]) -> Path:
    """``data/name`` built once by ``build`` (returns a file count); a ``.done`` marker is
    written only after a complete build, so an interrupted one is redone."""
    root, marker = data / name, data / f"{name}.done"
    if marker.exists() and root.is_dir():
        return root
    shutil.rmtree(root, ignore_errors=True)
    marker.unlink(missing_ok=True)
    t = time.perf_counter()
    print(f"building {root} ...", flush=True)
    count = build(root)
    marker.write_text(json.dumps({"files": count}), encoding="ascii")
    print(f"  built {count} file(s) in {time.perf_counter() - t:.0f}s", flush=True)
    return root


def remove_tree(path: Path) -> None:
    """Delete a scratch copy and let the filesystem settle (discard, journal) before timing."""
    shutil.rmtree(path, ignore_errors=True)
    os.sync()


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def mb_per_s(nbytes: int, seconds: float) -> float:
    return nbytes / MB / seconds if seconds > 0 else 0.0


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _first_line(argv: Sequence[str]) -> str:
    if shutil.which(argv[0]) is None:
        return f"{argv[0]} not installed"
    res = subprocess.run(list(argv), capture_output=True, text=True, check=False, timeout=30)
    return (res.stdout or res.stderr).splitlines()[0].strip() if (res.stdout or res.stderr) else ""


def _mem_total_gib() -> float:
    with open("/proc/meminfo", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024 / GiB
    return 0.0


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict[str, str]:
    ffmpeg = _first_line(["ffmpeg", "-version"])
    ffmpeg = re.sub(r"\s+Copyright.*$", "", ffmpeg)
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} CPUs ({_cpu_model()}), {_mem_total_gib():.1f} GiB RAM, "
                   f"Linux {platform.release()}",
        "python": platform.python_version(),
        "ffmpeg": ffmpeg,
        "b3sum": _first_line(["b3sum", "--version"]),
        "load": "load average {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()),
    }


def write_section(title: str, body: str, doc: Path = BENCHMARKS_MD) -> None:
    """Replace (or append) the ``## title`` section of the benchmarks document."""
    text = doc.read_text(encoding="utf-8") if doc.exists() else DOC_INTRO
    heading = f"## {title}"
    section = f"{heading}\n\n{body.strip()}\n"
    lines = text.splitlines(keepends=True)
    try:
        start = next(i for i, ln in enumerate(lines) if ln.rstrip() == heading)
    except StopIteration:
        new = text.rstrip("\n") + "\n\n" + section
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")),
                   len(lines))
        tail = "".join(lines[end:])
        new = "".join(lines[:start]) + section + ("\n" + tail if tail else "")
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(new, encoding="utf-8")
