"""Helpers shared by tests (importable by name: tests/ is on sys.path)."""

from __future__ import annotations

import os
import select
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from archive.catalog import Catalog
    from archive.store import ContentStore
    from config import Settings
    from evidock.wiring import Services

REPO = Path(__file__).resolve().parents[1]
#: The template catalog of this test process (see :func:`migrated`), once made.
_TEMPLATE: list[Path] = []


def migrated(url: str) -> str:
    """The catalog at ``url`` with its schema at head, as `evidock init` leaves it.

    A new SQLite file is a copy of a template migrated once per test process (copying
    takes ~1 ms, migrating ~40 ms); anything else is migrated in place. Returns ``url``.
    """
    import shutil

    from archive.catalog import Catalog
    from archive.catalog.db import sqlite_path

    path = sqlite_path(url)
    if path is None or path.exists():
        Catalog.migrate(url)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(_template(), path)
    return url


def _template() -> Path:
    if not _TEMPLATE:
        import atexit
        import shutil
        import tempfile

        from archive.catalog import migrations
        from archive.catalog.db import make_engine

        tmp = Path(tempfile.mkdtemp(prefix="evidock-catalog-template-"))
        atexit.register(shutil.rmtree, tmp, True)
        engine = make_engine(f"sqlite:///{tmp / 'catalog.sqlite3'}")
        try:
            migrations.upgrade(engine)
            raw = engine.raw_connection()  # autocommit: the checkpoint must not be in a txn
            try:
                # Everything into the main file, so a copy of that file alone is complete.
                raw.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                raw.close()
        finally:
            engine.dispose()
        _TEMPLATE.append(tmp / "catalog.sqlite3")
    return _TEMPLATE[0]


def migrated_home(home: Path) -> Path:
    """``home`` with its default (SQLite) catalog migrated, as after `evidock init`."""
    migrated(f"sqlite:///{home / 'catalog.sqlite3'}")
    return home


def open_services(settings: Settings, **kwargs: Any) -> Services:
    """``Services.from_config`` on the settings' catalog, migrated first if need be."""
    from evidock.wiring import Services

    migrated(settings.catalog_url)
    return Services.from_config(settings, **kwargs)


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


#: The agency's users; each is the real OS account ``evt-<name>`` (tests/service_support).
AGENCY_USERS = ("clerk", "clerk2", "inspector", "legal", "supervisor", "supervisor2", "admin",
                "officer")

#: A small agency: one user per role, two units, one restricted user. The CLI runs as
#: the user's OS account against a real service (tests/service_support.py); desk-level
#: tests take the user from ``Gate.by_name`` (see :func:`as_user`).
AGENCY_TOML = """
[access]
[[access.users]]
name = "clerk"
os_users = ["evt-clerk"]
display = "张文书"
roles = ["clerk"]
clearances = ["个人隐私"]
[[access.users]]
name = "clerk2"
os_users = ["evt-clerk2"]
roles = ["clerk"]
units = ["城西中队"]
[[access.users]]
name = "inspector"
os_users = ["evt-inspector"]
display = "李督察"
roles = ["inspector"]
clearances = ["个人隐私", "商业秘密"]
[[access.users]]
name = "legal"
os_users = ["evt-legal"]
display = "王法制"
roles = ["legal_reviewer"]
clearances = ["个人隐私", "商业秘密"]
[[access.users]]
name = "supervisor"
os_users = ["evt-supervisor"]
roles = ["supervisor"]
clearances = ["个人隐私", "商业秘密", "国家秘密"]
[[access.users]]
name = "supervisor2"
os_users = ["evt-supervisor2"]
roles = ["supervisor"]
clearances = ["个人隐私"]
[[access.users]]
name = "admin"
os_users = ["evt-admin"]
roles = ["admin"]
[[access.users]]
name = "officer"
os_users = ["evt-officer"]
roles = ["officer"]
police_number = "123456"

[cases]
units = ["城东中队", "城西中队"]
"""


def write_agency_config(home: Path, extra: str = "") -> Path:
    """EVIDOCK_HOME/evidock.toml with :data:`AGENCY_TOML` (+ extra TOML), and the
    default catalog migrated (as `evidock init` leaves a station); returns the file."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / "evidock.toml"
    path.write_text(AGENCY_TOML + extra, encoding="utf-8")
    migrated_home(home)
    return path


def offloaded_home(home: Path, camera: Path, *, extra_toml: str = "",
                   render: bool = True) -> Path:
    """An agency station home that has offloaded ``camera`` (and rendered it).

    The offload is deterministic (a :class:`StepClock`; only ids and the station's key
    are random): the first home this test process makes of the same camera (its files
    as they are now), TOML and ``render`` is kept, and a later ``home`` (one that does
    not exist yet) is a copy of it instead of another offload of the same footage."""
    import atexit
    import shutil
    import tempfile

    made = (str(camera.resolve()), repr(_tree_stat(camera)), extra_toml, str(render))
    if made in _OFFLOADED and not home.exists():
        shutil.copytree(_OFFLOADED[made], home, symlinks=True)
        return home
    _offload(home, camera, extra_toml=extra_toml, render=render)
    if made not in _OFFLOADED:
        keep = Path(tempfile.mkdtemp(prefix="evidock-offloaded-"))
        atexit.register(shutil.rmtree, keep, True)
        shutil.copytree(home, keep / "home", symlinks=True)
        _OFFLOADED[made] = keep / "home"
    return home


#: The homes :func:`offloaded_home` keeps, by what they were made of.
_OFFLOADED: dict[tuple[str, ...], Path] = {}


def _tree_stat(root: Path) -> list[tuple[str, int, int]]:
    """(path, size, mtime) of every file under ``root``: the same camera, unchanged."""
    return sorted((str(p.relative_to(root)), p.lstat().st_size, p.lstat().st_mtime_ns)
                  for p in root.rglob("*") if not p.is_dir())


def _offload(home: Path, camera: Path, *, extra_toml: str, render: bool) -> None:
    write_agency_config(home, extra_toml)
    offload_camera(home, camera, render=render)


def offload_camera(home: Path, camera: Path, *, render: bool) -> None:
    """Offload ``camera`` into the station at ``home`` in-process (deterministic clock),
    and render what it offloaded if ``render``."""
    from config import load_settings
    from evidock.wiring import Services
    from ingest.outcome import OffloadRequest

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


def store_bytes(store: ContentStore, data: bytes) -> tuple[str, str]:
    """Commit bytes to the content store under their BLAKE3, as an offload does (minus
    the camera); returns (blake3, sha256). The catalog row is the caller's."""
    import io

    digests = store.put(io.BytesIO(data))
    return digests.blake3, digests.sha256


def stored_blob(store: ContentStore, catalog: Catalog, data: bytes, *,
                at: datetime) -> tuple[str, str]:
    """:func:`store_bytes` plus its Blob row (if new); returns (blake3, sha256)."""
    from archive.catalog import Blob

    b3, sha = store_bytes(store, data)
    with catalog.transaction() as s:
        if s.get(Blob, b3) is None:
            s.add(Blob(blake3=b3, sha256=sha, size=len(data), stored_at=at))
    return b3, sha


def run_evidock(home: Path, *args: str, user: str | None = None,
                env: Mapping[str, str] | None = None,
                cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m evidock ARGS` against ``home`` as the checked-out project, as ``user``
    (EVIDOCK_USER; the agency config must trust it), from any working directory."""
    import os
    import sys

    base = {k: v for k, v in os.environ.items() if k not in ("EVIDOCK_CONFIG", "EVIDOCK_USER")}
    base["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [os.environ.get(
        "PYTHONPATH")])])
    base.update({"EVIDOCK_HOME": str(home), "COLUMNS": "200", **(env or {})})
    if user is not None:
        base["EVIDOCK_USER"] = user
    return subprocess.run([sys.executable, "-m", "evidock", *args], capture_output=True,
                          text=True, encoding="utf-8", timeout=300, env=base, cwd=cwd or REPO)


def ok_json(run: subprocess.CompletedProcess[str], code: int = 0) -> Any:
    """The JSON a run printed, after checking its exit code (shows output otherwise)."""
    import json

    assert run.returncode == code, (run.returncode, run.stdout, run.stderr)
    return json.loads(run.stdout)


def verify_offline(target: Path, *args: str,
                   timeout: float = 60) -> tuple[int, Any, subprocess.CompletedProcess[str]]:
    """`python -m evidock verify TARGET ARGS --json` as anyone would run it on a package:
    no EVIDOCK_HOME, no service. ``timeout`` is the guard against a hang (never a sleep).
    Returns (exit code, the printed JSON, the run); there must be no traceback."""
    import json
    import os
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("EVIDOCK_")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    run = subprocess.run([sys.executable, "-m", "evidock", "verify", str(target), *args,
                          "--json"], capture_output=True, text=True, encoding="utf-8",
                         timeout=timeout, env=env, cwd=REPO)
    assert "Traceback" not in run.stderr and run.stderr == "", run.stderr
    return run.returncode, json.loads(run.stdout), run


def without_pending(findings: list[Any]) -> list[Any]:
    """``findings`` (Finding objects or their JSON form) less W_TIMESTAMP_PENDING: test
    stations have no TSA, so every package says its tokens are pending (a warning that
    tests/records/test_export_timestamps.py covers); tests of other findings drop it."""
    return [f for f in findings
            if str(f["code"] if isinstance(f, dict) else f.code) != "W_TIMESTAMP_PENDING"]


@contextmanager
def station_on(database: str, home: Path, *, extra: str = "",
               start: datetime | None = None) -> Iterator[Services]:
    """In-process services of a station (the agency config plus ``extra``) on a real
    SQLite file (``database`` "sqlite") or a throwaway PostgreSQL cluster ("postgresql",
    skipped without its binaries), its clock a :class:`StepClock` from ``start``.

    For module fixtures run on both databases:
    ``@pytest.fixture(scope="module", params=["sqlite", "postgresql"])``."""
    import sys
    from contextlib import nullcontext

    from config import load_settings

    support = str(REPO / "tests" / "archive")  # pg_support lives there
    if support not in sys.path:
        sys.path.insert(0, support)
    from pg_support import pg_cluster

    write_agency_config(home, extra)
    environ = {"EVIDOCK_HOME": str(home)}
    with pg_cluster() if database == "postgresql" else nullcontext() as make:
        if make is not None:
            environ["EVIDOCK_PATHS__CATALOG_URL"] = make()
        svc = open_services(load_settings(environ=environ), clock=StepClock(start))
        assert svc.catalog.engine.dialect.name == database
        try:
            yield svc
        finally:
            svc.close()


def events_of(catalog: Catalog, action: str) -> list[Any]:
    """Every audit event ``action`` in ``catalog``, in sequence order."""
    from sqlmodel import Session, col, select

    from archive.audit.log import AuditEvent

    with Session(catalog.engine) as s:
        return list(s.exec(select(AuditEvent).where(AuditEvent.action == action)
                           .order_by(col(AuditEvent.seq))))


def blocking_ffmpeg(directory: Path, fifo: Path, *, say: str) -> Path:
    """A directory holding an ``ffmpeg`` that, asked to cut segments, writes ``say`` to
    ``fifo`` ($$: its pid) and never returns (until killed); the real one otherwise
    (probes, -version). Put it first on PATH."""
    directory.mkdir()
    tool = directory / "ffmpeg"
    tool.write_text('#!/bin/sh\ncase "$*" in *" -f segment "*) '
                    f'echo {say} > {fifo}; exec tail -f /dev/null;; esac\n'
                    'exec /usr/bin/ffmpeg "$@"\n', encoding="utf-8")
    tool.chmod(0o755)
    return directory


def reporting_tools(directory: Path, fifo: Path, *, gate: Path | None = None) -> Path:
    """A directory holding an ``ffprobe`` and an ``ffmpeg`` that write ``TOOL ARGS`` to
    ``fifo`` for each run, then are the real ones. Put it first on PATH. With ``gate``
    (a FIFO), each run then waits for a line written there before it goes on."""
    directory.mkdir()
    wait = f"read _ < {gate}\n" if gate is not None else ""
    for tool in ("ffprobe", "ffmpeg"):
        (directory / tool).write_text(f'#!/bin/sh\necho "{tool} $*" > {fifo}\n{wait}'
                                      f'exec /usr/bin/{tool} "$@"\n', encoding="utf-8")
        (directory / tool).chmod(0o755)
    return directory


def read_lines(fd: int, count: int, *, timeout: float = 60) -> list[str]:
    """``count`` lines from the FIFO ``fd`` (listening_fifo), each within ``timeout``."""
    seen = ""
    while seen.count("\n") < count:
        ready, _, _ = select.select([fd], [], [], timeout)
        assert ready, f"only {seen!r} within {timeout:.0f} s"
        seen += os.read(fd, 4096).decode()
    return seen.splitlines()


@contextmanager
def listening_fifo(path: Path) -> Iterator[int]:
    """Make the FIFO ``path`` and hold it open for reading and writing: opening never
    blocks and reads never see EOF, so a test can wait on it with select() for what a
    child process writes there. Yields the descriptor; closed afterwards."""
    os.mkfifo(path)
    fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
    try:
        yield fd
    finally:
        os.close(fd)


def cached_bytes(path: Path) -> int:
    """How many bytes of ``path`` the page cache holds now (util-linux ``fincore``)."""
    out = subprocess.run(["fincore", "-b", "-n", "-o", "RES", str(path)], check=True,
                         capture_output=True, text=True, timeout=30).stdout
    return int(out.split()[0])


def on_disk_only(*paths: Path) -> None:
    """Written, durable, and out of the page cache: as a docked camera's files start."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    assert all(cached_bytes(p) == 0 for p in paths)
