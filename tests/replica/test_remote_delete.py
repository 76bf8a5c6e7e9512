"""Retention removes the remote copies whose lock has run out, against real servers.

:meth:`ObjectStore.delete_expired` deletes exactly one version, never without a version
id, only after reading its retention and legal hold; the server has the last word
(SeaweedFS and Ceph RGW). The retention executor records the copies in the tombstone
before deleting anything, deletes the unlocked one, keeps the locked and the held one
with their reasons (upload events, one audit event per deletion), and a later run
deletes a copy once its hold is released or the store is back. The upload queue never
uploads a blob retention removed.

A lock that has run out cannot be had without waiting (the server refuses a past
retain-until): the "expired" copy is a version put without any retention (the bucket
has no default retention) and recorded as uploaded with a retain-until in the past.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from evidock_testing import store_bytes, write_agency_config
from s3server import S3Endpoint, WeedServer
from sqlmodel import Session, col, select
from storage_support import T0, client_for, make_bucket, pseudo_random, real_now, retain

from archive.audit.log import AuditEvent
from archive.catalog import Blob, Device, DockSession, Recording
from archive.catalog.models import Tombstone
from archive.replica.objectstore import (
    ALREADY_ABSENT,
    NO_VERSION_ID,
    ObjectStore,
    RemoteDeletion,
    _ceil_second,
)
from archive.replica.queue import I_UPLOAD_WITHDRAWN, UploadEvent, UploadItem, UploadQueue
from config import load_settings
from evidock.wiring import Services
from integrity.errors import Refused
from records.permissions import Actor
from retention.actions import RunReport
from retention.executor import I_REMOTE_DELETED, W_REMOTE_DELETE_DEFERRED, RetentionExecutor

# ------------------------------------------------------------------ delete_expired


@pytest.fixture(params=["weed", "ceph"])
def endpoint(request: pytest.FixtureRequest) -> S3Endpoint:
    server = request.getfixturevalue(request.param)
    return server.endpoint  # type: ignore[no-any-return]


@dataclass
class Watched:
    """An ObjectStore on a fresh locked bucket, with the S3 operations it sent."""

    objects: ObjectStore
    ops: list[str]

    def put(self, key: str, body: bytes = b"evidence", **lock: Any) -> str:
        return str(self.objects.client.put_object(Bucket=self.objects.bucket, Key=key,
                                                  Body=body, **lock)["VersionId"])

    def versions(self, key: str) -> tuple[list[str], list[str]]:
        """(version ids, delete-marker ids) under ``key``."""
        got = self.objects.client.list_object_versions(Bucket=self.objects.bucket, Prefix=key)
        return ([v["VersionId"] for v in got.get("Versions", [])],
                [m["VersionId"] for m in got.get("DeleteMarkers", [])])


@pytest.fixture
def watched(endpoint: S3Endpoint) -> Watched:
    client, ops = client_for(endpoint), []
    client.meta.events.register("before-call.s3",
                                lambda model, **_: ops.append(model.name))
    return Watched(ObjectStore(client=client, bucket=make_bucket(endpoint)), ops)


def test_delete_expired_refuses_without_a_version_id(watched: Watched) -> None:
    key = "blobs/aa/bb/no-version"
    version = watched.put(key)
    for missing in (None, ""):
        watched.ops.clear()
        done = watched.objects.delete_expired(key, version_id=missing, now=real_now())
        assert (done.deleted, done.reason, done.version_id) == (False, NO_VERSION_ID, None)
        assert "delete marker" in done.reason
        assert watched.ops == []  # the store was not even asked
    assert watched.versions(key) == ([version], [])  # no delete marker was added
    with pytest.raises(ValueError):
        watched.objects.delete_expired(key, version_id=version,
                                       now=real_now().replace(tzinfo=None))


def test_delete_expired_reads_the_lock_then_deletes_exactly_that_version(
        watched: Watched) -> None:
    key = "blobs/aa/bb/two-versions"
    old, new = watched.put(key, b"first"), watched.put(key, b"second")
    watched.ops.clear()
    done = watched.objects.delete_expired(key, version_id=old, now=real_now())
    assert (done.deleted, done.reason, done.retain_until) == (True, "deleted", None)
    assert watched.ops == ["GetObjectRetention", "GetObjectLegalHold", "DeleteObject",
                           "HeadObject"]
    assert watched.versions(key) == ([new], [])
    again = watched.objects.delete_expired(key, version_id=old, now=real_now())
    assert (again.deleted, again.reason) == (True, ALREADY_ABSENT)
    assert watched.versions(key) == ([new], [])


def test_delete_expired_keeps_a_locked_or_held_version(watched: Watched) -> None:
    locked_key, held_key = "blobs/aa/bb/locked", "blobs/aa/bb/held"
    until = _ceil_second(retain(days=1))
    locked = watched.put(locked_key, ObjectLockMode="COMPLIANCE",
                         ObjectLockRetainUntilDate=until)
    held = watched.put(held_key, ObjectLockLegalHoldStatus="ON")
    watched.ops.clear()

    kept = watched.objects.delete_expired(locked_key, version_id=locked, now=real_now())
    assert (kept.deleted, kept.retain_until) == (False, until)
    assert kept.reason == f"retained until {until.isoformat()}"
    on_hold = watched.objects.delete_expired(held_key, version_id=held, now=real_now())
    assert (on_hold.deleted, on_hold.reason) == (False, "legal hold on")
    assert "DeleteObject" not in watched.ops

    # Our clock past the lock, the server's not: it is asked, refuses, nothing goes.
    refused = watched.objects.delete_expired(locked_key, version_id=locked,
                                             now=until + timedelta(days=1))
    assert watched.ops[-1] == "DeleteObject"
    assert not refused.deleted and "AccessDenied" in refused.reason
    assert watched.versions(locked_key) == ([locked], [])
    assert watched.versions(held_key) == ([held], [])


# ------------------------------------------------------------------ the executor


class Clock:
    """Real time (Object Lock dates are the server's), one second further each reading."""

    def __init__(self) -> None:
        self.now = real_now()

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@dataclass
class Station:
    svc: Services
    clock: Clock
    ex: RetentionExecutor
    objects: ObjectStore  # the executor's own, built from the settings
    queue: UploadQueue
    asked: list[tuple[str, str]]  # (operation, key) the executor sent to the store

    def who(self, name: str) -> Actor:
        return self.svc.gate().by_name(name)

    def recording(self, seed: int) -> tuple[str, str]:
        """A recording ingested 200 days ago (due for deletion), its blob stored."""
        data = pseudo_random(2000, seed)
        b3, sha = store_bytes(self.svc.store, data)
        rec_id, session = uuid.uuid4().hex, uuid.uuid4().hex
        ingested = real_now() - timedelta(days=200)
        with self.svc.catalog.transaction() as s:
            if s.get(Device, "ZFY0001") is None:
                s.add(Device(serial="ZFY0001", first_seen=T0))
            s.add(Blob(blake3=b3, sha256=sha, size=len(data), stored_at=ingested))
            s.add(DockSession(id=session, station_id="st", device_serial="ZFY0001",
                              officer_id="123456", camera_model="generic-dcim", source="/x",
                              started_at=ingested, ended_at=ingested, outcome="completed"))
            s.add(Recording(id=rec_id, session_id=session, device_serial="ZFY0001",
                            officer_id="123456", original_path=rec_id.encode(),
                            original_display=rec_id, kind="video", size=len(data),
                            blake3=b3, sha256=sha, source_mtime_ns=0, ingested_at=ingested,
                            status="ingested"))
        return rec_id, b3

    def put_by_hand(self, b3: str, **lock: Any) -> str:
        """Put the blob without retention (and maybe a legal hold) and record it as a
        verified upload whose lock ran out yesterday; its version id."""
        data = self.svc.store.path_for(b3).read_bytes()
        checksum = base64.b64encode(hashlib.sha256(data).digest()).decode()
        key, now = self.objects.key_for(b3), self.clock()
        resp = self.objects.client.put_object(
            Bucket=self.objects.bucket, Key=key, Body=data, ChecksumAlgorithm="SHA256",
            ChecksumSHA256=checksum, **lock)
        version, ran_out = str(resp["VersionId"]), now - timedelta(days=1)
        with self.svc.catalog.transaction() as s:
            s.add(UploadItem(blake3=b3, key=key, state="verified", attempts=1,
                             next_attempt_at=now, retain_until=ran_out,
                             remote_checksum=checksum, version_id=version, verified_at=now,
                             enqueued_at=now, updated_at=now))
            s.add(UploadEvent(blake3=b3, key=key, bucket=self.objects.bucket,
                              event="verified", code="I_UPLOAD_VERIFIED", attempt=1,
                              size=len(data), sha256=hashlib.sha256(data).hexdigest(),
                              remote_checksum=checksum, version_id=version,
                              retain_until=ran_out, at=now))
        return version

    def delete_all(self) -> RunReport:
        """Schedule every due recording, approve each (a second person), run."""
        report = self.ex.schedule(self.who("supervisor"), self.clock())
        for change in report.changes:
            self.ex.approve(self.who("supervisor2"), change.recording_id)
        return self.run()

    def run(self) -> RunReport:
        return self.ex.run(self.who("admin"), self.clock())

    def tombstone(self, rec_id: str) -> Tombstone:
        with Session(self.svc.catalog.engine) as s:
            return s.exec(select(Tombstone).where(Tombstone.recording_id == rec_id)).one()

    def events(self, b3: str, *kinds: str) -> list[UploadEvent]:
        return [e for e in self.queue.events(b3) if not kinds or e.event in kinds]

    def audit(self, action: str) -> list[AuditEvent]:
        with Session(self.svc.catalog.engine) as s:
            return list(s.exec(select(AuditEvent).where(AuditEvent.action == action)
                               .order_by(col(AuditEvent.seq))))

    def versions(self, b3: str) -> list[str]:
        got = self.objects.client.list_object_versions(Bucket=self.objects.bucket,
                                                       Prefix=self.objects.key_for(b3))
        assert "DeleteMarkers" not in got
        return [v["VersionId"] for v in got.get("Versions", [])]


def _station(tmp_path: Path, endpoint: S3Endpoint) -> Iterator[Station]:
    home = tmp_path / "home"
    write_agency_config(home, "[retention]\ngrace_days = 0\n")
    env = {"EVIDOCK_HOME": str(home), "EVIDOCK_UPLOAD__ENABLED": "true",
           "EVIDOCK_UPLOAD__ENDPOINT_URL": endpoint.url,
           "EVIDOCK_UPLOAD__BUCKET": make_bucket(endpoint),
           "EVIDOCK_UPLOAD__ACCESS_KEY_ID": endpoint.access_key,
           "EVIDOCK_UPLOAD__SECRET_ACCESS_KEY": endpoint.secret_key,
           "EVIDOCK_UPLOAD__CONNECT_TIMEOUT_S": "2", "EVIDOCK_UPLOAD__READ_TIMEOUT_S": "30"}
    clock = Clock()
    svc = Services.from_config(load_settings(environ=env), clock=clock)
    try:
        ex = svc.retention()
        assert ex.objects is not None  # wired from [upload]
        asked: list[tuple[str, str]] = []
        ex.objects.client.meta.events.register(
            "before-parameter-build.s3",
            lambda model, params, **_: asked.append((model.name, params.get("Key"))))
        yield Station(svc, clock, ex, ex.objects, svc.upload_queue(), asked)
    finally:
        svc.close()


@pytest.fixture
def st(tmp_path: Path, weed: WeedServer) -> Iterator[Station]:
    yield from _station(tmp_path, weed.endpoint)


def _remote(report: RunReport, rec_id: str) -> list[dict[str, Any]]:
    [outcome] = [o for o in report.outcomes if o.recording_id == rec_id]
    assert outcome.status == "deleted"
    return list(outcome.details["remote"])


def test_retention_deletes_expired_copies_and_keeps_locked_and_held_ones(
        st: Station) -> None:
    r_exp, expired = st.recording(1)
    r_lock, locked = st.recording(2)
    r_held, held = st.recording(3)
    r_queued, queued = st.recording(4)
    r_new, never_queued = st.recording(5)
    v_exp = st.put_by_hand(expired)
    v_held = st.put_by_hand(held, ObjectLockLegalHoldStatus="ON")
    lock_until = _ceil_second(retain(days=1))
    st.queue.enqueue(locked, now=st.clock(), retain_until=lock_until)
    assert [i.state for i in st.queue.run_due(now=st.clock()).items] == ["verified"]
    v_lock = st.versions(locked)[0]
    st.queue.enqueue(queued, now=st.clock(), retain_until=lock_until)  # not uploaded yet
    key = st.objects.key_for
    seen: list[tuple[bool, bool]] = []  # at each delete: (in a tombstone, local blob there)
    delete_expired = st.objects.delete_expired

    def checked(obj_key: str, **kwargs: Any) -> RemoteDeletion:
        with Session(st.svc.catalog.engine) as s:
            listed = any(c["key"] == obj_key for t in s.exec(select(Tombstone))
                         for c in t.remote)
        seen.append((listed, st.svc.store.has(obj_key.rsplit("/", 1)[1])))
        return delete_expired(obj_key, **kwargs)

    st.objects.delete_expired = checked  # type: ignore[method-assign]  # the real one, watched

    report = st.delete_all()

    assert seen == [(True, False)] * 3  # recorded first, local copy already gone
    assert {o.recording_id: o.status for o in report.outcomes} == dict.fromkeys(
        (r_exp, r_lock, r_held, r_queued, r_new), "deleted")
    assert not any(st.svc.store.has(b) for b in (expired, locked, held, queued))
    # The tombstones name every copy, committed before anything was deleted.
    assert st.tombstone(r_exp).remote == [{"key": key(expired), "version_id": v_exp}]
    assert st.tombstone(r_lock).remote == [{"key": key(locked), "version_id": v_lock}]
    assert st.tombstone(r_held).remote == [{"key": key(held), "version_id": v_held}]
    assert st.tombstone(r_queued).remote == st.tombstone(r_new).remote == []
    [executed] = [e for e in st.audit("retention.execute")
                  if e.subjects == [f"recording:{r_held}"]]
    assert executed.details["remote"] == [{"key": key(held), "version_id": v_held}]

    # Only the copy whose lock ran out is gone; the others are kept, with the reason.
    assert st.versions(expired) == []
    assert st.versions(locked) == [v_lock] and st.versions(held) == [v_held]
    [gone] = _remote(report, r_exp)
    assert (gone["deleted"], gone["reason"], gone["code"]) == (True, "deleted",
                                                               I_REMOTE_DELETED)
    [kept] = _remote(report, r_lock)
    assert (kept["deleted"], kept["code"]) == (False, W_REMOTE_DELETE_DEFERRED)
    assert kept["reason"] == f"retained until {lock_until.isoformat()}"
    assert kept["retain_until"] == lock_until.isoformat()
    [on_hold] = _remote(report, r_held)
    assert (on_hold["deleted"], on_hold["reason"]) == (False, "legal hold on")
    assert _remote(report, r_queued) == _remote(report, r_new) == []

    # Each outcome is an upload event; one audit event per deletion lists them.
    assert [(e.event, e.code, e.version_id) for e in st.events(
        expired, "deleted", "delete_deferred")] == [("deleted", I_REMOTE_DELETED, v_exp)]
    [lock_event] = st.events(locked, "deleted", "delete_deferred")
    assert (lock_event.event, lock_event.retain_until) == ("delete_deferred", lock_until)
    [held_event] = st.events(held, "deleted", "delete_deferred")
    assert (held_event.event, held_event.detail) == ("delete_deferred", "legal hold on")
    remote_audit = st.audit("retention.remote_delete")
    assert sorted(e.subjects for e in remote_audit) == sorted(
        [f"recording:{r}", f"blob:{b}"] for r, b in ((r_exp, expired), (r_lock, locked),
                                                     (r_held, held)))
    assert sorted((e.details["deleted"], e.details["kept"]) for e in remote_audit) == [
        (0, 1), (0, 1), (1, 0)]
    assert {e.actor for e in remote_audit} == {"user:admin"}

    # The upload queue never uploads a removed blob: not queued, a queued one withdrawn.
    assert st.queue.enqueue_missing(now=st.clock(), retain_until=lock_until) == 0
    assert st.queue.item(never_queued) is None
    with pytest.raises(Refused):
        st.queue.enqueue(never_queued, now=st.clock(), retain_until=lock_until)
    assert st.queue.run_due(now=st.clock()).items == ()
    item = st.queue.item(queued)
    assert item is not None and item.state == "withdrawn"
    assert [(e.event, e.code) for e in st.events(queued)] == [("withdrawn",
                                                               I_UPLOAD_WITHDRAWN)]
    assert st.queue.run_due(now=st.clock() + timedelta(days=1)).items == ()
    assert st.objects.head(key(queued)) is None
    assert len(st.events(locked, "verified")) == 1  # never uploaded again
    status = st.queue.status(now=st.clock())
    assert (status.counts["withdrawn"], status.counts["not_queued"]) == (1, 0)

    # A later run asks again about the held copy only (the locked one's recorded date
    # is still ahead): same answer, nothing new recorded. Released, it goes.
    st.asked.clear()
    again = st.run()
    assert again.outcomes == () and len(st.audit("retention.remote_delete")) == 3
    assert ("GetObjectLegalHold", key(held)) in st.asked
    assert [op for op, k in st.asked if k in (key(locked), key(expired))] == []
    assert len(st.events(held, "deleted", "delete_deferred")) == 1
    st.objects.set_legal_hold(key(held), False, version_id=v_held)
    st.run()
    assert st.versions(held) == [] and st.versions(locked) == [v_lock]
    assert [e.event for e in st.events(held, "deleted", "delete_deferred")] == [
        "delete_deferred", "deleted"]
    sweep = st.audit("retention.remote_delete")[-1]
    assert sweep.subjects == [f"blob:{held}"] and sweep.details["deleted"] == 1
    assert len(st.events(locked, "deleted", "delete_deferred")) == 1


@pytest.fixture
def own_st(tmp_path: Path, own_server: WeedServer) -> Iterator[Station]:
    yield from _station(tmp_path, own_server.endpoint)


def test_store_down_the_local_deletion_completes_and_the_next_run_deletes_remotely(
        own_st: Station, own_server: WeedServer) -> None:
    st = own_st
    rec, blob = st.recording(1)
    version = st.put_by_hand(blob)
    own_server.kill()

    report = st.delete_all()

    assert not st.svc.store.has(blob)  # the local deletion went ahead
    assert st.tombstone(rec).remote == [{"key": st.objects.key_for(blob),
                                         "version_id": version}]
    [deferred] = _remote(report, rec)
    assert (deferred["deleted"], deferred["code"]) == (False, "E_UPLOAD_UNAVAILABLE")
    [event] = st.events(blob, "deleted", "delete_deferred")
    assert (event.event, event.code) == ("delete_deferred", "E_UPLOAD_UNAVAILABLE")
    [audited] = st.audit("retention.remote_delete")
    assert audited.details["kept"] == 1

    own_server.start()
    assert st.versions(blob) == [version]  # still there after the restart
    later = st.run()

    assert later.outcomes == () and st.versions(blob) == []
    assert [e.event for e in st.events(blob, "deleted", "delete_deferred")] == [
        "delete_deferred", "deleted"]
    swept = st.audit("retention.remote_delete")[-1]
    assert swept.subjects == [f"blob:{blob}"] and swept.details["deleted"] == 1
