"""Issue 20: stations push their audit logs to a center, which mirrors them.

Real parts: the center's catalog on a real PostgreSQL; stations that offloaded a
synthetic camera (real ffmpeg, real keys; two also rendered it); a real SeaweedFS with
Object Lock shared by all (each station uploads under its own key prefix); real `evidock
serve` processes (the center on HTTPS with mutual TLS). What is checked: with the center
down the push fails and nothing is kept; the center then keeps a station's events only
up to the first that names a blob not in the object store yet (an original, a signed
record, a manifest), and the rest once the station has uploaded; an object at a blob's
key that is not that blob (another size, other bytes) is not taken for it; every event
arrives once however often the stations push; the mirror hashes to the heads the center
countersigned; the center shows each person only what their units and clearance allow;
footage played at the center is read back from the object store and proven.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from center_support import (
    World,
    make_case,
    make_center,
    make_station,
    pg_world,
    publish,
    push,
    rendered_segments,
    upload,
)
from evidock_testing import ok_json
from s3server import WeedServer
from service_support import RunningService, api_as, audit_rows, serving
from sqlalchemy import func, select
from sqlmodel import Session
from sqlmodel import select as sselect

from archive.audit.log import AuditLog
from archive.catalog import Catalog
from archive.catalog.models import Rendition
from archive.store import ContentStore
from archive.witness.cosign import Cosigned
from archive.witness.mirror import Mirror, StationEvent
from fixtures.camera import CameraTree

STATIONS = ("station-a", "station-b", "station-c", "station-d", "station-e")



@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, weed: WeedServer,
          camera_template: CameraTree) -> Iterator[World]:
    root = tmp_path_factory.mktemp("center")
    with pg_world(root, weed.endpoint, STATIONS) as world:
        for name in STATIONS:
            make_station(world, name, camera_template.root,
                         render=name in ("station-a", "station-e"),
                         # station-e cuts short segments: its videos have several to play
                         extra_toml="\n[rendition]\nsegment_seconds = 1\n"
                         if name == "station-e" else "")
        make_center(world, STATIONS)
        yield world





def _mirrored(world: World, station: str) -> tuple[int, int]:
    """(rows, distinct seqs) the center holds for ``station``."""
    catalog = Catalog.open(world.center_url)
    try:
        with catalog.engine.connect() as conn:
            t = StationEvent.__table__  # type: ignore[attr-defined]
            rows = conn.execute(select(func.count(), func.count(func.distinct(t.c.seq)))
                                .where(t.c.station_id == station)).one()
        return int(rows[0]), int(rows[1])
    finally:
        catalog.close()


def _mirror_root(world: World, station: str, size: int) -> str | None:
    catalog = Catalog.open(world.center_url)
    try:
        return Mirror(catalog=catalog).root(station, size)
    finally:
        catalog.close()


def _first_blob_event(home: Path) -> int:
    catalog = Catalog.open(f"sqlite:///{home / 'catalog.sqlite3'}")
    try:
        log = AuditLog(catalog=catalog)
        return next(i for i in range(log.size())
                    if (e := log.event(i)) is not None and e.action == "ingest.file")
    finally:
        catalog.close()


def _plant_impostor(world: World, home: Path, seq: int) -> str:
    """A locked object at the key of the blob event ``seq`` names, with other bytes."""
    catalog = Catalog.open(f"sqlite:///{home / 'catalog.sqlite3'}")
    try:
        event = AuditLog(catalog=catalog).event(seq)
    finally:
        catalog.close()
    assert event is not None
    b3 = event.details["blake3"]
    world.endpoint.client().put_object(
        Bucket=world.bucket, Key=f"station-b/blobs/{b3[:2]}/{b3[2:4]}/{b3}",
        Body=b"not the footage", ObjectLockMode="COMPLIANCE",
        ObjectLockRetainUntilDate=datetime.now(UTC) + timedelta(days=1))
    return str(b3)


def test_events_arrive_once_only_after_their_blobs(world: World) -> None:
    home = world.station("station-a")
    blob_event = _first_blob_event(home)
    with serving(home) as station:
        down = push(station, 2)["error"]  # the center is not running yet
        assert down["code"] == "E_CENTER_UNAVAILABLE"
        with serving(world.center_home):
            early = push(station, 1)  # nothing uploaded: it stops at the first blob
            assert early["events"]["next_seq"] == blob_event
            assert early["events"]["waiting"]["seq"] == blob_event
            assert early["events"]["waiting"]["reason"] == "not in the object store yet"
            assert upload(home)["verified"] > 0
            full = push(station)
            again = push(station)
    size = full["cosigned"]["head"]["size"]
    assert full["events"]["waiting"] is None and full["events"]["next_seq"] == size
    assert again["events"]["kept"] == again["events"]["size"] - size  # only what is new
    rows, distinct = _mirrored(world, "station-a")
    assert rows == distinct == again["events"]["next_seq"]  # each event once
    for pushed in (full, again):  # the center countersigned the root of its mirror
        head = Cosigned.from_dict(pushed["cosigned"]).head
        assert _mirror_root(world, "station-a", head.size) == head.root
    kinds = {e.action for e in _events(world, "station-a")}
    assert {"ingest.file", "rendition.make", "dock.session.end"} <= kinds


def _events(world: World, station: str) -> list[StationEvent]:
    from sqlmodel import Session
    from sqlmodel import select as sselect

    catalog = Catalog.open(world.center_url)
    try:
        with Session(catalog.engine) as s:
            return list(s.exec(sselect(StationEvent).where(
                StationEvent.station_id == station)))
    finally:
        catalog.close()


def test_an_object_that_is_not_the_blob_is_not_taken_for_it(world: World) -> None:
    home = world.station("station-b")
    blob_event = _first_blob_event(home)
    _plant_impostor(world, home, blob_event)
    with serving(home) as station, serving(world.center_home):
        stopped = push(station, 1)["events"]
        assert stopped["next_seq"] == blob_event
        assert "bytes" in stopped["waiting"]["reason"]  # size or content, not presence
        upload(home)  # the station's own copy, a new version at the key
        done = push(station)["events"]
    assert done["waiting"] is None and done["next_seq"] == done["size"]
    received = [r.details for r in audit_rows(world.center_url, "feed.received")
                if r.subjects == ["station:station-b"]]
    assert [d["first"] for d in received][:2] == [0, blob_event]


def _recording_ids(home: Path) -> list[str]:
    from archive.catalog import Recording

    catalog = Catalog.open(f"sqlite:///{home / 'catalog.sqlite3'}")
    try:
        with catalog.engine.connect() as conn:
            return [r[0] for r in conn.execute(select(Recording.id).order_by(Recording.id))]
    finally:
        catalog.close()


def _center_list(center: RunningService, what: str, user: str,
                 station: str) -> list[dict[str, Any]]:
    out = ok_json(center.cli("center", what, "--station", station, "--json", user=user))
    return list(out[what])


def test_the_center_shows_each_person_only_what_their_units_and_clearance_allow(
        world: World) -> None:
    c_home, d_home = world.station("station-c"), world.station("station-d")
    secret_rec, *c_rest = _recording_ids(c_home)
    d_rec = _recording_ids(d_home)[0]
    with serving(c_home) as c, serving(d_home) as d, serving(world.center_home) as center:
        secret = make_case(c, "邵城管罚〔2026〕第101号", "城东中队", "个人隐私", link=secret_rec)
        make_case(c, "邵城管罚〔2026〕第102号", "城东中队", "none")
        make_case(d, "邵城管罚〔2026〕第103号", "城西中队", "none", link=d_rec)
        for station, home in ((c, c_home), (d, d_home)):
            publish(station, home)
        seen = {user: {st: _center_list(center, "cases", user, st)
                       for st in ("station-c", "station-d")}
                for user in ("clerk", "clerk2", "supervisor")}
        recs = {user: {r["recording_id"] for r in _center_list(center, "recordings", user,
                                                                 "station-c")}
                for user in ("clerk", "clerk2")}
        linked = _center_list(center, "recordings", "clerk2", "station-d")
    numbers = {u: sorted(c["number"] for st in v.values() for c in st) for u, v in seen.items()}
    assert numbers["clerk2"] == ["邵城管罚〔2026〕第103号"]  # 城西中队 only, no clearance
    assert numbers["clerk"] == numbers["supervisor"] == [
        "邵城管罚〔2026〕第101号", "邵城管罚〔2026〕第102号", "邵城管罚〔2026〕第103号"]
    assert secret_rec in recs["clerk"] and secret_rec not in recs["clerk2"]
    assert set(c_rest) <= recs["clerk2"]  # unlinked footage: no case hides it
    assert [r["cases"] for r in linked if r["recording_id"] == d_rec] == [
        ["邵城管罚〔2026〕第103号"]]
    reads = [r for r in audit_rows(world.center_url, "read.center.cases")
             if r.actor == "user:clerk2"]
    assert reads and all(f"case:{secret}" not in r.subjects for r in reads)


def test_the_center_plays_footage_read_back_from_the_object_store_and_proven(
        world: World) -> None:
    home = world.station("station-e")
    segs = rendered_segments(home)
    (video, vsegs), (secret, ssegs) = sorted(segs.items(), key=lambda kv: -len(kv[1]))[:2]
    assert len(vsegs) >= 2, {k: len(v) for k, v in segs.items()}
    local = ContentStore(root=home / "store")
    center_store = ContentStore(root=world.center_home / "store")
    impostor = vsegs[1]
    with serving(home) as st, serving(world.center_home) as center:
        make_case(st, "邵城管罚〔2026〕第105号", "城东中队", "个人隐私", link=secret)
        publish(st, home)
        # Segment 1 of the video, after the upload: a newer object version with other
        # bytes of the same size (a version can be added under a lock; it cannot
        # replace the locked one).
        world.endpoint.client().put_object(
            Bucket=world.bucket, Key=f"station-e/blobs/{impostor.blake3[:2]}/"
            f"{impostor.blake3[2:4]}/{impostor.blake3}", Body=bytes(impostor.size))
        newest = world.endpoint.client().get_object(
            Bucket=world.bucket, Key=f"station-e/blobs/{impostor.blake3[:2]}/"
            f"{impostor.blake3[2:4]}/{impostor.blake3}")["Body"].read()
        assert newest == bytes(impostor.size)  # what a plain GET of the key gives now
        base = f"/center/recordings/station-e/{video}/segments"
        whole, part, forged = api_as("clerk", center.socket,
                                     {"method": "GET", "path": f"{base}/0"},
                                     {"method": "GET", "path": f"{base}/0",
                                      "headers": {"Range": "bytes=100-4195"}},
                                     {"method": "GET", "path": f"{base}/1"})
        [hidden] = api_as("clerk2", center.socket, {
            "method": "GET", "path": f"/center/recordings/station-e/{secret}/segments/0"})
        [cleared] = api_as("clerk", center.socket, {
            "method": "GET", "path": f"/center/recordings/station-e/{secret}/segments/0"})
        clean = ok_json(center.cli("center", "sweep", "--station", "station-e", "--sample",
                                   "1000", "--json", user="admin"))
        original = _plant_version(world, "station-e", home)  # a newer version, other bytes
        swept = ok_json(center.cli("center", "sweep", "--station", "station-e", "--sample",
                                   "1000", "--json", user="admin"), 1)
    # The sweep draws from every original and manifest the station's events named.
    assert clean["checked"] == swept["checked"] == _blob_count(home) and not clean["findings"]
    assert [(f["code"], f["subject"]) for f in swept["findings"]] == [
        ("E_FIXITY_ALTERED", f"remote:station-e/{original}")]
    [run] = [e for e in audit_rows(world.center_url, "fixity.remote")
             if e.details["findings"] == 1 and e.actor == "user:admin"]
    assert run.details["codes"] == ["E_FIXITY_ALTERED"]
    first = local.path_for(vsegs[0].blake3).read_bytes()
    assert whole.status == 200 and whole.body == first
    assert whole.headers["x-evidock-blake3"] == vsegs[0].blake3
    assert part.status == 206 and part.body == first[100:4196]
    # The impostor is passed over; the locked true copy is read, proven and sent.
    assert forged.status == 200 and forged.body == local.path_for(
        impostor.blake3).read_bytes()
    assert center_store.path_for(impostor.blake3).read_bytes() == forged.body
    assert hidden.status == 403 and hidden.code == "E_FORBIDDEN"
    assert cleared.status == 200 and cleared.body == local.path_for(
        ssegs[0].blake3).read_bytes()
    plays = [r for r in audit_rows(world.center_url, "read.center.play")]
    assert [(r.actor, r.details["segment"], r.details["range"]) for r in plays] == [
        ("user:clerk", 0, [0, len(first)]), ("user:clerk", 0, [100, 4196]),
        ("user:clerk", 1, [0, impostor.size]), ("user:clerk", 0, [0, ssegs[0].size])]


def _plant_version(world: World, station: str, home: Path) -> str:
    """A newer object version, of the same size, at the key of one of ``station``'s
    originals (a lock keeps the true version, not the key); the original's BLAKE3."""
    from archive.catalog import Recording

    catalog = Catalog.open(f"sqlite:///{home / 'catalog.sqlite3'}")
    try:
        with Session(catalog.engine) as s:
            rec = s.exec(sselect(Recording).order_by(Recording.id)).first()
    finally:
        catalog.close()
    assert rec is not None
    world.endpoint.client().put_object(
        Bucket=world.bucket, Key=f"{station}/blobs/{rec.blake3[:2]}/{rec.blake3[2:4]}/"
        f"{rec.blake3}", Body=bytes(rec.size))
    return rec.blake3


def _blob_count(home: Path) -> int:
    """Originals of distinct recordings plus ok renditions' manifests, at the station."""
    from archive.catalog import Recording

    catalog = Catalog.open(f"sqlite:///{home / 'catalog.sqlite3'}")
    try:
        with Session(catalog.engine) as s:
            recordings = len(s.exec(sselect(Recording)).all())
            manifests = len(s.exec(sselect(Rendition).where(
                Rendition.status == "ok")).all())
    finally:
        catalog.close()
    return recordings + manifests
