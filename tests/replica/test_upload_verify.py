"""Uploads through the queue to a real S3 server, proven by SHA-256 (single and multipart),
and every way a copy can be wrong: corrupted in transit, misreported by the store,
damaged locally, refused by the store."""

from __future__ import annotations

import base64
import hashlib
import io
import random
from datetime import timedelta
from typing import Any

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)
from s3server import WeedServer
from storage_support import T0, AddBlob, client_for, make_bucket, queue_for, retain

from archive.catalog import Catalog
from archive.replica.objectstore import MiB, ObjectStore
from archive.replica.queue import RetryPolicy
from archive.replica.s3 import classify
from archive.store import ContentStore
from integrity.errors import UploadChecksumError, UploadError


def _b64(hex_digest: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_digest)).decode()


def _remote_sha256(objects: ObjectStore, key: str, version_id: str | None) -> str:
    body = objects.client.get_object(Bucket=objects.bucket, Key=key, VersionId=version_id)
    return hashlib.sha256(body["Body"].read()).hexdigest()


def test_single_put_is_verified_and_locked(catalog: Catalog, store: ContentStore,
                                           objects: ObjectStore, add_blob: AddBlob) -> None:
    blob = add_blob(size=300_000)
    queue = queue_for(catalog, store, objects)
    until = retain(days=2)
    assert queue.enqueue_missing(now=T0, retain_until=until) == 1
    report = queue.run_due(now=T0)
    assert [(i.state, i.code) for i in report.items] == [("verified", "I_UPLOAD_VERIFIED")]
    item = queue.item(blob.blake3)
    assert item is not None and item.state == "verified" and item.verified_at == T0
    assert item.key == f"blobs/{blob.blake3[:2]}/{blob.blake3[2:4]}/{blob.blake3}"
    [event] = queue.events(blob.blake3)
    assert (event.event, event.checksum_type, event.size) == ("verified", "FULL_OBJECT", blob.size)
    assert event.remote_checksum == item.remote_checksum == _b64(blob.sha256)
    head = objects.head(item.key, version_id=item.version_id)
    assert head is not None and head.lock_mode == "COMPLIANCE"
    assert head.retain_until is not None and head.retain_until >= until
    assert _remote_sha256(objects, item.key, item.version_id) == blob.sha256
    assert queue.run_due(now=T0 + timedelta(days=1)).items == ()  # nothing left to do


def test_multipart_composite_checksum(catalog: Catalog, store: ContentStore,
                                      objects: ObjectStore, add_blob: AddBlob) -> None:
    blob = add_blob(size=12 * MiB + 12345, seed=1)  # parts of 5, 5 and 2 MiB + change
    queue = queue_for(catalog, store, objects)
    queue.enqueue(blob.blake3, now=T0, retain_until=retain())
    assert queue.run_due(now=T0).count("verified") == 1
    data = blob.path.read_bytes()
    digests = [hashlib.sha256(data[i:i + 5 * MiB]).digest() for i in range(0, len(data), 5 * MiB)]
    composite = base64.b64encode(hashlib.sha256(b"".join(digests)).digest()).decode() + "-3"
    [event] = queue.events(blob.blake3)
    assert (event.checksum_type, event.parts) == ("COMPOSITE", 3)
    assert event.remote_checksum == composite
    assert event.upload_id is not None
    assert _remote_sha256(objects, event.key, event.version_id) == blob.sha256


def test_store_rejects_a_wrong_checksum(weed: WeedServer, bucket: str) -> None:
    client = client_for(weed.endpoint)
    wrong = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    with pytest.raises(ClientError) as info:
        client.put_object(Bucket=bucket, Key="x", Body=b"evidence", ChecksumAlgorithm="SHA256",
                          ChecksumSHA256=wrong)
    assert info.value.response["Error"]["Code"] == "BadDigest"
    assert isinstance(classify(info.value, op="PutObject", key="x"), UploadChecksumError)


def _corrupt_body(request: Any, **_: Any) -> None:
    """Flip one byte of a request body after it was checksummed: damage in transit."""
    data = request.body.read()  # botocore hands the body over as a seekable stream
    request.body = io.BytesIO(bytes([data[0] ^ 0xFF]) + data[1:])


@pytest.mark.parametrize(("size", "operation"), [(200_000, "PutObject"),
                                                 (7 * MiB, "UploadPart")])
def test_corruption_in_transit_retried_then_failed(  # noqa: PLR0917
        catalog: Catalog, store: ContentStore, weed: WeedServer, bucket: str,
        add_blob: AddBlob, size: int, operation: str) -> None:
    blob = add_blob(size=size, seed=2)
    client = client_for(weed.endpoint)
    client.meta.events.register(f"before-send.s3.{operation}", _corrupt_body)
    objects = ObjectStore(client=client, bucket=bucket, part_size=5 * MiB,
                          multipart_threshold=5 * MiB)
    queue = queue_for(catalog, store, objects, policy=RetryPolicy(checksum_attempts=3))
    queue.enqueue(blob.blake3, now=T0, retain_until=retain())
    now, states = T0, []
    for _ in range(3):
        [outcome] = queue.run_due(now=now).items
        states.append((outcome.state, outcome.code))
        item = queue.item(blob.blake3)
        assert item is not None
        now = item.next_attempt_at
    assert states == [("queued", "E_UPLOAD_CHECKSUM")] * 2 + [("failed", "E_UPLOAD_CHECKSUM")]
    assert [e.event for e in queue.events(blob.blake3)] == ["retry", "retry", "failed"]
    assert queue.run_due(now=now + timedelta(days=30)).items == ()  # failed is final
    assert objects.head(objects.key_for(blob.blake3)) is None
    assert hashlib.sha256(blob.path.read_bytes()).hexdigest() == blob.sha256  # local intact
    # Once the cause is fixed, an operator requeues it and it goes through.
    client.meta.events.unregister(f"before-send.s3.{operation}", _corrupt_body)
    assert queue.requeue_failed(now=now) == 1
    assert queue.run_due(now=now).count("verified") == 1
    assert [e.event for e in queue.events(blob.blake3)][-2:] == ["requeued", "verified"]


def test_store_reporting_another_checksum_is_a_mismatch(
        catalog: Catalog, store: ContentStore, weed: WeedServer, bucket: str,
        add_blob: AddBlob) -> None:
    blob = add_blob(size=1000, seed=3)
    client = client_for(weed.endpoint)

    def lie(parsed: dict[str, Any], **_: Any) -> None:
        parsed["ChecksumSHA256"] = base64.b64encode(b"\0" * 32).decode()

    client.meta.events.register("after-call.s3.PutObject", lie)
    queue = queue_for(catalog, store, ObjectStore(client=client, bucket=bucket))
    queue.enqueue(blob.blake3, now=T0, retain_until=retain())
    [outcome] = queue.run_due(now=T0).items
    assert (outcome.state, outcome.code) == ("queued", "E_UPLOAD_CHECKSUM")
    item = queue.item(blob.blake3)
    assert item is not None and item.checksum_failures == 1 and item.verified_at is None


@pytest.mark.parametrize("size", [4000, 6 * MiB])
def test_damaged_local_blob_is_never_uploaded(catalog: Catalog, store: ContentStore,
                                              objects: ObjectStore, add_blob: AddBlob,
                                              size: int) -> None:
    blob = add_blob(size=size, seed=4)
    blob.path.chmod(0o644)
    with open(blob.path, "r+b") as fh:
        fh.seek(size // 2)
        fh.write(b"\0\0\0\0")
    queue = queue_for(catalog, store, objects)
    queue.enqueue(blob.blake3, now=T0, retain_until=retain())
    [outcome] = queue.run_due(now=T0).items
    assert (outcome.state, outcome.code) == ("failed", "E_DIGEST_MISMATCH")
    assert objects.head(objects.key_for(blob.blake3)) is None
    uploads = objects.client.list_multipart_uploads(Bucket=objects.bucket).get("Uploads", [])
    assert uploads == []  # the multipart upload was aborted, not completed


def test_refusal_by_the_store_fails_without_retry(catalog: Catalog, store: ContentStore,
                                                  objects: ObjectStore,
                                                  add_blob: AddBlob) -> None:
    blob = add_blob(size=100, seed=5)
    queue = queue_for(catalog, store, objects)
    # A retain-until date in the past: the store answers 400, trying again cannot help.
    queue.enqueue(blob.blake3, now=T0, retain_until=T0)
    [outcome] = queue.run_due(now=T0).items
    assert (outcome.state, outcome.code) == ("failed", "E_UPLOAD")
    [event] = queue.events(blob.blake3)
    assert event.event == "failed" and "400" in event.detail
    assert queue.status(now=T0).failed[0][:2] == (blob.blake3, "E_UPLOAD")


def test_bucket_without_object_lock_is_refused(catalog: Catalog, store: ContentStore,
                                               weed: WeedServer, add_blob: AddBlob) -> None:
    plain = make_bucket(weed.endpoint, lock=False)
    blob = add_blob(size=100, seed=6)
    queue = queue_for(catalog, store, ObjectStore(client=client_for(weed.endpoint),
                                                  bucket=plain))
    queue.enqueue(blob.blake3, now=T0, retain_until=retain())
    with pytest.raises(Exception) as info:
        queue.run_due(now=T0)
    assert getattr(info.value, "code", None) == "E_UPLOAD"
    item = queue.item(blob.blake3)
    assert item is not None and (item.state, item.attempts) == ("queued", 0)
    assert weed.endpoint.client().list_objects_v2(Bucket=plain).get("KeyCount") == 0


def test_upload_already_there_is_reused_not_duplicated(
        catalog: Catalog, store: ContentStore, objects: ObjectStore, add_blob: AddBlob) -> None:
    from archive.replica.s3 import BlobRef

    blob = add_blob(size=2000, seed=7)
    # A run that uploaded and died before recording it: the object exists, the row does not.
    objects.upload(BlobRef(blob.blake3, blob.sha256, blob.size, blob.path),
                   retain_until=retain(days=1))
    queue = queue_for(catalog, store, objects)
    longer = retain(days=3)
    queue.enqueue(blob.blake3, now=T0, retain_until=longer)
    [outcome] = queue.run_due(now=T0).items
    assert outcome.state == "verified"
    [event] = queue.events(blob.blake3)
    assert event.code == "I_UPLOAD_REUSED"
    key = objects.key_for(blob.blake3)
    versions = objects.client.list_object_versions(Bucket=objects.bucket, Prefix=key)
    assert len(versions["Versions"]) == 1
    until = objects.retention(key, version_id=event.version_id)
    assert until is not None and until >= longer  # the longer retention was applied
    # Asking for less than the object already has keeps what it has (never shortened).
    again = objects.upload(BlobRef(blob.blake3, blob.sha256, blob.size, blob.path),
                           retain_until=retain(days=1))
    assert again.reused and again.retain_until == until


def test_enqueue_missing_run_limit_and_status(catalog: Catalog, store: ContentStore,
                                              objects: ObjectStore, add_blob: AddBlob) -> None:
    blobs = [add_blob(size=1000 + i, seed=10 + i) for i in range(3)]
    queue = queue_for(catalog, store, objects)
    before = queue.status(now=T0)
    assert before.counts["not_queued"] == 3 and before.counts["queued"] == 0
    assert queue.enqueue_missing(now=T0, retain_until=retain()) == 3
    assert queue.enqueue_missing(now=T0, retain_until=retain()) == 0
    status = queue.status(now=T0)
    assert (status.counts["queued"], status.due_now) == (3, 3)
    assert status.bytes_pending == sum(b.size for b in blobs)
    assert queue.status(now=T0 - timedelta(seconds=1)).due_now == 0
    assert queue.run_due(now=T0, limit=2).count("verified") == 2
    status = queue.status(now=T0)
    assert (status.counts["verified"], status.counts["queued"]) == (2, 1)
    assert status.to_dict()["counts"]["verified"] == 2
    assert queue.run_due(now=T0).count("verified") == 1
    assert queue.status(now=T0).bytes_pending == 0


def test_backoff_is_bounded_and_jittered() -> None:
    policy = RetryPolicy(base_s=10, cap_s=300)
    rng = random.Random(1)
    delays = [policy.delay(n, rng).total_seconds() for n in range(1, 12)]
    for n, d in enumerate(delays, start=1):
        ceiling = min(300, 10 * 2 ** (n - 1))
        assert ceiling / 2 <= d <= ceiling
    assert max(delays) <= 300 and len(set(delays)) == len(delays)


def test_from_settings_builds_a_working_store(weed: WeedServer, bucket: str) -> None:
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class UploadSettings:
        endpoint_url: str = weed.endpoint.url
        region: str = "us-east-1"
        bucket: str = ""
        key_prefix: str = "station-01"
        access_key_id: str = weed.endpoint.access_key
        secret_access_key: str = weed.endpoint.secret_key
        addressing_style: str = "path"
        part_size: int = 16 * MiB
        multipart_threshold: int = 64 * MiB
        max_concurrency: int = 4
        connect_timeout_s: float = 5.0
        read_timeout_s: float = 60.0

    objects = ObjectStore.from_settings(UploadSettings(bucket=bucket))
    objects.ensure_worm()
    assert objects.key_for("ab" * 32).startswith("station-01/blobs/ab/ab/")
    assert objects.part_size_for(10 * MiB) == 16 * MiB
    assert objects.part_size_for(400 << 30) == 41 * MiB  # stays within 10 000 parts


def test_wrong_credentials_stop_the_run_and_touch_nothing(
        catalog: Catalog, store: ContentStore, weed: WeedServer, bucket: str,
        add_blob: AddBlob) -> None:
    blob = add_blob(size=100, seed=8)
    client = client_for(weed.endpoint, secret_access_key="not-the-secret")
    queue = queue_for(catalog, store, ObjectStore(client=client, bucket=bucket))
    queue.enqueue(blob.blake3, now=T0, retain_until=retain())
    with pytest.raises(UploadError) as info:
        queue.run_due(now=T0)
    assert info.value.code == "E_UPLOAD" and info.value.details["http_status"] == 403
    item = queue.item(blob.blake3)
    assert item is not None and (item.state, item.attempts) == ("queued", 0)


def _client_error(status: int, code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "x"},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, "PutObject")


@pytest.mark.parametrize(("exc", "code", "retryable"), [
    (_client_error(503, "SlowDown"), "E_UPLOAD_UNAVAILABLE", True),
    (_client_error(500, "InternalError"), "E_UPLOAD_UNAVAILABLE", True),
    (_client_error(400, "RequestTimeout"), "E_UPLOAD_UNAVAILABLE", True),
    (_client_error(429, "TooManyRequests"), "E_UPLOAD_UNAVAILABLE", True),
    (_client_error(400, "BadDigest"), "E_UPLOAD_CHECKSUM", True),
    (_client_error(403, "AccessDenied"), "E_UPLOAD", False),
    (_client_error(404, "NoSuchBucket"), "E_UPLOAD", False),
    (EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), "E_UPLOAD_UNAVAILABLE", True),
    (ConnectTimeoutError(endpoint_url="http://127.0.0.1:1"), "E_UPLOAD_UNAVAILABLE", True),
    (ReadTimeoutError(endpoint_url="http://127.0.0.1:1"), "E_UPLOAD_UNAVAILABLE", True),
    (NoCredentialsError(), "E_UPLOAD", False),
])
def test_errors_are_classified_by_kind(exc: Exception, code: str, retryable: bool) -> None:
    err = classify(exc, op="PutObject", key="k")
    assert (err.code, err.retryable) == (code, retryable)
