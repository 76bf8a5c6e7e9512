"""The package of a 信息公开 export: one approved redacted derivative and its release.

Nothing of the original goes in: the redacted file, its signed statement (which names
the source segments by digest only), and ``release.json`` — this export's request,
purpose, recipient and approvals, signed by the station. The layout and its checks are
:mod:`integrity.redactcheck`; the bag is the station's usual one (gm layer included).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import blake3

from archive.keystore import StationKeys
from archive.store import ContentStore
from integrity import manifest as mf
from integrity import redactcheck, redaction
from integrity.canonical import canonical_bytes
from integrity.digest import copy_and_hash
from integrity.errors import DigestMismatch
from records.bagwriter import write_bag
from records.models import Export
from records.package import StagedPackage, sync_tree

README = """evidock redacted package / evidock 技术处理后公开证据包

This package holds a REDACTED DERIVATIVE for publication (信息公开), never the original:
faces, regions and sounds listed in data/redaction.json were hidden (技术处理) before
release. 本包仅含技术处理后的衍生件，不含原始录像。

  data/redacted.mp4        the redacted clip (H.264/AAC)
  data/redaction.json      what was hidden, from which signed segments, by what tool
  data/release.json        this release: request, purpose, recipient, approvals
  *.sig.json               the station's signatures on those two statements

Verify offline / 离线校验:  evidock verify <this folder> --key station.pem
"""


@dataclass(frozen=True, kw_only=True)
class ApprovedRedaction:
    """What the redaction desk vouches for: an approved render of a redaction."""

    id: str
    recording_id: str
    rendition_id: str
    start_us: int
    end_us: int
    output_blake3: str
    statement_blake3: str
    signature_blake3: str
    approved_by: str
    approved_at: datetime


def stage_redacted(*, store: ContentStore, keys: StationKeys, approved: ApprovedRedaction,
                   export: Export, at: Path, provenance: dict[str, object],
                   station_id: str) -> StagedPackage:
    """Write the package into ``at`` (which must not exist) and sync it."""
    data = at / "data"
    (data / "keys").mkdir(parents=True)
    try:
        _copy_output(store, approved.output_blake3, data / redactcheck.FILE)
        (data / redaction.DOC).write_bytes(_blob(store, approved.statement_blake3))
        (data / redaction.SIG).write_bytes(_blob(store, approved.signature_blake3))
        key = keys.load()
        release = canonical_bytes({
            "format": redactcheck.FORMAT, "label": redaction.LABEL, "export_id": export.id,
            "redaction_id": approved.id, "recording_id": approved.recording_id,
            "range_us": [approved.start_us, approved.end_us], "station_id": station_id,
            "created_at": mf.format_utc(export.created_at),
            "redaction_approved_by": approved.approved_by,
            "redaction_approved_at": mf.format_utc(approved.approved_at),
            "request": provenance})
        (data / redactcheck.RELEASE).write_bytes(release)
        (data / redactcheck.RELEASE_SIG).write_bytes(redactcheck.sign_release(release, key))
        (data / "keys" / "keyring.json").write_bytes(
            json.dumps(keys.keyring().to_dict(), indent=2, sort_keys=True).encode() + b"\n")
        (data / "README.txt").write_text(README, encoding="utf-8")
        write_bag(at, bag_id=export.id, day=export.created_at.date(), keypair=key)
        sync_tree(at)
    except BaseException:
        shutil.rmtree(at, ignore_errors=True)
        raise
    return StagedPackage(export, at, ())


def _blob(store: ContentStore, b3: str) -> bytes:
    """A small stored blob, checked against its name as read."""
    data = store.path_for(b3).read_bytes()
    if blake3.blake3(data).hexdigest() != b3:
        raise DigestMismatch("a stored redaction statement does not match its digest; run "
                             "`evidock fixity`", expected=b3)
    return data


def _copy_output(store: ContentStore, b3: str, dest: Path) -> None:
    with open(store.path_for(b3), "rb") as src, open(dest, "wb") as out:
        digests = copy_and_hash(src, out)
    if digests.blake3 != b3:
        raise DigestMismatch("the stored redacted file does not match its digest; run "
                             "`evidock fixity`", expected=b3, actual=digests.blake3)
