"""Object Lock COMPLIANCE as a real S3 server enforces it, and as evidock's API refuses it.

Run against SeaweedFS (the server of the other storage tests) and, when its Debian
packages are installed, single-node Ceph RGW: neither lets a locked version be deleted or
its retention shortened, both let it be extended, and legal holds go on and off.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError
from s3server import S3Endpoint
from storage_support import T0, AddBlob, client_for, make_bucket, queue_for, retain

from archive.catalog import Catalog
from archive.replica.objectstore import ObjectStore
from archive.store import ContentStore
from integrity.errors import Refused

SERVERS = ["weed", "ceph"]
BODY = b"locked evidence " * 64


@pytest.fixture(params=SERVERS)
def endpoint(request: pytest.FixtureRequest) -> S3Endpoint:
    server = request.getfixturevalue(request.param)
    return server.endpoint  # type: ignore[no-any-return]


@pytest.fixture
def locked(endpoint: S3Endpoint) -> tuple[ObjectStore, str, str]:
    """An ObjectStore on a fresh lock bucket, and one object version locked for a day."""
    objects = ObjectStore(client=client_for(endpoint), bucket=make_bucket(endpoint))
    resp = objects.client.put_object(
        Bucket=objects.bucket, Key="blobs/ab/cd/x", Body=BODY, ObjectLockMode="COMPLIANCE",
        ObjectLockRetainUntilDate=retain(days=1))
    return objects, "blobs/ab/cd/x", str(resp["VersionId"])


def _denied(call: Any, **params: Any) -> str:
    with pytest.raises(ClientError) as info:
        call(**params)
    return str(info.value.response["Error"]["Code"])


def test_locked_version_cannot_be_deleted(locked: tuple[ObjectStore, str, str]) -> None:
    objects, key, version = locked
    with pytest.raises(Refused) as info:
        objects.delete(key, version_id=version)
    assert info.value.code == "E_REFUSED"
    client = objects.client
    assert _denied(client.delete_object, Bucket=objects.bucket, Key=key,
                   VersionId=version) == "AccessDenied"
    assert _denied(client.delete_object, Bucket=objects.bucket, Key=key, VersionId=version,
                   BypassGovernanceRetention=True) == "AccessDenied"
    # A plain DELETE only adds a delete marker; the locked version is still there.
    client.delete_object(Bucket=objects.bucket, Key=key)
    body = client.get_object(Bucket=objects.bucket, Key=key, VersionId=version)["Body"].read()
    assert hashlib.sha256(body).digest() == hashlib.sha256(BODY).digest()


def test_retention_cannot_be_shortened(locked: tuple[ObjectStore, str, str]) -> None:
    objects, key, version = locked
    before = objects.retention(key, version_id=version)
    assert before is not None
    earlier = before - timedelta(hours=12)
    with pytest.raises(Refused):
        objects.extend_retention(key, earlier, version_id=version)
    client = objects.client
    for mode in ("COMPLIANCE", "GOVERNANCE"):
        assert _denied(client.put_object_retention, Bucket=objects.bucket, Key=key,
                       VersionId=version, BypassGovernanceRetention=True,
                       Retention={"Mode": mode, "RetainUntilDate": earlier}) == "AccessDenied"
    assert objects.retention(key, version_id=version) == before


def test_retention_can_be_extended(locked: tuple[ObjectStore, str, str]) -> None:
    objects, key, version = locked
    later = retain(days=30)
    assert objects.extend_retention(key, later, version_id=version) == later
    assert objects.retention(key, version_id=version) == later
    assert objects.extend_retention(key, later, version_id=version) == later  # no-op
    head = objects.head(key, version_id=version)
    assert head is not None and (head.lock_mode, head.retain_until) == ("COMPLIANCE", later)


def test_legal_hold_on_and_off(locked: tuple[ObjectStore, str, str]) -> None:
    objects, key, version = locked
    assert objects.legal_hold(key, version_id=version) is False
    objects.set_legal_hold(key, True, version_id=version)
    assert objects.legal_hold(key, version_id=version) is True
    head = objects.head(key, version_id=version)
    assert head is not None and head.legal_hold
    objects.set_legal_hold(key, False, version_id=version)
    assert objects.legal_hold(key, version_id=version) is False


def test_ceph_pacific_cannot_prove_a_copy(ceph: Any, catalog: Catalog, store: ContentStore,
                                          add_blob: AddBlob) -> None:
    """Why the other tests use SeaweedFS: RGW 16.x returns no SHA-256 checksum, so an
    upload there is never counted as verified (E_UPLOAD_UNVERIFIABLE, not retried)."""
    objects = ObjectStore(client=client_for(ceph.endpoint), bucket=make_bucket(ceph.endpoint))
    blob = add_blob(size=1000, seed=99)
    queue = queue_for(catalog, store, objects)
    queue.enqueue(blob.blake3, now=T0, retain_until=retain())
    [outcome] = queue.run_due(now=T0).items
    assert (outcome.state, outcome.code) == ("failed", "E_UPLOAD_UNVERIFIABLE")
