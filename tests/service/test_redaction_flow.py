"""Redaction for publication (issue 17): requested, rendered, watched and approved by a
second person, audited — through the real CLI as the real OS accounts against a real
`evidock serve`, over real footage rendered by the real ffmpeg.

The station: V1 linked to a 国家秘密 case (SECRET) with a redaction made in-process by
"secretary" (cleared); V2 and V3 public, unlinked. The pixels of the redaction itself
(regions differ, audio silent, outside unchanged) are tested in tests/records by 17a.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import blake3
import pytest
from evidock_testing import offloaded_home, ok_json, verify_offline
from service_support import RunningService, audit_events, open_dir, serving
from sqlmodel import Session, select
from station_homes import SECRETARY, rendered_videos

from archive.bindings import check_all
from archive.catalog import Recording
from archive.catalog.models import Rendition, Segment
from config import load_settings
from evidock.wiring import Services
from fixtures.camera import CameraTree
from integrity import redaction
from integrity.errors import Conflict, NotApproved
from integrity.redaction import LABEL, Box

SECRET = "邵城管罚〔2019〕第990号"
EXTRA = SECRETARY


@dataclass
class Station:
    svc: RunningService
    home: Path
    v1: str  # linked to SECRET
    v2: str
    v3: str
    secret_redaction: str
    outbox: Path

    def ok(self, *args: str, user: str) -> Any:
        return ok_json(self.svc.cli(*args, "--json", user=user))

    def refused(self, *args: str, user: str, code: str) -> dict[str, Any]:
        run = self.svc.cli(*args, "--json", user=user)
        assert run.returncode != 0, (args, user, run.stdout)
        error: dict[str, Any] = json.loads(run.stdout)["error"]
        assert error["code"] == code, (args, user, error)
        return error

    def services(self) -> Services:
        return Services.from_config(load_settings(environ={"EVIDOCK_HOME": str(self.home)}))


def _prepare(home: Path, camera: Path) -> dict[str, str]:
    offloaded_home(home, camera, extra_toml=EXTRA)
    svc = Services.from_config(load_settings(environ={"EVIDOCK_HOME": str(home)}))
    try:
        who = svc.gate().by_name
        v1, v2, v3 = rendered_videos(svc)[:3]
        cases = svc.cases()
        cases.create(who("secretary"), number=SECRET, case_type="行政处罚", unit="城东中队",
                     sensitivity="国家秘密")
        cases.link(who("secretary"), SECRET, v1, stage="调查取证", reason="涉密")
        secret = svc.redactions().request(who("secretary"), v1, start_us=0,
                                          end_us=1_000_000, reason="信息公开", faces=False,
                                          boxes=[(Box(0, 0, 64, 64), 0, 500_000)])
    finally:
        svc.close()
    return {"v1": v1, "v2": v2, "v3": v3, "secret_redaction": secret.id}


@pytest.fixture(scope="module")
def station(tmp_path_factory: pytest.TempPathFactory,
            camera_template: CameraTree) -> Iterator[Station]:
    home = tmp_path_factory.mktemp("redaction") / "home"
    ids = _prepare(home, camera_template.root)
    outbox = open_dir("evidock-redaction-out-")
    outbox.chmod(0o1777)
    with serving(home) as svc:
        yield Station(svc, home, outbox=outbox, **ids)


def _footage_digests(st: Station, recording_id: str) -> dict[str, str]:
    """BLAKE3 of the original's blob, the manifest and every rendition segment, as the
    store holds them (read from disk, not from the catalog)."""
    svc = st.services()
    try:
        with Session(svc.catalog.engine) as s:
            rec = s.get(Recording, recording_id)
            assert rec is not None
            names = [rec.blake3]
            for rend in s.exec(select(Rendition).where(Rendition.recording_id == rec.id)):
                names += [rend.manifest_blake3] if rend.manifest_blake3 else []
                names += [g.blake3 for g in s.exec(
                    select(Segment).where(Segment.rendition_id == rend.id))]
        return {n: blake3.blake3(svc.store.path_for(n).read_bytes()).hexdigest()
                for n in names}
    finally:
        svc.close()


def _request(st: Station, recording: str, user: str = "clerk") -> dict[str, Any]:
    answer = st.ok("redaction", "request", recording, "--from", "0:00.2", "--to", "1.8",
                   "--reason", "信息公开前技术处理", "--no-faces",
                   "--box", "100,80,200,120@0.5-1.5", "--mute", "0.8-1.2", user=user)
    r: dict[str, Any] = answer["redaction"]
    return r


def _render_and_view(st: Station, rid: str, *, renderer: str, viewer: str) -> Path:
    rendered = st.ok("redaction", "render", rid, user=renderer)["redaction"]
    assert rendered["status"] == "rendered"
    out = st.outbox / f"{rid}-{viewer}-{len(rendered['steps'])}.mp4"
    got = st.ok("redaction", "view", rid, "--out", str(out), user=viewer)
    assert got["blake3"] == rendered["render"]["output_blake3"] == \
        blake3.blake3(out.read_bytes()).hexdigest()
    return out


def test_second_person_who_watched_approves(station: Station) -> None:
    st = station
    before = _footage_digests(st, st.v2)
    r = _request(st, st.v2)
    rid = r["id"]
    assert (r["status"], r["label"], r["requested_by"]) == ("requested", LABEL, "clerk")
    assert r["range_us"] == [200_000, 1_800_000]
    assert r["plan"]["boxes"] == [{"id": "box-1", "box": [100, 80, 200, 120],
                                   "range_us": [500_000, 1_500_000]}]
    assert r["plan"]["audio"] == [{"kind": "mute", "range_us": [800_000, 1_200_000]}]
    # Nothing rendered: nothing to approve.
    st.refused("redaction", "approve", rid, "--reason", "好", user="legal", code="E_CONFLICT")
    rendered = st.ok("redaction", "render", rid, user="clerk")["redaction"]
    output = rendered["render"]["output_blake3"]
    # Not watched: refused, and the refusal is audited.
    error = st.refused("redaction", "approve", rid, "--reason", "好", user="legal",
                       code="E_FORBIDDEN")
    assert "has not watched" in error["message"]
    # The requester may not approve their own.
    st.refused("redaction", "approve", rid, "--reason", "好", user="clerk",
               code="E_SELF_APPROVAL")
    out = st.outbox / "watched.mp4"
    got = st.ok("redaction", "view", rid, "--out", str(out), user="legal")
    assert got["blake3"] == output == blake3.blake3(out.read_bytes()).hexdigest()
    probe = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_name",
                            "-of", "csv=p=0", str(out)], capture_output=True, text=True,
                           check=True)
    assert sorted(probe.stdout.split()) == ["aac", "h264"]
    approved = st.ok("redaction", "approve", rid, "--reason", "已审看，遮挡完整",
                     user="legal")["redaction"]
    assert approved["status"] == "approved"
    assert [s["kind"] for s in approved["steps"]] == ["plan", "render", "view", "approve"]
    assert approved["steps"][-1]["output_blake3"] == output
    # Approved is final: no edit, render, or second decision.
    for args, user in ((("edit", rid, "--box", "0,0,10,10@0.5-0.6"), "clerk"),
                       (("edit", rid, "--remove", "box-1"), "legal"),
                       (("render", rid), "clerk"),
                       (("reject", rid, "--reason", "再看"), "supervisor")):
        st.refused("redaction", *args, user=user, code="E_CONFLICT")
    _check_statement(st, rid, out)
    assert _footage_digests(st, st.v2) == before
    assert all(k == v for k, v in before.items())  # and each still holds its own bytes
    _check_audit(st, rid, output)


def _check_statement(st: Station, rid: str, watched: Path) -> None:
    svc = st.services()
    try:
        out_b3, doc_b3, sig_b3, plan = svc.redactions().approved_output(rid)
        with pytest.raises(NotApproved):  # requested, never rendered: not for publication
            svc.redactions().approved_output(st.secret_redaction)
        approved = svc.redactions().approved(rid)
        assert (approved.output_blake3, approved.statement_blake3, approved.approved_by) == \
            (out_b3, doc_b3, "legal")
        doc = svc.store.path_for(doc_b3).read_bytes()
        sig = json.loads(svc.store.path_for(sig_b3).read_bytes())
        data = watched.read_bytes()
        measured = {"file": "redacted.mp4", "size": len(data), "blake3": out_b3,
                    "sha256": hashlib.sha256(data).hexdigest()}
        known = svc.keys.keyring().by_id()
        assert redaction.findings(doc, sig, known, trusted=True, measured=measured) == []
        tampered = doc.replace(b'"mute"', b'"tone"')
        assert [f.code for f in redaction.findings(tampered, sig, known, trusted=True,
                                                   measured=None)] == ["E_SIGNATURE_INVALID"]
        statement = json.loads(doc)
        assert statement["label"] == LABEL and statement["redaction_id"] == rid
        assert statement["plan"] == plan.to_dict()
        with Session(svc.catalog.engine) as s:
            rend = s.exec(select(Rendition).where(Rendition.recording_id == st.v2,
                                                  Rendition.status == "ok")).one()
            segs = {g.name: g.blake3 for g in s.exec(
                select(Segment).where(Segment.rendition_id == rend.id))}
        assert statement["merkle_root"] == rend.merkle_root
        assert {x["name"]: x["blake3"] for x in statement["sources"]} == segs
        assert statement["render"]["tool"].startswith("ffmpeg")
        assert out_b3 not in segs.values()
    finally:
        svc.close()


def _check_audit(st: Station, rid: str, output: str) -> None:
    mine = {action: [(a, d) for a, d in audit_events(st.home, action)
                     if d.get("redaction") == rid or d.get("row", {}).get("id") == rid]
            for action in ("redaction.request", "redaction.plan", "redaction.render",
                           "redaction.view", "redaction.approve")}
    assert {k: [a for a, _ in v] for k, v in mine.items()} == {
        "redaction.request": ["user:clerk"], "redaction.plan": ["user:clerk"],
        "redaction.render": ["user:clerk"], "redaction.view": ["user:legal"],
        "redaction.approve": ["user:legal"]}
    assert mine["redaction.approve"][0][1]["output_blake3"] == output
    refusals = [d for _, d in audit_events(st.home, "access.refused")
                if d.get("permission") == "redaction.review"]
    assert {d["code"] for d in refusals} >= {"E_FORBIDDEN", "E_SELF_APPROVAL", "E_CONFLICT"}
    svc = st.services()
    try:
        with Session(svc.catalog.engine) as s:
            findings, _count = check_all(s)
        assert [f for f in findings if f.subject.startswith("redaction")] == []
    finally:
        svc.close()


def test_editor_is_not_the_second_person(station: Station) -> None:
    """A reviewer who edited the plan may not approve it; an edit needs a new render,
    and a new render a new viewing."""
    st = station
    rid = _request(st, st.v3)["id"]
    _render_and_view(st, rid, renderer="clerk", viewer="legal")
    edited = st.ok("redaction", "edit", rid, "--remove", "box-1", "--box",
                   "300,200,100,100@1-1.5", "--style", "solid", user="legal")["redaction"]
    assert edited["status"] == "requested"
    assert edited["plan"]["style"] == "solid"
    assert [b["id"] for b in edited["plan"]["boxes"]] == ["box-2"]
    # The viewing was of the old render: the plan in force is not rendered.
    st.refused("redaction", "approve", rid, "--reason", "好", user="supervisor",
               code="E_CONFLICT")
    _render_and_view(st, rid, renderer="legal", viewer="legal")
    st.refused("redaction", "approve", rid, "--reason", "好", user="legal",
               code="E_SELF_APPROVAL")
    # supervisor watched nothing yet
    st.refused("redaction", "approve", rid, "--reason", "好", user="supervisor",
               code="E_FORBIDDEN")
    st.ok("redaction", "view", rid, "--out", str(st.outbox / "sup.mp4"), user="supervisor")
    done = st.ok("redaction", "approve", rid, "--reason", "遮挡到位",
                 user="supervisor")["redaction"]
    assert done["status"] == "approved"


def test_rejected_then_replanned(station: Station) -> None:
    st = station
    rid = _request(st, st.v2, user="inspector")["id"]
    _render_and_view(st, rid, renderer="inspector", viewer="legal")
    rejected = st.ok("redaction", "reject", rid, "--reason", "车牌未遮挡",
                     user="legal")["redaction"]
    assert rejected["status"] == "rejected"
    st.refused("redaction", "approve", rid, "--reason", "好", user="supervisor",
               code="E_CONFLICT")
    again = st.ok("redaction", "edit", rid, "--box", "500,400,160,60@0.2-1.8",
                  user="inspector")["redaction"]
    assert again["status"] == "requested" and len(again["plan"]["boxes"]) == 2
    assert st.ok("redaction", "render", rid, user="inspector")["redaction"]["status"] == \
        "rendered"
    st.refused("redaction", "render", rid, user="legal", code="E_CONFLICT")  # once a plan
    # Who may not request or review at all.
    st.refused("redaction", "request", st.v2, "--from", "0", "--to", "1", "--reason", "x",
               "--no-faces", user="officer", code="E_FORBIDDEN")
    st.refused("redaction", "edit", rid, "--remove", "box-1", user="clerk2",
               code="E_FORBIDDEN")
    listed = st.ok("redaction", "list", "--status", "rendered", user="legal")
    assert rid in [x["id"] for x in listed["redactions"]]


def test_secret_recording_redaction_does_not_exist_for_the_uncleared(
        station: Station) -> None:
    st = station
    rid = st.secret_redaction
    for user in ("inspector", "legal", "clerk"):
        listed = st.ok("redaction", "list", user=user)
        assert rid not in [x["id"] for x in listed["redactions"]], user
        assert st.v1 not in json.dumps(listed), user
        for args in (("show", rid), ("view", rid, "--out", str(st.outbox / f"s-{user}")),
                     ("render", rid), ("approve", rid, "--reason", "好"),
                     ("edit", rid, "--remove", "box-1")):
            error = st.refused("redaction", *args, user=user, code="E_FORBIDDEN")
            assert SECRET not in json.dumps(error), (user, args)
    st.refused("redaction", "request", st.v1, "--from", "0", "--to", "1", "--reason", "x",
               "--no-faces", user="clerk", code="E_FORBIDDEN")
    assert not any(p.name.startswith("s-") for p in st.outbox.iterdir())
    cleared = st.ok("redaction", "list", user="supervisor")
    assert rid in [x["id"] for x in cleared["redactions"]]
    shown = st.ok("redaction", "show", rid, user="supervisor")["redaction"]
    assert shown["status"] == "requested" and shown["requested_by"] == "secretary"
    human = st.svc.cli("redaction", "show", rid, user="supervisor")
    assert human.returncode == 0 and "redacted derivative" in human.stdout
    assert "box-1 [0, 0, 64, 64]" in human.stdout


def test_faces_are_detected_as_a_second_plan(station: Station) -> None:
    """The standard footage has no faces: the detector's plan has no tracks but names
    the detector."""
    st = station
    r = st.ok("redaction", "request", st.v3, "--from", "0", "--to", "1", "--reason",
              "人脸", user="clerk")["redaction"]
    assert [s["kind"] for s in r["steps"]] == ["plan", "plan"]
    assert r["plan"]["tracks"] == [] and r["plan"]["detector"]["name"] == "CenterFace"


def test_desk_rejects_bad_plans_before_anything_is_stored(station: Station) -> None:
    st = station
    count = len(st.ok("redaction", "list", user="supervisor")["redactions"])
    st.refused("redaction", "request", st.v2, "--from", "0", "--to", "1", "--reason", "x",
               "--no-faces", "--box", "0,0,10,10@0.5-9", user="clerk", code="E_INVALID")
    st.refused("redaction", "request", st.v2, "--from", "1", "--to", "60", "--reason", "x",
               "--no-faces", user="clerk", code="E_INVALID")
    st.refused("redaction", "request", st.v2, "--from", "0", "--to", "1", "--reason", "x",
               "--no-faces", "--box", "0,0,10@0-1", user="clerk", code="E_INVALID")
    st.refused("redaction", "request", st.v2, "--from", "0", "--to", "1", "--reason", "x",
               "--no-faces", "--mute", "0.5-0.4", user="clerk", code="E_INVALID")
    assert len(st.ok("redaction", "list", user="supervisor")["redactions"]) == count


def test_a_public_export_takes_only_the_approved_redaction(station: Station) -> None:
    """信息公开: the footage itself is refused; an approved redaction leaves, approved
    again as an export by a second person, and verifies offline with nothing of the
    original in it."""
    st = station
    st.refused("export", "request", "--recording", st.v3, "--start", "0", "--end", "1",
               "--purpose", "信息公开", "--recipient", "政府信息公开平台", user="inspector",
               code="E_INVALID")
    rid = _request(st, st.v3)["id"]
    st.refused("export", "request", "--redaction", rid, "--purpose", "信息公开",
               "--recipient", "政府信息公开平台", user="inspector", code="E_NOT_APPROVED")
    watched = _render_and_view(st, rid, renderer="clerk", viewer="supervisor")
    st.ok("redaction", "approve", rid, "--reason", "已审看", user="supervisor")
    st.refused("export", "request", "--redaction", rid, "--recording", st.v3,
               "--purpose", "信息公开", "--recipient", "政府信息公开平台", user="inspector",
               code="E_INVALID")  # the redaction names its own recording and range
    req = st.ok("export", "request", "--redaction", rid, "--purpose", "信息公开",
                "--recipient", "政府信息公开平台", user="inspector")
    assert (req["redaction_id"], req["recording_id"]) == (rid, st.v3)
    assert req["items"][0]["range_us"] == [200_000, 1_800_000]
    st.ok("export", "approve", req["id"], "--reason", "同意公开", user="legal")
    out = st.outbox / f"public-{rid}"
    st.ok("export", "run", req["id"], "--out", str(out), user="inspector")
    data = sorted(p.relative_to(out / "data").as_posix()
                  for p in (out / "data").rglob("*") if p.is_file())
    assert data == ["README.txt", "keys/keyring.json", "redacted.mp4", "redaction.json",
                    "redaction.sig.json", "release.json", "release.sig.json"]
    assert (out / "data" / "redacted.mp4").read_bytes() == watched.read_bytes()
    originals = set(_footage_digests(st, st.v3))
    assert not {blake3.blake3(p.read_bytes()).hexdigest() for p in out.rglob("*")
                if p.is_file()} & originals  # no byte-for-byte piece of the footage
    release = json.loads((out / "data" / "release.json").read_bytes())
    assert (release["redaction_id"], release["redaction_approved_by"],
            release["request"]["approved_by"], release["request"]["purpose"]) == (
        rid, "supervisor", "legal", "信息公开")
    pem = st.outbox / "station.pem"
    st.svc.cli("keys", "export-public", "--out", str(pem), user="inspector")
    code, verdict, _ = verify_offline(out, "--key", str(pem))
    assert (code, verdict["ok"], verdict["findings"]) == (0, True, [])
    release_path = out / "data" / "release.json"
    raw = release_path.read_bytes()
    assert "政府信息公开平台".encode() in raw
    release_path.write_bytes(raw.replace("政府信息公开平台".encode(), "某某网站".encode()))
    code, verdict, _ = verify_offline(out, "--key", str(pem))
    assert code != 0 and {(f["code"], f["subject"]) for f in verdict["findings"]} >= {
        ("E_BAG_DIGEST_MISMATCH", "data/release.json"),
        ("E_SIGNATURE_INVALID", "release.json")}


def test_two_reviewers_at_once_one_decision(station: Station) -> None:
    """Both reviewers passed every check on the same view; the second write finds a step
    recorded since and is refused, never recorded beside the first."""
    from records.redaction_model import RedactionStep
    from records.redactionbook import load_one

    st = station
    rid = _request(st, st.v2)["id"]
    _render_and_view(st, rid, renderer="clerk", viewer="legal")
    st.ok("redaction", "view", rid, "--out", str(st.outbox / f"{rid}-sup.mp4"),
          user="supervisor")
    svc = st.services()
    try:
        desk, who = svc.redactions(), svc.gate().by_name
        seen = load_one(svc.catalog, rid)  # what the supervisor decided on
        desk.approve(who("legal"), rid, reason="已审看")  # lands first
        render = seen.render_step
        assert render is not None
        late = RedactionStep(redaction_id=rid, kind="approve", actor="supervisor",
                             at=svc.clock(), output_blake3=render.output_blake3,
                             reason="已审看")
        with pytest.raises(Conflict, match="changed meanwhile"):
            desk._write(who("supervisor"), late, [], [f"redaction:{rid}"], {},
                        based_on=seen)
        assert [(s.kind, s.actor) for s in load_one(svc.catalog, rid).steps
                if s.kind == "approve"] == [("approve", "legal")]
    finally:
        svc.close()
