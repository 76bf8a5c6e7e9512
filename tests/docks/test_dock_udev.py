"""The dock daemon's udev source against umockdev, with real block devices.

The daemon runs as a real process under ``libumockdev-preload`` so its pyudev monitor
sees the testbed's devices and uevents (sent explicitly: adding a device emits none).
Each camera is an ext4 image on a real loop device (this kernel has no vfat module)
whose node is the fake USB disk's DEVNAME, so the daemon's own code path mounts it
read-only (mount(2) from ``docks/mount.py``; umockdev does not wrap it), offloads,
remounts read-write for the wipe pass and unmounts. Needs root (loop devices, mount)
and the Debian packages umockdev + e2fsprogs; skipped with the reason otherwise.
"""

from __future__ import annotations

import ctypes.util
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from dockutil import Archive, Daemon, Hooks, digests, write_dock_toml
from evidock_testing import write_agency_config
from fakezfy import FakeCamera
from service_support import serving

from fixtures.umock import PORT, Testbed, usb_disk


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "needs root: loop devices and mount(8)"
    if ctypes.util.find_library("umockdev") is None:
        return "libumockdev.so.0 missing: apt-get install umockdev gir1.2-umockdev-1.0"
    for tool in ("losetup", "mkfs.ext4", "mount", "umount"):
        if shutil.which(tool) is None:
            return f"{tool} not installed"
    if not Path("/dev/loop-control").exists():
        return "no /dev/loop-control: this machine allows no loop devices"
    if "ext4" not in Path("/proc/filesystems").read_text():
        return "kernel without ext4"
    return None


pytestmark = pytest.mark.skipif(_why_not() is not None, reason=_why_not() or "")
class Loop:
    """A camera tree as an ext4 image on a real loop device."""

    def __init__(self, tmp: Path, src: Path, name: str) -> None:
        self.image = tmp / f"{name}.img"
        subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(src), "-L", name, str(self.image),
                        "32M"], check=True, timeout=60, capture_output=True)
        self.dev = subprocess.run(["losetup", "--find", "--show", str(self.image)], check=True,
                                  timeout=30, capture_output=True, text=True).stdout.strip()
        st = os.stat(self.dev)
        self.majmin = f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"

    def contents(self, tmp: Path) -> dict[str, str]:
        point = tmp / f"inspect-{Path(self.dev).name}"
        point.mkdir()
        subprocess.run(["mount", "-o", "ro", self.dev, str(point)], check=True, timeout=30)
        try:
            return {k: v for k, v in digests(point).items() if not k.startswith("lost+found")}
        finally:
            subprocess.run(["umount", str(point)], check=True, timeout=30)

    def close(self) -> None:
        subprocess.run(["losetup", "-d", self.dev], timeout=30, check=False)


def _toml(tmp: Path, *, driver: str = "", bay1: str = PORT.format(n=1)) -> Path:
    return write_dock_toml(tmp / "dock.toml", f"""
[dock]
sources = ["udev"]
process_after_offload = false
filesystems = ["ext4"]

[[dock.cameras]]
name = "zfy-generic"
vendor_id = "2bdf"
model_id = "0101"
serial_pattern = "[A-Z0-9]{{7}}"
camera_model = "generic-dcim"
{driver}
[[dock.bays]]
number = 1
id_path = "{bay1}"

[[dock.bays]]
number = 2
id_path = "{PORT.format(n=2)}"
""")


@pytest.fixture
def testbed() -> Iterator[Testbed]:
    tb = Testbed()
    yield tb
    tb.close()


@pytest.fixture
def loops(tmp_path: Path) -> Iterator[list[Loop]]:
    made: list[Loop] = []
    yield made
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4]
        if point.startswith(str(tmp_path)):  # a failed test may leave the daemon's mounts
            subprocess.run(["umount", "-l", point], timeout=30, check=False)
    for loop in made:
        loop.close()


def _mount_options(point: str) -> set[str]:
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        parts = line.split()
        if parts[4] == point:
            return set(parts[5].split(","))
    return set()


def test_registered_camera_mounted_read_only_offloaded_wiped_and_removed(
        testbed: Testbed, loops: list[Loop], cam_a: Path, tmp_path: Path) -> None:
    original = digests(cam_a)
    loop = Loop(tmp_path, cam_a, "camA")
    loops.append(loop)
    stick = Loop(tmp_path, cam_a, "stick")
    loops.append(stick)
    hooks = Hooks(tmp_path / "hooks", "before_copy:1")
    home = tmp_path / "home"
    d = Daemon(home=home, dock_toml=_toml(tmp_path),
               env={**testbed.daemon_env(), **hooks.env()}).ready()
    try:
        testbed.add(usb_disk(n=3, devname=stick.dev, dev=stick.majmin, vendor="0781",
                             model="5567", serial="4C530001", vendor_name="SanDisk"))
        ignored = d.wait_event("ignored")
        testbed.add(usb_disk(n=4, devname="/dev/sdz", dev="8:240", vendor="1b3f",
                             model="2008", serial="X1", label="执法记录仪"))
        like = d.wait_event("camera-like")
        cam = testbed.add(usb_disk(n=1, devname=loop.dev, dev=loop.majmin, vendor="2bdf",
                                   model="0101", serial="ZFY0001"))
        docked = d.wait_event("docked", bay="1")
        assert hooks.wait_paused() == "before_copy"
        point = str(home / "run" / "mnt" / "bay1-ZFY0001")
        assert {"ro", "nosuid", "nodev", "noexec"} <= _mount_options(point)
        assert not any(p.startswith(str(home)) and "4C53" in p for p in
                       Path("/proc/self/mountinfo").read_text().split()), "stick not mounted"
        hooks.reply("go")
        done = d.wait_event("done", bay="1")
        assert _mount_options(point) == set(), "unmounted after the offload"
        testbed.unplug(cam)
        d.wait_event("undocked", bay="1")
        status = json.loads((home / "run" / "dock-status.json").read_text())
    finally:
        hooks.close()
        assert d.terminate() == 0
    assert "not a registered camera" in ignored["reason"]
    assert (like["hint"], like["vendor_id"]) == ("执法", "1b3f")
    assert [u["vendor_id"] for u in status["unregistered"]] == ["1b3f"]
    assert status["ignored"] == 1, d.named("ignored")
    assert docked["serial"] == "ZFY0001"
    assert done["wiped"] == len(original)
    assert loop.contents(tmp_path) == {}, "proven files wiped through the rw remount"
    with Archive(home) as a:
        assert a.catalogued("ZFY0001") == original
        assert [s.outcome for s in a.sessions()] == ["completed", "completed"]
        # A mass-storage camera has no command for it: never a reading.
        assert [s.battery_percent for s in a.sessions()] == [None, None]


def test_two_cameras_at_once_and_one_pulled_mid_offload(
        testbed: Testbed, loops: list[Loop], cam_a: Path, cam_b: Path, tmp_path: Path) -> None:
    orig_a, orig_b = digests(cam_a), digests(cam_b)
    loop_a, loop_b = Loop(tmp_path, cam_a, "camA"), Loop(tmp_path, cam_b, "camB")
    loops += [loop_a, loop_b]
    hooks = Hooks(tmp_path / "hooks", "mid_copy:1")
    home = tmp_path / "home"
    d = Daemon(home=home, dock_toml=_toml(tmp_path),
               env={**testbed.daemon_env(), **hooks.env()}).ready()
    try:
        a = testbed.add(usb_disk(n=1, devname=loop_a.dev, dev=loop_a.majmin, vendor="2bdf",
                                 model="0101", serial="ZFY0001"))
        assert hooks.wait_paused() == "mid_copy"  # bay 1 is stalled inside a read
        testbed.add(usb_disk(n=2, devname=loop_b.dev, dev=loop_b.majmin, vendor="2bdf",
                             model="0101", serial="DSJ0002"))
        done_b = d.wait_event("done", bay="2")  # bay 2 is not held up by bay 1
        testbed.unplug(a)
        d.wait_event("undocked", bay="1")
        hooks.reply("eio")  # the read fails as an unplugged USB disk's would
        failed_a = d.wait_event("failed", bay="1")
    finally:
        hooks.close()
        assert d.terminate() == 0
    assert done_b["wiped"] == len(orig_b)
    assert failed_a["outcome"] == "interrupted"
    assert loop_a.contents(tmp_path) == orig_a, "nothing wiped from the pulled camera"
    with Archive(home) as arc:
        assert arc.catalogued("DSJ0002") == orig_b
        assert arc.catalogued("ZFY0001") == {}, "the file in flight is not recorded"
        outcomes = {(s.device_serial, s.bay): s.outcome for s in arc.sessions()
                    if not s.wipe_requested}
    assert outcomes == {("ZFY0001", "1"): "interrupted", ("DSJ0002", "2"): "completed"}


def usb_tty(*, n: int, devname: str, vendor: str, model: str, serial: str) -> str:
    """A camera's USB serial control line (CDC-ACM) as umockdev sees it."""
    path = f"/devices/pci0000:00/0000:00:14.0/usb1/1-{n}/1-{n}:1.1/tty/ttyACM{n}"
    props = {"DEVNAME": devname, "SUBSYSTEM": "tty", "ID_BUS": "usb", "ID_VENDOR_ID": vendor,
             "ID_MODEL_ID": model, "ID_SERIAL_SHORT": serial,
             "ID_PATH": PORT.format(n=n).replace(":1.0-scsi-0:0:0:0", ":1.1")}
    return "\n".join([f"P: {path}", *(f"E: {k}={v}" for k, v in props.items())]) + "\n"


@pytest.mark.parametrize(("battery", "percent"), [
    (37, 37),
    (b"\x65", None),  # 101 %: out of range, not a reading
    (b"\x25\x00", None),  # two bytes: malformed
    (None, None),  # firmware without the command ("unknown command")
], ids=["reported", "out-of-range", "malformed", "unknown-command"])
def test_vendor_camera_unlocked_on_its_control_line_then_offloaded_with_clock_drift(
        testbed: Testbed, loops: list[Loop], cam_a: Path, tmp_path: Path, *,
        battery: int | bytes | None, percent: int | None) -> None:
    original = digests(cam_a)
    # The camera's clock runs 90 s ahead of the station's (Asia/Shanghai local time).
    ahead = (datetime.now(UTC) + timedelta(seconds=90)).astimezone(
        ZoneInfo("Asia/Shanghai")).replace(tzinfo=None)
    fake = FakeCamera(password=b"888888", clock=ahead, battery=battery, ticking=True)
    loop = Loop(tmp_path, cam_a, "camA")
    loops.append(loop)
    # The bay is the USB port: its disk and its control line share the port prefix.
    toml = _toml(tmp_path, driver='driver = "zfy-serial"\npassword = "888888"\n'
                 "sync_clock = true", bay1="pci-0000:00:14.0-usb-0:1:*")
    home = tmp_path / "home"
    d = Daemon(home=home, dock_toml=toml, env=testbed.daemon_env()).ready()
    try:
        testbed.add(usb_tty(n=1, devname=str(fake.port), vendor="2bdf", model="0101",
                            serial="ZFY0001"))
        unlocked = d.wait_event("unlocked", bay="1")
        assert fake.unlocked, "SetMSDC with the configured password"
        testbed.add(usb_disk(n=1, devname=loop.dev, dev=loop.majmin, vendor="2bdf",
                             model="0101", serial="ZFY0001"))
        d.wait_event("done", bay="1")
    finally:
        assert d.terminate() == 0
    assert unlocked["officer"] == "123456"
    # 1 s clock resolution on the camera (its clock runs: a slow start is not drift)
    assert 89 <= unlocked["clock_drift_s"] <= 91
    assert fake.synced is not None, "sync_clock = true sets the camera's clock"
    with Archive(home) as a:
        assert a.catalogued("ZFY0001") == original
        first = a.sessions()[0]
        started = _session_starts(a)
        sealed = _sealed_sessions(a, first.id)
    assert first.officer_id == "123456", "the officer comes from GetZFYInfo"
    # in the tamper-evident log too, and in the session's signed records when read
    assert started[first.id]["battery_percent"] == percent
    assert sealed and all(b.get("battery_percent") == percent for b in sealed)
    assert percent is not None or all("battery_percent" not in b for b in sealed)
    assert first.clock_drift_s == unlocked["clock_drift_s"], "drift recorded with the session"
    # The battery, read last at dock: a bad reply is "not reported", the offload goes on.
    assert (unlocked["battery_percent"], first.battery_percent) == (percent, percent)
    _battery_in_the_equipment_report(home, percent, first.started_at)


def _sealed_sessions(a: Archive, session_id: str) -> list[dict[str, object]]:
    """The bodies of the signed records of one dock session (archive/seals.py)."""
    from sqlmodel import Session, select

    from archive.catalog.models import Seal
    from integrity.findings import Finding
    from integrity.records import parse

    with Session(a.catalog.engine) as s:
        seals = s.exec(select(Seal).where(Seal.kind == "session",
                                          Seal.subject == session_id)).all()
    out = []
    for seal in seals:
        record = parse(a.store.path_for(seal.blake3).read_bytes(), seal.blake3)
        assert not isinstance(record, Finding), record
        out.append(dict(record.body))
    return out


def _session_starts(a: Archive) -> dict[str, dict[str, object]]:
    """The details of each ``dock.session.start`` audit event, by session id."""
    from sqlmodel import Session, select

    from archive.audit.log import AuditEvent

    with Session(a.catalog.engine) as s:
        events = s.exec(select(AuditEvent).where(
            AuditEvent.action == "dock.session.start")).all()
    return {e.subjects[0]: dict(e.details) for e in events}


def _battery_in_the_equipment_report(home: Path, percent: int | None,
                                     docked: datetime) -> None:
    """Through the real service, as a supervisor's OS account: JSON and CSV."""
    write_agency_config(home)
    with serving(home) as svc:
        run = svc.cli("equipment", "report", "--json", user="supervisor")
        assert run.returncode == 0, run.stderr
        (cam,) = json.loads(run.stdout)["cameras"]
        csv = svc.cli("equipment", "report", "--csv", user="supervisor")
        assert csv.returncode == 0, csv.stderr
    battery, cell = cam["battery"], csv.stdout.splitlines()[1].split(",")[-2]
    if percent is None:
        assert battery == {"reported": False, "text": "not reported by the camera"}
        assert cell == "not reported by the camera"
        return
    assert (battery["reported"], battery["percent"]) == (True, percent)
    at = datetime.fromisoformat(battery["at"])
    assert at == docked and at.utcoffset() == timedelta(hours=8), battery  # station zone
    assert cell == f"{percent}% at {at.replace(microsecond=0).isoformat(sep=' ')}"


def test_a_bay_with_a_fixed_control_line_reads_the_battery_when_the_disk_docks(
        testbed: Testbed, loops: list[Loop], cam_a: Path, tmp_path: Path) -> None:
    """No control-line event: the job itself logs in on the bay's ``control_port``,
    reads identity, clock and battery, then offloads (docks/job.py)."""
    now = datetime.now(UTC).astimezone(ZoneInfo("Asia/Shanghai")).replace(tzinfo=None)
    fake = FakeCamera(password=b"888888", clock=now, battery=52, ticking=True)
    loop = Loop(tmp_path, cam_a, "camA")
    loops.append(loop)
    toml = write_dock_toml(tmp_path / "dock.toml", f"""
[dock]
sources = ["udev"]
process_after_offload = false
filesystems = ["ext4"]

[[dock.cameras]]
name = "zfy"
vendor_id = "2bdf"
model_id = "0101"
serial_pattern = "[A-Z0-9]{{7}}"
camera_model = "generic-dcim"
driver = "zfy-serial"
password = "888888"

[[dock.bays]]
number = 1
id_path = "{PORT.format(n=1)}"
control_port = "{fake.port}"
""")
    home = tmp_path / "home"
    d = Daemon(home=home, dock_toml=toml, env=testbed.daemon_env()).ready()
    try:
        testbed.add(usb_disk(n=1, devname=loop.dev, dev=loop.majmin, vendor="2bdf",
                             model="0101", serial="ZFY0001"))
        d.wait_event("done", bay="1")
    finally:
        assert d.terminate() == 0
    assert fake.unlocked and not d.named("unlocked"), "the job logged in, not a tty event"
    with Archive(home) as a:
        first = a.sessions()[0]
    assert (first.officer_id, first.battery_percent) == ("123456", 52)
    assert first.clock_drift_s is not None and abs(first.clock_drift_s) < 5
