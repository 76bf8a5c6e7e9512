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


#: A small agency: one user per role, two units, one restricted user. Tests act as a
#: user with EVIDOCK_USER (trust_env_user is a test-only switch) or Gate.identify(env=).
AGENCY_TOML = """
[access]
trust_env_user = true
[[access.users]]
name = "clerk"
display = "张文书"
roles = ["clerk"]
clearances = ["个人隐私"]
[[access.users]]
name = "clerk2"
roles = ["clerk"]
units = ["城西中队"]
[[access.users]]
name = "inspector"
display = "李督察"
roles = ["inspector"]
clearances = ["个人隐私", "商业秘密"]
[[access.users]]
name = "legal"
display = "王法制"
roles = ["legal_reviewer"]
clearances = ["个人隐私", "商业秘密"]
[[access.users]]
name = "supervisor"
roles = ["supervisor"]
clearances = ["个人隐私", "商业秘密", "国家秘密"]
[[access.users]]
name = "supervisor2"
roles = ["supervisor"]
clearances = ["个人隐私"]
[[access.users]]
name = "admin"
roles = ["admin"]
[[access.users]]
name = "officer"
roles = ["officer"]
police_number = "123456"

[cases]
units = ["城东中队", "城西中队"]
"""


def write_agency_config(home: Path, extra: str = "") -> Path:
    """EVIDOCK_HOME/evidock.toml with :data:`AGENCY_TOML` (+ extra TOML); returns it."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / "evidock.toml"
    path.write_text(AGENCY_TOML + extra, encoding="utf-8")
    return path


def offloaded_home(home: Path, camera: Path, *, extra_toml: str = "",
                   render: bool = True) -> Path:
    """An agency station home that has offloaded ``camera`` (and rendered it)."""
    from config import load_settings
    from evidock.wiring import Services
    from ingest.outcome import OffloadRequest

    write_agency_config(home, extra_toml)
    svc = Services.from_config(load_settings(environ={"EVIDOCK_HOME": str(home)}),
                               clock=StepClock())
    try:
        report = svc.offloader().run(OffloadRequest(source=camera, device_serial="ZFY0001",
                                                    officer_id="123456"))
        assert report.outcome == "completed", report.outcome
        if render:
            renderer = svc.renderer()
            for rec in renderer.pending():
                renderer.render(rec)
    finally:
        svc.close()
    return home
