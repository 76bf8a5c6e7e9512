"""Which camera directories the service offloads for a user: real directories, modes,
owners and POSIX ACLs, checked for a real test account (evt-clerk)."""

from __future__ import annotations

import errno
import os
import pwd
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest
from service_support import ensure_accounts, open_dir

from evidock.service.sources import Requester, checked_source
from integrity.errors import SourceInvalid


class Refused(Exception):
    pass


def refuse(why: str) -> NoReturn:
    raise Refused(why)


@pytest.fixture
def clerk() -> Requester:
    ensure_accounts()
    pw = pwd.getpwnam("evt-clerk")
    return Requester.of_uid(pw.pw_uid, pw.pw_gid)


@pytest.fixture
def base() -> Iterator[Path]:
    """A root-owned 0755 directory: nobody but root can swap what is in it."""
    path = open_dir("evidock-src-")
    yield path
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def check(source: Path | str, who: Requester, *, own: tuple[Path, ...] = (),
          wipe: bool = False) -> Path:
    return checked_source(str(source), who, own=own, trusted=frozenset({0}), refuse=refuse,
                          wipe=wipe)


def cam(parent: Path, name: str = "cam", mode: int = 0o755) -> Path:
    path = parent / name
    path.mkdir(mode=mode)
    path.chmod(mode)
    return path


def test_a_camera_the_user_can_read_is_resolved(base: Path, clerk: Requester) -> None:
    camera = cam(base)
    (base / "link").symlink_to(camera)
    assert check(base / "link", clerk) == camera  # the directory itself, links resolved


def test_what_the_user_cannot_read_enter_or_write_is_refused(base: Path,
                                                             clerk: Requester) -> None:
    private = cam(base, "private", 0o700)
    with pytest.raises(Refused, match="cannot be read"):
        check(private, clerk)
    inside = cam(private, "cam")
    with pytest.raises(Refused, match="cannot be entered"):
        check(inside, clerk)
    with pytest.raises(Refused, match="cannot be written"):
        check(cam(base), clerk, wipe=True)
    mine = cam(base, "mine")
    os.chown(mine, clerk.uid, -1)
    assert check(mine, clerk, wipe=True) == mine


def test_a_path_others_could_swap_is_refused(base: Path, clerk: Requester) -> None:
    theirs = cam(base, "theirs")
    os.chown(theirs, clerk.uid, -1)  # the clerk could rename cam away and link another
    with pytest.raises(Refused, match="owned by uid .*could be swapped"):
        check(cam(theirs), clerk)
    shared = cam(base, "shared", 0o777)
    with pytest.raises(Refused, match="writable by others"):
        check(cam(shared), clerk)
    sticky = cam(base, "sticky", 0o1777)  # like /tmp: only an entry's owner may move it
    assert check(cam(sticky, "roots"), clerk) == sticky / "roots"
    own = cam(sticky, "clerks")
    os.chown(own, clerk.uid, -1)
    with pytest.raises(Refused, match="writable by others"):
        check(own, clerk)


def test_the_station_itself_is_never_a_camera(base: Path, clerk: Requester) -> None:
    home = cam(base, "home")
    store = cam(home, "store")
    for source in (home, store, base):  # is, inside, holds
        with pytest.raises(Refused, match="the station's own files"):
            check(source, clerk, own=(home,))
    (base / "innocent").symlink_to(home)
    with pytest.raises(Refused, match="the station's own files"):
        check(base / "innocent", clerk, own=(home,))


def test_no_such_directory_is_the_offloaders_error(base: Path, clerk: Requester) -> None:
    (base / "file").write_bytes(b"x")
    for source, why in ((base / "absent", "No such file"), (base / "file", "Not a directory"),
                        ("relative/cam", "must be absolute")):
        with pytest.raises(SourceInvalid, match=why):
            check(source, clerk)


def _acl(*entries: tuple[int, int, int]) -> bytes:
    """The kernel's xattr form of a POSIX access ACL (version 2)."""
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in entries)


def test_a_posix_acl_grants_and_masks(base: Path, clerk: Requester) -> None:
    camera = cam(base, "acl", 0o700)
    user_obj, user, group_obj, mask, other = 0x01, 0x02, 0x04, 0x10, 0x20
    nobody = 0xFFFFFFFF
    grant = _acl((user_obj, 7, nobody), (user, 5, clerk.uid), (group_obj, 0, nobody),
                 (mask, 5, nobody), (other, 0, nobody))
    try:
        os.setxattr(camera, "system.posix_acl_access", grant)
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            pytest.skip("no POSIX ACLs on this file system")
        raise
    assert check(camera, clerk) == camera  # like udisks' /media/USER: r-x by ACL
    masked = _acl((user_obj, 7, nobody), (user, 7, clerk.uid), (group_obj, 0, nobody),
                  (mask, 0, nobody), (other, 0, nobody))
    os.setxattr(camera, "system.posix_acl_access", masked)
    with pytest.raises(Refused, match="cannot be read"):
        check(camera, clerk)
    writers = _acl((user_obj, 7, nobody), (user, 7, clerk.uid), (group_obj, 5, nobody),
                   (mask, 7, nobody), (other, 5, nobody))
    os.setxattr(base, "system.posix_acl_access", writers)  # the clerk may rename in base
    with pytest.raises(Refused, match="writable by others"):
        check(cam(base, "cam2"), clerk)
