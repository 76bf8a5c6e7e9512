"""Two makers of one rendition (a job handed on while its first worker still ran): the
renderer's commit re-checks under the catalog's write lock, so the second commits
nothing and answers the first one's rendition."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import Session, select

from archive.catalog.models import Rendition, Segment
from evidock.wiring import Services
from ingest.outcome import OffloadRequest


def test_the_second_maker_commits_nothing(services: Services, camera: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    report = services.offloader().run(OffloadRequest(source=camera, device_serial="ZFY0001",
                                                     officer_id="123456"))
    assert report.outcome == "completed"
    rec = next(r for r in services.catalog.recordings() if r.kind == "video" and not r.flags)
    renderer = services.renderer()
    first = renderer.render(rec)
    assert first.status == "ok"
    # The second maker looked before the first committed: it saw nothing finished.
    monkeypatch.setattr(renderer, "done", lambda _recording_id: None)
    second = renderer.render(rec)
    assert second.id == first.id
    with Session(services.catalog.engine) as s:
        rows = list(s.exec(select(Rendition).where(Rendition.recording_id == rec.id)))
        segments = list(s.exec(select(Segment).where(Segment.rendition_id == first.id)))
    assert [r.id for r in rows] == [first.id]
    assert len({g.index for g in segments}) == len(segments) > 0
