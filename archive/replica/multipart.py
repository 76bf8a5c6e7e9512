"""Streaming, resumable multipart upload with per-part SHA-256 checksums.

The file is read once, in order, one part at a time, and a part is read only when one of
the ``concurrency`` upload slots (worker threads) is free, so memory is bounded by
``concurrency × part_size`` whatever the file's size. Each part goes out with its
SHA-256, which the store verifies; the whole file's BLAKE3 is computed on the way (on this
thread, while the part SHA-256s run on the workers) and must equal the blob's name before
the upload is completed (a damaged local blob is never completed remotely), and the
composite checksum is computed from the part digests to be compared with what the store
reports.

The state (upload id, part size, acknowledged parts) is handed to ``on_state`` when the
upload is created and after every part, so the caller can persist it. On resume the
server's part list (ListParts) is the truth: a part is skipped only if the server still
has it with the recorded ETag and size and the local bytes still hash to the recorded
SHA-256; anything else is sent again under the same part number.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ALL_COMPLETED, FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import datetime
from typing import TYPE_CHECKING, BinaryIO

import blake3

from archive.replica.s3 import (
    BlobRef,
    MultipartState,
    PartRecord,
    b64_sha256,
    composite_sha256,
    s3_code,
    s3_errors,
)
from integrity.errors import DigestMismatch, SizeMismatch, UploadChecksumError, UploadError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import (
        CompletedPartTypeDef,
        CompleteMultipartUploadOutputTypeDef,
    )

OnState = Callable[[MultipartState], None]


class MultipartUpload:
    """One multipart upload of one blob to ``bucket/key``; :meth:`run` does it."""

    def __init__(self, *, client: S3Client, bucket: str, key: str, blob: BlobRef, part_size: int,
                 concurrency: int, on_state: OnState) -> None:
        self.client = client
        self.bucket = bucket
        self.key = key
        self.blob = blob
        self.part_size = part_size
        self.concurrency = max(1, concurrency)
        self.on_state = on_state
        self.state: MultipartState | None = None
        self._server_parts: dict[int, tuple[str, int]] = {}

    def run(self, *, resume: MultipartState | None, retain_until: datetime,
            opener: Callable[[str], BinaryIO],
            ) -> tuple[MultipartState, str, CompleteMultipartUploadOutputTypeDef]:
        """Upload every part and complete; returns (state, expected composite, response)."""
        self._start(resume, retain_until)
        assert self.state is not None
        with opener(str(self.blob.path)) as fh:
            content_name = self._send_all(fh)
        if content_name != self.blob.blake3:
            self._abort()
            raise DigestMismatch(
                f"{self.blob.blake3}: the local blob no longer hashes to its name; "
                "not completed remotely", subject=self.blob.blake3,
                expected=self.blob.blake3, actual=content_name)
        expected = composite_sha256([p.sha256 for p in self.state.parts])
        parts: list[CompletedPartTypeDef] = [
            {"PartNumber": p.number, "ETag": p.etag, "ChecksumSHA256": p.sha256}
            for p in self.state.parts]
        with s3_errors("CompleteMultipartUpload", self.key):
            resp = self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=self.key, UploadId=self.state.upload_id,
                MultipartUpload={"Parts": parts})
        return self.state, expected, resp

    def _start(self, resume: MultipartState | None, retain_until: datetime) -> None:
        if resume is not None:
            listed = self._list_parts(resume.upload_id)
            if listed is not None:
                self.state, self._server_parts = resume, listed
                self.part_size = resume.part_size
                return
        with s3_errors("CreateMultipartUpload", self.key):
            resp = self.client.create_multipart_upload(
                Bucket=self.bucket, Key=self.key, ChecksumAlgorithm="SHA256",
                ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=retain_until,
                ContentType="application/octet-stream")
        self.state = MultipartState(upload_id=str(resp["UploadId"]), part_size=self.part_size)
        self._server_parts = {}
        self.on_state(self.state)

    def _list_parts(self, upload_id: str) -> dict[int, tuple[str, int]] | None:
        """Parts the server holds for ``upload_id``; None if the upload is gone."""
        found: dict[int, tuple[str, int]] = {}
        marker = 0
        while True:
            try:
                with s3_errors("ListParts", self.key):
                    resp = self.client.list_parts(Bucket=self.bucket, Key=self.key,
                                                  UploadId=upload_id, PartNumberMarker=marker)
            except UploadError as exc:
                if s3_code(exc) == "NoSuchUpload":
                    return None  # completed or aborted meanwhile: start a clean upload
                raise
            for part in resp.get("Parts", []):
                found[int(part["PartNumber"])] = (str(part["ETag"]), int(part["Size"]))
            if not resp.get("IsTruncated"):
                return found
            marker = int(resp["NextPartNumberMarker"])

    def _read_parts(self, fh: BinaryIO,
                    pending: set[Future[PartRecord]]) -> Iterator[tuple[int, bytes]]:
        """The parts in order; the next is read only once a slot is free (bounded memory)."""
        number = 0
        while True:
            while len(pending) >= self.concurrency:
                still_running = self._collect(pending, FIRST_COMPLETED)
                pending.intersection_update(still_running)
            data = fh.read(self.part_size)
            if not data:
                return
            number += 1
            yield number, data

    def _send_all(self, fh: BinaryIO) -> str:
        """Send every part (bounded in flight); returns the file's BLAKE3 (hex)."""
        full, size = blake3.blake3(), 0
        pending: set[Future[PartRecord]] = set()
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="upload-part") as pool:
            try:
                for number, data in self._read_parts(fh, pending):
                    full.update(data)
                    size += len(data)
                    pending.add(pool.submit(self._send_part, number, data))
                pending = self._collect(pending, ALL_COMPLETED)
            except BaseException:
                for future in pending:
                    future.cancel()
                self._collect(pending, ALL_COMPLETED, swallow=True)
                raise
        if size != self.blob.size:
            raise SizeMismatch(f"{self.blob.blake3}: read {size} bytes, catalog says "
                               f"{self.blob.size}", subject=self.blob.blake3,
                               expected=self.blob.size, actual=size)
        return str(full.hexdigest())

    def _collect(self, pending: set[Future[PartRecord]], when: str, *,
                 swallow: bool = False) -> set[Future[PartRecord]]:
        """Wait for some (FIRST_COMPLETED) or all parts; record each one acknowledged."""
        done, rest = wait(pending, return_when=when)
        error: BaseException | None = None
        for future in done:
            if future.cancelled():
                continue
            exc = future.exception()
            if exc is not None:
                error = error or exc
                continue
            assert self.state is not None
            self.state = self.state.with_part(future.result())
            self.on_state(self.state)
        if error is not None and not swallow:
            raise error
        return set(rest)

    def _send_part(self, number: int, data: bytes) -> PartRecord:
        assert self.state is not None
        checksum = b64_sha256(data)
        known = {p.number: p for p in self.state.parts}.get(number)
        if (known is not None and known.sha256 == checksum and known.size == len(data)
                and self._server_parts.get(number) == (known.etag, known.size)):
            return known  # already on the server, same bytes: not sent again
        with s3_errors("UploadPart", self.key):
            resp = self.client.upload_part(
                Bucket=self.bucket, Key=self.key, UploadId=self.state.upload_id,
                PartNumber=number, Body=data, ContentLength=len(data),
                ChecksumAlgorithm="SHA256", ChecksumSHA256=checksum)
        returned = resp.get("ChecksumSHA256")
        if returned is not None and returned != checksum:
            raise UploadChecksumError(f"UploadPart {self.key} #{number}: the store reports "
                                      "another SHA-256", key=self.key, part=number,
                                      expected=checksum, actual=returned)
        return PartRecord(number=number, size=len(data), sha256=checksum,
                          etag=str(resp["ETag"]))

    def _abort(self) -> None:
        assert self.state is not None
        with s3_errors("AbortMultipartUpload", self.key):
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=self.key,
                                               UploadId=self.state.upload_id)
