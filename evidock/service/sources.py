"""Which camera directories the service offloads for a user.

The service reads (and with ``--wipe-after-verify`` deletes from) a camera as its own
account, which can also read the catalog, the store and the keys. So it offloads a
directory only if the user asking could read it themselves (the kernel's uid of the
socket peer, its groups, mode bits and POSIX ACLs), if nobody but root or the service
can swap any directory on its path between this check and the offload (no symlink
race), and if it neither is, holds nor lies inside the station's own files.
"""

from __future__ import annotations

import errno
import os
import pwd
import stat
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from integrity.errors import SourceInvalid

R, W, X = 4, 2, 1
_ACL_XATTR = "system.posix_acl_access"
_ACL_HEADER, _ACL_ENTRY = struct.Struct("<I"), struct.Struct("<HHI")
_USER_OBJ, _USER, _GROUP_OBJ, _GROUP, _MASK, _OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20


@dataclass(frozen=True, slots=True)
class Requester:
    """The account behind a request: uid and every group it is in."""

    uid: int
    gids: frozenset[int]

    @classmethod
    def of_uid(cls, uid: int, gid: int) -> Requester:
        try:
            name = pwd.getpwuid(uid).pw_name
            groups = os.getgrouplist(name, gid)
        except (KeyError, OSError):
            groups = [gid]
        return cls(uid=uid, gids=frozenset(groups))


#: Audits why the source is not this user's to ask for, and raises (the gate's refusal).
Refuse = Callable[[str], NoReturn]


def checked_source(source: str, who: Requester, *, own: Iterable[Path],
                   trusted: frozenset[int], refuse: Refuse, wipe: bool = False) -> Path:
    """The camera directory, resolved, once ``who`` may have the service offload it
    (and, with ``wipe``, delete from it: then ``who`` must be able to write it too).

    Calls ``refuse`` (not this user's to ask for) or raises SourceInvalid (no such
    readable directory, as when the offloader cannot open it).
    """
    path = Path(source)
    if not path.is_absolute():
        raise SourceInvalid(f"the camera path must be absolute: {source}", path=source)
    real = Path(os.path.realpath(path))
    parent_st: os.stat_result | None = None
    for part in (*reversed(real.parents), real):
        st = _lstat(part, source)
        if not stat.S_ISDIR(st.st_mode):
            raise SourceInvalid(f"cannot open source {source}: Not a directory", path=source)
        if parent_st is not None:
            _unswappable(part.parent, parent_st, st, trusted, refuse)
        if part != real and not permits(who, part, st, X):
            refuse(f"{part} cannot be entered by the requesting account")
        parent_st = st
    assert parent_st is not None  # the loop saw at least "/"
    if not permits(who, real, parent_st, R | X):
        refuse(f"{real} cannot be read by the requesting account")
    if wipe and not permits(who, real, parent_st, W | X):
        refuse(f"{real} cannot be written by the requesting account: no wipe")
    for mine in own:
        if real == mine or mine.is_relative_to(real) or real.is_relative_to(mine):
            refuse(f"{real} is, holds or lies inside the station's own files ({mine})")
    return real


def _lstat(part: Path, source: str) -> os.stat_result:
    try:
        return os.lstat(part)
    except OSError as exc:
        raise SourceInvalid(f"cannot open source {source}: {exc.strerror}",
                            path=source) from exc


def _unswappable(parent: Path, parent_st: os.stat_result, child_st: os.stat_result,
                 trusted: frozenset[int], refuse: Refuse) -> None:
    """Refuse a directory on the path that someone other than root or the service could
    rename the next entry out of (then the offload might open another directory)."""
    mode = stat.S_IMODE(parent_st.st_mode)
    if parent_st.st_uid not in trusted:
        refuse(f"{parent} is owned by uid {parent_st.st_uid}: its entries could be swapped; "
               "mount or copy the camera where only root can change the path")
    if mode & (stat.S_IWGRP | stat.S_IWOTH) or _acl_writers(parent):
        sticky_guarded = mode & stat.S_ISVTX and child_st.st_uid in trusted
        if not sticky_guarded:
            refuse(f"{parent} is writable by others: its entries could be swapped")


def permits(who: Requester, path: Path, st: os.stat_result, want: int) -> bool:
    """Would the kernel let ``who`` have ``want`` (R|W|X bits) on ``path``?"""
    if who.uid == 0:
        return True
    mode = stat.S_IMODE(st.st_mode)
    if st.st_uid == who.uid:
        return (mode >> 6) & want == want
    acl = _acl(path)
    if acl is None:
        if st.st_gid in who.gids:
            return (mode >> 3) & want == want
        return mode & want == want
    return _acl_permits(acl, who, st, want)


def _acl(path: Path) -> list[tuple[int, int, int]] | None:
    """The extended entries of the access ACL (tag, perm, id); None without one."""
    try:
        raw = os.getxattr(path, _ACL_XATTR, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in (errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP):
            return None
        raise
    body = raw[_ACL_HEADER.size:]
    return [_ACL_ENTRY.unpack_from(body, i) for i in range(0, len(body), _ACL_ENTRY.size)]


def _acl_permits(acl: list[tuple[int, int, int]], who: Requester, st: os.stat_result,
                 want: int) -> bool:
    """POSIX.1e access check (the owner case is handled by the caller)."""
    mask = next((perm for tag, perm, _ in acl if tag == _MASK), R | W | X)
    for tag, perm, ident in acl:
        if tag == _USER and ident == who.uid:
            return perm & mask & want == want
    groups = [perm for tag, perm, ident in acl
              if (tag == _GROUP_OBJ and st.st_gid in who.gids)
              or (tag == _GROUP and ident in who.gids)]
    if groups:
        return any(perm & mask & want == want for perm in groups)
    other = next((perm for tag, perm, _ in acl if tag == _OTHER), 0)
    return other & want == want


def _acl_writers(path: Path) -> bool:
    """Does the ACL let named users or groups write (beyond owner/group/other bits)?"""
    acl = _acl(path) or []
    mask = next((perm for tag, perm, _ in acl if tag == _MASK), R | W | X)
    return any(tag in (_USER, _GROUP) and perm & mask & W for tag, perm, _ in acl)


__all__ = ["Refuse", "Requester", "checked_source", "permits"]
