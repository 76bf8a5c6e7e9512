"""The upload queue and retention: removed bytes are never uploaded, unless the same
bytes become evidence again (ingested anew), when their withdrawn item is queued again.

Only the queue's bookkeeping is exercised (no upload runs), so the object store is a
real ObjectStore without a client: ``key_for`` is all the queue asks of it here.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlmodel import select

from archive.catalog import Blob, Device, DockSession, Recording
from archive.catalog.models import Tombstone
from archive.replica.objectstore import ObjectStore
from archive.replica.queue import RetryPolicy, UploadItem, UploadQueue
from evidock.wiring import Services

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
B3 = "ab" * 32


def _recording(svc: Services, rid: str) -> None:
    with svc.catalog.transaction() as s:
        if s.get(Device, "ZFY0001") is None:
            s.add(Device(serial="ZFY0001", camera_model="test", first_seen=T0))
        if s.get(Blob, B3) is None:
            s.add(Blob(blake3=B3, sha256="cd" * 32, size=1, stored_at=T0))
        s.add(DockSession(id=f"s-{rid}", station_id="station-01", device_serial="ZFY0001",
                          camera_model="test", source="/cam", started_at=T0))
        s.add(Recording(id=rid, session_id=f"s-{rid}", device_serial="ZFY0001",
                        original_path=rid.encode(), original_display=rid, kind="video",
                        size=1, blake3=B3, sha256="cd" * 32, source_mtime_ns=0,
                        ingested_at=T0, status="ingested"))


def _state(svc: Services) -> str | None:
    with svc.catalog.transaction() as s:
        item = s.exec(select(UploadItem).where(UploadItem.blake3 == B3)).first()
        return None if item is None else item.state


def test_removed_bytes_are_withdrawn_and_revived_when_ingested_anew(
        services: Services) -> None:
    queue = UploadQueue(catalog=services.catalog, store=services.store,
                        objects=ObjectStore(client=None, bucket="evidence"),
                        policy=RetryPolicy(base_s=30, cap_s=600, checksum_attempts=3,
                                           lease_s=60))
    until = T0 + timedelta(days=184)
    _recording(services, "old")
    assert queue.enqueue_missing(now=T0, retain_until=until) == 1
    with services.catalog.transaction() as s:
        s.add(Tombstone(recording_id="old", blobs=[B3], rule="base", reason="test",
                        actor="test", at=T0))
    assert queue.run_due(now=T0, limit=5).items == ()  # claimed, withdrawn, not uploaded
    assert _state(services) == "withdrawn"
    assert queue.enqueue_missing(now=T0, retain_until=until) == 0
    assert _state(services) == "withdrawn"
    _recording(services, "new")  # the same bytes offloaded again: evidence again
    queue.enqueue_missing(now=T0, retain_until=until)
    assert _state(services) == "queued"
