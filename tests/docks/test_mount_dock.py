"""The real dock daemon as the service account, CAP_SYS_ADMIN its only capability.

As systemd runs evidock-dock.service (User=evidock, AmbientCapabilities=CAP_SYS_ADMIN),
minus systemd: ``setpriv`` starts ``evidock dock run`` as the real non-root account
``evt-service`` on a home made by ``evidock init --account`` as root. A camera docked
through umockdev (tests/docks/test_dock_udev.py) on a real loop device is mounted,
offloaded, wiped through the rw remount and unmounted by the daemon's own syscalls, and
everything it wrote is the service account's: no root-owned file a chown would have had
to fix. The camera's files are the service account's, as a FAT/exFAT camera's are once
mounted with ``uid=``/``gid=`` of the dock.
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
from dockutil import REPO, Archive, Daemon, Hooks, digests
from service_support import SERVICE_ACCOUNT, ensure_accounts, open_dir
from test_dock_udev import Loop, Testbed, _toml, _why_not, usb_disk

from docks.mount import CAP_SYS_ADMIN, mountpoints


def _missing() -> str | None:
    return _why_not() or next((f"{tool} not installed" for tool in ("setpriv", "debugfs")
                               if shutil.which(tool) is None), None)


pytestmark = pytest.mark.skipif(_missing() is not None, reason=_missing() or "")


@pytest.fixture
def station() -> Iterator[Path]:
    """A home made by `evidock init --account evt-service` (as root), in a directory
    every account can traverse."""
    ensure_accounts()
    top = open_dir("evidock-dockacct-")
    home = top / "home"
    home.mkdir()
    (home / "evidock.toml").write_text(f'[service]\naccount = "{SERVICE_ACCOUNT}"\n')
    init = subprocess.run([sys.executable, "-m", "evidock", "init", "--account",
                           SERVICE_ACCOUNT, "--json"], capture_output=True, text=True,
                          timeout=120, cwd=REPO, env={**_clean_env(), "EVIDOCK_HOME": str(home)})
    assert init.returncode == 0, init.stderr
    try:
        yield home
    finally:
        for point in mountpoints():
            if str(point).startswith(str(top)):  # a failed test may leave the daemon's
                subprocess.run(["umount", "-l", str(point)], timeout=30, check=False)
        shutil.rmtree(top, ignore_errors=True)


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("EVIDOCK_")}


def _setpriv() -> list[str]:
    pw = pwd.getpwnam(SERVICE_ACCOUNT)
    return ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups",
            "--inh-caps=+sys_admin", "--ambient-caps=+sys_admin", "--"]


def _open_to(path: Path, uid: int, gid: int) -> None:
    for p in (path, *path.rglob("*")):
        os.chown(p, uid, gid)


def _share_testbed(root: Path) -> None:
    """The testbed (root's 0700 temp dir) usable by the daemon's account: under the
    preload its udev monitor binds its socket in the testbed's root and reads the fake
    /sys there; the testbed connects to that socket to send uevents."""
    root.chmod(0o777)
    for p in root.rglob("*"):
        if not p.is_symlink():
            p.chmod(p.stat().st_mode | (0o777 if p.is_socket() else 0o055))


def _no_lost_found(loop: Loop) -> None:
    """A camera's FAT has no ext4 lost+found (root's 0700, which the dock may not read:
    reported, as it should be, but not what a camera looks like)."""
    subprocess.run(["debugfs", "-w", "-R", "rmdir lost+found", loop.dev], check=True,
                   timeout=30, capture_output=True)


def _proc(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return dict(line.split(":\t", 1) for line in lines if ":\t" in line)


def test_dock_daemon_as_the_service_account_mounts_offloads_wipes_unmounts(
        station: Path, cam_a: Path, tmp_path: Path) -> None:
    pw = pwd.getpwnam(SERVICE_ACCOUNT)
    _open_to(cam_a, pw.pw_uid, pw.pw_gid)  # mkfs -d keeps owners: the dock's, as on FAT
    original = digests(cam_a)
    loop = Loop(tmp_path, cam_a, "camA")
    _no_lost_found(loop)
    testbed = Testbed()
    top = station.parent
    hooks = Hooks(top / "hooks", "before_copy:1")
    _open_to(hooks.dir, pw.pw_uid, pw.pw_gid)
    try:
        _share_testbed(Path(testbed.root))
        d = Daemon(home=station, dock_toml=_toml(top), migrate=False, prefix=_setpriv(),
                   env={**testbed.daemon_env(), **hooks.env(), "HOME": "/nonexistent"})
        try:
            d.ready()
            proc = _proc(d.proc.pid)
            testbed.add(usb_disk(n=1, devname=loop.dev, dev=loop.majmin, vendor="2bdf",
                                 model="0101", serial="ZFY0001"))
            _share_testbed(Path(testbed.root))
            assert hooks.wait_paused() == "before_copy"
            point = station / "run" / "mnt" / "bay1-ZFY0001"
            mounted = _options(point)
            hooks.reply("go")
            done = d.wait_event("done", bay="1")
            left = _options(point)
        finally:
            assert d.terminate() == 0, d.events
    finally:
        hooks.close()
        testbed.close()
        contents = loop.contents(tmp_path)
        loop.close()
    assert proc["Uid"].split()[:2] == [str(pw.pw_uid)] * 2, "not root"
    assert int(proc["CapEff"], 16) == 1 << CAP_SYS_ADMIN, "CAP_SYS_ADMIN and nothing else"
    assert d.named("cannot-mount") == []
    assert {"ro", "nosuid", "nodev", "noexec"} <= mounted
    assert left == set(), "unmounted after the offload"
    assert done["wiped"] == len(original)
    assert contents == {}, "proven files wiped through the rw remount"
    with Archive(station) as a:
        assert a.catalogued("ZFY0001") == original
        assert [s.outcome for s in a.sessions()] == ["completed", "completed"]
    others = [str(p) for p in (station, *station.rglob("*"))
              if p.lstat().st_uid != pw.pw_uid and p != station / "evidock.toml"]
    assert others == [], "everything the dock wrote is the service account's"
    status = json.loads((station / "run" / "dock-status.json").read_text())
    assert status["bays"]["1"]["state"] == "done"


def _options(point: Path) -> set[str]:
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        parts = line.split()
        if parts[4] == str(point):
            return set(parts[5].split(","))
    return set()
