"""Issue 20: upload retries as jobs, one ``upload`` job per due blob, run by a real
`evidock worker` against a real SeaweedFS (Object Lock) and a real PostgreSQL catalog.

The scheduler's ``upload`` job and ``POST /uploads/run`` queue the station's new blobs in
the upload queue as before, then hand each due item to the workers instead of uploading
in-process; a blob's job waiting is queued once (its queueing lock), and a job for a
verified blob does nothing. Each blob ends as the in-process pass leaves it: verified
once, its object under Object Lock with the catalog's size and SHA-256.
"""

from __future__ import annotations

import base64
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from center_support import upload_toml
from evidock_testing import REPO
from sqlalchemy import text
from sqlmodel import Session, col, select
from worker_support import JOBS_TOML, Worker, queued_station

from archive.catalog.models import Blob
from archive.replica.queue import UploadEvent, UploadItem
from evidock.jobs import execute
from evidock.service.routes import operations
from evidock.wiring import Services
from fixtures.camera import CameraTree
from integrity.errors import Forbidden

sys.path.insert(0, str(REPO / "tests" / "replica"))
from s3server import WeedServer  # noqa: E402
from storage_support import make_bucket, weed_server  # noqa: E402


@pytest.fixture(scope="module")
def weed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WeedServer]:
    with weed_server(tmp_path_factory.mktemp("weed")) as server:
        yield server


@pytest.fixture
def station(tmp_path: Path, camera_template: CameraTree,
            weed: WeedServer) -> Iterator[tuple[Services, dict[str, str], str]]:
    """A station on PostgreSQL with the queue and [upload] configured, the camera
    offloaded and rendered in-process, on the real clock (the workers' own)."""
    camera, home = tmp_path / "camera", tmp_path / "home"
    shutil.copytree(camera_template.root, camera, symlinks=True)
    bucket = make_bucket(weed.endpoint)
    extra = JOBS_TOML + upload_toml(weed.endpoint, bucket, "st")
    with queued_station(camera, home, extra=extra) as (svc, env):
        yield svc, env, bucket


def _upload_jobs(svc: Services) -> dict[str, tuple[int, str]]:
    with svc.catalog.engine.connect() as conn:
        rows = conn.execute(text("SELECT id, status, args->>'blake3' FROM procrastinate_jobs "
                                 "WHERE task_name = 'upload' ORDER BY id")).all()
    return {str(b): (int(i), str(s)) for i, s, b in rows}


@pytest.mark.slow
def test_due_uploads_are_one_job_per_blob_and_each_blob_is_verified_once(
        station: tuple[Services, dict[str, str], str], weed: WeedServer) -> None:
    svc, env, bucket = station
    with Session(svc.catalog.engine) as s:
        blobs = {b.blake3: b for b in s.exec(select(Blob))}
    first = execute("upload", svc)
    assert first.outcome == "ok", first
    assert first.counts == {"enqueued": len(blobs), "jobs": len(blobs),
                            "new_jobs": len(blobs)}
    admin, inspector = svc.gate().by_name("admin"), svc.gate().by_name("inspector")
    with pytest.raises(Forbidden):  # upload.run is the admin's
        operations.upload_run(operations.UploadRunIn(), inspector, svc)
    again = operations.upload_run(operations.UploadRunIn(), admin, svc)
    assert (again["code"], again["jobs"], again["new_jobs"]) == ("I_JOB_QUEUED",
                                                                  len(blobs), 0)
    assert again["attempted"] == again["verified"] == 0, "the CLI exits 0: all queued"
    jobs = _upload_jobs(svc)
    assert set(jobs) == set(blobs) and {s for _, s in jobs.values()} == {"todo"}
    assert svc.job_queue is not None
    worker = Worker("U", env).ready()
    try:
        results = {b3: worker.wait_event("job-finished", job_id=job)["result"]
                   for b3, (job, _) in jobs.items()}
        some = next(iter(blobs))
        late = svc.job_queue.defer("upload", {"blake3": some})
        noop = worker.wait_event("job-finished", job_id=late.job_id)["result"]
        assert worker.terminate() == 0
    finally:
        worker.close()
    assert {b3: (r["made"], r["state"]) for b3, r in results.items()} == \
        {b3: (True, "verified") for b3 in blobs}
    assert noop == {"blake3": some, "made": False, "state": "verified"}
    with Session(svc.catalog.engine) as s:
        items = {i.blake3: i for i in s.exec(select(UploadItem))}
        events = list(s.exec(select(UploadEvent).order_by(col(UploadEvent.id))))
    assert {b: i.state for b, i in items.items()} == {b: "verified" for b in blobs}
    assert sorted(e.blake3 for e in events) == sorted(blobs), "one event per blob"
    assert {e.event for e in events} == {"verified"}
    client = weed.endpoint.client()
    for b3, blob in blobs.items():
        head = client.head_object(Bucket=bucket, Key=items[b3].key,
                                  VersionId=items[b3].version_id, ChecksumMode="ENABLED")
        assert head["ContentLength"] == blob.size
        assert head["ObjectLockMode"] == "COMPLIANCE"
        if "ChecksumSHA256" in head and "-" not in head["ChecksumSHA256"]:
            assert base64.b64decode(head["ChecksumSHA256"]).hex() == blob.sha256
