"""Findings: what a verifier reports instead of raising, so one run lists every problem.

Shared by every verifier in the project. A finding's ``code`` uses the same "E_..." space
as :mod:`integrity.errors`; codes that exist only as findings are defined here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from integrity.errors import (
    DigestMismatch,
    EvidockError,
    ManifestInvalid,
    ProofInvalid,
    SignatureInvalid,
    _jsonable,
)

# Finding-only codes (no exception class raises them).
E_KEY_UNKNOWN = "E_KEY_UNKNOWN"
E_MERKLE_ROOT_MISMATCH = "E_MERKLE_ROOT_MISMATCH"
# Codes shared with exception classes, re-exported so verifiers need one import.
E_SIGNATURE_INVALID = SignatureInvalid.code
E_MANIFEST_INVALID = ManifestInvalid.code
E_DIGEST_MISMATCH = DigestMismatch.code
E_PROOF_INVALID = ProofInvalid.code


@dataclass(frozen=True)
class Finding:
    """One verification problem. ``subject`` names what it is about (a file, a segment)."""

    code: str
    message: str
    subject: str | None = None
    # hash=False: a dict is unhashable, and findings are still comparable by value.
    details: dict[str, Any] = field(default_factory=dict, hash=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "subject": self.subject,
            "details": _jsonable(self.details),
        }

    @classmethod
    def from_error(cls, error: EvidockError, subject: str | None = None) -> Finding:
        """Turn a raised error into a finding, keeping its code and details."""
        return cls(error.code, error.message, subject, dict(error.details))

    def __str__(self) -> str:
        where = f" [{self.subject}]" if self.subject else ""
        return f"{self.code}{where}: {self.message}"
