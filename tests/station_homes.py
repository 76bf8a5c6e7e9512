"""Station homes and exports the tests share: an aged station, a copied template, a
case exported through the real desks, and a package re-bagged after tampering."""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from evidock_testing import StepClock, write_agency_config
from sqlmodel import Session, col, select

from archive.catalog import Recording
from archive.catalog.models import Rendition
from config import load_settings
from evidock.wiring import Services
from fixtures.camera import ClipSpec, build_camera
from ingest.outcome import OffloadRequest
from integrity.keys import KeyPair
from records.bagwriter import write_bag

CASE = "邵城管罚〔2019〕第101号"
#: A clerk cleared for every sensitivity, to make the cases others may not see.
SECRETARY = """
[[access.users]]
name = "secretary"
roles = ["clerk"]
clearances = ["个人隐私", "商业秘密", "国家秘密"]
"""
#: 1 s segments: a few seconds of footage make several segments.
SHORT_SEGMENTS = """
[rendition]
segment_seconds = 1
"""


def aged_home(root: Path, extra_toml: str = "", retention: str = "", *,
              clips: tuple[ClipSpec, ...] = (ClipSpec(duration_s=1.0, height=240),),
              audio: bool = False, render: bool = False) -> Path:
    """A station whose camera was offloaded 400 days ago by the real clock (the
    service's), with no grace period: every recording is due for deletion now.
    ``retention``: more lines for its [retention] table; ``render``: its videos
    rendered too."""
    long_ago = datetime.now(UTC) - timedelta(days=400)
    camera = build_camera(root / "camera", start=long_ago, clips=clips, audio=audio)
    home = root / "home"
    write_agency_config(home, f"{extra_toml}[retention]\ngrace_days = 0\n{retention}")
    svc = Services.from_config(load_settings(environ={"EVIDOCK_HOME": str(home)}),
                               clock=StepClock(long_ago))
    try:
        report = svc.offloader().run(OffloadRequest(source=camera.root,
                                                    device_serial="ZFY0001",
                                                    officer_id="123456"))
        renderer = svc.renderer()
        for rec in renderer.pending() if render else ():
            renderer.render(rec)
    finally:
        svc.close()
    assert report.outcome == "completed" and report.files
    return home


def copy_home(template: Path, tmp_path: Path) -> Path:
    """A private copy of a module's template station, for a test that changes it."""
    copy = tmp_path / "home"
    shutil.copytree(template, copy)
    return copy


def rendered_videos(svc: Services) -> list[str]:
    """Every video recording with a rendition, in camera time order."""
    with Session(svc.catalog.engine) as s:
        return list(s.exec(select(Recording.id).join(
            Rendition, col(Rendition.recording_id) == col(Recording.id)).where(
            Recording.kind == "video", Rendition.status == "ok")
            .order_by(col(Recording.camera_start))))


def first_video(svc: Services) -> str:
    """The first video recording with a rendition."""
    with Session(svc.catalog.engine) as s:
        video = s.exec(select(Recording.id).join(
            Rendition, col(Rendition.recording_id) == col(Recording.id)).where(
            Recording.kind == "video", Rendition.status == "ok")
            .order_by(col(Recording.id))).first()
    assert video is not None
    return video


def export_case(svc: Services, out: Path, video: str, case: str = CASE) -> Path:
    """``video`` 0–2 s in a new case, requested, approved and exported (the real desks)."""
    who = svc.gate().by_name
    svc.cases().create(who("clerk"), number=case, case_type="行政处罚", unit="城东中队")
    svc.cases().link(who("clerk"), case, video, stage="调查取证", reason="现场检查",
                     start_us=0, end_us=2_000_000)
    exports = svc.exports()
    request = exports.request(who("inspector"), case=case, purpose="行政复议",
                              recipient="复议机关")
    exports.approve(who("legal"), request.id)
    [package] = exports.run(who("inspector"), request.id, out=out)
    return package.path


def rebag(root: Path, keypair: KeyPair | None = None, bag_id: str = "rebagged") -> None:
    """Every BagIt file recomputed for the package as it now is (as anyone can; a gm
    layer only with the station's key)."""
    for old in root.glob("*manifest-*"):
        old.unlink()
    write_bag(root, bag_id=bag_id, day=date(2026, 1, 1), keypair=keypair or KeyPair.generate())
