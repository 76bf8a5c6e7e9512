"""Values describing an offload: the request, each file's outcome, the report."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from integrity.codes import Code
from integrity.errors import EvidockError

# Every file ends in exactly one of these.
INGESTED, DUPLICATE, FLAGGED, SKIPPED, FAILED = (
    "ingested", "duplicate", "flagged", "skipped", "failed")

# The codes a file can end with; their meanings are in the registry (integrity.codes).
CODES = {c: c.meaning for c in (
    Code.I_INGESTED, Code.I_DUPLICATE, Code.F_EMPTY, Code.F_NAME_UNPARSED,
    Code.F_SERIAL_MISMATCH, Code.F_UNPLAYABLE, Code.F_FORMAT_MISMATCH, Code.F_NO_STREAM,
    Code.F_TRUNCATED, Code.F_PROBE_TIMEOUT, Code.F_DURATION_IMPLAUSIBLE, Code.S_SYMLINK,
    Code.S_NOT_REGULAR, Code.S_TOO_DEEP, Code.S_UNREADABLE,
    Code.E_SOURCE_CHANGED, Code.E_SOURCE_READ, Code.E_DIGEST_MISMATCH)}


@dataclass(frozen=True)
class OffloadRequest:
    source: Path
    device_serial: str
    officer_id: str | None = None
    camera_model: str | None = None
    wipe_after_verify: bool = False
    bay: str | None = None
    # camera clock minus station clock at dock time, when the driver could read it
    clock_drift_s: float | None = None
    # remaining battery (percent) the camera reported at dock; None: not reported
    battery_percent: int | None = None
    # With wipe_after_verify: only these (relpath, BLAKE3) may be wiped, e.g. what an
    # earlier pass proved; None: any file this pass proves.
    wipe_only: frozenset[tuple[bytes, str]] | None = None

    def may_wipe(self, relpath: bytes, blake3: str | None) -> bool:
        return self.wipe_only is None or (relpath, blake3 or "") in self.wipe_only


@dataclass(frozen=True)
class FileOutcome:
    relpath: bytes
    display: str
    status: str
    code: str
    reason: str
    size: int | None = None
    blake3: str | None = None
    sha256: str | None = None
    recording_id: str | None = None
    flags: tuple[str, ...] = ()
    wiped: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.display, "status": self.status, "code": self.code,
            "reason": self.reason, "size": self.size, "blake3": self.blake3,
            "sha256": self.sha256, "recording_id": self.recording_id,
            "flags": list(self.flags), "wiped": self.wiped,
        }


@dataclass(frozen=True)
class OffloadReport:
    session_id: str
    outcome: str  # completed | findings | interrupted | failed
    files: tuple[FileOutcome, ...]
    error: EvidockError | None = None
    bytes_copied: int = 0
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        found = Counter(f.status for f in self.files)
        return {s: found.get(s, 0) for s in (INGESTED, DUPLICATE, FLAGGED, SKIPPED, FAILED)}

    @property
    def exit_code(self) -> int:
        if self.error is not None or self.outcome in ("interrupted", "failed"):
            return 2
        return 0 if all(f.status in (INGESTED, DUPLICATE) for f in self.files) else 1

    def to_json(self) -> dict[str, Any]:
        summary: dict[str, Any] = {
            "outcome": self.outcome, **self.counts(), "files": len(self.files),
            "bytes_copied": self.bytes_copied, "seconds": round(self.seconds, 3),
            "wiped": sum(f.wiped for f in self.files), "exit_code": self.exit_code,
        }
        if self.error is not None:
            summary["error"] = self.error.to_dict()
        return {"session": self.session_id, "files": [f.to_json() for f in self.files],
                "summary": summary}
