"""SIGKILL of the service in the middle of an export run: one approval, one package.

The service is stopped at a hook point of the run (records.exportrun) and killed there:

- ``export_staged``: every package written and synced in staging, nothing recorded;
- ``export_recorded``: the export rows and the `used` decision committed, the package
  still in staging (the rename into the export area not done);
- ``export_published``: right after the rename.

Each time the client that asked ends with nothing at --out, and the catalog holds either
no export of the request (then it is `running`: spent, and the next run resumes it) or
the one recorded export (then `export run` is refused and `export download` delivers
that very package). A request never yields a second package.
"""

from __future__ import annotations

import json
import os
import pwd
import select
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from evidock_testing import ok_json
from service_support import account, open_dir, serving
from sqlmodel import Session, col
from sqlmodel import select as sql_select
from test_exports_api import _prepare

from archive.catalog import Catalog
from fixtures.camera import CameraTree
from records.models import Export


def _exports(home: Path, request: str) -> list[Export]:
    catalog = Catalog.open(f"sqlite:///{home / 'catalog.sqlite3'}")
    try:
        with Session(catalog.engine) as s:
            return list(s.exec(sql_select(Export).where(col(Export.request_id) == request)))
    finally:
        catalog.close()


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory,
             camera_template: CameraTree) -> tuple[Path, str]:
    home = tmp_path_factory.mktemp("export-crash") / "home"
    video, _ = _prepare(home, camera_template.root)
    return home, video


@pytest.fixture
def outbox() -> Iterator[Path]:
    box = open_dir("evidock-crash-out-")
    box.chmod(0o1777)
    yield box


def _killed_run(home: Path, video: str, point: str, out: Path, hooks: Path) -> str:
    """An approved request whose `export run` (as the inspector) the service is killed
    in, at ``point``; the request id."""
    os.mkfifo(hooks / "out")
    os.mkfifo(hooks / "in")
    paused = os.open(hooks / "out", os.O_RDWR | os.O_NONBLOCK)  # never blocks, never EOF
    try:
        with serving(home, env={"EVIDOCK_TEST_HOOKS": str(hooks),
                                "EVIDOCK_TEST_HOOK_POINTS": point}) as svc:
            req = str(ok_json(svc.cli("export", "request", "--recording", video, "--purpose",
                                      "行政复议", "--recipient", "复议机关", "--json",
                                      user="inspector"))["id"])
            ok_json(svc.cli("export", "approve", req, "--json", user="legal"))
            pw = pwd.getpwnam(account("inspector"))
            client = subprocess.Popen(
                [sys.executable, "-m", "evidock", "export", "run", req, "--out", str(out),
                 "--json"], env={"PATH": os.environ["PATH"], "LANG": "C.UTF-8",
                                 "HOME": "/nonexistent", "EVIDOCK_SOCKET": str(svc.socket)},
                cwd="/", text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                user=pw.pw_uid, group=pw.pw_gid, extra_groups=[])
            ready, _, _ = select.select([paused], [], [], 120)
            assert ready, f"the export never reached {point}"
            assert os.read(paused, 100).decode().strip() == point
            svc.kill()
            stdout, _ = client.communicate(timeout=60)
    finally:
        os.close(paused)
    assert client.returncode == 2, stdout
    assert json.loads(stdout)["error"]["code"] in {"E_SERVICE_UNAVAILABLE", "E_TRANSFER"}
    return req


@pytest.mark.parametrize("point", ["export_staged", "export_recorded", "export_published"])
def test_a_service_killed_mid_export_delivers_one_package_or_none(
        prepared: tuple[Path, str], outbox: Path, tmp_path: Path, point: str) -> None:
    home, video = prepared
    out = outbox / "pkg"
    req = _killed_run(home, video, point, out, tmp_path)
    assert not out.exists(), "a half export reached the client's --out"
    assert [p.name for p in outbox.iterdir()] == [], "nothing left beside --out either"
    recorded = [e.id for e in _exports(home, req)]

    with serving(home) as svc:  # a restarted service, no hooks
        status = ok_json(svc.cli("export", "show", req, "--json", user="inspector"))["status"]
        if point == "export_staged":  # spent, nothing recorded: the next run resumes it
            assert (status, recorded) == ("running", [])
            done = svc.cli("export", "run", req, "--out", str(out), "--json",
                           user="inspector")
        else:  # recorded: that export is delivered, never a new one
            assert status == "used" and len(recorded) == 1
            refused = svc.cli("export", "run", req, "--out", str(outbox / "second"),
                              "--json", user="inspector")
            assert refused.returncode == 3, refused.stdout
            done = svc.cli("export", "download", req, "--out", str(out), "--json",
                           user="inspector")
        assert done.returncode == 0, (done.stdout, done.stderr)
        again = svc.cli("export", "run", req, "--out", str(outbox / "third"), "--json",
                        user="inspector")
        assert again.returncode == 3, "one approval, one run"
        assert json.loads(again.stdout)["error"]["code"] == "E_NOT_APPROVED"
        verify = subprocess.run([sys.executable, "-m", "evidock", "verify", str(out)],
                                capture_output=True, text=True, timeout=120)
        assert verify.returncode == 0, verify.stdout
    rows = [e.id for e in _exports(home, req)]
    clip = json.loads((out / "data" / "clip.json").read_bytes())
    assert rows == [clip["export_id"]], "one export of the request, and it is what left"
    if recorded:
        assert rows == recorded, "the recorded export itself was delivered"
    assert sorted(p.name for p in outbox.iterdir()) == ["pkg"]
