"""The dock mounts cameras as the service account with CAP_SYS_ADMIN alone.

A camera is an ext4 image on a real loop device (this kernel has no vfat module). Its
files belong to the service account, as a FAT/exFAT camera's do once mounted with
``uid=``/``gid=`` of the dock. The probe runs ``docks.mount.Mounter`` in a process
started by ``setpriv`` as the real non-root account ``evt-service``: with only
CAP_SYS_ADMIN in its ambient set, as systemd starts evidock-dock.service, and without
any capability. Needs root (loop devices, accounts) and e2fsprogs.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from dockutil import REPO
from service_support import SERVICE_ACCOUNT, ensure_accounts, open_dir

from docks.mount import (
    CAP_SYS_ADMIN,
    Mounter,
    MountError,
    can_mount,
    explain,
    mountpoints,
    owner_options,
)


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "needs root: loop devices, OS accounts"
    for tool in ("losetup", "mkfs.ext4", "setpriv"):
        if shutil.which(tool) is None:
            return f"{tool} not installed"
    if not Path("/dev/loop-control").exists():
        return "no /dev/loop-control: this machine allows no loop devices"
    if "ext4" not in Path("/proc/filesystems").read_text():
        return "kernel without ext4"
    return None


needs_loop = pytest.mark.skipif(_why_not() is not None, reason=_why_not() or "")


class Camera:
    """An ext4 camera image (files the service account's) on a loop device, and the
    dock's run directory, both under a directory every account can traverse."""

    def __init__(self) -> None:
        ensure_accounts()
        pw = pwd.getpwnam(SERVICE_ACCOUNT)
        self.uid, self.gid = pw.pw_uid, pw.pw_gid
        self.dir = open_dir("evidock-mount-")
        src = self.dir / "src"
        for rel, body in (("DCIM/100MEDIA/A.MP4", b"clip a"), ("DCIM/100MEDIA/B.MP4", b"b"),
                          ("LOG/zfy.log", b"log")):
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            (src / rel).write_bytes(body)
        for path in (src, *src.rglob("*")):
            os.chown(path, self.uid, self.gid)  # mkfs -d keeps owners
        image = self.dir / "camera.img"
        subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(src), str(image), "8M"],
                       check=True, timeout=60, capture_output=True)
        self.dev = subprocess.run(["losetup", "--find", "--show", str(image)], check=True,
                                  timeout=30, capture_output=True, text=True).stdout.strip()
        self.run_dir = self.dir / "run"
        self.run_dir.mkdir()
        os.chown(self.run_dir, self.uid, self.gid)
        self.mnt = self.run_dir / "mnt"

    def files(self) -> list[str]:
        """The camera's files now, read by root through a read-only mount of its own."""
        point = self.dir / "inspect"
        point.mkdir()
        subprocess.run(["mount", "-o", "ro", self.dev, str(point)], check=True, timeout=30)
        try:
            return sorted(str(p.relative_to(point)) for p in point.rglob("*")
                          if p.is_file() and "lost+found" not in p.parts)
        finally:
            subprocess.run(["umount", str(point)], check=True, timeout=30)
            point.rmdir()

    def close(self) -> None:
        for point in mountpoints():
            if str(point).startswith(str(self.dir)):  # a failed probe's leftovers
                subprocess.run(["umount", "-l", str(point)], timeout=30, check=False)
        subprocess.run(["losetup", "-d", self.dev], timeout=30, check=False)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def camera() -> Iterator[Camera]:
    cam = Camera()
    try:
        yield cam
    finally:
        cam.close()


def as_dock(script: str, *args: str, caps: bool) -> dict[str, object]:
    """``python -c script args`` as the service account, with CAP_SYS_ADMIN alone in
    its ambient set (as systemd gives it) or no capability at all; its JSON answer."""
    pw = pwd.getpwnam(SERVICE_ACCOUNT)
    argv = ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups"]
    if caps:
        argv += ["--inh-caps=+sys_admin", "--ambient-caps=+sys_admin"]
    run = subprocess.run([*argv, "--", sys.executable, "-c", script, *args],
                         capture_output=True, text=True, timeout=120, cwd="/",
                         env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin",
                              "LANG": "C.UTF-8", "HOME": "/nonexistent"})
    assert run.returncode == 0, run.stderr
    answer: dict[str, object] = json.loads(run.stdout)
    return answer


_PROBE_HEAD = """
import errno, json, os, sys
from pathlib import Path
from docks.mount import Mounter, MountError, can_mount, is_mountpoint, mountpoints
run_dir, dev = Path(sys.argv[1]), sys.argv[2]
m = Mounter(directory=run_dir / "mnt", timeout_s=30, filesystems=["vfat", "exfat", "ext4"])
status = Path("/proc/self/status").read_text().splitlines()
out = {"uid": os.geteuid(), "can_mount": can_mount(),
       "cap_eff": next(l.split()[1] for l in status if l.startswith("CapEff:"))}
def options(point):
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        if line.split()[4] == str(point):
            return sorted(line.split()[5].split(","))
    return []
def attempt(fn):
    try:
        fn()
        return "ok"
    except OSError as exc:
        return errno.errorcode[exc.errno]
"""

_PROBE_WIPE = _PROBE_HEAD + """
mm = m.mount_ro(dev, "ext4", "bay1-ZFY0001")
media = mm.point / "DCIM" / "100MEDIA"
out["ro"] = options(mm.point)
out["read"] = (media / "A.MP4").read_bytes().decode()
out["write_ro"] = attempt(lambda: (mm.point / "new.txt").write_bytes(b"x"))
out["unlink_ro"] = attempt(lambda: (media / "A.MP4").unlink())
m.remount_rw(mm)
out["rw"] = options(mm.point)
out["unlink_rw"] = attempt(lambda: (media / "A.MP4").unlink())
held = open(media / "B.MP4", "rb")  # busy: umount must fall back to detaching
m.unmount(mm)
out["after"] = {"mounted": is_mountpoint(mm.point), "point": mm.point.exists(),
                "read_held": held.read().decode()}
held.close()
print(json.dumps(out))
"""


@needs_loop
def test_the_service_account_with_cap_sys_admin_mounts_ro_wipes_on_rw_and_unmounts(
        camera: Camera) -> None:
    out = as_dock(_PROBE_WIPE, str(camera.run_dir), camera.dev, caps=True)
    assert out["uid"] == camera.uid and out["can_mount"] is True
    assert int(str(out["cap_eff"]), 16) == 1 << CAP_SYS_ADMIN, "CAP_SYS_ADMIN and nothing else"
    assert {"ro", "nosuid", "nodev", "noexec"} <= set(out["ro"])  # type: ignore[arg-type]
    assert out["read"] == "clip a"
    assert (out["write_ro"], out["unlink_ro"]) == ("EROFS", "EROFS"), "read-only means it"
    rw = set(out["rw"])  # type: ignore[arg-type]
    assert "rw" in rw and {"nosuid", "nodev", "noexec"} <= rw, "the remount keeps them"
    assert out["unlink_rw"] == "ok", "the dock's own files: no CAP_DAC_OVERRIDE needed"
    assert out["after"] == {"mounted": False, "point": False, "read_held": "b"}
    assert camera.files() == ["DCIM/100MEDIA/B.MP4", "LOG/zfy.log"], "only the one wiped"
    assert (camera.mnt.stat().st_uid, camera.mnt.stat().st_mode & 0o777) == (camera.uid,
                                                                             0o700)


_PROBE_REFUSED = _PROBE_HEAD + """
try:
    m.mount_ro(dev, "ext4", "bay1-ZFY0001")
    out["error"] = None
except MountError as exc:
    out["error"] = exc.to_dict()
out["left"] = [str(p) for p in mountpoints() if str(p).startswith(str(run_dir))]
out["points"] = (sorted(p.name for p in (run_dir / "mnt").iterdir())
                 if os.access(run_dir / "mnt", os.R_OK) else None)
print(json.dumps(out))
"""


@needs_loop
def test_without_the_capability_a_clean_e_mount_and_nothing_left(camera: Camera) -> None:
    out = as_dock(_PROBE_REFUSED, str(camera.run_dir), camera.dev, caps=False)
    assert out["can_mount"] is False and int(str(out["cap_eff"]), 16) == 0
    error = out["error"]
    assert isinstance(error, dict) and error["code"] == "E_MOUNT"
    assert error["details"]["errno"] == "EPERM"
    assert error["details"]["device"] == camera.dev
    assert "needs CAP_SYS_ADMIN" in error["message"], error["message"]
    assert (out["left"], out["points"]) == ([], []), "no mount, no empty mount point"
    assert len(camera.files()) == 3, "the camera untouched"


@needs_loop
def test_a_mount_directory_of_another_owner_is_refused_before_any_mount(
        camera: Camera) -> None:
    camera.mnt.mkdir(mode=0o700)  # root's: the service account must not mount into it
    out = as_dock(_PROBE_REFUSED, str(camera.run_dir), camera.dev, caps=True)
    error = out["error"]
    assert isinstance(error, dict) and error["code"] == "E_MOUNT"
    assert (error["details"]["owner"], error["details"]["uid"]) == (0, camera.uid)
    assert "run the dock as the service account" in error["message"]
    assert out["left"] == [] and out["points"] is None, "it could not even look inside"
    assert list(camera.mnt.iterdir()) == []


def test_a_filesystem_not_allowed_is_refused_before_anything_is_touched(
        tmp_path: Path) -> None:
    m = Mounter(directory=tmp_path / "mnt", timeout_s=5, filesystems=("vfat",))
    with pytest.raises(MountError) as caught:
        m.mount_ro("/dev/null", "ext4", "bay1-X")
    assert caught.value.details == {"fstype": "ext4"}
    assert not (tmp_path / "mnt").exists()


def test_fat_and_exfat_are_mounted_as_the_dock_owner_only_others_keep_their_owners(
) -> None:
    for fstype in ("vfat", "exfat"):
        assert owner_options(fstype, uid=990, gid=991) == (
            "uid=990,gid=991,fmask=0177,dmask=0077"), fstype
    assert owner_options("ext4", uid=990, gid=991) == ""
    m = Mounter(directory=Path("/nonexistent"), timeout_s=1, filesystems=("vfat",))
    assert m.data_options("vfat").startswith(f"uid={os.geteuid()},gid={os.getegid()},")


def test_errno_is_named_and_explained() -> None:
    assert explain(1) == ("EPERM (Operation not permitted): not permitted: the dock needs "
                          "CAP_SYS_ADMIN (AmbientCapabilities= in evidock-dock.service)")
    assert explain(19).startswith("ENODEV (No such device): this kernel does not support")
    assert explain(4095) == "4095 (Unknown error 4095)"


def test_can_mount_reads_the_effective_set(tmp_path: Path) -> None:
    status = tmp_path / "status"
    status.write_text("Name:\tx\nCapEff:\t0000000000200000\n")
    assert can_mount(status) is True
    status.write_text("Name:\tx\nCapEff:\t00000000001fffff\n")
    assert can_mount(status) is False


def test_a_call_that_hangs_is_abandoned_with_e_mount_and_undone_if_it_lands_late(
        tmp_path: Path) -> None:
    """The guard itself (a real uninterruptible mount needs a dying device: a loop
    device over a FUSE file that stops answering would do; not reproduced here)."""
    import threading
    import time

    from docks.mount import _Call

    release, undone = threading.Event(), threading.Event()
    m = Mounter(directory=tmp_path, timeout_s=0.2, filesystems=("ext4",))
    call = _Call(what="mount /dev/sdz on /x (ext4, ro)", fn=lambda: int(not release.wait(60)),
                 undo=undone.set, details={"device": "/dev/sdz"})
    began = time.monotonic()
    with pytest.raises(MountError) as caught:
        m._syscall(call)
    assert time.monotonic() - began < 5, "the caller is not held by the hung call"
    assert "took longer than 0.2s" in caught.value.message
    assert caught.value.details == {"timeout_s": 0.2, "device": "/dev/sdz"}
    assert not undone.is_set()
    release.set()  # the kernel finally returns: the mount nobody waits for is undone
    assert undone.wait(30)
