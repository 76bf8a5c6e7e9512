"""Nothing of a station is readable by other accounts (issue 19, item 7).

`evidock init` as root without `--account` (the configured `[service] account`), or as
the service account itself, leaves the home 0750, keys and logs 0700, the catalog 0600;
after the service (running as that account) has ingested, an officer's or an unmapped
account's own process can open none of the catalog (nor its WAL), the blobs (footage and
signed records), the keys or the logs, nor list the store.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from evidock_testing import AGENCY_TOML
from service_support import SERVICE_ACCOUNT, ensure_accounts, open_copy, open_dir, run_as, serving

from fixtures.camera import CameraTree

EVIDOCK = [sys.executable, "-m", "evidock"]
_PROBE = """import os, sys
for p in sys.argv[1:]:
    try:
        if os.path.isdir(p):
            os.listdir(p)
        else:
            open(p, 'rb').close()
        print('read', p)
    except PermissionError:
        print('denied', p)
"""


@pytest.fixture
def open_home() -> Iterator[Path]:
    parent = open_dir("evidock-modes-")
    yield parent / "home"
    shutil.rmtree(parent, ignore_errors=True)


def _init_as_root_without_account(home: Path) -> None:
    home.mkdir()
    (home / "evidock.toml").write_text(f'[service]\naccount = "{SERVICE_ACCOUNT}"\n'
                                       + AGENCY_TOML, encoding="utf-8")
    run = subprocess.run([*EVIDOCK, "init", "--json"], capture_output=True, text=True,
                         timeout=300, env=dict(os.environ, EVIDOCK_HOME=str(home)))
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["account"] == SERVICE_ACCOUNT


def _init_as_the_service_account(home: Path) -> None:
    home.mkdir()
    (home / "evidock.toml").write_text(f'[service]\naccount = "{SERVICE_ACCOUNT}"\n'
                                       + AGENCY_TOML, encoding="utf-8")
    pw = pwd.getpwnam(SERVICE_ACCOUNT)
    os.chown(home, pw.pw_uid, pw.pw_gid)
    os.chown(home / "evidock.toml", pw.pw_uid, pw.pw_gid)
    run = run_as(SERVICE_ACCOUNT, [*EVIDOCK, "init", "--json"],
                 env={"EVIDOCK_HOME": str(home)})
    assert run.returncode == 0, run.stderr


@pytest.mark.parametrize("init", [_init_as_root_without_account,
                                  _init_as_the_service_account])
def test_other_accounts_can_read_nothing_of_the_station(
        init: object, open_home: Path, camera_template: CameraTree) -> None:
    ensure_accounts()
    home = open_home
    assert callable(init)
    init(home)
    service = pwd.getpwnam(SERVICE_ACCOUNT).pw_uid
    for path, mode in [(home, 0o750), (home / "keys", 0o700), (home / "logs", 0o700),
                       (home / "store", 0o750), (home / "catalog.sqlite3", 0o600),
                       (home / "keys" / "station.key", 0o600)]:
        st = path.stat()
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (service, mode), path
    with open_copy(camera_template.root) as cam, \
            serving(home, run_as_account=SERVICE_ACCOUNT) as svc:
        run = svc.cli("ingest", str(cam), "--device", "ZFY0001", "--json", user="clerk")
        assert run.returncode == 0, run.stderr
        blob = json.loads(run.stdout)["files"][0]["blake3"]
        private = [home / "catalog.sqlite3", home / "catalog.sqlite3-wal",
                   home / "store" / blob[:2] / blob[2:4] / blob, *_records(home),
                   home / "keys" / "station.key", home / "keys" / "keyring.json",
                   home / "logs", home / "store", home / "store" / blob[:2]]
        assert all(p.exists() for p in private), [p for p in private if not p.exists()]
        for who in ("evt-officer", "evt-nobody"):
            out = run_as(who, [sys.executable, "-c", _PROBE, *map(str, private)])
            assert out.returncode == 0, out.stderr
            assert out.stdout.split("\n")[:-1] == [f"denied {p}" for p in private], who
    assert not [p for p in home.rglob("*") if p.stat().st_uid not in (0, service)]


def _records(home: Path) -> list[Path]:
    """The signed records (blobs like any other) the ingest left in the store."""
    found = [p for p in (home / "store").glob("??/??/*")
             if p.stat().st_size < 1 << 20 and p.read_bytes().startswith(b'{"body":{')]
    assert found, "the ingest sealed its recordings and its session"
    return found[:2]
