"""bench.camera's ingest through the dock daemon (``--via dock``, the default): the
throttled cameras are plugged in as USB disks (a umockdev testbed, fixtures/umock.py)
and the real daemon (``python -m evidock.cmd_dock run``, udev source, one bay per camera,
all bays at once, no wipe, no renditions) identifies, mounts read-only, offloads and
unmounts each. The daemon is the process that reads the cameras, so it runs in the
throttled cgroup. Each camera's time: plugged in → the daemon's "done" for its bay (as
the bench reads the event); its offload's own time from the "offload" event."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.camera import Camera, Run, _proc_cpu, _proc_hwm_mib, evict_cameras, in_group
from bench.common import REPO, remove_tree

VENDOR, MODEL = "2bdf", "0101"


class _Events:
    """The daemon's JSON event lines, each stamped with the bench's clock on arrival."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.q: queue.Queue[tuple[float, dict[str, Any]]] = queue.Queue()
        self.said: list[dict[str, Any]] = []
        threading.Thread(target=self._read, args=(proc,), daemon=True).start()

    def _read(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stderr is not None
        for raw in proc.stderr:
            try:
                self.q.put((time.perf_counter(), json.loads(raw)))
            except json.JSONDecodeError:
                print(raw.decode("utf-8", "replace"), end="", file=sys.stderr)

    def collect(self, count: int, *names: str, timeout: float = 3600,
                ) -> dict[str, list[tuple[float, dict[str, Any]]]]:
        """The first ``count`` events of each of ``names`` (arriving in any order)."""
        got: dict[str, list[tuple[float, dict[str, Any]]]] = {n: [] for n in names}
        while any(len(v) < count for v in got.values()):
            try:
                at, item = self.q.get(timeout=timeout)
            except queue.Empty:
                raise SystemExit(f"no {names} events within {timeout} s; the daemon said: "
                                 f"{self.said[-20:]}") from None
            self.said.append(item)
            if item.get("event") == "failed":
                raise SystemExit(f"a bay failed: {item}")
            if item.get("event") in got:
                got[item["event"]].append((at, item))
        return got


def udev_dock_toml(path: Path, bays: int) -> None:
    """A dock.toml for cameras plugged in as umockdev USB disks on ports 1..``bays``."""
    from fixtures.umock import PORT

    lines = ["[dock]", 'sources = ["udev"]', 'filesystems = ["ext4"]', 'wipe = "never"',
             "process_after_offload = false", f"max_parallel = {bays}", "",
             "[[dock.cameras]]", 'name = "zfy-generic"', f'vendor_id = "{VENDOR}"',
             f'model_id = "{MODEL}"', 'serial_pattern = "[A-Z0-9]{7}"',
             'camera_model = "generic-dcim"']
    for n in range(1, bays + 1):
        lines += ["", "[[dock.bays]]", f"number = {n}", f'id_path = "{PORT.format(n=n)}"']
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def udev_station(home: Path, toml: Path, bays: int) -> dict[str, str]:
    """A fresh home made by `evidock init` and its dock.toml; the daemon's environment."""
    remove_tree(home)
    udev_dock_toml(toml, bays)
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVIDOCK_")}
    env.update(EVIDOCK_HOME=str(home), EVIDOCK_DOCK_CONFIG=str(toml), PYTHONUNBUFFERED="1")
    subprocess.run([sys.executable, "-m", "evidock", "init", "--account", "root"], cwd=REPO,
                   env=env, stdout=subprocess.DEVNULL, check=True, timeout=300)
    return env


def dock_round(cameras: Sequence[Camera], group: Path, scratch: Path) -> Run:
    from fixtures.umock import Testbed, usb_disk

    home = scratch / "dock-home"
    env = udev_station(home, scratch / "dock.toml", len(cameras))
    testbed = Testbed()
    with in_group(group):
        proc = subprocess.Popen([sys.executable, "-m", "evidock.cmd_dock", "run"], cwd=REPO,
                                env={**env, **testbed.daemon_env()},
                                stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
    events = _Events(proc)
    try:
        events.collect(1, "ready", timeout=120)
        evict_cameras(cameras)
        before = _proc_cpu(proc.pid)
        plugged: dict[str, float] = {}
        for n, cam in enumerate(cameras, start=1):
            rdev = os.stat(cam.loop).st_rdev
            plugged[str(n)] = time.perf_counter()
            testbed.add(usb_disk(n=n, devname=cam.loop, dev=f"{os.major(rdev)}:"
                                 f"{os.minor(rdev)}", vendor=VENDOR, model=MODEL,
                                 serial=cam.serial))
        seen = events.collect(len(cameras), "offload", "done", timeout=600)
        offloads, done = seen["offload"], seen["done"]
        cpu, hwm = _proc_cpu(proc.pid) - before, _proc_hwm_mib(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=600)
        testbed.close()
        remove_tree(home)
    if any(item["outcome"] != "completed" for _, item in done):
        raise SystemExit(f"not every camera was offloaded: {[d for _, d in done]}")
    ended = {str(item["bay"]): at for at, item in done}
    seconds = {str(item["bay"]): float(item["seconds"]) for _, item in offloads}
    bays = [str(n) for n in range(1, len(cameras) + 1)]
    return Run(tuple(ended[b] - plugged[b] for b in bays), cpu, hwm,
               tuple(seconds[b] for b in bays))
