"""The service's rules must be the administrator's: refuse config files others could edit.

A rule that a client's environment or config file can change is not a rule. The service
reads ``[access]``, ``[retention]``, ``[exports]`` and ``[coverage]`` from its own files
only, and starts only if each file, and every directory above it, is owned by root (or
by the service's own account, which systemd starts with a root-made config) and writable
by nobody else.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path

from integrity.errors import ConfigError


def _owners(service_uid: int) -> frozenset[int]:
    return frozenset({0, service_uid})


def check_trusted(files: Iterable[Path], *, service_uid: int) -> None:
    """Raise ConfigError naming the first file or directory that others could change."""
    for path in files:
        for item in (path, *path.resolve().parents):
            _check_one(Path(item), owners=_owners(service_uid), is_file=item == path)


def _check_one(path: Path, *, owners: frozenset[int], is_file: bool) -> None:
    try:
        st = os.stat(path, follow_symlinks=False) if is_file else os.stat(path)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot check the config file: {exc.strerror}",
                          key="config", file=str(path)) from None
    mode = stat.S_IMODE(st.st_mode)
    if is_file and not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"{path}: the service config must be a regular file, not a link "
                          "or device", key="config", file=str(path))
    sticky_dir = stat.S_ISDIR(st.st_mode) and mode & stat.S_ISVTX
    if st.st_uid not in owners:
        raise ConfigError(f"{path}: owned by uid {st.st_uid}; the service reads its rules "
                          "only from files root owns", key="config", file=str(path),
                          owner=st.st_uid, mode=oct(mode))
    if mode & (stat.S_IWGRP | stat.S_IWOTH) and not sticky_dir:
        raise ConfigError(f"{path}: mode {mode:04o} lets others change the service's rules; "
                          "chmod go-w it", key="config", file=str(path), mode=oct(mode))
