"""Reading a blob's object back from the object store, into the store's staging area.

The only way evidock reads an archived copy: one GetObject (of the verified version when
one is named) streamed through :meth:`archive.staging.Stager.copy`, which hashes BLAKE3
and SHA-256 over its reused buffers while writing and fsyncs, then
:meth:`~archive.staging.Stager.verify`, which re-reads the file from the disk. The read
is bounded by the catalog's size: an object of another length is refused before a byte
is read (its ContentLength), and a body that runs past that length stops at the first
byte too many. A :class:`~archive.staging.Staged` is returned only when size, BLAKE3 (the
blob's name) and SHA-256 (the catalog's) all match; anything else is
``E_REPAIR_MISMATCH`` with the staged file removed, so nothing of it can be linked.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from archive.replica.s3 import s3_code, s3_errors
from archive.staging import Staged, Stager
from integrity.digest import CHUNK_SIZE, Digests
from integrity.errors import RepairMismatch, RepairUnavailable, UploadError

if TYPE_CHECKING:  # boto3-stubs[s3], a dev extra: never imported at run time
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import GetObjectRequestTypeDef

#: What stores answer when the key or the version asked for is not there.
ABSENT_CODES = frozenset({"NoSuchKey", "NoSuchVersion"})


@dataclass(frozen=True, kw_only=True)
class Wanted:
    """The catalog's description of a blob: what the downloaded bytes must be."""

    blake3: str
    #: hex, as in the catalog; None where only the BLAKE3 name is known (a segment a
    #: center reads back: the station's manifest names segments by BLAKE3 alone)
    sha256: str | None
    size: int


@dataclass(frozen=True, kw_only=True)
class Source:
    """Where the verified copy is: bucket, key and (with Object Lock, always) version."""

    bucket: str
    key: str
    version_id: str | None


class _Body(Protocol):
    def readinto(self, buffer: memoryview, /) -> int | None: ...
    def close(self) -> None: ...


class _Bounded:
    """A response body that yields at most ``size`` bytes and refuses one more."""

    def __init__(self, body: _Body, *, size: int, key: str) -> None:
        self._body, self._size, self._key = body, size, key
        self._done = 0

    def readinto(self, buffer: memoryview, /) -> int:
        # One byte past the end is asked for on purpose: a longer object shows itself.
        room = self._size - self._done + 1
        with s3_errors("GetObject", self._key):
            n = self._body.readinto(buffer[:room] if room < len(buffer) else buffer) or 0
        self._done += n
        if self._done > self._size:
            raise RepairMismatch(f"{self._key}: the object is longer than the catalog's "
                                 f"{self._size} bytes; not placed", key=self._key,
                                 expected_size=self._size)
        return n


def download(client: S3Client, source: Source, want: Wanted, stager: Stager, *,
             chunk_size: int = CHUNK_SIZE) -> Staged:
    """GetObject ``source`` into ``stager``; the verified staged file, or raise."""
    params: GetObjectRequestTypeDef = {"Bucket": source.bucket, "Key": source.key}
    if source.version_id:
        params["VersionId"] = source.version_id
    resp = _get(client, params, source)
    body = resp["Body"]
    try:
        length = int(resp.get("ContentLength", -1))
        if length != want.size:
            raise RepairMismatch(
                f"{source.key}: the object has {length} bytes, the catalog {want.size}; "
                "not downloaded", key=source.key, version_id=source.version_id,
                expected_size=want.size, actual_size=length)
        got = resp.get("VersionId")
        if source.version_id and got and got != source.version_id:
            raise RepairMismatch(f"{source.key}: the store answered version {got}, not "
                                 f"{source.version_id}", key=source.key,
                                 version_id=source.version_id, actual_version=got)
        written = stager.copy(_Bounded(body, size=want.size, key=source.key),
                              chunk_size=chunk_size)
    finally:
        with contextlib.suppress(Exception):  # the connection is dropped, not reused
            body.close()
    staged = stager.verify(written, subject=source.key)
    _check(staged, want, source)
    return staged


def _get(client: S3Client, params: GetObjectRequestTypeDef, source: Source) -> Any:
    try:
        with s3_errors("GetObject", source.key):
            return client.get_object(**params)
    except UploadError as exc:
        if s3_code(exc) in ABSENT_CODES or exc.details.get("http_status") == 404:
            raise RepairUnavailable(
                f"{source.key}: the object store no longer has the verified copy "
                f"(version {source.version_id or '-'})", key=source.key,
                bucket=source.bucket, version_id=source.version_id) from exc
        raise


def _check(staged: Staged, want: Wanted, source: Source) -> None:
    """Both digests against the catalog; a mismatch leaves no staged file behind."""
    got: Digests = staged.digests
    if (got.size, got.blake3) == (want.size, want.blake3) and \
            want.sha256 in (None, got.sha256):
        return
    staged.path.unlink(missing_ok=True)
    raise RepairMismatch(
        f"{source.key}: the downloaded object is not blob {want.blake3[:16]}… "
        f"(BLAKE3 {got.blake3[:16]}…, SHA-256 {got.sha256[:16]}…); not placed",
        key=source.key, version_id=source.version_id, expected=want.blake3,
        actual=got.blake3, expected_sha256=want.sha256, actual_sha256=got.sha256,
        size=got.size)
