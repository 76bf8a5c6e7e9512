"""Findings: what a verifier reports instead of raising, so one run lists every problem.

Shared by every verifier in the project. A finding's ``code`` is an
:class:`integrity.codes.Code`, the same list the errors' codes come from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from integrity.codes import Code
from integrity.errors import EvidockError, _jsonable

# Re-exported so verifiers need one import (the codes themselves live in the registry).
E_KEY_UNKNOWN = Code.E_KEY_UNKNOWN
E_MERKLE_ROOT_MISMATCH = Code.E_MERKLE_ROOT_MISMATCH
E_SIGNATURE_INVALID = Code.E_SIGNATURE_INVALID
E_MANIFEST_INVALID = Code.E_MANIFEST_INVALID
E_DIGEST_MISMATCH = Code.E_DIGEST_MISMATCH
E_PROOF_INVALID = Code.E_PROOF_INVALID


@dataclass(frozen=True)
class Finding:
    """One verification problem. ``subject`` names what it is about (a file, a segment)."""

    code: Code
    message: str
    subject: str | None = None
    # hash=False: a dict is unhashable, and findings are still comparable by value.
    details: dict[str, Any] = field(default_factory=dict, hash=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": str(self.code),  # the plain string, as before codes were an enum
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
