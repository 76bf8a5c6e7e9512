"""`evidock export discard` through the real service, as the real OS accounts: who may
end an approved request, and that a discarded request never runs."""

from __future__ import annotations

import json
from pathlib import Path

from evidock_testing import ok_json
from service_support import audit_rows, open_dir, serving
from test_exports_api import _prepare

from fixtures.camera import CameraTree


def test_only_those_with_a_part_in_a_request_may_discard_it_and_it_then_never_runs(
        tmp_path: Path, camera_template: CameraTree) -> None:
    home = tmp_path / "home"
    video, _ = _prepare(home, camera_template.root)
    outbox = open_dir("evidock-discard-out-")
    outbox.chmod(0o1777)
    with serving(home) as svc:
        req = ok_json(svc.cli("export", "request", "--recording", video, "--purpose",
                              "行政复议", "--recipient", "复议机关", "--json",
                              user="inspector"))["id"]
        ok_json(svc.cli("export", "approve", req, "--json", user="legal"))
        for user in ("officer", "nobody"):  # no part in it / no evidock user at all
            refused = svc.cli("export", "discard", req, "--reason", "x", "--json", user=user)
            assert refused.returncode == 3, (user, refused.stdout, refused.stderr)
        assert ok_json(svc.cli("export", "show", req, "--json",
                               user="inspector"))["status"] == "approved"
        done = ok_json(svc.cli("export", "discard", req, "--reason", "申请人撤回", "--json",
                               user="inspector"))
        assert done["status"] == "discarded"
        run = svc.cli("export", "run", req, "--out", str(outbox / "pkg"), "--json",
                      user="inspector")
        assert run.returncode == 3
        assert json.loads(run.stdout)["error"]["code"] == "E_NOT_APPROVED"
        again = svc.cli("export", "discard", req, "--reason", "x", "--json", user="legal")
        assert again.returncode == 1
        assert json.loads(again.stdout)["error"]["code"] == "E_CONFLICT"
    assert list(outbox.iterdir()) == []
    [event] = [e for e in audit_rows(home, "export.discard")
               if f"export-request:{req}" in e.subjects]
    assert event.details.pop("row")["table"] == "exportdecision"  # archive/bindings.py
    assert (event.actor, event.details) == ("user:inspector",
                                            {"reason": "申请人撤回", "was": "approved"})
    refusals = [e for e in audit_rows(home, "access.refused")
                if f"export-request:{req}" in e.subjects]
    assert {e.actor for e in refusals} >= {"user:officer"}

