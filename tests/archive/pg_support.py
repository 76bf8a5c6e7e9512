"""A real PostgreSQL server for the tests: initdb + pg_ctl in a temporary directory, unix
socket only, one per test process (each module gets its own databases). Without the
server binaries (or psycopg) the tests are skipped on a workstation but fail under CI=true:
CI must prove the PostgreSQL path."""

from __future__ import annotations

import atexit
import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

import pytest
from sqlalchemy.engine import URL


def unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: PostgreSQL tests must run here)")
    pytest.skip(reason)


def psycopg() -> ModuleType:
    try:
        import psycopg as module
    except ImportError:
        unavailable("psycopg not installed: pip install 'psycopg[binary]' (dev extra)")
    return module


def _bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


def _as_user() -> tuple[list[str], str | None]:
    """PostgreSQL refuses to run as root: run it as `postgres` (or `nobody`) then."""
    if os.geteuid() != 0:
        return [], None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return ["runuser", "-u", name, "--"], name
    unavailable("running as root and no unprivileged user to run PostgreSQL as")


#: The cluster of this test process, once started: (socket directory, psycopg module).
_CLUSTER: list[tuple[Path, ModuleType]] = []
_NAMES = itertools.count()


@contextmanager
def pg_cluster() -> Iterator[Callable[[], str]]:
    """A factory of fresh, empty databases (URLs) on a throwaway cluster; the databases
    it made are dropped (their connections ended) when the block ends.

    The cluster itself is started once per test process (initdb takes a second or two)
    and stopped when the process exits: a test sees only its own databases, and no test
    changes the cluster (its roles or settings)."""
    if not _CLUSTER:
        _CLUSTER.append(_start())
    sock, pg = _CLUSTER[0]
    made: list[str] = []

    def make() -> str:
        name = f"evidock_{next(_NAMES)}"
        with pg.connect(host=str(sock), user="evidock", dbname="postgres",
                        autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        made.append(name)
        return f"postgresql+psycopg://evidock@/{name}?host={sock}"

    try:
        yield make
    finally:
        with pg.connect(host=str(sock), user="evidock", dbname="postgres",
                        autocommit=True) as conn:
            for name in made:
                conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


def _start() -> tuple[Path, ModuleType]:
    """initdb + pg_ctl start (unix socket only, fsync off); stopped at process exit."""
    pg = psycopg()
    bindir = _bindir()
    if bindir is None:
        unavailable("PostgreSQL server binaries missing: scripts/setup.sh installs the "
                    "Debian package `postgresql`")
    prefix, user = _as_user()
    base = Path(tempfile.mkdtemp(prefix="evidock-pg-"))
    data, sock = base / "data", base / "sock"
    sock.mkdir()
    if user is not None:
        entry = pwd.getpwnam(user)
        for path in (base, sock):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    env = dict(os.environ, LC_ALL="C", LANG="C")
    subprocess.run([*prefix, str(bindir / "initdb"), "-D", str(data), "-A", "trust",
                    "-U", "evidock", "-E", "UTF8", "--locale=C", "--no-sync"],
                   check=True, capture_output=True, env=env, timeout=120)
    subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-w", "-t", "60",
                    "-l", str(base / "server.log"), "-o",
                    f"-k {sock} -c listen_addresses= -c fsync=off", "start"],
                   check=True, capture_output=True, env=env, timeout=120)

    def stop() -> None:
        subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate",
                        "stop"], capture_output=True, env=env, timeout=60)
        shutil.rmtree(base, ignore_errors=True)

    atexit.register(stop)
    return sock, pg


def connect(url: URL) -> Any:
    """A psycopg autocommit connection to a database made by :func:`pg_cluster` (for
    statements the catalog never issues, such as TRUNCATE)."""
    return psycopg().connect(host=str(url.query["host"]), user=url.username,
                             dbname=url.database, autocommit=True)
