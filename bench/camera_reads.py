"""When did each camera give its last byte? A sampler of the throttled cgroup's per-device
read counters (``blkio.throttle.io_service_bytes``), so bench.camera can split a camera's
ingest into reading the camera and the tail after it (verify, check, commit, unmount).
And how busy was the whole machine (:func:`machine_cpu`): the kernel's work for the
emulated cameras shows in no process's rusage.

A bench instrument, not a wait: it polls every ``every`` s on its own thread, so each time
it reports is late by at most that much."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

_CLK_TCK = os.sysconf("SC_CLK_TCK")


def machine_cpu() -> tuple[float, float]:
    """CPU-s the machine has been busy since boot (every process and the kernel's threads:
    user, nice, system, irq, softirq; /proc/stat) and CPU-s the host took (steal)."""
    first = Path("/proc/stat").read_text(encoding="ascii").split("\n", 1)[0].split()
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, first[1:9])
    return (user + nice + system + irq + softirq) / _CLK_TCK, steal / _CLK_TCK


class ReadWatch:
    """Records the first moment each device's reads reach its target byte count."""

    def __init__(self, read_bytes: Callable[[], Mapping[str, int]],
                 targets: Mapping[str, int], *, every: float = 0.01) -> None:
        base = read_bytes()
        self._read, self._every = read_bytes, every
        self._want = {dev: base.get(dev, 0) + n for dev, n in targets.items()}
        self.reached: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="read-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._every) and len(self.reached) < len(self._want):
            now, counts = time.perf_counter(), self._read()
            for dev, want in self._want.items():
                if dev not in self.reached and counts.get(dev, 0) >= want:
                    self.reached[dev] = now

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        return dict(self.reached)
