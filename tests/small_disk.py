"""A small real filesystem for disk-full tests: a tmpfs mounted by root, so ENOSPC
comes from the kernel, not from a fake."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def tmpfs(where: Path, size: int | str) -> Iterator[Path]:
    """Mount a tmpfs of ``size`` bytes (or "600k") at ``where`` (created) for the block."""
    where.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},huge=never",
                              "tmpfs", str(where)], capture_output=True, text=True,
                             timeout=30, check=False)
    if mounted.returncode != 0:
        if os.environ.get("CI") == "true":
            pytest.fail(f"cannot mount tmpfs (CI=true: must run): {mounted.stderr}")
        pytest.skip(f"cannot mount tmpfs here: {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], timeout=30, check=True)


def leave_room_for(fs: Path, size: int) -> None:
    """Fill ``fs`` with a ballast file so that exactly the blocks of a ``size``-byte
    file stay free, not one more."""
    st = os.statvfs(fs)
    room = -(-size // st.f_frsize) * st.f_frsize
    fd = os.open(fs / "ballast", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.posix_fallocate(fd, 0, st.f_bavail * st.f_frsize - room)
    finally:
        os.close(fd)
    st = os.statvfs(fs)
    assert st.f_bavail * st.f_frsize == room
