"""Mounting a camera's filesystem: read-only for the offload, read-write only to wipe.

``mount``/``umount`` run as argv lists with a timeout and a minimal environment (no
shell, no inherited LD_PRELOAD), into a private directory under the daemon's run
directory. Options are always ``nosuid,nodev,noexec``; the filesystem type must be one
the configuration allows, so an untrusted stick cannot pull in an exotic kernel driver.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from integrity.codes import Code
from integrity.errors import EvidockError

SAFE = "nosuid,nodev,noexec"
_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}
_NAME = re.compile(r"[^A-Za-z0-9._-]")


class MountError(EvidockError):
    code = Code.E_MOUNT


@dataclass(frozen=True)
class Mounted:
    device: str
    point: Path
    fstype: str


class Mounter:
    def __init__(self, *, directory: Path, timeout_s: float,
                 filesystems: Sequence[str]) -> None:
        self.directory = directory
        self.timeout_s = timeout_s
        self.filesystems = tuple(filesystems)

    def _run(self, argv: list[str]) -> None:
        try:
            res = subprocess.run(argv, capture_output=True, timeout=self.timeout_s, env=_ENV,
                                 stdin=subprocess.DEVNULL, check=False)
        except FileNotFoundError as exc:
            raise MountError(f"{argv[0]} is not installed", argv=argv) from exc
        except subprocess.TimeoutExpired as exc:
            raise MountError(f"{argv[0]} took longer than {self.timeout_s:g}s",
                             argv=argv) from exc
        if res.returncode != 0:
            line = res.stderr.decode("utf-8", "replace").strip().splitlines()
            raise MountError(f"{' '.join(argv[:2])} failed: "
                             f"{line[-1] if line else res.returncode}", argv=argv)

    def point_for(self, name: str) -> Path:
        return self.directory / _NAME.sub("_", name)

    def mount_ro(self, device: str, fstype: str, name: str) -> Mounted:
        if fstype not in self.filesystems:
            raise MountError(f"filesystem {fstype!r} not allowed (dock.filesystems: "
                             f"{list(self.filesystems)})", fstype=fstype)
        point = self.point_for(name)
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.directory, 0o700)
        if is_mountpoint(point):
            self._run(["umount", str(point)])
        point.mkdir(exist_ok=True, mode=0o700)
        self._run(["mount", "-t", fstype, "-o", f"ro,{SAFE}", "--", device, str(point)])
        return Mounted(device, point, fstype)

    def remount_rw(self, m: Mounted) -> None:
        self._run(["mount", "-o", f"remount,rw,{SAFE}", "--", str(m.point)])

    def unmount(self, m: Mounted) -> None:
        try:
            self._run(["umount", "--", str(m.point)])
        except MountError:
            # The medium is gone or busy: detach now, the kernel finishes when fds close.
            self._run(["umount", "-l", "--", str(m.point)])
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
            self._run(["umount", "-l", "--", str(point)])
            point.rmdir()
        return left


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
