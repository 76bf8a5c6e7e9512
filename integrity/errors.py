"""The one error hierarchy of evidock.

Every error carries a stable ``code`` (a member of :class:`integrity.codes.Code`, the
one list of codes with their meanings, docs/CODES.md) and the data that failed, so entry
points can print one line for people and JSON for machines. It lives in ``integrity``
because that is the leaf every other package may import.
"""

from __future__ import annotations

from typing import Any, ClassVar

from integrity.codes import Code


class EvidockError(Exception):
    """Base of all evidock errors. Subclasses set ``code``; ``details`` hold the data."""

    code: ClassVar[Code] = Code.E_EVIDOCK
    #: exit code an entry point should use when this error ends a command
    exit_code: ClassVar[int] = 2

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details

    def to_dict(self) -> dict[str, Any]:
        # str(): the plain string, exactly as before codes were an enum
        return {"code": str(self.code), "message": self.message,
                "details": _jsonable(self.details)}

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


class ConfigError(EvidockError):
    code = Code.E_CONFIG


class DigestMismatch(EvidockError):
    code = Code.E_DIGEST_MISMATCH


class SizeMismatch(EvidockError):
    code = Code.E_SIZE_MISMATCH


class SignatureInvalid(EvidockError):
    code = Code.E_SIGNATURE_INVALID


class KeyError_(EvidockError):
    """Key material missing, unreadable or of the wrong kind."""

    code = Code.E_KEY


class ManifestInvalid(EvidockError):
    code = Code.E_MANIFEST_INVALID


class ProofInvalid(EvidockError):
    code = Code.E_PROOF_INVALID


class StoreError(EvidockError):
    """The evidence store cannot be written: fatal for an offload."""

    code = Code.E_STORE_UNWRITABLE


class DiskFull(StoreError):
    code = Code.E_DISK_FULL


class CatalogError(EvidockError):
    code = Code.E_CATALOG


class SchemaOutdated(CatalogError):
    """The catalog's schema is not the revision this evidock needs (or it has none):
    nothing was read or written; `evidock admin migrate` (or `evidock init`) fixes it."""

    code = Code.E_SCHEMA_OUTDATED


class SourceGone(EvidockError):
    """The camera (source tree) disappeared or stopped answering mid-offload."""

    code = Code.E_SOURCE_GONE


class SourceInvalid(EvidockError):
    """The source given to an offload is not a readable directory."""

    code = Code.E_SOURCE_INVALID


class CameraBusy(EvidockError):
    """The camera is already being offloaded (another bay or ingest): refused untouched."""

    code = Code.E_CAMERA_BUSY


class MediaError(EvidockError):
    code = Code.E_MEDIA


class ToolMissing(EvidockError):
    """A required external tool (ffmpeg, ffprobe) is not installed."""

    code = Code.E_TOOL_MISSING


class NotFound(EvidockError):
    code = Code.E_NOT_FOUND
    exit_code = 1


class Refused(EvidockError):
    """An action evidock never performs on evidence (edit, delete) or a denied permission."""

    code = Code.E_REFUSED
    exit_code = 3


class AuditError(EvidockError):
    """The audit log cannot be appended to, proven or signed as asked."""

    code = Code.E_AUDIT


class FixityError(EvidockError):
    """A fixity run cannot be carried out as asked (bad selection, unreadable store)."""

    code = Code.E_FIXITY


class UploadError(EvidockError):
    """An upload to object storage failed and trying again will not help by itself
    (access denied, no such bucket, bucket without Object Lock, unreadable local blob)."""

    code = Code.E_UPLOAD
    retryable: ClassVar[bool] = False


class UploadUnavailable(UploadError):
    """The object store cannot be reached or is overloaded (connection refused or reset,
    timeout, HTTP 5xx, throttling): retried later with backoff, nothing is lost."""

    code = Code.E_UPLOAD_UNAVAILABLE
    retryable = True


class UploadChecksumError(UploadError):
    """The bytes the object store holds (or received) do not match our SHA-256: the store
    rejected our checksum (BadDigest) or returned a different one. Retried a few times."""

    code = Code.E_UPLOAD_CHECKSUM
    retryable = True


class UploadUnverifiable(UploadError):
    """The object store accepted the upload but does not return SHA-256 checksums, so the
    copy cannot be verified remotely (e.g. Ceph RGW before Squid)."""

    code = Code.E_UPLOAD_UNVERIFIABLE


class RepairUnavailable(EvidockError):
    """A blob cannot be restored from the object store: no verified upload of it, the
    store no longer has that version, or retention removed the blob. Nothing changed."""

    code = Code.E_REPAIR_UNAVAILABLE
    exit_code = 1


class RepairMismatch(EvidockError):
    """The object downloaded to restore a blob is not the catalog's bytes (size, BLAKE3
    or SHA-256): nothing was placed, the damaged blob stays where it was."""

    code = Code.E_REPAIR_MISMATCH
    exit_code = 1


class RemoteUnproven(EvidockError):
    """A blob the center read back from the object store did not prove out: no version
    at its key has its size and BLAKE3. Nothing was kept or written."""

    code = Code.E_REMOTE_UNPROVEN
    exit_code = 1


class InvalidRequest(EvidockError):
    """A request that cannot be carried out as given (bad case number, unknown stage,
    a range outside the recording): nothing was changed."""

    code = Code.E_INVALID
    exit_code = 1


class Conflict(EvidockError):
    """The request contradicts the record (case number already exists, link already
    removed, hold already released, request already decided)."""

    code = Code.E_CONFLICT
    exit_code = 1


class RangeNotSatisfiable(InvalidRequest):
    """A byte range no byte of the stored blob can answer (HTTP 416)."""

    code = Code.E_RANGE_NOT_SATISFIABLE


class ServiceUnavailable(EvidockError):
    """The client could not reach the station service; the request was not made."""

    code = Code.E_SERVICE_UNAVAILABLE


class TransferFailed(EvidockError):
    """A package download broke off or did not match what the service listed; the
    client wrote nothing at the destination."""

    code = Code.E_TRANSFER


class UnknownUser(Refused):
    """The OS account running evidock is not mapped to an evidock user."""

    code = Code.E_UNKNOWN_USER


class Forbidden(Refused):
    """The user lacks the permission, unit or clearance for this action (audited)."""

    code = Code.E_FORBIDDEN


class SelfApproval(Forbidden):
    """The second person of a two-person rule must be someone else."""

    code = Code.E_SELF_APPROVAL


class CenterDecides(Forbidden):
    """A deletion approval or a hold release that only the center may give."""

    code = Code.E_CENTER_DECIDES


class HiddenItem(Forbidden):
    """An export names footage the user may not see (through another case it is linked
    to); the refusal lists the items, never the cases that hide them."""

    code = Code.E_ITEM_HIDDEN


class NotApproved(Refused):
    """An export or deletion was attempted without a valid (approved, unexpired,
    unused) approval."""

    code = Code.E_NOT_APPROVED


class LoginFailed(Refused):
    """A network login with a wrong user name or password (the answer does not say
    which; the audit event does)."""

    code = Code.E_LOGIN_FAILED


class LoginThrottled(Refused):
    """Too many failed logins for the account or the client address within a minute."""

    code = Code.E_LOGIN_THROTTLED


class CsrfRejected(Forbidden):
    """A state-changing request rode on a session cookie without the session's token."""

    code = Code.E_CSRF


class RetentionInvariantError(EvidockError):
    """The planner was about to delete before the legal minimum or before ``now``: a bug."""

    code = Code.E_RETENTION_INVARIANT


class RenditionFailed(EvidockError):
    """A rendition could not be made. Never escapes the renderer: the attempt becomes a
    ``failed`` rendition row with the subclass's code; the original is untouched."""

    code = Code.E_RENDITION


class RenditionDiscontinuous(RenditionFailed):
    code = Code.E_RENDITION_DISCONTINUOUS


class RenditionEmpty(RenditionFailed):
    code = Code.E_RENDITION_EMPTY


class RenditionIncomplete(RenditionFailed):
    code = Code.E_RENDITION_INCOMPLETE


class RenditionTimeout(RenditionFailed):
    code = Code.E_RENDITION_TIMEOUT


class RenditionToolFailed(RenditionFailed):
    """ffmpeg exited with an error while cutting the segments."""

    code = Code.E_RENDITION_FFMPEG


class QueueUnavailable(EvidockError):
    """The job queue cannot be used here: no PostgreSQL catalog, no queue configured, or
    its database refused (on the SQLite default renditions run in-process instead)."""

    code = Code.E_QUEUE_UNAVAILABLE


class NotOperator(EvidockError):
    """A command that opens the station's files directly, run by an account that is
    neither root nor the service account (the file modes would stop it anyway; this
    says so clearly, before anything is touched)."""

    code = Code.E_NOT_OPERATOR
    exit_code = 3


class LogFork(Conflict):
    """A station's signed tree head does not extend the log its witness saw before."""

    code = Code.E_LOG_FORK


class WitnessRefused(InvalidRequest):
    """A witness would not countersign the head it was given (nothing was witnessed)."""

    code = Code.E_WITNESS_REFUSED


class CenterUnavailable(EvidockError):
    """The center was unreachable or answered out of protocol; nothing was kept."""

    code = Code.E_CENTER_UNAVAILABLE
