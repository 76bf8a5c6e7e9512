"""Cut a recording into segments, proving each one while ffmpeg cuts the next.

ffmpeg's segment muxer writes one CSV line (``name,start,end``) to its segment list as
each segment closes. With the list on ffmpeg's stdout (``-segment_list pipe:1``), every
finished segment is fsynced, hashed, dropped from the page cache, re-read from the disk
and compared (:meth:`archive.staging.Stager.stage_file`) on worker threads while
ffmpeg writes the next: the disk writeback and the hashing overlap the cut instead of
following it. Nothing is linked into the store here; the renderer links the proven
segments only after ffmpeg has finished without error and they cover the original, so a
failed cut leaves no blob behind.
"""

from __future__ import annotations

import csv
import os
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from subprocess import DEVNULL, PIPE, Popen

from archive.staging import Staged, Stager
from integrity.errors import (
    RenditionDiscontinuous,
    RenditionEmpty,
    RenditionTimeout,
    RenditionToolFailed,
    ToolMissing,
)

#: Where the runtime argv sends the segment list (the recorded argv keeps ``{list}``).
LIST_ON_STDOUT = "pipe:1"
_MAX_LINE = 4096  # a list line is a short file name and two times
_STDERR_TAIL = 64 << 10
#: Segments proven at once while ffmpeg cuts. One prover could not keep up with ffmpeg's
#: stream copy (measured: 1.71 s for a 10-minute 1080p render with one, 1.41 s with two,
#: 1.37 s with three: the fsyncs wait on the disk, the hashing wants the second core).
PROVERS = 2
#: ... and once ffmpeg has exited: the proofs left then have both cores to themselves,
#: and each waits on the disk for part of its time (its fsync, its re-read). Measured on
#: a 10-minute render: ffmpeg exits at ~0.55 s with ~half the 60 proofs still to do; two
#: more provers from then on end the cut ~0.03 s sooner.
PROVERS_AFTER_CUT = 4


@dataclass(frozen=True)
class CutSegment:
    index: int
    path: Path
    start_us: int
    end_us: int


@dataclass(frozen=True)
class ProvenSegment:
    """A segment ffmpeg closed, read back from the disk and proven: ready to link."""

    cut: CutSegment
    staged: Staged


def parse_segment_row(row: Sequence[str], index: int, directory: Path) -> CutSegment:
    """One row of ffmpeg's csv segment list (name,start,end in seconds) as µs spans."""
    if len(row) != 3:
        raise RenditionToolFailed(f"ffmpeg wrote a segment list row of {len(row)} fields",
                                  segment=index)
    name, start, end = row
    if Path(name).name != name or name.startswith("."):
        raise RenditionToolFailed(f"ffmpeg named a segment {name!r}", segment=index)
    try:
        span = round(float(start) * 1e6), round(float(end) * 1e6)
    except ValueError as exc:
        raise RenditionToolFailed(f"ffmpeg wrote segment times {start!r},{end!r}",
                                  segment=index) from exc
    return CutSegment(index, directory / name, *span)


def check_continuity(cuts: Sequence[CutSegment]) -> None:
    """Segments must follow one another without a gap or an overlap, and exist."""
    for prev, cur in zip(cuts, cuts[1:], strict=False):
        if cur.start_us != prev.end_us:
            raise RenditionDiscontinuous(f"segment {cur.index} starts at {cur.start_us} µs, "
                                         f"previous ends at {prev.end_us} µs",
                                         segment=cur.index, start_us=cur.start_us,
                                         previous_end_us=prev.end_us)
    if not cuts:
        raise RenditionEmpty("ffmpeg produced no segments")


def read_segment_list(list_path: Path, directory: Path) -> list[CutSegment]:
    """Parse a segment list file and check that its segments are contiguous."""
    with open(list_path, newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.reader(fh) if r]
    cuts = [parse_segment_row(r, i, directory) for i, r in enumerate(rows)]
    check_continuity(cuts)
    return cuts


class SegmentCutter:
    """Runs one ffmpeg segmenting argv and proves its segments as they appear."""

    def __init__(self, *, stager: Stager, timeout_s: float) -> None:
        self.stager = stager
        self.timeout_s = timeout_s

    def cut(self, argv: Sequence[str], work: Path) -> list[ProvenSegment]:
        """Run ``argv`` (its segment list on stdout, segments in ``work``); the proven
        segments in order. ffmpeg is killed at the deadline or as soon as a segment
        fails its proof. Raises the proof's own error first (DigestMismatch, StoreError:
        the store is at fault, not the footage), then RenditionTimeout,
        RenditionToolFailed, RenditionDiscontinuous or RenditionEmpty."""
        with _Provers(self.stager) as provers:
            run = _Run(argv, self.timeout_s)
            jobs: list[tuple[CutSegment, Future[Staged]]] = []
            try:
                for index, row in enumerate(run.rows()):
                    cut = parse_segment_row(row, index, work)
                    jobs.append((cut, provers.submit(cut.path)))
                    if _failed(jobs):
                        break  # no point cutting on: the proof's error is raised below
            finally:
                run.stop()
                provers.cut_ended()
            failed = _failed(jobs)
            if failed is not None:
                provers.stop()
                failed.result()
            run.check()
            proven = [ProvenSegment(cut, job.result()) for cut, job in jobs]
        check_continuity([p.cut for p in proven])
        return proven


class _Provers:
    """Worker threads proving closed segments: :data:`PROVERS` at once while ffmpeg
    runs (it keeps a core), :data:`PROVERS_AFTER_CUT` once it has exited."""

    def __init__(self, stager: Stager) -> None:
        self._stager = stager
        self._pool = ThreadPoolExecutor(max_workers=PROVERS_AFTER_CUT,
                                        thread_name_prefix="segment")
        self._gate = threading.Semaphore(PROVERS)
        self._stopped = threading.Event()
        self._widened = False

    def __enter__(self) -> _Provers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def submit(self, path: Path) -> Future[Staged]:
        return self._pool.submit(self._prove, path)

    def _prove(self, path: Path) -> Staged:
        with self._gate:
            if self._stopped.is_set():  # another proof failed: this one is not wanted
                raise CancelledError(path.name)
            return self._stager.stage_file(path)

    def cut_ended(self) -> None:
        if not self._widened:
            self._widened = True
            for _ in range(PROVERS_AFTER_CUT - PROVERS):
                self._gate.release()

    def stop(self) -> None:
        """No proof starts from now on; those under way finish."""
        self._stopped.set()
        self.cut_ended()  # threads waiting at the gate pass it, see the stop and return


def _failed(jobs: list[tuple[CutSegment, Future[Staged]]]) -> Future[Staged] | None:
    return next((job for _, job in jobs if job.done() and job.exception() is not None), None)


class _Run:
    """One ffmpeg process with a deadline; its stdout read as csv rows."""

    def __init__(self, argv: Sequence[str], timeout_s: float) -> None:
        self.argv = list(argv)
        self.timeout_s = timeout_s
        try:
            self.proc = Popen(self.argv, stdin=DEVNULL, stdout=PIPE, stderr=PIPE)
        except FileNotFoundError as exc:
            raise ToolMissing(f"{self.argv[0]} is not installed (apt-get install ffmpeg)",
                              tool=self.argv[0]) from exc
        # stderr is drained on a thread (a full pipe would stall ffmpeg) into a bounded
        # tail kept in memory: the store may be the disk that just filled up.
        self._stderr = bytearray()
        self._drain = threading.Thread(target=self._keep_tail, name="ffmpeg-stderr",
                                       daemon=True)
        self._drain.start()
        self.timed_out = threading.Event()
        self.finished = False
        self._timer = threading.Timer(timeout_s, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def _keep_tail(self) -> None:
        assert self.proc.stderr is not None
        while chunk := os.read(self.proc.stderr.fileno(), _STDERR_TAIL):
            self._stderr += chunk
            del self._stderr[:-_STDERR_TAIL]

    def _expire(self) -> None:
        self.timed_out.set()
        self.proc.kill()

    def rows(self) -> Iterator[list[str]]:
        assert self.proc.stdout is not None
        while line := self.proc.stdout.readline(_MAX_LINE):
            text = line.decode("utf-8", "replace").strip()
            if text:
                yield next(csv.reader([text]))
        self.finished = True

    def stop(self) -> None:
        """Reap ffmpeg: wait for it once its list has ended (the deadline still holds),
        kill it now if an error ended the reading first."""
        if not self.finished:
            self.proc.kill()
        self.proc.wait()
        self._timer.cancel()
        self._drain.join()
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.proc.stdout.close()
        self.proc.stderr.close()

    def check(self) -> None:
        if self.timed_out.is_set():
            raise RenditionTimeout(f"{self.argv[0]} took longer than {self.timeout_s:.0f}s",
                                   argv=self.argv, timeout=self.timeout_s)
        if self.proc.returncode != 0:
            raise RenditionToolFailed(f"ffmpeg: {self._last_line()}",
                                      returncode=self.proc.returncode)

    def _last_line(self) -> str:
        lines = [ln.strip() for ln in self._stderr.decode("utf-8", "replace").splitlines()]
        lines = [ln for ln in lines if ln]
        return lines[-1] if lines else f"exit status {self.proc.returncode}"
