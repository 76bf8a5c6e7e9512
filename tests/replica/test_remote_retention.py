"""Remote retention: the plan's dates and holds on the WORM copies, against a real server.

The pure part (:func:`wanted_locks`) and the catalog reads (blobs and holds per
recording) need no server. The rest runs against SeaweedFS (the server that proves
uploads) and, for the lock rules, Ceph RGW too: a retain-until is only ever moved later
(evidock never even asks to shorten it, and the server refuses when asked directly), a
legal hold blocks deleting a version, and once released the version is deletable only
after its retain-until has passed.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from evidock_testing import events_of, migrated, open_services, stored_blob, write_agency_config
from s3server import S3Endpoint, WeedServer
from service_support import serving
from sqlmodel import Session, col, select
from storage_support import (
    T0,
    AddBlob,
    client_for,
    make_bucket,
    pseudo_random,
    queue_for,
    real_now,
    retain,
)

from archive.audit.log import AuditLog
from archive.bindings import bind
from archive.catalog import Catalog, Device, DockSession, Recording
from archive.catalog.models import Derivative, Rendition, Segment
from archive.replica.objectstore import ObjectStore, _ceil_second
from archive.replica.queue import UploadEvent, UploadItem
from archive.store import ContentStore
from config import load_settings
from evidock.jobs import execute
from evidock.wiring import Services
from records.models import Case, CaseLink
from retention.models import Hold, HoldRelease
from retention.policy import Decision
from retention.remote import (
    W_REMOTE_HOLD_FOREIGN,
    RemoteRetention,
    WantedLock,
    blobs_by_recording,
    holds_by_recording,
    wanted_locks,
)

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
H = timedelta(days=36_500)
ACTOR = "system:scheduler"


def keep(rid: str, until: datetime | None, rule: str = "base") -> Decision:
    return Decision(rid, "keep", rule, "test", until)


def delete(rid: str, until: datetime) -> Decision:
    return Decision(rid, "delete", "base", "test", until)


# ------------------------------------------------------------------ pure


def test_time_based_keep_locks_until_its_date() -> None:
    until = NOW + timedelta(days=30)
    assert wanted_locks([keep("R1", until)], {}, {"R1": ["a", "b"]}, NOW) == {
        "a": WantedLock(until, until, False, ("R1",)),
        "b": WantedLock(until, until, False, ("R1",))}


def test_indefinite_keep_locks_far_ahead_and_renews_at_half() -> None:
    [lock] = wanted_locks([keep("R1", None, "permanent_mark")], {}, {"R1": ["a"]},
                          NOW).values()
    assert (lock.retain_until, lock.renew_below, lock.legal_hold) == (NOW + H, NOW + H / 2,
                                                                      False)
    short = wanted_locks([keep("R1", None, "case_open")], {}, {"R1": ["a"]}, NOW,
                         indefinite=timedelta(days=365))["a"]
    assert short.retain_until == NOW + timedelta(days=365)


def test_an_ended_period_wants_nothing_and_a_hold_wants_everything() -> None:
    ended = delete("R1", NOW - timedelta(days=1))
    assert wanted_locks([ended], {}, {"R1": ["a"]}, NOW) == {
        "a": WantedLock(None, None, False, ("R1",))}
    held = wanted_locks([keep("R1", NOW + timedelta(days=5), "hold")], {"R1": ("H1",)},
                        {"R1": ["a"]}, NOW)["a"]
    assert (held.retain_until, held.legal_hold) == (NOW + H, True)
    # a held recording the plan did not cover is still held; an empty hold list is none
    assert wanted_locks([], {"R2": ("H1",), "R3": ()}, {"R2": ["b"], "R3": ["c"]},
                        NOW) == {"b": WantedLock(NOW + H, NOW + H / 2, True, ("R2",))}


def test_a_shared_blob_gets_the_longest_date_and_any_hold() -> None:
    d30, d90 = NOW + timedelta(days=30), NOW + timedelta(days=90)
    decisions = [keep("R1", d30), keep("R2", d90), delete("R3", NOW)]
    out = wanted_locks(decisions, {"R3": ("H9",)}, {"R1": ["s", "a"], "R2": ["s"],
                                                    "R3": ["s"]}, NOW)
    assert out["s"] == WantedLock(NOW + H, NOW + H / 2, True, ("R1", "R2", "R3"))
    assert out["a"] == WantedLock(d30, d30, False, ("R1",))
    assert wanted_locks(decisions[:2], {}, {"R1": ["s"], "R2": ["s"]}, NOW)["s"] == \
        WantedLock(d90, d90, False, ("R1", "R2"))


def test_wanted_locks_refuses_a_naive_now() -> None:
    with pytest.raises(ValueError):
        wanted_locks([], {}, {}, NOW.replace(tzinfo=None))


# ------------------------------------------------------------------ catalog reads


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[Catalog]:
    """The whole catalog (recordings, renditions, cases, holds, uploads), not only the
    uploader's tables: overrides conftest's ``catalog`` (``add_blob`` uses this one)."""
    cat = Catalog.open(migrated(f"sqlite:///{tmp_path / 'catalog.sqlite3'}"))
    yield cat
    cat.close()


def add_blob_to(svc: Services, seed: int) -> str:
    """Bytes into the services' content store and catalog, as an offload would."""
    return stored_blob(svc.store, svc.catalog, pseudo_random(1000, seed), at=T0)[0]


def add_recording(catalog: Catalog, b3: str, *, officer: str = "123456",
                  ingested: datetime = T0) -> str:
    rec_id, session = uuid.uuid4().hex, uuid.uuid4().hex
    with catalog.transaction() as s:
        if s.get(Device, "ZFY0001") is None:
            s.add(Device(serial="ZFY0001", first_seen=T0))
        s.add(DockSession(id=session, station_id="st", device_serial="ZFY0001",
                          officer_id=officer, camera_model="generic-dcim", source="/x",
                          started_at=T0, ended_at=T0, outcome="completed"))
        s.add(Recording(id=rec_id, session_id=session, device_serial="ZFY0001",
                        officer_id=officer, original_path=rec_id.encode(),
                        original_display=rec_id, kind="video", size=1, blake3=b3,
                        sha256="0" * 64, source_mtime_ns=0, ingested_at=ingested,
                        status="ingested"))
    return rec_id


def test_blobs_and_holds_per_recording_from_the_catalog(catalog: Catalog,
                                                        add_blob: AddBlob) -> None:
    orig, seg0, seg1, manifest, salvage, other = (add_blob(seed=i).blake3 for i in range(6))
    r1 = add_recording(catalog, orig, officer="111111")
    r2 = add_recording(catalog, other, officer="222222")
    r3 = add_recording(catalog, other, officer="333333")  # shares r2's blob
    with catalog.transaction() as s:
        s.add(Rendition(id="ren", recording_id=r1, status="ok", code="R_REMUX",
                        source_blake3=orig, manifest_blake3=manifest, created_at=T0))
        s.add(Rendition(id="bad", recording_id=r1, status="failed", code="E_X",
                        source_blake3=orig, created_at=T0))
        for i, b3 in enumerate((seg0, seg1)):
            s.add(Segment(rendition_id="ren", index=i, name=f"{i}.mp4", start_us=i,
                          end_us=i + 1, size=1, blake3=b3))
        s.add(Derivative(id="d1", recording_id=r1, blake3=salvage, label="NOT the original",
                         status="ok", code="I_X", created_at=T0))
        s.add(Case(id="C1", number="公〔2026〕第1号", case_type="行政检查", unit="u",
                   created_by="x", created_at=T0))
        s.add(CaseLink(id=1, case_id="C1", recording_id=r1, action="link", actor="x",
                       reason="r", at=T0))
        s.add(CaseLink(id=2, case_id="C1", recording_id=r2, action="link", actor="x",
                       reason="r", at=T0))
        for hid, scope, target in (("H1", "case", "C1"), ("H2", "officer", "333333"),
                                   ("H3", "recording", r2), ("H4", "recording", r1)):
            s.add(Hold(id=hid, scope=scope, target=target, reason="r", placed_by="x",
                       placed_at=T0))
        audit = AuditLog(catalog=catalog)  # r2's unlink and release, each with its event
        for row in (CaseLink(id=3, case_id="C1", recording_id=r2, action="unlink", unlinks=2,
                             actor="x", reason="r", at=T0),
                    HoldRelease(hold_id="H3", released_by="y", reason="r", at=T0)):
            bind(s, audit, row, actor="user:x", action="test.free", subjects=[], details={},
                 at=T0)
        # r1's, written into the catalog behind evidock's back: they free nothing
        s.add(CaseLink(id=4, case_id="C1", recording_id=r1, action="unlink", unlinks=1,
                       actor="x", reason="r", at=T0))
        s.add(HoldRelease(hold_id="H4", released_by="y", reason="r", at=T0))
    assert blobs_by_recording(catalog) == {
        r1: frozenset({orig, seg0, seg1, manifest, salvage}), r2: frozenset({other}),
        r3: frozenset({other})}
    # r2: unlinked from the held case and its own hold released; r3 through its officer
    assert holds_by_recording(catalog) == {r1: ("H1", "H4"), r3: ("H2",)}


# ------------------------------------------------------------------ against the server


class RecordingClient:
    """The uploader's boto3 client, with every call it is asked to make written down."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr

        def call(**params: Any) -> Any:
            self.calls.append((name, params))
            return attr(**params)
        return call

    def made(self, op: str) -> list[dict[str, Any]]:
        return [params for name, params in self.calls if name == op]


@pytest.fixture
def recorded(weed: WeedServer, bucket: str) -> ObjectStore:
    return ObjectStore(client=RecordingClient(client_for(weed.endpoint)), bucket=bucket)



def _events(catalog: Catalog, kind: str) -> list[UploadEvent]:
    with Session(catalog.engine) as s:
        return list(s.exec(select(UploadEvent).where(UploadEvent.event == kind)
                           .order_by(col(UploadEvent.id))))


def _uploaded(catalog: Catalog, store: ContentStore, objects: ObjectStore,
              add_blob: AddBlob, n: int) -> tuple[list[str], datetime]:
    blobs = [add_blob(seed=100 + i).blake3 for i in range(n)]
    queue = queue_for(catalog, store, objects)
    uploaded_until = retain(days=1)
    queue.enqueue_missing(now=T0, retain_until=uploaded_until)
    assert {i.state for i in queue.run_due(now=T0).items} == {"verified"}
    return blobs, _ceil_second(uploaded_until)


@dataclass
class Synced:
    """Five uploaded copies after one sync of the plan below (R4 held by H1)."""

    catalog: Catalog
    objects: ObjectStore
    client: RecordingClient
    sync: RemoteRetention
    blobs: dict[str, list[str]]
    a: str
    b: str
    c: str
    d: str
    shared: str
    now: datetime
    uploaded_until: datetime
    first: dict[str, Any]

    @property
    def d30(self) -> datetime:
        return self.now + timedelta(days=30)

    def plan(self, r1_until: datetime | None = None) -> list[Decision]:
        return [keep("R1", r1_until or self.d30), keep("R2", None, "permanent_mark"),
                delete("R3", self.now - timedelta(days=1)),
                keep("R4", self.now + timedelta(days=20))]

    def run(self, plan: list[Decision], holds: dict[str, tuple[str, ...]], *,
            at: datetime | None = None, full: bool = False) -> dict[str, Any]:
        at = at or self.now
        wanted = wanted_locks(plan, holds, self.blobs, at)
        return self.sync.sync(wanted, now=at, full=full).to_dict()

    def until(self, b3: str) -> datetime | None:
        return self.objects.retention(self.objects.key_for(b3))


@pytest.fixture
def synced(catalog: Catalog, store: ContentStore, recorded: ObjectStore,
           add_blob: AddBlob) -> Synced:
    (a, b, c, d, shared), uploaded_until = _uploaded(catalog, store, recorded, add_blob, 5)
    sync = RemoteRetention(catalog=catalog, objects=recorded,
                           audit=AuditLog(catalog=catalog), actor=ACTOR)
    blobs = {"R1": [a, shared], "R2": [b], "R3": [c, shared], "R4": [d]}
    st = Synced(catalog, recorded, recorded.client, sync, blobs, a, b, c, d, shared,
                real_now(), uploaded_until, {})
    st.first = st.run(st.plan(), {"R4": ("H1",)})
    return st


def test_sync_extends_to_the_plan_and_places_holds(synced: Synced) -> None:
    st = synced
    assert (st.first["objects"], st.first["extended"], st.first["held"],
            st.first["released"]) == (5, 4, 1, 0)
    assert st.until(st.a) == st.until(st.shared) == _ceil_second(st.d30)
    assert st.until(st.b) == st.until(st.d) == _ceil_second(st.now + H)
    assert st.until(st.c) == st.uploaded_until  # its period ended: left to run out
    assert st.objects.legal_hold(st.objects.key_for(st.d)) is True
    assert [e.details["after"] for e in events_of(st.catalog, "remote.legal_hold")] == ["on"]
    extended = events_of(st.catalog, "remote.retention")
    assert sorted(e.subjects[0] for e in extended) == sorted([st.a, st.b, st.d, st.shared])
    assert {e.actor for e in extended} == {ACTOR}
    [shared_event] = [e for e in extended if e.subjects[0] == st.shared]
    assert shared_event.subjects[1:] == ["R1", "R3"]
    assert len(_events(st.catalog, "retention")) == 4
    with Session(st.catalog.engine) as s:
        item = s.get(UploadItem, st.a)
    assert item is not None and item.retain_until == _ceil_second(st.d30)


def test_an_unchanged_plan_asks_the_store_nothing(synced: Synced) -> None:
    calls = len(synced.client.calls)
    again = synced.run(synced.plan(), {"R4": ("H1",)})
    assert (again["asked"], again["extended"], again["held"]) == (0, 0, 0)
    assert len(synced.client.calls) == calls  # the recorded dates already cover the plan


def test_a_shorter_plan_is_never_asked_for_and_the_server_refuses_it(synced: Synced) -> None:
    st = synced
    ten_days = _ceil_second(st.now + timedelta(days=10))
    full = st.run(st.plan(r1_until=ten_days), {"R4": ("H1",)}, full=True)
    assert full["extended"] == 0 and full["asked"] == 5
    assert st.client.made("get_object_retention")
    assert not [p for p in st.client.made("put_object_retention")
                if p["Retention"]["RetainUntilDate"] < _ceil_second(st.d30)]
    with pytest.raises(ClientError) as info:
        st.client.put_object_retention(
            Bucket=st.objects.bucket, Key=st.objects.key_for(st.a),
            Retention={"Mode": "COMPLIANCE", "RetainUntilDate": ten_days})
    assert info.value.response["Error"]["Code"] == "AccessDenied"
    assert st.until(st.a) == _ceil_second(st.d30)


def test_a_released_hold_goes_off_and_a_half_spent_window_is_renewed(synced: Synced) -> None:
    st = synced
    released = st.run(st.plan(), {})
    assert (released["released"], released["extended"]) == (1, 0)
    assert st.objects.legal_hold(st.objects.key_for(st.d)) is False
    assert [e.details["after"] for e in events_of(st.catalog, "remote.legal_hold")] == \
        ["on", "off"]
    assert st.until(st.d) == _ceil_second(st.now + H)  # the far date stays
    later = st.now + timedelta(days=18_300)  # less than half of the window is left
    renewed = st.run(st.plan(), {}, at=later)
    assert renewed["extended"] == 1 and st.until(st.b) == _ceil_second(later + H)


def test_a_hold_evidock_did_not_place_is_never_cleared(
        catalog: Catalog, store: ContentStore, objects: ObjectStore, add_blob: AddBlob) -> None:
    [blob], _ = _uploaded(catalog, store, objects, add_blob, 1)
    key = objects.key_for(blob)
    objects.client.put_object_legal_hold(Bucket=objects.bucket, Key=key,
                                         LegalHold={"Status": "ON"})
    sync = RemoteRetention(catalog=catalog, objects=objects, audit=AuditLog(catalog=catalog),
                           actor=ACTOR)
    wanted = wanted_locks([keep("R1", real_now() + timedelta(days=2))], {}, {"R1": [blob]},
                          real_now())
    assert sync.sync(wanted, now=real_now()).findings == []  # not asked: nothing recorded
    report = sync.sync(wanted, now=real_now(), full=True)
    assert [f["code"] for f in report.findings] == [W_REMOTE_HOLD_FOREIGN]
    assert report.released == 0 and objects.legal_hold(key) is True
    assert events_of(catalog, "remote.legal_hold") == []


def test_a_copy_not_yet_uploaded_gets_the_wanted_date_for_its_upload(
        catalog: Catalog, store: ContentStore, objects: ObjectStore, add_blob: AddBlob) -> None:
    blob = add_blob(seed=7).blake3
    queue = queue_for(catalog, store, objects)
    queue.enqueue_missing(now=T0, retain_until=retain(days=1))
    want = real_now() + timedelta(days=40)
    sync = RemoteRetention(catalog=catalog, objects=objects, audit=AuditLog(catalog=catalog),
                           actor=ACTOR)
    report = sync.sync(wanted_locks([keep("R1", want)], {}, {"R1": [blob]}, real_now()),
                       now=real_now())
    assert (report.queued_raised, report.objects) == (1, 0)
    [outcome] = queue.run_due(now=T0).items
    assert outcome.state == "verified"
    assert objects.retention(objects.key_for(blob)) == _ceil_second(want)


def test_raise_retention_reads_first_and_keeps_a_later_date(recorded: ObjectStore) -> None:
    objects, client = recorded, recorded.client
    key = "blobs/aa/bb/raise"
    version = client.put_object(Bucket=objects.bucket, Key=key, Body=b"x",
                                ObjectLockMode="COMPLIANCE",
                                ObjectLockRetainUntilDate=retain(days=5))["VersionId"]
    current = objects.retention(key, version_id=version)
    assert current is not None
    change = objects.raise_retention(key, current - timedelta(days=2), version_id=version)
    assert not change.changed and change.after == current
    # within the renewal margin: left alone although the target is later
    change = objects.raise_retention(key, current + timedelta(days=10), version_id=version,
                                     renew_below=current - timedelta(hours=1))
    assert not change.changed
    assert client.made("put_object_retention") == []
    later = _ceil_second(current + timedelta(days=10))
    change = objects.raise_retention(key, later, version_id=version)
    assert (change.before, change.after, change.changed) == (current, later, True)
    assert objects.retention(key, version_id=version) == later


@pytest.fixture(params=["weed", "ceph"])
def endpoint(request: pytest.FixtureRequest) -> S3Endpoint:
    server = request.getfixturevalue(request.param)
    return server.endpoint  # type: ignore[no-any-return]


def test_a_held_version_is_deletable_only_when_released_and_expired(
        endpoint: S3Endpoint) -> None:
    objects = ObjectStore(client=client_for(endpoint), bucket=make_bucket(endpoint))
    client = objects.client

    def put(key: str, until: datetime, **extra: Any) -> str:
        return str(client.put_object(Bucket=objects.bucket, Key=key, Body=b"evidence",
                                     ObjectLockMode="COMPLIANCE",
                                     ObjectLockRetainUntilDate=until, **extra)["VersionId"])

    def delete_code(key: str, version: str) -> str:
        try:
            client.delete_object(Bucket=objects.bucket, Key=key, VersionId=version)
        except ClientError as exc:
            return str(exc.response["Error"]["Code"])
        return "deleted"

    # Retained for a day: a hold on, then off again, leaves the retention in force.
    long_key = "blobs/cc/dd/day"
    long_version = put(long_key, retain(days=1))
    assert objects.ensure_legal_hold(long_key, True, version_id=long_version).changed
    assert delete_code(long_key, long_version) == "AccessDenied"  # hold and retention
    assert objects.ensure_legal_hold(long_key, False, version_id=long_version).changed
    assert delete_code(long_key, long_version) == "AccessDenied"  # retention alone

    # Held, with no retention date at all (the bucket has no default retention): the
    # hold alone refuses the delete; released, the version deletes. (No waiting for a
    # retain-until to pass: the server's clock would decide, not a condition.)
    key = "blobs/cc/dd/held"
    version = str(client.put_object(Bucket=objects.bucket, Key=key, Body=b"evidence",
                                    ObjectLockLegalHoldStatus="ON")["VersionId"])
    assert not objects.ensure_legal_hold(key, True, version_id=version).changed
    assert delete_code(key, version) == "AccessDenied"  # the hold alone
    assert objects.ensure_legal_hold(key, False, version_id=version).changed
    assert delete_code(key, version) == "deleted"
    versions = client.list_object_versions(Bucket=objects.bucket, Prefix=key)
    assert [v["VersionId"] for v in versions.get("Versions", [])] == []


def test_the_scheduler_job_and_the_cli_apply_the_retention_plan(
        tmp_path: Path, weed: WeedServer, bucket: str) -> None:
    """The whole chain: the executor's plan and the holds from the catalog, the upload
    job, then the remote-retention job (scheduler) and `evidock upload sync-retention`."""
    env = {"EVIDOCK_HOME": str(tmp_path / "home"), "EVIDOCK_UPLOAD__ENABLED": "true",
           "EVIDOCK_UPLOAD__ENDPOINT_URL": weed.endpoint.url,
           "EVIDOCK_UPLOAD__BUCKET": bucket, "EVIDOCK_UPLOAD__RETENTION_DAYS": "1",
           "EVIDOCK_UPLOAD__ACCESS_KEY_ID": weed.endpoint.access_key,
           "EVIDOCK_UPLOAD__SECRET_ACCESS_KEY": weed.endpoint.secret_key}
    write_agency_config(tmp_path / "home")  # the service's users (the admin syncs)
    svc = open_services(load_settings(environ=env))
    try:
        now = real_now()
        plain, held = (add_blob_to(svc, seed) for seed in (1, 2))
        r_plain = add_recording(svc.catalog, plain, ingested=now)
        r_held = add_recording(svc.catalog, held, ingested=now)
        with svc.catalog.transaction() as s:
            s.add(Hold(id="H1", scope="recording", target=r_held, reason="r",
                       placed_by="legal", placed_at=now))
        assert execute("upload", svc).counts["verified"] == 2
        result = execute("remote_retention", svc)
        assert result.outcome == "ok", result
        assert (result.counts["extended"], result.counts["held"]) == (2, 1)
        objects = svc.upload_queue().objects
        [decision] = [d for d in svc.retention().decide(now) if d.recording_id == r_plain]
        assert decision.retain_until is not None
        assert objects.retention(objects.key_for(plain)) == _ceil_second(
            decision.retain_until)
        assert objects.legal_hold(objects.key_for(held)) is True
        far = objects.retention(objects.key_for(held))
        assert far is not None and far > now + timedelta(days=36_000)
        assert [e.details["outcome"] for e in events_of(svc.catalog, "scheduler.remote_retention")
                ] == ["ok"]
    finally:
        svc.close()
    # The station service has the object store's credentials; the admin only asks.
    with serving(tmp_path / "home", env=env) as station:
        run = station.cli("upload", "sync-retention", "--full", "--json", user="admin")
        again = station.cli("upload", "run", "--json", user="admin")
        status = station.cli("upload", "status", "--json", user="admin")
        refused = station.cli("upload", "status", "--json", user="supervisor")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout) == {"enqueued": 0, "attempted": 0, "verified": 0,
                                        "queued": 0, "failed": 0, "problems": []}
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["counts"]["verified"] == 2
    assert refused.returncode == 3  # upload.run is the admin's
    assert json.loads(refused.stdout)["error"]["code"] == "E_FORBIDDEN"
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert (out["outcome"], out["asked"], out["extended"], out["held"]) == ("ok", 2, 0, 0)
    catalog = Catalog.open(load_settings(environ=env).catalog_url)
    try:
        runs = events_of(catalog, "scheduler.remote_retention")
    finally:
        catalog.close()
    assert [(e.actor, e.seq) for e in runs][-1] == ("user:admin", out["audit_seq"])
