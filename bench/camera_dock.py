"""bench.camera's ingest through the dock daemon (``--via dock``, the default): the
throttled cameras are plugged in as USB disks (a umockdev testbed, fixtures/umock.py)
and the real daemon (``python -m evidock.cmd_dock run``, udev source, one bay per camera,
all bays at once, no wipe, no renditions) identifies, mounts read-only, offloads and
unmounts each. The daemon is the process that reads the cameras, so it runs in the
throttled cgroup. Each camera's time: plugged in → the daemon's "done" for its bay (as
the bench reads the event); its offload's own time from the "offload" event."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from bench.camera import (
    Camera,
    Run,
    _proc_cpu,
    _proc_hwm_mib,
    evict_cameras,
    in_group,
    read_bytes,
)
from bench.camera_reads import ReadWatch, machine_cpu
from bench.common import REPO, remove_tree
from bench.dock import DaemonEvents

VENDOR, MODEL = "2bdf", "0101"


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


def dock_round(cameras: Sequence[Camera], group: Path, scratch: Path,
               settings: dict[str, str], backed: int = 0) -> Run:
    from fixtures.umock import roomy_event_queues

    with roomy_event_queues():  # 8 cameras plugged in at once
        return _dock_round(cameras, group, scratch, settings, backed)


def _dock_round(cameras: Sequence[Camera], group: Path, scratch: Path,
                settings: dict[str, str], backed: int) -> Run:
    from fixtures.umock import Testbed, usb_disk

    home = scratch / "dock-home"
    env = udev_station(home, scratch / "dock.toml", len(cameras))
    testbed = Testbed()
    with in_group(group):
        proc = subprocess.Popen([sys.executable, "-m", "evidock.cmd_dock", "run"], cwd=REPO,
                                env={**env, **settings, **testbed.daemon_env()},
                                stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
    events = DaemonEvents(proc)
    try:
        events.until("ready", timeout=120)
        evict_cameras(cameras, backed)
        before, busy = _proc_cpu(proc.pid), machine_cpu()
        watch = ReadWatch(lambda: read_bytes(group), {c.devno: c.nbytes for c in cameras})
        plugged: dict[str, float] = {}
        for n, cam in enumerate(cameras, start=1):
            rdev = os.stat(cam.loop).st_rdev
            plugged[str(n)] = time.perf_counter()
            testbed.add(usb_disk(n=n, devname=cam.loop, dev=f"{os.major(rdev)}:"
                                 f"{os.minor(rdev)}", vendor=VENDOR, model=MODEL,
                                 serial=cam.serial))
        offloads = events.until("offload", len(cameras), timeout=600)
        done = events.until("done", len(cameras), timeout=600)
        last_byte, after = watch.stop(), machine_cpu()
        cpu, hwm = _proc_cpu(proc.pid) - before, _proc_hwm_mib(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=600)
        testbed.close()
        remove_tree(home)
    if any(item["outcome"] != "completed" for item in done):
        raise SystemExit(f"not every camera was offloaded: {done}")
    ended = {str(item["bay"]): float(item["_arrived"]) for item in done}
    seconds = {str(item["bay"]): float(item["seconds"]) for item in offloads}
    bays = [str(n) for n in range(1, len(cameras) + 1)]
    read = tuple(last_byte.get(c.devno, float("nan")) - plugged[b]
                 for b, c in zip(bays, cameras, strict=True))
    return Run(tuple(ended[b] - plugged[b] for b in bays), cpu, hwm,
               tuple(seconds[b] for b in bays), read, after[0] - busy[0], after[1] - busy[1])
