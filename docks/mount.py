"""Mounting a camera's filesystem: read-only for the offload, read-write only to wipe.

The dock runs as the service account with CAP_SYS_ADMIN alone, so it calls mount(2) and
umount2(2) itself (libc through ctypes): util-linux mount(8) refuses every uid but 0,
whatever its capabilities. No userspace helper (``mount.exfat-fuse``…) is ever run.
Mounts go into a private 0700 directory of the dock's own account under its run
directory, always ``MS_NOSUID|MS_NODEV|MS_NOEXEC``, read-only until the wipe pass; the
filesystem type must be one the configuration allows, so an untrusted stick cannot pull
in an exotic kernel driver. FAT and exFAT keep no owners on disk: they are mounted with
``uid=``/``gid=`` of the dock itself and owner-only masks, so it reads and, on the
read-write remount, unlinks the files it proved without CAP_DAC_OVERRIDE.

Each call runs in a thread of its own and is waited for at most ``timeout_s``: a mount
on a dying USB device can sleep uninterruptibly in the kernel, where no signal reaches
it (a killed mount(8) child could not even be reaped). The caller gets E_MOUNT at once;
an abandoned mount that still succeeds later detaches itself.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import functools
import os
import re
import stat
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from integrity.codes import Code
from integrity.errors import EvidockError

# <sys/mount.h>
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
MNT_DETACH, UMOUNT_NOFOLLOW = 2, 8
SAFE = MS_NOSUID | MS_NODEV | MS_NOEXEC
#: Filesystems with no owners on disk: mounted as the dock's own, owner-only.
OWNERLESS = frozenset({"vfat", "exfat"})
FILE_MASK, DIR_MASK = "0177", "0077"
CAP_SYS_ADMIN = 21
_NAME = re.compile(r"[^A-Za-z0-9._-]")


class MountError(EvidockError):
    code = Code.E_MOUNT


@dataclass(frozen=True)
class Mounted:
    device: str
    point: Path
    fstype: str


@functools.cache
def _libc() -> ctypes.CDLL:
    lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    lib.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p,
                          ctypes.c_ulong, ctypes.c_char_p]
    lib.mount.restype = ctypes.c_int
    lib.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
    lib.umount2.restype = ctypes.c_int
    return lib


def owner_options(fstype: str, *, uid: int, gid: int) -> str:
    """The data options ``fstype`` is mounted with ("" when it keeps owners itself)."""
    if fstype not in OWNERLESS:
        return ""
    return f"uid={uid},gid={gid},fmask={FILE_MASK},dmask={DIR_MASK}"


_WHY = {
    errno.EPERM: "not permitted: the dock needs CAP_SYS_ADMIN (AmbientCapabilities= in "
                 "evidock-dock.service)",
    errno.EACCES: "access denied: the device is read-only or its node is on a nodev mount",
    errno.ENODEV: "this kernel does not support the filesystem type (module missing?)",
    errno.ENOTBLK: "not a block device",
    errno.ENOENT: "the device or the mount point does not exist",
    errno.EBUSY: "busy: already mounted, or still in use",
    errno.EINVAL: "not a valid filesystem of that type, an option it refuses, or not "
                  "mounted",
    errno.EROFS: "the device is write-protected",
    errno.EUCLEAN: "the filesystem is corrupted",
    errno.EIO: "I/O error: the device is failing or gone",
    errno.ENXIO: "the device is gone",
    errno.ENOMEDIUM: "no medium in the device",
}


def explain(err: int) -> str:
    """``EPERM (Operation not permitted): not permitted: the dock needs …``"""
    name = errno.errorcode.get(err, str(err))
    why = _WHY.get(err)
    return f"{name} ({os.strerror(err)})" + (f": {why}" if why else "")


@dataclass(frozen=True)
class _Call:
    what: str
    fn: Callable[[], int]
    undo: Callable[[], object] | None  # run if the call succeeds after being abandoned
    details: dict[str, Any]


class Mounter:
    def __init__(self, *, directory: Path, timeout_s: float,
                 filesystems: Sequence[str]) -> None:
        self.directory = directory
        self.timeout_s = timeout_s
        self.filesystems = tuple(filesystems)

    def _syscall(self, call: _Call) -> None:
        """Run ``call`` in its own thread; MountError naming errno or the timeout."""
        lock, abandoned, result = threading.Lock(), threading.Event(), list[int]()

        def work() -> None:
            rc = call.fn()
            err = ctypes.get_errno() if rc != 0 else 0  # per thread: read it here
            with lock:
                result.append(err)
                late = abandoned.is_set()
            if late and err == 0 and call.undo is not None:
                call.undo()

        worker = threading.Thread(target=work, name=f"evidock-{call.what[:40]}", daemon=True)
        worker.start()
        worker.join(self.timeout_s)
        with lock:
            if not result:
                abandoned.set()
                raise MountError(f"{call.what} took longer than {self.timeout_s:g}s (a "
                                 "dying device?): abandoned", timeout_s=self.timeout_s,
                                 **call.details)
        if result[0]:
            raise MountError(f"{call.what} failed: {explain(result[0])}",
                             errno=errno.errorcode.get(result[0], result[0]), **call.details)

    def data_options(self, fstype: str) -> str:
        return owner_options(fstype, uid=os.geteuid(), gid=os.getegid())

    def _mount(self, m: Mounted, flags: int, how: str) -> None:
        lib, target = _libc(), os.fsencode(m.point)
        # On a remount no data: every option not given stays as mounted.
        data = None if flags & MS_REMOUNT else self.data_options(m.fstype).encode() or None
        self._syscall(_Call(
            what=f"mount {m.device} on {m.point} ({m.fstype}, {how})",
            fn=lambda: int(lib.mount(os.fsencode(m.device), target, m.fstype.encode(),
                                     flags | SAFE, data)),
            undo=None if flags & MS_REMOUNT else
            lambda: lib.umount2(target, MNT_DETACH | UMOUNT_NOFOLLOW),
            details={"op": how, "device": m.device, "point": str(m.point),
                     "fstype": m.fstype}))

    def _umount(self, point: Path, *, detach: bool) -> None:
        lib, target = _libc(), os.fsencode(point)
        flags = UMOUNT_NOFOLLOW | (MNT_DETACH if detach else 0)
        self._syscall(_Call(what=f"umount {point}{' (detach)' if detach else ''}",
                            fn=lambda: int(lib.umount2(target, flags)), undo=None,
                            details={"op": "umount", "point": str(point),
                                     "detach": detach}))

    def point_for(self, name: str) -> Path:
        return self.directory / _NAME.sub("_", name)

    def _private_directory(self) -> None:
        """The mount points' parent: a directory of this account's own, 0700 (another
        owner could swap a point for a link and have a camera mounted anywhere)."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        st = os.lstat(self.directory)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
            raise MountError(
                f"{self.directory} must be a directory owned by the dock's account (uid "
                f"{os.geteuid()}), not uid {st.st_uid}: run the dock as the service account "
                "(systemd/evidock.tmpfiles.conf makes it theirs)", point=str(self.directory),
                owner=st.st_uid, uid=os.geteuid())
        if stat.S_IMODE(st.st_mode) != 0o700:
            os.chmod(self.directory, 0o700)

    def mount_ro(self, device: str, fstype: str, name: str) -> Mounted:
        if fstype not in self.filesystems:
            raise MountError(f"filesystem {fstype!r} not allowed (dock.filesystems: "
                             f"{list(self.filesystems)})", fstype=fstype)
        point = self.point_for(name)
        self._private_directory()
        if is_mountpoint(point):  # left by a killed daemon or an abandoned late mount
            self._umount(point, detach=True)
        point.mkdir(exist_ok=True, mode=0o700)
        m = Mounted(device, point, fstype)
        try:
            self._mount(m, MS_RDONLY, "ro")
        except MountError:
            # No empty point left behind; an abandoned mount that lands late then
            # finds no directory (or, if first, detaches itself).
            with contextlib.suppress(OSError):
                point.rmdir()
            raise
        return m

    def remount_rw(self, m: Mounted) -> None:
        self._mount(m, MS_REMOUNT, "remount rw")

    def unmount(self, m: Mounted) -> None:
        try:
            self._umount(m.point, detach=False)
        except MountError as exc:
            if exc.details.get("errno") == "EINVAL" and not is_mountpoint(m.point):
                pass  # already gone (unmounted behind our back): nothing to undo
            elif exc.details.get("errno") == "EBUSY":
                # Still in use: detach now, the kernel finishes when the last fd closes.
                self._umount(m.point, detach=True)
            else:
                raise
        m.point.rmdir()

    @contextmanager
    def mounted(self, device: str, fstype: str, name: str) -> Iterator[Mounted]:
        m = self.mount_ro(device, fstype, name)
        try:
            yield m
        finally:
            self.unmount(m)

    def sweep(self) -> list[Path]:
        """Unmount what a killed daemon left under our directory; return the points."""
        left = [p for p in mountpoints() if p.parent == self.directory]
        for point in left:
            self._umount(point, detach=True)
            point.rmdir()
        return left


def can_mount(status: Path = Path("/proc/self/status")) -> bool:
    """Whether this process holds CAP_SYS_ADMIN in its effective set."""
    for line in status.read_text(encoding="ascii").splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> CAP_SYS_ADMIN & 1)
    return False


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mountpoints(mountinfo: Path = Path("/proc/self/mountinfo")) -> list[Path]:
    out = []
    for line in mountinfo.read_text(encoding="utf-8", errors="surrogateescape").splitlines():
        parts = line.split()
        if len(parts) > 4:
            out.append(Path(_unescape(parts[4])))
    return out


def is_mountpoint(path: Path) -> bool:
    return path in mountpoints()
