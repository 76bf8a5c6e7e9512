"""Values describing an offload: the request, each file's outcome, the report."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from integrity.errors import EvidockError

# Every file ends in exactly one of these.
INGESTED, DUPLICATE, FLAGGED, SKIPPED, FAILED = (
    "ingested", "duplicate", "flagged", "skipped", "failed")

# Stable codes with their meaning (also listed in docs/ARCHITECTURE.md).
CODES = {
    "I_INGESTED": "copied, verified by re-reading from disk, stored and catalogued",
    "I_DUPLICATE": "this camera file is already in the catalog; nothing new stored",
    "F_EMPTY": "zero-byte file (stored, flagged)",
    "F_NAME_UNPARSED": "name matches no pattern of the camera model (stored, flagged)",
    "F_SERIAL_MISMATCH": "serial in the name differs from the docked device (stored, flagged)",
    "F_UNPLAYABLE": "ffprobe cannot read it as media (stored, flagged)",
    "F_FORMAT_MISMATCH": "content is not the format its extension claims (stored, flagged)",
    "F_NO_STREAM": "media file without the expected stream (stored, flagged)",
    "F_TRUNCATED": "header readable but packets missing or corrupt (stored, flagged)",
    "S_SYMLINK": "symbolic link: never followed",
    "S_NOT_REGULAR": "FIFO, socket or device file: never opened",
    "S_TOO_DEEP": "directory below ingest.max_depth: not entered",
    "S_UNREADABLE": "could not be listed or opened (permissions)",
    "E_SOURCE_CHANGED": "file changed on the camera during the copy: not recorded, not wiped",
    "E_SOURCE_READ": "read error on the camera: not recorded, not wiped",
    "E_DIGEST_MISMATCH": "the re-read copy differs from what was read: not recorded, not wiped",
}


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
