"""Helpers shared by tests (importable by name: tests/ is on sys.path)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path


class StepClock:
    """A deterministic, aware UTC clock that moves one second per reading."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 11, 23, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def tree_snapshot(root: Path) -> dict[bytes, tuple[int, int, bytes]]:
    """Every entry under root: (mode, size, content hash or link target), by raw path."""
    import hashlib
    import os
    import stat

    snap: dict[bytes, tuple[int, int, bytes]] = {}
    broot = os.fsencode(root)
    for dirpath, dirnames, filenames in os.walk(broot):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            if stat.S_ISREG(st.st_mode):
                with open(full, "rb") as fh:
                    digest = hashlib.sha256(fh.read()).digest()
            elif stat.S_ISLNK(st.st_mode):
                digest = os.readlink(full)
            else:
                digest = b""
            snap[os.path.relpath(full, broot)] = (st.st_mode, st.st_size, digest)
    return snap
