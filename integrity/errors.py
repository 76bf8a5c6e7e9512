"""The one error hierarchy of evidock.

Every error carries a stable ``code`` (documented in docs/ARCHITECTURE.md) and the data
that failed, so entry points can print one line for people and JSON for machines. It
lives in ``integrity`` because that is the leaf every other package may import.
"""

from __future__ import annotations

from typing import Any, ClassVar


class EvidockError(Exception):
    """Base of all evidock errors. Subclasses set ``code``; ``details`` hold the data."""

    code: ClassVar[str] = "E_EVIDOCK"
    #: exit code an entry point should use when this error ends a command
    exit_code: ClassVar[int] = 2

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": _jsonable(self.details)}

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
    code = "E_CONFIG"


class DigestMismatch(EvidockError):
    code = "E_DIGEST_MISMATCH"


class SizeMismatch(EvidockError):
    code = "E_SIZE_MISMATCH"


class SignatureInvalid(EvidockError):
    code = "E_SIGNATURE_INVALID"


class KeyError_(EvidockError):
    """Key material missing, unreadable or of the wrong kind."""

    code = "E_KEY"


class ManifestInvalid(EvidockError):
    code = "E_MANIFEST_INVALID"


class ProofInvalid(EvidockError):
    code = "E_PROOF_INVALID"


class StoreError(EvidockError):
    """The evidence store cannot be written: fatal for an offload."""

    code = "E_STORE_UNWRITABLE"


class DiskFull(StoreError):
    code = "E_DISK_FULL"


class CatalogError(EvidockError):
    code = "E_CATALOG"


class SourceGone(EvidockError):
    """The camera (source tree) disappeared or stopped answering mid-offload."""

    code = "E_SOURCE_GONE"


class SourceInvalid(EvidockError):
    """The source given to an offload is not a readable directory."""

    code = "E_SOURCE_INVALID"


class MediaError(EvidockError):
    code = "E_MEDIA"


class ToolMissing(EvidockError):
    """A required external tool (ffmpeg, ffprobe) is not installed."""

    code = "E_TOOL_MISSING"


class NotFound(EvidockError):
    code = "E_NOT_FOUND"
    exit_code = 1


class Refused(EvidockError):
    """An action evidock never performs on evidence (edit, delete) or a denied permission."""

    code = "E_REFUSED"
    exit_code = 3
