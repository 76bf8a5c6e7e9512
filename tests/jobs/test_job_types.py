"""Issue 20: the queue's other job types, each run by a real `evidock worker` on a real
PostgreSQL catalog with real ffmpeg: a recording's still (``thumbnails``), a redaction's
render (``redaction``) and an export run (``export``), each asked for where it is asked
today (the desk's still, the service's render and run routes) and carrying the user who
asked. Each gives what the in-process path gives, once however often it is queued, and
refuses whom the desk refuses. A worker SIGKILLed mid-export (paused at the run's
``export_staged`` hook) hands the job to the other, which resumes the spent run: one
export, one published package, the approval spent once.

Nothing waits by sleeping: the tests wait for the workers' event lines and the hook
FIFO, each with a deadline.
"""

from __future__ import annotations

import json
import os
import select
import shutil
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import blake3
import pytest
from evidock_testing import events_of, ok_json
from fastapi.responses import FileResponse
from service_support import open_dir, serving
from sqlalchemy import text
from sqlmodel import Session, col
from sqlmodel import select as sql_select
from worker_support import Worker, queued_station

from archive.catalog import Recording
from evidock.service.routes import exports as export_routes
from evidock.service.routes import redactions as redaction_routes
from evidock.web.pages import footage as footage_page
from evidock.wiring import Services
from fixtures.camera import CameraTree
from integrity.errors import Forbidden
from integrity.package import is_failure, verify_package
from integrity.redaction import Box
from records.footage_thumbs import Thumbnail, Thumbnails, grab
from records.models import Export, ExportDecision

Env = dict[str, str]


@pytest.fixture(scope="module")
def station(tmp_path_factory: pytest.TempPathFactory,
            camera_template: CameraTree) -> Iterator[tuple[Services, Env]]:
    """A station on PostgreSQL with the queue configured, the camera offloaded and
    rendered in-process (the offload's queued render jobs then find them made), on the
    real clock (the workers' own)."""
    root = tmp_path_factory.mktemp("job-types")
    camera, home = root / "camera", root / "home"
    shutil.copytree(camera_template.root, camera, symlinks=True)
    with queued_station(camera, home) as made:
        yield made


def _videos(svc: Services) -> list[Recording]:
    return [r for r in svc.catalog.recordings() if r.kind == "video" and not r.flags]


def _result(worker: Worker, job_id: int | None) -> dict[str, Any]:
    assert job_id is not None
    done = worker.wait_event("job-finished", job_id=job_id)
    assert done["outcome"] == "job_success", "".join(worker.lines)[-3000:]
    result: dict[str, Any] = done["result"]
    return result


def _jobs(svc: Services, task: str) -> list[tuple[int, str, dict[str, Any]]]:
    with svc.catalog.engine.connect() as conn:
        rows = conn.execute(text("SELECT id, status, args FROM procrastinate_jobs WHERE "
                                 "task_name = :t ORDER BY id"), {"t": task}).all()
    return [(int(i), str(s), dict(a)) for i, s, a in rows]


def _desk_still(svc: Services, user: str, recording_id: str) -> Any:
    """The desk's still route, as the page calls it for ``user``."""
    call = SimpleNamespace(svc=svc, actor=svc.gate().by_name(user))
    return footage_page.thumbnail(call, recording_id)  # type: ignore[arg-type]


def _inline_still(svc: Services, recording_id: str) -> str:
    """The BLAKE3 of the still the in-process path makes (records/footage_thumbs.py)."""
    rendition, first = Thumbnails(catalog=svc.catalog, store=svc.store,
                                  gate=svc.gate())._source(recording_id)
    del rendition
    at_s = min(1.0, max(0.0, (first.end_us - first.start_us) / 1e6) / 2)
    return blake3.blake3(grab(svc.store.path_for(first.blake3), at_s)).hexdigest()


@pytest.mark.slow
def test_the_desk_queues_a_still_a_worker_makes_it_once_for_the_user_who_asked(
        station: tuple[Services, Env]) -> None:
    svc, env = station
    rec = _videos(svc)[0]
    waiting = _desk_still(svc, "inspector", rec.id)
    assert waiting.status_code == 202 and waiting.media_type == "image/svg+xml"
    assert _desk_still(svc, "clerk", rec.id).status_code == 202
    queued = [j for j in _jobs(svc, "thumbnails") if j[2]["recording_id"] == rec.id]
    assert [(s, a["actor"]) for _, s, a in queued] == [("todo", "inspector")], \
        "asked twice while waiting: one job"
    assert svc.job_queue is not None
    refused = svc.job_queue.defer("thumbnails", {"recording_id": _videos(svc)[1].id,
                                                 "actor": "admin"})  # sees no footage
    worker = Worker("T", env).ready()
    try:
        made = _result(worker, queued[0][0])
        assert _result(worker, refused.job_id)["refused"] == "E_FORBIDDEN"
        late = svc.job_queue.defer("thumbnails", {"recording_id": rec.id,
                                                  "actor": "inspector"})
        noop = _result(worker, late.job_id)
        assert worker.terminate() == 0
    finally:
        worker.close()
    assert made["made"] is True and noop["made"] is False
    assert made["blake3"] == noop["blake3"] == _inline_still(svc, rec.id)
    with Session(svc.catalog.engine) as s:
        rows = list(s.exec(sql_select(Thumbnail)))
    assert [(r.recording_id, r.blake3, r.made_by) for r in rows] == \
        [(rec.id, made["blake3"], "user:inspector")], "one still, made for who asked"
    served = _desk_still(svc, "clerk", rec.id)
    assert isinstance(served, FileResponse) and served.status_code == 200
    assert blake3.blake3(Path(served.path).read_bytes()).hexdigest() == made["blake3"]
    shown = events_of(svc.catalog, "read.recording.thumbnail")
    assert [(e.actor, e.details["made"]) for e in shown] == [("user:clerk", False)]


def _redaction(svc: Services, recording: str) -> str:
    made = svc.redactions().request(
        svc.gate().by_name("clerk"), recording, start_us=0, end_us=1_000_000,
        reason="信息公开前技术处理", faces=False, boxes=[(Box(10, 10, 60, 40), 0, 500_000)])
    return made.id


@pytest.mark.slow
def test_a_redaction_render_is_queued_by_the_service_and_made_once_as_inline(
        station: tuple[Services, Env]) -> None:
    svc, env = station
    rec = _videos(svc)[0]
    clerk = svc.gate().by_name("clerk")
    inline, queued = _redaction(svc, rec.id), _redaction(svc, rec.id)
    svc.redactions().render(clerk, inline)  # the in-process path, for comparison
    with pytest.raises(Forbidden):  # refused by the desk before anything is queued
        redaction_routes.render(queued, actor=svc.gate().by_name("officer"), svc=svc)
    first = redaction_routes.render(queued, actor=clerk, svc=svc)
    again = redaction_routes.render(queued, actor=clerk, svc=svc)
    assert first["queued"]["code"] == "I_JOB_QUEUED" and first["redaction"]["render"] is None
    assert first["queued"]["job_id"] is not None and again["queued"]["job_id"] is None
    assert svc.job_queue is not None
    worker = Worker("R", env).ready()
    try:
        made = _result(worker, first["queued"]["job_id"])
        late = svc.job_queue.defer("redaction", {"redaction_id": queued, "actor": "clerk"})
        noop = _result(worker, late.job_id)
        assert worker.terminate() == 0
    finally:
        worker.close()
    desk = svc.redactions()
    shown, _ = desk.show(clerk, queued)
    reference, _ = desk.show(clerk, inline)
    assert made["made"] is True and noop["made"] is False
    assert shown.status == "rendered" and [s.kind for s in shown.steps] == ["plan", "render"]
    assert shown.render_step is not None and reference.render_step is not None
    assert made["output_blake3"] == noop["output_blake3"] == shown.render_step.output_blake3
    assert shown.render_step.actor == "clerk"
    assert shown.render_step.output_blake3 == reference.render_step.output_blake3, \
        "the worker's file is the in-process render's, byte for byte"


def _approved_export(svc: Services, recording: str) -> str:
    who, desk = svc.gate().by_name, svc.exports()
    req = desk.request(who("inspector"), recording=recording, purpose="行政复议",
                       recipient="复议机关").id
    assert desk.approve(who("legal"), req, reason="依法提供").status == "approved"
    return req


def _decisions(svc: Services, request_id: str) -> list[str]:
    with Session(svc.catalog.engine) as s:
        return [d.decision for d in s.exec(
            sql_select(ExportDecision).where(ExportDecision.request_id == request_id)
            .order_by(col(ExportDecision.id)))]


def _export_rows(svc: Services, request_id: str) -> list[str]:
    with Session(svc.catalog.engine) as s:
        return [e.id for e in s.exec(sql_select(Export).where(Export.request_id == request_id))]


def _check_package(svc: Services, request_id: str) -> None:
    top = svc.export_area().path(request_id)
    assert top.is_dir(), "published in the export area"
    findings = verify_package(top, trusted=svc.keys.keyring().by_id())
    assert not [f for f in findings if is_failure(f)], findings
    assert [p.name for p in top.parent.iterdir() if request_id in p.name] == [request_id]


@pytest.mark.slow
def test_an_export_run_is_queued_once_and_a_second_run_makes_nothing(
        station: tuple[Services, Env]) -> None:
    svc, env = station
    req = _approved_export(svc, _videos(svc)[0].id)
    inspector = svc.gate().by_name("inspector")
    with pytest.raises(Forbidden):  # legal approves, never runs: refused, nothing queued
        export_routes.run(req, svc.gate().by_name("legal"), svc)
    first = export_routes.run(req, inspector, svc)
    again = export_routes.run(req, inspector, svc)
    assert (first["status"], first["code"], first["files"]) == ("queued", "I_JOB_QUEUED", [])
    assert first["job_id"] is not None and again["job_id"] is None
    assert _decisions(svc, req) == ["approved"], "queueing spends nothing"
    assert svc.job_queue is not None
    worker = Worker("E", env).ready()
    try:
        made = _result(worker, first["job_id"])
        late = svc.job_queue.defer("export", {"request_id": req, "actor": "inspector"})
        noop = _result(worker, late.job_id)
        assert worker.terminate() == 0
    finally:
        worker.close()
    assert made["made"] is True and made["exports"] == _export_rows(svc, req)
    assert noop == {"request_id": req, "made": False, "published": False,
                    "exports": made["exports"]}
    assert _decisions(svc, req) == ["approved", "running", "used"]
    _check_package(svc, req)
    files = export_routes.files(req, inspector, svc)["files"]
    assert {f["path"] for f in files} >= {"bagit.txt", "data/clip.json"}


def _paused_at(fd: int, point: str, timeout: float = 120) -> None:
    ready, _, _ = select.select([fd], [], [], timeout)
    assert ready, f"the export never reached {point}"
    assert os.read(fd, 100).decode().strip() == point


@pytest.mark.slow
def test_a_worker_killed_mid_export_hands_the_run_to_the_other(
        station: tuple[Services, Env], tmp_path: Path) -> None:
    svc, env = station
    req = _approved_export(svc, _videos(svc)[1].id)
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    os.mkfifo(hooks / "out")
    os.mkfifo(hooks / "in")
    paused = os.open(hooks / "out", os.O_RDWR | os.O_NONBLOCK)  # never blocks, never EOF
    a = Worker("A", {**env, "EVIDOCK_TEST_HOOKS": str(hooks),
                     "EVIDOCK_TEST_HOOK_POINTS": "export_staged"})
    b: Worker | None = None
    try:
        a.ready()
        job = export_routes.run(req, svc.gate().by_name("inspector"), svc)["job_id"]
        _paused_at(paused, "export_staged")  # every package staged and synced, unrecorded
        assert _decisions(svc, req) == ["approved", "running"] and not _export_rows(svc, req)
        b = Worker("B", env).ready()
        a.kill()
        assert b.wait_event("stalled-jobs-requeued")["job_ids"] == [job]
        done = _result(b, job)
        assert b.terminate() == 0
    finally:
        os.close(paused)
        a.close()
        if b is not None:
            b.close()
    assert done["made"] is True and done["exports"] == _export_rows(svc, req)
    assert len(done["exports"]) == 1, "one export row"
    assert _decisions(svc, req) == ["approved", "running", "running", "used"]
    spent = [e for e in events_of(svc.catalog, "export.start")
             if f"export-request:{req}" in e.subjects]
    resumed = [e for e in events_of(svc.catalog, "export.resume")
               if f"export-request:{req}" in e.subjects]
    ran = [e for e in events_of(svc.catalog, "export.run")
           if f"export-request:{req}" in e.subjects]
    assert (len(spent), len(resumed), len(ran)) == (1, 1, 1), "the approval spent once"
    assert all(e.actor == "user:inspector" for e in spent + resumed + ran)
    _check_package(svc, req)
    with svc.catalog.engine.connect() as conn:
        kinds = [str(t) for t in conn.execute(text(
            "SELECT type FROM procrastinate_events WHERE job_id = :j ORDER BY id"),
            {"j": job}).scalars()]
    assert kinds.count("started") == 2 and kinds.count("succeeded") == 1, kinds


@pytest.mark.slow
def test_export_run_through_the_service_and_cli_is_queued_then_downloaded(
        station: tuple[Services, Env]) -> None:
    """The real path: `evidock export run` (as the inspector's OS account, against a
    real `evidock serve`) answers queued and leaves nothing at --out; a worker runs it;
    `evidock export download` then fetches the package, checked file by file."""
    svc, env = station
    req = _approved_export(svc, _videos(svc)[0].id)
    box = open_dir("evidock-job-out-")
    box.chmod(0o1777)
    out = box / "pkg"
    with serving(Path(env["EVIDOCK_HOME"]), env=env) as service:
        queued = ok_json(service.cli("export", "run", req, "--out", str(out), "--json",
                                     user="inspector"))
        assert (queued["status"], queued["code"]) == ("queued", "I_JOB_QUEUED")
        assert not out.exists() and list(box.iterdir()) == [], "nothing at --out"
        worker = Worker("D", env).ready()
        try:
            assert _result(worker, queued["job_id"])["made"] is True
            assert worker.terminate() == 0
        finally:
            worker.close()
        fetched = ok_json(service.cli("export", "download", req, "--out", str(out),
                                      "--json", user="inspector"))
    assert fetched["exports"] == _export_rows(svc, req) and fetched["files"] > 0
    assert json.loads((out / "data" / "clip.json").read_bytes())["export_id"] == \
        fetched["exports"][0]
