"""Issue 20: exporting from the center, restored from the object store and verified.

Real parts: the center on PostgreSQL, two stations that offloaded and rendered a
synthetic camera (1 s segments), a real SeaweedFS with Object Lock, real `evidock serve`
processes (the center on HTTPS with mutual TLS) and real OS accounts. What is checked:
a clip requested at the center, approved by someone else and run once is read back
from the object store and proven, and `evidock verify --key STATION --center-key
CENTER` passes offline on it, its segments the station's own bytes (a newer impostor
version at a segment's key passed over); a wrong center key is a named finding; the
requester cannot approve; a clerk without the unit or clearance of the recording's case
is refused (audited); a second run of the approval is refused; a segment whose only
object in the bucket has a flipped byte fails the run with E_REMOTE_UNPROVEN, nothing
published, the approval given back.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from center_support import (
    World,
    center_toml,
    make_case,
    make_station,
    pg_world,
    push,
    rendered_segments,
    upload,
    upload_toml,
)
from evidock_testing import AGENCY_TOML, migrated, ok_json, without_pending
from s3server import WeedServer
from service_support import RunningService, audit_rows, open_dir, serving
from sqlalchemy import select
from sqlmodel import Session

from archive.audit.log import AuditLog
from archive.catalog import Catalog, Recording
from archive.catalog.types import table_of
from archive.keystore import StationKeys
from archive.store import ContentStore
from archive.witness.book import WitnessBook
from archive.witness.index import CentralRecording, CentralRendition
from fixtures.camera import CameraTree
from integrity.bundle import IndexKeys, check_bundle
from integrity.codes import Code
from integrity.errors import AuditError, NotFound
from records.centralbundle import CenterBundler, Needed
from records.permissions import Actor

sys.path.insert(0, str(Path(__file__).parents[1] / "jobs"))  # worker_support lives there
from worker_support import Worker  # noqa: E402

GOOD, BAD = "station-x", "station-y"
#: The center reads station-y's footage under a prefix the test fills itself (one
#: segment with a flipped byte and no true version anywhere at that key).
SEEN = {GOOD: GOOD, BAD: f"{BAD}-copy"}
SEGMENT_S = {GOOD: 1, BAD: 30}


# The inspector may also approve at the center, so that approving their own request
# reaches the two-person rule (with the default roles it is refused for lack of the right).
ROLES = """
[access.roles]
inspector = ["case.view", "recording.view", "recording.play", "export.request",
             "export.run", "export.approve"]
"""


def _center(world: World) -> None:
    home = world.center_home
    keys = StationKeys(directory=home / "keys")
    keys.init()
    (world.root / "center.pem").write_bytes(keys.load().public.to_pem())
    keys_copy = world.root / "center.json"
    keys_copy.write_bytes(keys.keyring_path.read_bytes())
    (home / "evidock.toml").write_text(AGENCY_TOML + center_toml(
        port=world.port, server=world.ca.issue("center", server=True), ca=world.ca.root.cert,
        users=SEEN, stations=[(n, world.root / f"{n}.json", p) for n, p in SEEN.items()])
        + upload_toml(world.endpoint, world.bucket, "center")
        + f'\n[paths]\ncatalog_url = "{world.center_url}"\n' + ROLES, encoding="utf-8")
    migrated(world.center_url)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, weed: WeedServer,
          camera_template: CameraTree) -> Iterator[World]:
    root = tmp_path_factory.mktemp("center-export")
    with pg_world(root, weed.endpoint, SEEN) as world:
        for name in SEEN:
            # Other segment lengths: station-y's segments are other blobs than
            # station-x's (the same camera), which the center may hold already.
            make_station(world, name, camera_template.root, render=True,
                         extra_toml=f"\n[rendition]\nsegment_seconds = {SEGMENT_S[name]}\n")
            pem = StationKeys(directory=world.station(name) / "keys").load().public.to_pem()
            (root / f"{name}.pem").write_bytes(pem)
        _center(world)
        yield world


def _video(home: Path) -> tuple[str, list[Any]]:
    """The station's recording with the most segments, and its media segments."""
    rec, segs = max(rendered_segments(home).items(), key=lambda kv: len(kv[1]))
    return rec, [s for s in segs if s.end_us > s.start_us]


def _clip(segs: list[Any]) -> tuple[str, str]:
    """A range (seconds) that the first two media segments cover (the first alone if
    there is one), no other."""
    end = segs[1].start_us + 1000 if len(segs) > 1 else segs[0].end_us - 1000
    return f"{(segs[0].start_us + 1000) / 1e6:.6f}", f"{end / 1e6:.6f}"


def _key(world: World, prefix: str, b3: str) -> str:
    return f"{prefix}/blobs/{b3[:2]}/{b3[2:4]}/{b3}"


def _copy_prefix(world: World, src: str, dest: str, *, flip: str) -> None:
    """Every object under ``src/`` again under ``dest/`` (locked), the blob ``flip``'s
    with one byte changed: that key then holds no true version at all."""
    client = world.endpoint.client()
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=world.bucket,
                                                             Prefix=f"{src}/")
    for page in pages:
        for obj in page.get("Contents", []):
            body = bytearray(client.get_object(Bucket=world.bucket,
                                               Key=obj["Key"])["Body"].read())
            if obj["Key"].endswith(flip):
                body[len(body) // 2] ^= 0x01
            client.put_object(Bucket=world.bucket, Key=dest + obj["Key"][len(src):],
                              Body=bytes(body), ObjectLockMode="COMPLIANCE",
                              ObjectLockRetainUntilDate=datetime.now(UTC) + timedelta(days=1))


@pytest.fixture(scope="module")
def outbox() -> Iterator[Path]:
    """A directory every test account may make its ``--out`` in (like /tmp)."""
    box = open_dir("evidock-center-export-")
    box.chmod(0o1777)
    yield box
    shutil.rmtree(box, ignore_errors=True)


def _request(center: RunningService, station: str, recording: str, segs: list[Any],
             *, user: str = "clerk") -> dict[str, Any]:
    start, end = _clip(segs)
    return ok_json(center.cli("center", "export", "request", "--station", station,
                              "--recording", recording, "--start", start, "--end", end,
                              "--purpose", "行政复议", "--recipient", "复议机关", "--json",
                              user=user))


def _verify(pkg: Path, *keys: str, what: tuple[str, ...] = ("verify",),
            ) -> tuple[int, dict[str, Any]]:
    run = subprocess.run([sys.executable, "-m", "evidock", *what, str(pkg), *keys,
                          "--json"], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "EVIDOCK_HOME": str(pkg.parent / "no-home")},
                         check=False)
    return run.returncode, ok_json(run, run.returncode)


@pytest.fixture(scope="module")
def pushed(world: World) -> Iterator[dict[str, Any]]:
    """Both stations uploaded and pushed; station-x's secret case on its video; the
    bucket's copy for station-y made with a flipped segment; an impostor version at one
    of station-x's segments."""
    made: dict[str, Any] = {}
    for name in SEEN:
        made[name] = _video(world.station(name))
    with serving(world.station(GOOD)) as x, serving(world.station(BAD)) as y, \
            serving(world.center_home):
        make_case(x, "邵城管罚〔2026〕第201号", "城东中队", "个人隐私", link=made[GOOD][0])
        for name in SEEN:
            upload(world.station(name))
        bad_seg = made[BAD][1][0]
        _copy_prefix(world, BAD, SEEN[BAD], flip=bad_seg.blake3)
        for station in (x, y):
            assert push(station)["events"]["waiting"] is None
    assert not {s.blake3 for s in made[GOOD][1]} & {s.blake3 for s in made[BAD][1]}
    impostor = made[GOOD][1][1]  # a newer version at its key, same size, other bytes
    world.endpoint.client().put_object(Bucket=world.bucket,
                                       Key=_key(world, GOOD, impostor.blake3),
                                       Body=bytes(impostor.size))
    yield made


def test_a_clip_exported_at_the_center_verifies_offline_with_the_station_s_bytes(
        world: World, pushed: dict[str, Any], outbox: Path) -> None:
    recording, segs = pushed[GOOD]
    out = outbox / "clip"
    with serving(world.center_home) as center:
        req = _request(center, GOOD, recording, segs, user="inspector")
        own = center.cli("center", "export", "approve", req["id"], "--json",
                         user="inspector")
        hidden = center.cli("center", "export", "request", "--station", GOOD,
                            "--recording", recording, "--start", "1", "--end", "2",
                            "--purpose", "行政复议", "--recipient", "x", "--json",
                            user="clerk2")
        approved = ok_json(center.cli("center", "export", "approve", req["id"], "--json",
                                      user="supervisor"))
        ran = ok_json(center.cli("center", "export", "run", req["id"], "--out", str(out),
                                 "--json", user="inspector"))
        again = center.cli("center", "export", "run", req["id"], "--out",
                           str(outbox / "again"), "--json", user="inspector")
    assert ok_json(own, 3)["error"]["code"] == "E_SELF_APPROVAL"
    assert ok_json(hidden, 3)["error"]["code"] == "E_FORBIDDEN"  # no 个人隐私, not 城东
    assert approved["status"] == "approved" and approved["approved_by"] == "supervisor"
    assert [r.details["code"] for r in audit_rows(world.center_url, "access.refused")
            if r.actor == "user:inspector"] == ["E_SELF_APPROVAL", "E_NOT_APPROVED"]
    assert ok_json(again, 3)["error"]["code"] == "E_NOT_APPROVED"
    assert not (outbox / "again").exists()
    [package] = ran["packages"]
    local = ContentStore(root=world.station(GOOD) / "store")
    chosen = segs[:2]
    assert package["segments"] == [s.name for s in chosen] and len(chosen) == 2
    for s in chosen:  # the impostor version at the second one's key was passed over
        assert (out / "data" / "segments" / s.name).read_bytes() == \
            local.path_for(s.blake3).read_bytes()
    clip = json.loads((out / "data" / "clip.json").read_bytes())
    assert (clip["station_id"], clip["exporter"]["role"], clip["request"]["station_id"]) == (
        GOOD, "center", GOOD)
    code, verdict = _verify(out, "--key", str(world.root / f"{GOOD}.pem"), "--center-key",
                            str(world.root / "center.pem"))
    assert code == 0 and without_pending(verdict["findings"]) == [], verdict
    _check_bundle(out, clip, outbox, "--key", str(world.root / f"{GOOD}.pem"),
                  "--center-key", str(world.root / "center.pem"))
    wrong, bad = _verify(out, "--key", str(world.root / f"{GOOD}.pem"), "--center-key",
                         str(world.root / f"{BAD}.pem"))
    named = [(f["code"], f["subject"]) for f in bad["findings"]]
    assert wrong == 1 and ("E_KEY_MISMATCH", "clip.json") in named, bad
    # the bundle's head is the station's (it still verifies), its index the center's
    assert ("E_KEY_MISMATCH", f"data/{BUNDLE}#index") in named, bad
    assert not [s for _c, s in named if s == f"data/{BUNDLE}#head"], bad
    station_only, swapped = _verify(out, "--key", str(world.root / "center.pem"))
    assert station_only == 1 and any(f["code"] == "E_KEY_MISMATCH" and
                                      f["subject"] == "manifest.json"
                                      for f in swapped["findings"]), swapped
    refused = [r for r in audit_rows(world.center_url, "access.refused")
               if r.actor == "user:clerk2"]
    assert refused and f"recording:{recording}" in refused[-1].subjects
    actions = [r.action for r in audit_rows(world.center_url, "center.export.run")]
    assert actions == ["center.export.run"]


BUNDLE = "audit-bundle.json"


def _check_bundle(out: Path, clip: dict[str, Any], outbox: Path, *keys: str) -> None:
    """The center's package carries the station's events about the recording from the
    mirror, proven against a station-signed head the center countersigned; an event
    changed in a copy of the package is a named finding."""
    assert clip["audit_bundle"] == BUNDLE
    doc = json.loads((out / "data" / BUNDLE).read_bytes())
    shown = [e for e in doc["events"] if not e.get("hidden")]
    actions = {e["event"]["action"] for e in shown}
    assert {"ingest.file", "rendition.make"} <= actions, actions
    assert doc["head"]["station_id"] == GOOD and doc["witnessed"]["head"] == doc["head"]
    assert all(e["proof"]["tree_size"] == doc["head"]["size"] for e in doc["events"])
    assert doc["requester"] == "inspector" and doc["hidden"] == 0  # they see the case
    tampered = outbox / "tampered"
    shutil.copytree(out, tampered)
    i = next(i for i, e in enumerate(doc["events"]) if e.get("event", {}).get(
        "action") == "ingest.file")
    doc["events"][i]["event"]["details"]["path"] = "elsewhere.mp4"
    (tampered / "data" / BUNDLE).write_text(json.dumps(doc), encoding="utf-8")
    code, verdict = _verify(tampered, *keys)
    bundle_only = ("audit", "verify-bundle")
    assert _verify(out, *keys, what=bundle_only)[0] == 0
    station_only, found = _verify(out, *keys[:2], what=bundle_only)  # no --center-key
    assert station_only == 1 and [f["code"] for f in found["findings"]] == [
        "E_KEY_MISMATCH"] and found["findings"][0]["subject"].endswith("#index"), found
    assert code == 1 and ("E_AUDIT_EVENT_CHANGED", f"data/{BUNDLE}#events[{i}]") in [
        (f["code"], f["subject"]) for f in verdict["findings"]], verdict


def test_the_center_s_bundle_comes_from_its_mirror_or_not_at_all(
        world: World, pushed: dict[str, Any]) -> None:
    """Built in process against the center's real catalog: a bundle for a requester
    who is no user hides every event naming a case and still verifies offline (head:
    the station's key, index: the center's); a manifest no mirrored event below the
    witnessed head names is refused, no bundle."""
    recording, _segs = pushed[GOOD]
    catalog = Catalog.open(world.center_url)
    try:
        with catalog.engine.connect() as conn:
            original = conn.execute(select(table_of(CentralRecording).c.blake3).where(
                table_of(CentralRecording).c.recording_id == recording)).scalar_one()
            manifest = conn.execute(select(table_of(CentralRendition).c.manifest).where(
                table_of(CentralRendition).c.recording_id == recording,
                table_of(CentralRendition).c.status == "ok")).scalars().first()
        center_keys = StationKeys(directory=world.center_home / "keys")

        def bundler(needed: Needed) -> CenterBundler:
            return CenterBundler(catalog=catalog, book=WitnessBook(
                catalog=catalog, audit=AuditLog(catalog=catalog)), keys=center_keys,
                station=GOOD, needed=needed, by_name=_nobody)

        raw = bundler(Needed(original=original, manifest=str(manifest)))(recording, None)
        with pytest.raises(AuditError, match="no rendition.make event"):
            bundler(Needed(original=original, manifest="0" * 64))(recording, None)
    finally:
        catalog.close()
    doc = json.loads(raw)
    assert doc["hidden"] >= 1 and all("event" not in e for e in doc["events"] if e.get(
        "hidden"))  # the secret case's link: its leaf only
    station = StationKeys.read_keyring(world.root / f"{GOOD}.json").by_id()
    assert check_bundle(doc, station, trusted=True, index_keys=IndexKeys(
        center_keys.keyring().by_id(), True)) == []
    found = check_bundle(doc, station, trusted=True)  # the station did not sign the index
    assert [(f.code, f.subject) for f in found] == [
        (Code.E_KEY_MISMATCH, f"{BUNDLE}#index")], found


def test_an_original_in_a_center_package_is_the_station_s_restored_and_proven(
        world: World, pushed: dict[str, Any], outbox: Path) -> None:
    """--originals: the camera file read back from the object store, a newer version at
    its key with one byte flipped passed over for the locked true one; the package's
    original is the station's bytes and verifies offline."""
    recording, segs = pushed[GOOD]
    station = Catalog.open(f"sqlite:///{world.station(GOOD) / 'catalog.sqlite3'}")
    try:
        with Session(station.engine) as s:
            rec = s.get(Recording, recording)
            assert rec is not None
            true = ContentStore(root=world.station(GOOD) / "store").path_for(
                rec.blake3).read_bytes()
    finally:
        station.close()
    flipped = bytearray(true)
    flipped[len(flipped) // 2] ^= 0x01
    world.endpoint.client().put_object(Bucket=world.bucket,
                                       Key=_key(world, GOOD, rec.blake3), Body=bytes(flipped))
    out = outbox / "with-original"
    with serving(world.center_home) as center:
        start, end = _clip(segs)
        req = ok_json(center.cli("center", "export", "request", "--station", GOOD,
                                 "--recording", recording, "--start", start, "--end", end,
                                 "--purpose", "行政复议", "--recipient", "复议机关",
                                 "--originals", "--json", user="inspector"))
        ok_json(center.cli("center", "export", "approve", req["id"], "--json",
                           user="supervisor"))
        ok_json(center.cli("center", "export", "run", req["id"], "--out", str(out),
                           "--json", user="inspector"))
    assert req["originals"] is True
    clip = json.loads((out / "data" / "clip.json").read_bytes())
    [entry] = clip["originals"]
    assert (entry["blake3"], entry["sha256"], entry["size"]) == (rec.blake3, rec.sha256,
                                                                 rec.size)
    assert (out / "data" / entry["file"]).read_bytes() == true
    code, verdict = _verify(out, "--key", str(world.root / f"{GOOD}.pem"), "--center-key",
                            str(world.root / "center.pem"))
    assert code == 0 and without_pending(verdict["findings"]) == [], verdict
    assert not ContentStore(root=world.center_home / "store").path_for(rec.blake3).exists()


def test_with_a_job_queue_a_center_export_run_is_a_job_a_real_worker_runs(
        world: World, pushed: dict[str, Any], outbox: Path) -> None:
    """[jobs] queue = "postgres" at the center: `center export run` answers queued and
    writes nothing at --out; an `evidock worker` on the center's home runs the
    ``center_export`` job as the user who asked; `center export download` fetches a
    package that verifies; a second run of the used approval is refused at the route."""
    recording, segs = pushed[GOOD]
    env = {"EVIDOCK_HOME": str(world.center_home), "EVIDOCK_JOBS__QUEUE": '"postgres"'}
    out = outbox / "queued"
    with serving(world.center_home, env=env) as center:
        req = _request(center, GOOD, recording, segs, user="inspector")
        ok_json(center.cli("center", "export", "approve", req["id"], "--json",
                           user="supervisor"))
        queued = ok_json(center.cli("center", "export", "run", req["id"], "--out", str(out),
                                    "--json", user="inspector"))
        assert (queued["status"], queued["code"]) == ("queued", "I_JOB_QUEUED"), queued
        assert not out.exists()
        worker = Worker("C", env).ready()
        try:
            done = worker.wait_event("job-finished", job_id=queued["job_id"])
            assert done["outcome"] == "job_success", "".join(worker.lines)[-3000:]
            assert worker.terminate() == 0
        finally:
            worker.close()
        fetched = ok_json(center.cli("center", "export", "download", req["id"], "--out",
                                     str(out), "--json", user="inspector"))
        again = center.cli("center", "export", "run", req["id"], "--out",
                           str(outbox / "queued-again"), "--json", user="inspector")
    assert done["result"]["made"] is True and done["result"]["exports"] == fetched["exports"]
    assert ok_json(again, 3)["error"]["code"] == "E_NOT_APPROVED"
    code, verdict = _verify(out, "--key", str(world.root / f"{GOOD}.pem"), "--center-key",
                            str(world.root / "center.pem"))
    assert code == 0 and without_pending(verdict["findings"]) == [], verdict
    ran = [r for r in audit_rows(world.center_url, "center.export.run")
           if f"center-export-request:{req['id']}" in r.subjects]
    assert [r.actor for r in ran] == ["user:inspector"]


def _nobody(name: str) -> Actor:
    raise NotFound(f"no user {name}")


def test_a_flipped_object_fails_the_run_and_gives_the_approval_back(
        world: World, pushed: dict[str, Any], outbox: Path) -> None:
    recording, segs = pushed[BAD]
    out = outbox / "flipped"
    with serving(world.center_home) as center:
        req = _request(center, BAD, recording, segs)
        ok_json(center.cli("center", "export", "approve", req["id"], "--json",
                           user="supervisor"))
        failed = ok_json(center.cli("center", "export", "run", req["id"], "--out", str(out),
                                    "--json", user="inspector"), 1)
        after = ok_json(center.cli("center", "export", "show", req["id"], "--json",
                                   user="inspector"))
    assert failed["error"]["code"] == "E_REMOTE_UNPROVEN", failed
    assert not out.exists()
    assert not any((world.center_home / "center-exports").glob(f"{req['id']}*"))
    assert after["status"] == "approved"  # given back: released after running
    assert [d["decision"] for d in after["decisions"]] == ["approved", "running", "released"]
    released = [r for r in audit_rows(world.center_url, "center.export.released")
                if f"center-export-request:{req['id']}" in r.subjects]
    assert [r.details["error"] for r in released] == ["E_REMOTE_UNPROVEN"]
    center_store = ContentStore(root=world.center_home / "store")
    assert not center_store.path_for(segs[0].blake3).exists()  # nothing unproven kept
