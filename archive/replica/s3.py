"""Values, the boto3 client factory and S3 error mapping for the object-store uploader.

S3 wants SHA-256 checksums base64-encoded; the catalog keeps them as hex. A multipart
object's checksum is COMPOSITE: SHA-256 over the concatenated 32-byte part digests,
base64, then ``-N`` (N parts). Every botocore failure becomes one of the
:class:`integrity.errors.UploadError` classes, whose ``retryable`` flag and code drive the
queue's backoff.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, HTTPClientError

from integrity.errors import (
    UploadChecksumError,
    UploadError,
    UploadUnavailable,
)

if TYPE_CHECKING:  # boto3-stubs[s3], a dev extra: never imported at run time
    from mypy_boto3_s3 import S3Client

#: S3 error codes meaning "the bytes received are not the bytes described".
CHECKSUM_CODES = frozenset({"BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch",
                            "XAmzContentChecksumMismatch", "InvalidChecksum"})
#: S3 error codes meaning "try again later" whatever their HTTP status.
TRANSIENT_CODES = frozenset({"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout",
                             "InternalError", "ServiceUnavailable", "RequestLimitExceeded",
                             "TooManyRequests", "OperationAborted"})
AddressingStyle = Literal["path", "virtual", "auto"]


def b64_of_hex(hex_digest: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_digest)).decode("ascii")


def b64_sha256(data: bytes | memoryview) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")


def composite_sha256(part_checksums: Sequence[str]) -> str:
    """The COMPOSITE checksum S3 reports for a multipart object: ``b64(sha256(d1‖…‖dN))-N``."""
    joined = b"".join(base64.b64decode(c) for c in part_checksums)
    return f"{b64_sha256(joined)}-{len(part_checksums)}"


def same_checksum(returned: str | None, expected: str) -> bool:
    """Compare a returned checksum with ours; a composite one may come without ``-N``."""
    if returned is None:
        return False
    base, _, count = expected.partition("-")
    got_base, _, got_count = returned.partition("-")
    return got_base == base and (not got_count or got_count == count)


@dataclass(frozen=True)
class BlobRef:
    """One blob to upload: its names from the catalog and where the local copy is."""

    blake3: str
    sha256: str  # hex, as in the catalog
    size: int
    path: Path


@dataclass(frozen=True)
class PartRecord:
    """A part the server acknowledged, with the SHA-256 it verified (base64)."""

    number: int
    size: int
    sha256: str
    etag: str

    def to_json(self) -> dict[str, Any]:
        return {"n": self.number, "size": self.size, "sha256": self.sha256, "etag": self.etag}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PartRecord:
        return cls(number=int(data["n"]), size=int(data["size"]), sha256=str(data["sha256"]),
                   etag=str(data["etag"]))


@dataclass(frozen=True)
class MultipartState:
    """What a resumed multipart upload needs: persisted after every acknowledged part."""

    upload_id: str
    part_size: int
    parts: tuple[PartRecord, ...] = field(default=())

    def with_part(self, part: PartRecord) -> MultipartState:
        others = tuple(p for p in self.parts if p.number != part.number)
        return replace(self, parts=tuple(sorted((*others, part), key=lambda p: p.number)))

    def parts_json(self) -> list[dict[str, Any]]:
        return [p.to_json() for p in self.parts]


@dataclass(frozen=True)
class RemoteObject:
    """What HEAD says about one object version."""

    key: str
    version_id: str | None
    size: int
    checksum_sha256: str | None
    checksum_type: str | None
    etag: str
    lock_mode: str | None
    retain_until: datetime | None
    legal_hold: bool


@dataclass(frozen=True)
class Uploaded:
    """A remote copy proven equal to the local blob (size and SHA-256 checked twice)."""

    key: str
    version_id: str | None
    size: int
    checksum: str  # as the server returned it (base64, composite ones end in -N)
    checksum_type: str  # FULL_OBJECT | COMPOSITE
    etag: str
    retain_until: datetime
    upload_id: str | None = None
    parts: int = 1
    reused: bool = False  # the object was already there (a run died before recording it)


def _client_error(exc: ClientError, op: str, key: str) -> UploadError:
    err = exc.response.get("Error", {})
    code = str(err.get("Code", ""))
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    details = {"op": op, "key": key, "s3_code": code, "http_status": status,
               "s3_message": str(err.get("Message", ""))}
    if code in CHECKSUM_CODES:
        return UploadChecksumError(f"{op} {key}: the store rejected our SHA-256 ({code})",
                                   **details)
    if status >= 500 or status == 429 or code in TRANSIENT_CODES:
        return UploadUnavailable(f"{op} {key}: store unavailable ({status} {code})", **details)
    return UploadError(f"{op} {key}: refused by the store ({status} {code})", **details)


def classify(exc: BaseException, *, op: str, key: str) -> UploadError:
    """Map a failure of one S3 call to the evidock error the queue schedules by."""
    if isinstance(exc, UploadError):
        return exc
    if isinstance(exc, ClientError):
        return _client_error(exc, op, key)
    if isinstance(exc, ConnectionError | HTTPClientError | OSError):
        return UploadUnavailable(f"{op} {key}: cannot reach the store: {exc}", op=op, key=key,
                                 error=type(exc).__name__)
    if isinstance(exc, BotoCoreError):
        return UploadError(f"{op} {key}: {exc}", op=op, key=key, error=type(exc).__name__)
    raise exc


def s3_code(exc: UploadError) -> str:
    """The S3 error code behind an UploadError ('' if it was no S3 error response)."""
    return str(exc.details.get("s3_code", ""))


@contextmanager
def s3_errors(op: str, key: str) -> Iterator[None]:
    """Run S3 calls; re-raise their failures as classified :class:`UploadError`."""
    try:
        yield
    except (ClientError, BotoCoreError, OSError) as exc:
        raise classify(exc, op=op, key=key) from exc


class UploadSettingsLike(Protocol):
    """The ``[upload]`` settings :meth:`ObjectStore.from_settings` reads."""

    @property
    def endpoint_url(self) -> str: ...
    @property
    def region(self) -> str: ...
    @property
    def bucket(self) -> str: ...
    @property
    def key_prefix(self) -> str: ...
    @property
    def access_key_id(self) -> str: ...
    @property
    def secret_access_key(self) -> str: ...
    @property
    def addressing_style(self) -> AddressingStyle: ...
    @property
    def part_size(self) -> int: ...
    @property
    def multipart_threshold(self) -> int: ...
    @property
    def max_concurrency(self) -> int: ...
    @property
    def connect_timeout_s(self) -> float: ...
    @property
    def read_timeout_s(self) -> float: ...


def make_s3_client(*, endpoint_url: str = "", region: str = "us-east-1",
                   access_key_id: str = "", secret_access_key: str = "",
                   addressing_style: AddressingStyle = "path", connect_timeout_s: float = 10.0,
                   read_timeout_s: float = 120.0, max_pool_connections: int = 10) -> S3Client:
    """A boto3 S3 client as the uploader needs it: one attempt per call, our checksums.

    Empty credentials mean boto3's usual chain (environment, ~/.aws, instance role).
    Payload signing is off: with ``x-amz-checksum-sha256`` on every body the store
    verifies integrity itself, and signing would hash every byte a third time.
    """
    config = Config(
        region_name=region, connect_timeout=connect_timeout_s, read_timeout=read_timeout_s,
        max_pool_connections=max_pool_connections,
        retries={"total_max_attempts": 1, "mode": "standard"},
        s3={"addressing_style": addressing_style, "payload_signing_enabled": False},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required")
    session = boto3.session.Session()
    return session.client("s3", endpoint_url=endpoint_url or None, config=config,
                          aws_access_key_id=access_key_id or None,
                          aws_secret_access_key=secret_access_key or None)
