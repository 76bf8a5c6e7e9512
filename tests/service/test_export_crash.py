"""SIGKILL of the service in the middle of an export run: no half export, one approval
delivers one package.

The service is stopped at the moment its packages are written in its own export area
but the request is not yet recorded as used (the `export_written` hook point), then
killed. The client that asked must end with nothing at --out; the request must still be
approved (the package written inside the service's area was never delivered); a later
run delivers exactly one package, and a second run is refused.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
from pathlib import Path

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


def test_a_service_killed_mid_export_leaves_no_half_export(tmp_path: Path,
                                                           camera_template: CameraTree) -> None:
    home = tmp_path / "home"
    video, _ = _prepare(home, camera_template.root)
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    os.mkfifo(hooks / "out")
    os.mkfifo(hooks / "in")
    paused = os.open(hooks / "out", os.O_RDWR | os.O_NONBLOCK)  # never blocks, never EOF
    outbox = open_dir("evidock-crash-out-")
    outbox.chmod(0o1777)
    out = outbox / "pkg"
    try:
        with serving(home, env={"EVIDOCK_TEST_HOOKS": str(hooks),
                                "EVIDOCK_TEST_HOOK_POINTS": "export_written"}) as svc:
            req = ok_json(svc.cli("export", "request", "--recording", video, "--purpose",
                                  "行政复议", "--recipient", "复议机关", "--json",
                                  user="inspector"))["id"]
            ok_json(svc.cli("export", "approve", req, "--json", user="legal"))
            import pwd

            pw = pwd.getpwnam(account("inspector"))
            client = subprocess.Popen(
                [sys.executable, "-m", "evidock", "export", "run", req, "--out", str(out),
                 "--json"], env={"PATH": os.environ["PATH"], "LANG": "C.UTF-8",
                                 "HOME": "/nonexistent", "EVIDOCK_SOCKET": str(svc.socket)},
                cwd="/", text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                user=pw.pw_uid, group=pw.pw_gid, extra_groups=[])
            ready, _, _ = select.select([paused], [], [], 120)
            assert ready, "the export never reached its hook point"
            assert os.read(paused, 100).decode().strip() == "export_written"
            svc.kill()
            stdout, _ = client.communicate(timeout=60)
        assert client.returncode == 2, stdout
        assert json.loads(stdout)["error"]["code"] in {"E_SERVICE_UNAVAILABLE", "E_TRANSFER"}
        assert not out.exists(), "a half export reached the client's --out"
        assert [p.name for p in outbox.iterdir()] == [], "nothing left beside --out either"
        # The killed run's package exists only inside the service's own export area (its
        # row says it was written); it was never delivered and cannot be downloaded.
        written = [e.id for e in _exports(home, req)]

        with serving(home) as svc:  # a restarted service, no hooks
            shown = ok_json(svc.cli("export", "show", req, "--json", user="inspector"))
            assert shown["status"] == "approved", "the approval was not spent by the crash"
            done = svc.cli("export", "run", req, "--out", str(out), "--json",
                           user="inspector")
            assert done.returncode == 0, done.stderr
            again = svc.cli("export", "run", req, "--out", str(outbox / "second"), "--json",
                            user="inspector")
            assert again.returncode == 3, "one approval, one run"
            refused = svc.cli("export", "download", req, "--out", str(outbox / "third"),
                              "--json", user="officer")
            assert refused.returncode == 3
            verify = subprocess.run([sys.executable, "-m", "evidock", "verify", str(out)],
                                    capture_output=True, text=True, timeout=120)
            assert verify.returncode == 0, verify.stdout
        delivered = json.loads(done.stdout)
        ids = {p["export_id"] for p in delivered["packages"]}
        rows = [e.id for e in _exports(home, req)]
        assert rows[:len(written)] == written and len(rows) == len(written) + 1
        assert ids == {rows[-1]}, "what left is the rerun's package, once"
    finally:
        os.close(paused)
