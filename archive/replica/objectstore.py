"""Blobs to S3-compatible object storage under Object Lock (COMPLIANCE), proven by SHA-256.

Every blob of the local store (originals, segments, manifests) is uploaded under
``[prefix/]blobs/<b3[:2]>/<b3[2:4]>/<b3>`` with a COMPLIANCE retain-until date given by
the caller. An object counts as remote-verified only when

1. the store accepted it with our SHA-256 (``x-amz-checksum-sha256`` from the catalog's
   digest for a single PUT, one per part for multipart: the store recomputes and rejects
   a mismatch with BadDigest),
2. the checksum the store returns equals ours (multipart: the COMPOSITE checksum we
   computed from the part digests while streaming), and
3. a HEAD afterwards (ChecksumMode=ENABLED) reports the same size and checksum, the
   COMPLIANCE lock and a retain-until no earlier than asked.

The local bytes are checked against the blob's name (BLAKE3) before a single PUT is sent
and before a multipart upload is completed: a damaged local blob never becomes a remote
object (``E_DIGEST_MISMATCH``). A store
that returns no SHA-256 cannot verify anything: that is ``E_UPLOAD_UNVERIFIABLE``,
never a silent success. Retention is only ever extended, never shortened: asking for an
earlier date raises :class:`~integrity.errors.Refused` (``E_REFUSED``) before the store
is asked, and so does :meth:`ObjectStore.delete` (the store refuses both too, which the
tests prove). The one way evidock removes a remote copy is
:meth:`ObjectStore.delete_expired`, which the retention executor calls after a recording's
deletion was approved and recorded: exactly one version, only once its lock has run out
and no legal hold is on, and the store still has the last word.

The boto3 client is injected (``ObjectStore(client=..., bucket=...)``); the composition
root builds it once with :meth:`ObjectStore.from_settings`. Its own retries are off (one
attempt per call): the upload queue schedules retries with backoff, and nothing here
sleeps or reads the clock.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, BinaryIO, NoReturn

import blake3

from archive.replica.download import Source, Wanted
from archive.replica.download import download as _download
from archive.replica.multipart import MultipartUpload, OnState
from archive.replica.s3 import (
    BlobRef,
    MultipartState,
    RemoteObject,
    Uploaded,
    UploadSettingsLike,
    b64_of_hex,
    composite_sha256,
    make_s3_client,
    s3_code,
    s3_errors,
    same_checksum,
)
from integrity.errors import (
    DigestMismatch,
    Refused,
    SizeMismatch,
    UploadChecksumError,
    UploadError,
    UploadUnverifiable,
)

if TYPE_CHECKING:  # boto3-stubs[s3], a dev extra: never imported at run time
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import (
        GetObjectLegalHoldRequestTypeDef,
        GetObjectRetentionRequestTypeDef,
        HeadObjectRequestTypeDef,
        PutObjectLegalHoldRequestTypeDef,
        PutObjectRetentionRequestTypeDef,
    )

    from archive.staging import Staged, Stager

MiB = 1 << 20
MIN_PART_SIZE = 5 * MiB  # S3's minimum for every part but the last
MAX_PARTS = 10_000
MAX_SINGLE_PUT = 5 << 30
KEY_ROOT = "blobs"
#: What stores answer when a version has no retention / no legal hold set.
_NO_LOCK_CODES = frozenset({"NoSuchObjectLockConfiguration", "NoSuchObjectLegalHold",
                            "NoSuchObjectRetention", "ObjectLockConfigurationNotFoundError"})
#: What stores answer when the version (or the whole key) is not there (any more).
_ABSENT_CODES = frozenset({"NoSuchKey", "NoSuchVersion"})
NO_VERSION_ID = "no version id: a delete without one only adds a delete marker"
ALREADY_ABSENT = "already absent"


def _ceil_second(when: datetime) -> datetime:
    if when.tzinfo is None:
        raise ValueError("naive datetime given as retain-until; pass aware UTC")
    floor = when.replace(microsecond=0)
    return floor if floor == when else floor + timedelta(seconds=1)


def _open_binary(path: str) -> BinaryIO:
    return open(path, "rb")  # noqa: SIM115 - the caller closes it (with-statement)


@dataclass(frozen=True)
class LockChange:
    """A retention or legal-hold state of one object version, before and after a call."""

    key: str
    version_id: str | None
    what: str  # "retention" | "legal_hold"
    before: datetime | bool | None
    after: datetime | bool | None

    @property
    def changed(self) -> bool:
        return self.before != self.after


@dataclass(frozen=True)
class RemoteDeletion:
    """What :meth:`ObjectStore.delete_expired` did with one object version.

    ``deleted`` is True when the version is gone (deleted now, or already absent);
    ``reason`` says why not otherwise; ``retain_until`` is the date the store reported.
    """

    key: str
    version_id: str | None
    deleted: bool
    reason: str
    retain_until: datetime | None = None


class ObjectStore:
    def __init__(self, *, client: S3Client, bucket: str, key_prefix: str = "",
                 part_size: int = 16 * MiB, multipart_threshold: int = 32 * MiB,
                 max_concurrency: int = 4,
                 opener: Callable[[str], BinaryIO] = _open_binary) -> None:
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size must be at least {MIN_PART_SIZE} bytes")
        if not MIN_PART_SIZE <= multipart_threshold <= MAX_SINGLE_PUT:
            raise ValueError("multipart_threshold must be between 5 MiB and 5 GiB")
        self.client = client
        self.bucket = bucket
        self.key_prefix = key_prefix.strip("/")
        self.part_size = part_size
        self.multipart_threshold = multipart_threshold
        self.max_concurrency = max(1, max_concurrency)
        self._opener = opener

    @classmethod
    def from_settings(cls, upload: UploadSettingsLike) -> ObjectStore:
        client = make_s3_client(
            endpoint_url=upload.endpoint_url, region=upload.region,
            access_key_id=upload.access_key_id, secret_access_key=upload.secret_access_key,
            addressing_style=upload.addressing_style,
            connect_timeout_s=upload.connect_timeout_s, read_timeout_s=upload.read_timeout_s,
            max_pool_connections=max(10, upload.max_concurrency + 2))
        return cls(client=client, bucket=upload.bucket, key_prefix=upload.key_prefix,
                   part_size=upload.part_size, multipart_threshold=upload.multipart_threshold,
                   max_concurrency=upload.max_concurrency)

    def key_for(self, b3: str) -> str:
        key = f"{KEY_ROOT}/{b3[:2]}/{b3[2:4]}/{b3}"
        return f"{self.key_prefix}/{key}" if self.key_prefix else key

    def part_size_for(self, size: int) -> int:
        """The configured part size, grown (whole MiB) if the file needs > 10 000 parts."""
        needed = math.ceil(size / MAX_PARTS / MiB) * MiB
        return max(self.part_size, needed)

    # -- checks ------------------------------------------------------------------------

    def ensure_worm(self) -> None:
        """Refuse to upload evidence into a bucket without Object Lock."""
        with s3_errors("GetObjectLockConfiguration", self.bucket):
            conf = self.client.get_object_lock_configuration(Bucket=self.bucket)
        enabled = conf.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled")
        if enabled != "Enabled":
            raise UploadError(f"bucket {self.bucket} has no Object Lock; not uploading "
                              "evidence there", bucket=self.bucket)

    def versions(self, key: str, *, limit: int = 20) -> list[str]:
        """Version ids of exactly ``key``, newest first (at most ``limit``): where a
        reader looks for the true copy when the newest version is not the blob."""
        with s3_errors("ListObjectVersions", key):
            got = self.client.list_object_versions(Bucket=self.bucket, Prefix=key,
                                                   MaxKeys=limit)
        found = [v for v in got.get("Versions", []) if v.get("Key") == key]
        found.sort(key=lambda v: v["LastModified"], reverse=True)
        return [str(v["VersionId"]) for v in found if v.get("VersionId")][:limit]

    def head(self, key: str, *, version_id: str | None = None) -> RemoteObject | None:
        """HEAD with checksums; None if there is no such object (or version)."""
        params: HeadObjectRequestTypeDef = {"Bucket": self.bucket, "Key": key,
                                            "ChecksumMode": "ENABLED"}
        if version_id:
            params["VersionId"] = version_id
        try:
            with s3_errors("HeadObject", key):
                resp = self.client.head_object(**params)
        except UploadError as exc:
            if exc.details.get("http_status") == 404:
                return None
            raise
        return RemoteObject(
            key=key, version_id=resp.get("VersionId"), size=int(resp["ContentLength"]),
            checksum_sha256=resp.get("ChecksumSHA256"), checksum_type=resp.get("ChecksumType"),
            etag=str(resp.get("ETag", "")), lock_mode=resp.get("ObjectLockMode"),
            retain_until=resp.get("ObjectLockRetainUntilDate"),
            legal_hold=resp.get("ObjectLockLegalHoldStatus") == "ON")

    # -- download ----------------------------------------------------------------------

    def download(self, want: Wanted, stager: Stager, *, key: str | None = None,
                 version_id: str | None = None) -> Staged:
        """Read the blob's object back into ``stager`` (archive/replica/download.py):
        bounded by the catalog's size, both digests checked, re-read from the disk.
        ``key`` as recorded at upload (default: today's name); ``version_id`` the
        verified version (default: the latest)."""
        source = Source(bucket=self.bucket, key=key or self.key_for(want.blake3),
                        version_id=version_id)
        return _download(self.client, source, want, stager)

    # -- upload ------------------------------------------------------------------------

    def upload(self, blob: BlobRef, *, retain_until: datetime,
               resume: MultipartState | None = None, on_state: OnState | None = None,
               ) -> Uploaded:
        """Upload ``blob`` (or find it already there) and prove the remote copy."""
        retain_until = _ceil_second(retain_until)
        key = self.key_for(blob.blake3)
        found = self._already_there(blob, key, resume)
        if found is not None:
            done = Uploaded(
                key=key, version_id=found.version_id, size=found.size,
                checksum=found.checksum_sha256 or "", etag=found.etag,
                checksum_type=found.checksum_type or "FULL_OBJECT", retain_until=retain_until,
                upload_id=resume.upload_id if resume else None, reused=True)
        elif resume is None and blob.size <= self.multipart_threshold:
            done = self._put_single(blob, key, retain_until)
        else:
            done = self._put_multipart(blob, key, retain_until, resume, on_state)
        if found is not None or resume is not None:
            # Locked earlier, maybe with an older date: make sure it is held long enough.
            done = replace(done, retain_until=self._at_least(key, done.version_id,
                                                             retain_until))
        return self._verified(blob, done)

    def _at_least(self, key: str, version_id: str | None, until: datetime) -> datetime:
        current = self.retention(key, version_id=version_id)
        if current is not None and current >= until:
            return current
        return self.extend_retention(key, until, version_id=version_id)

    def _already_there(self, blob: BlobRef, key: str,
                       resume: MultipartState | None) -> RemoteObject | None:
        """The latest version if it already holds exactly this blob (a run that died
        between the store's answer and our commit): no second copy is made."""
        head = self.head(key)
        if head is None or head.size != blob.size:
            return None
        wanted = [b64_of_hex(blob.sha256)]
        if resume is not None and sum(p.size for p in resume.parts) == blob.size:
            wanted.append(composite_sha256([p.sha256 for p in resume.parts]))
        if any(same_checksum(head.checksum_sha256, w) for w in wanted):
            return head
        return None

    def _read_all(self, blob: BlobRef) -> bytes:
        try:
            with self._opener(str(blob.path)) as fh:
                data = fh.read()
        except OSError as exc:
            raise UploadError(f"cannot read local blob {blob.blake3}: {exc.strerror}",
                              path=str(blob.path), errno=exc.errno) from exc
        if len(data) != blob.size:
            raise SizeMismatch(f"{blob.blake3}: local blob has {len(data)} bytes, catalog "
                               f"says {blob.size}", subject=blob.blake3, expected=blob.size,
                               actual=len(data))
        actual = str(blake3.blake3(data).hexdigest())
        if actual != blob.blake3:
            raise DigestMismatch(f"{blob.blake3}: the local blob no longer hashes to its "
                                 "name; not uploaded", subject=blob.blake3,
                                 expected=blob.blake3, actual=actual)
        return data

    def _put_single(self, blob: BlobRef, key: str, retain_until: datetime) -> Uploaded:
        data = self._read_all(blob)
        expected = b64_of_hex(blob.sha256)
        with s3_errors("PutObject", key):
            resp = self.client.put_object(
                Bucket=self.bucket, Key=key, Body=data, ContentLength=len(data),
                ChecksumAlgorithm="SHA256", ChecksumSHA256=expected,
                ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=retain_until,
                ContentType="application/octet-stream")
        self._check_returned(resp.get("ChecksumSHA256"), expected, key, "PutObject")
        return Uploaded(key=key, version_id=resp.get("VersionId"), size=blob.size,
                        checksum=str(resp["ChecksumSHA256"]), checksum_type="FULL_OBJECT",
                        etag=str(resp.get("ETag", "")), retain_until=retain_until)

    def _put_multipart(self, blob: BlobRef, key: str, retain_until: datetime,
                       resume: MultipartState | None, on_state: OnState | None) -> Uploaded:
        upload = MultipartUpload(client=self.client, bucket=self.bucket, key=key, blob=blob,
                                 part_size=self.part_size_for(blob.size),
                                 concurrency=self.max_concurrency,
                                 on_state=on_state or (lambda _state: None))
        try:
            state, expected, resp = upload.run(resume=resume, retain_until=retain_until,
                                               opener=self._opener)
        except OSError as exc:
            raise UploadError(f"cannot read local blob {blob.blake3}: {exc.strerror}",
                              path=str(blob.path), errno=exc.errno) from exc
        self._check_returned(resp.get("ChecksumSHA256"), expected, key,
                             "CompleteMultipartUpload")
        return Uploaded(key=key, version_id=resp.get("VersionId"), size=blob.size,
                        checksum=str(resp["ChecksumSHA256"]),
                        checksum_type=str(resp.get("ChecksumType") or "COMPOSITE"),
                        etag=str(resp.get("ETag", "")), retain_until=retain_until,
                        upload_id=state.upload_id, parts=len(state.parts))

    @staticmethod
    def _check_returned(returned: str | None, expected: str, key: str, op: str) -> None:
        if returned is None:
            raise UploadUnverifiable(f"{op} {key}: the store returned no SHA-256 checksum",
                                     key=key, op=op, expected=expected)
        if not same_checksum(returned, expected):
            raise UploadChecksumError(f"{op} {key}: the store reports another SHA-256",
                                      key=key, op=op, expected=expected, actual=returned)

    def _verified(self, blob: BlobRef, done: Uploaded) -> Uploaded:
        """HEAD the version just written: size, checksum, COMPLIANCE lock, retention."""
        head = self.head(done.key, version_id=done.version_id)
        if head is None:
            raise UploadChecksumError(f"{done.key}: not found right after upload",
                                      key=done.key, version_id=done.version_id)
        if head.checksum_sha256 is None:
            raise UploadUnverifiable(f"HeadObject {done.key}: no SHA-256 checksum returned",
                                     key=done.key)
        if head.size != blob.size or not same_checksum(head.checksum_sha256, done.checksum):
            raise UploadChecksumError(
                f"HeadObject {done.key}: size/checksum differ from what was uploaded",
                key=done.key, expected_size=blob.size, actual_size=head.size,
                expected=done.checksum, actual=head.checksum_sha256)
        if head.lock_mode != "COMPLIANCE" or head.retain_until is None \
                or head.retain_until < done.retain_until:
            raise UploadError(f"{done.key}: not under a COMPLIANCE lock until "
                              f"{done.retain_until.isoformat()}", key=done.key,
                              lock_mode=head.lock_mode, retain_until=head.retain_until)
        return done

    # -- retention, holds, deletion ----------------------------------------------------

    def retention(self, key: str, *, version_id: str | None = None) -> datetime | None:
        """The version's retain-until date (None if it has no retention)."""
        params: GetObjectRetentionRequestTypeDef = {"Bucket": self.bucket, "Key": key}
        if version_id:
            params["VersionId"] = version_id
        try:
            with s3_errors("GetObjectRetention", key):
                resp = self.client.get_object_retention(**params)
        except UploadError as exc:
            if s3_code(exc) in _NO_LOCK_CODES:
                return None
            raise
        until = resp.get("Retention", {}).get("RetainUntilDate")
        return until if isinstance(until, datetime) else None

    def extend_retention(self, key: str, new_until: datetime, *,
                         version_id: str | None = None) -> datetime:
        """Move the COMPLIANCE retain-until date later (never earlier); returns it."""
        new_until = _ceil_second(new_until)
        current = self.retention(key, version_id=version_id)
        if current is not None and new_until < current:
            raise Refused(f"{key}: retention is only ever extended (held until "
                          f"{current.isoformat()}, asked {new_until.isoformat()})",
                          key=key, version_id=version_id, current=current, asked=new_until)
        if current is not None and new_until == current:
            return current
        params: PutObjectRetentionRequestTypeDef = {"Bucket": self.bucket, "Key": key,
            "Retention": {"Mode": "COMPLIANCE", "RetainUntilDate": new_until}}
        if version_id:
            params["VersionId"] = version_id
        self._lock_call("PutObjectRetention", key, version_id,
                        lambda: self.client.put_object_retention(**params))
        return new_until

    def set_legal_hold(self, key: str, on: bool, *, version_id: str | None = None) -> None:
        params: PutObjectLegalHoldRequestTypeDef = {
            "Bucket": self.bucket, "Key": key, "LegalHold": {"Status": "ON" if on else "OFF"}}
        if version_id:
            params["VersionId"] = version_id
        self._lock_call("PutObjectLegalHold", key, version_id,
                        lambda: self.client.put_object_legal_hold(**params))

    def legal_hold(self, key: str, *, version_id: str | None = None) -> bool:
        params: GetObjectLegalHoldRequestTypeDef = {"Bucket": self.bucket, "Key": key}
        if version_id:
            params["VersionId"] = version_id
        try:
            with s3_errors("GetObjectLegalHold", key):
                resp = self.client.get_object_legal_hold(**params)
        except UploadError as exc:
            if s3_code(exc) in _NO_LOCK_CODES:
                return False
            raise
        return bool(resp.get("LegalHold", {}).get("Status") == "ON")

    def raise_retention(self, key: str, until: datetime, *, version_id: str | None = None,
                        renew_below: datetime | None = None) -> LockChange:
        """Read the retain-until (GetObjectRetention) and move it to ``until`` only if it
        is earlier than ``renew_below`` (default: ``until``). A later date is kept: this
        never asks the store to shorten anything."""
        until = _ceil_second(until)
        floor = min(until, _ceil_second(renew_below)) if renew_below is not None else until
        current = self.retention(key, version_id=version_id)
        if current is not None and current >= floor:
            return LockChange(key, version_id, "retention", current, current)
        params: PutObjectRetentionRequestTypeDef = {"Bucket": self.bucket, "Key": key,
            "Retention": {"Mode": "COMPLIANCE", "RetainUntilDate": until}}
        if version_id:
            params["VersionId"] = version_id
        self._lock_call("PutObjectRetention", key, version_id,
                        lambda: self.client.put_object_retention(**params))
        return LockChange(key, version_id, "retention", current, until)

    def ensure_legal_hold(self, key: str, on: bool, *,
                          version_id: str | None = None) -> LockChange:
        """Read the legal hold (GetObjectLegalHold); set it to ``on`` only if it differs."""
        current = self.legal_hold(key, version_id=version_id)
        if current != on:
            self.set_legal_hold(key, on, version_id=version_id)
        return LockChange(key, version_id, "legal_hold", current, on)

    def _lock_call(self, op: str, key: str, version_id: str | None,
                   call: Callable[[], object]) -> None:
        """Make one Object Lock change (``call``); the store's AccessDenied is Refused."""
        try:
            with s3_errors(op, key):
                call()
        except UploadError as exc:
            if s3_code(exc) == "AccessDenied":
                raise Refused(f"{op} {key}: the store refused it (Object Lock)", key=key,
                              version_id=version_id) from exc
            raise

    def delete_expired(self, key: str, *, version_id: str | None,
                       now: datetime) -> RemoteDeletion:
        """Delete exactly one version whose lock has run out and that no legal hold keeps.

        Never without a version id (that would only add a delete marker, the bytes would
        stay). The retain-until (GetObjectRetention) must be none or not after ``now`` and
        the legal hold (GetObjectLegalHold) off; the store judges again by its own clock
        and may still refuse (AccessDenied: not deleted). A version the store no longer
        has counts as deleted ("already absent"). Other failures raise (an
        :class:`~integrity.errors.UploadUnavailable` store: ask again later).
        """
        if now.tzinfo is None:
            raise ValueError("naive datetime given as now; pass aware UTC")
        if not version_id:
            return RemoteDeletion(key, None, False, NO_VERSION_ID)
        try:
            until = self.retention(key, version_id=version_id)
            until = until.astimezone(UTC) if until is not None else None
            if until is not None and until > now:
                return RemoteDeletion(key, version_id, False,
                                      f"retained until {until.isoformat()}", until)
            if self.legal_hold(key, version_id=version_id):
                return RemoteDeletion(key, version_id, False, "legal hold on", until)
            refused = self._delete_version(key, version_id)
        except UploadError as exc:
            if s3_code(exc) in _ABSENT_CODES:
                return RemoteDeletion(key, version_id, True, ALREADY_ABSENT)
            raise
        if refused:
            return RemoteDeletion(key, version_id, False, refused, until)
        if self.head(key, version_id=version_id) is not None:
            return RemoteDeletion(key, version_id, False,
                                  "the store still has the version after deleting it", until)
        return RemoteDeletion(key, version_id, True, "deleted", until)

    def _delete_version(self, key: str, version_id: str) -> str:
        """DeleteObject of one version; the refusal ('' if deleted)."""
        try:
            with s3_errors("DeleteObject", key):
                self.client.delete_object(Bucket=self.bucket, Key=key, VersionId=version_id)
        except UploadError as exc:
            if s3_code(exc) == "AccessDenied":
                return "the store refused the delete (AccessDenied: still locked or held)"
            raise
        return ""

    def delete(self, key: str, *, version_id: str | None = None) -> NoReturn:
        """evidock never deletes evidence from the archive; the lock forbids it anyway."""
        raise Refused(f"{key}: evidock does not delete archived evidence", key=key,
                      version_id=version_id)

