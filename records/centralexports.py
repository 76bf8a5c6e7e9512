"""Exporting from the center: a clip of a station's recording, read back and proven.

The same bookkeeping as a station's export (:mod:`records.exportbook`,
:mod:`records.exportrun`): a request (a range of one station's recording), approved or
rejected by someone else (``export.approve``, never the requester), then run once
(``export.run``): the approval is spent before anything is written and given back if the
run fails. Access as for playing at the center: the permission plus the unit and label
of every case the recording is actively linked to (:meth:`CentralPlayer.require`).
Every step is a ``center.export.*`` audit event; rows live in the center's own tables
(:mod:`records.centralexport_models`, migrations 0020 and 0021).

The package is written by the station's writer (:class:`records.package.Exporter`) from
a :class:`CentralSource`: the signed manifest and every segment are read back from the
object store through the player's proven path (BLAKE3 against the name, the station's
signature, Merkle root, this recording's manifest); a blob no version of which proves
out fails the run with ``E_REMOTE_UNPROVEN``. The manifest stays the station's; the
center's key signs clip.json and the derivative, and clip.json names the center as the
exporter (``evidock verify --key STATION --center-key CENTER``). The audit bundle comes
from the center's mirror of the station's log (:mod:`records.centralbundle`), the
original, when asked for, from the object store (:mod:`records.centraloriginal`).
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

from sqlmodel import Session

from archive.audit.log import AuditLog
from archive.catalog import Catalog
from config.access import ExportSettings
from integrity import manifest as mf
from integrity.digest import blake3_hex
from integrity.errors import (
    InvalidRequest,
    ManifestInvalid,
    NotFound,
    RemoteUnproven,
    RepairMismatch,
)
from integrity.keys import Keyring
from records.casebook import Casebook
from records.centralbundle import Needed
from records.centralexport_models import (
    CentralExport,
    CentralExportOption,
    CentralExportRequest,
)
from records.centraloriginal import restore_original
from records.centralplay import CentralPlayer
from records.clipsource import RecordingFacts, SegmentLike, copy_checked
from records.exportbook import CENTER, ExportItem, Package, RequestView, load_requests
from records.exportdeskbase import ExportDeskBase
from records.exportrun import ExportRun, check_out, decide, remove_partial
from records.package import Exporter, StagedPackage, parse_offset
from records.permissions import Actor, Gate, P


@contextmanager
def _unproven(station: str) -> Iterator[None]:
    """A read-back that no object version proves: the export's own code."""
    try:
        yield
    except RepairMismatch as exc:
        raise RemoteUnproven(f"station {station}'s blob in the object store does not prove "
                             f"out: {exc.message}", **{**exc.details, "station": station}
                             ) from exc


@dataclass(frozen=True)
class CentralSource:
    """A station's recording as the center reads it back: every byte proven first."""

    player: CentralPlayer
    station: str
    recording_id: str
    manifest_b3: str
    manifest_bytes: bytes
    keyring: Keyring  # the station's, from the center's [[witness.stations]]
    signed: mf.SignedManifest

    @classmethod
    def read(cls, player: CentralPlayer, station: str, recording_id: str,
             keyring: Keyring) -> CentralSource:
        with _unproven(station):
            b3, data = player.proven_manifest(station, recording_id)
        if blake3_hex(data) != b3:  # the bytes packaged are the bytes proven
            raise ManifestInvalid(f"the manifest {b3} changed on the center's disk",
                                  manifest=b3)
        return cls(player=player, station=station, recording_id=recording_id,
                   manifest_b3=b3, manifest_bytes=data, keyring=keyring,
                   signed=mf.load_signed(data))

    @property
    def original(self) -> mf.OriginalRef:
        """The camera file as the station signed it (the proven manifest)."""
        return next(o for o in self.signed.manifest.originals
                    if o.recording_id == self.recording_id)

    @property
    def facts(self) -> RecordingFacts:
        """What the station signed about the recording (the proven manifest)."""
        m, original = self.signed.manifest, self.original
        return RecordingFacts(id=original.recording_id, officer_id=m.officer_id,
                              device_serial=m.device_serial, camera_start=None,
                              blake3=original.blake3, sha256=original.sha256,
                              station_id=m.station_id)

    @property
    def audio(self) -> bool:
        return self.signed.manifest.rendition.kind == "audio"

    @property
    def segments(self) -> Sequence[mf.SegmentEntry]:
        return self.signed.manifest.entries()

    def copy_segment(self, seg: SegmentLike, dest: Path) -> None:
        entry = next(e for e in self.segments if e.index == seg.index)
        with _unproven(self.station):
            path = self.player.proven_segment(self.station, entry.blake3, entry.size)
        copy_checked(path, seg, dest, where="read-back")

    def row(self, *, id: str, start_us: int, end_us: int, segments: list[int],
            destination: str, actor: str, purpose: str, request_id: str | None,
            created_at: datetime) -> CentralExport:
        return CentralExport(id=id, request_id=request_id, station_id=self.station,
                             recording_id=self.recording_id, manifest=self.manifest_b3,
                             start_us=start_us, end_us=end_us, segments=segments,
                             destination=destination, actor=actor, purpose=purpose,
                             created_at=created_at)


class CentralExporter(Exporter):
    """The station's package writer, fed from the center's proven read-back of one
    station; the center's key signs what the export claims."""

    def __init__(self, *, player: CentralPlayer, station: str, keyring: Keyring,
                 bundler_for: Callable[[Needed], Callable[[str, str | None], bytes]] | None
                 = None, **writer: Any) -> None:
        super().__init__(**writer)
        self.player, self.station, self.station_keyring = player, station, keyring
        self.exported_by = "center"
        #: The audit bundle from the center's mirror (records.centralbundle), for what
        #: the package rests on: its original and the manifest read back.
        self.bundler_for = bundler_for

    def stage(self, recording_id: str, *, start_us: int, end_us: int, at: Path,
              destination: Path, actor: str, purpose: str = "",
              request_id: str | None = None, provenance: dict[str, object] | None = None,
              exact: bool = False, with_originals: bool = False) -> StagedPackage:
        # The player refuses a manifest that is not this recording's.
        source = CentralSource.read(self.player, self.station, recording_id,
                                    self.station_keyring)
        if self.bundler_for is not None:
            self.bundler = self.bundler_for(Needed(original=source.facts.blake3,
                                                   manifest=source.manifest_b3))
        return self.stage_from(source, start_us=start_us, end_us=end_us, at=at,
                               destination=destination, actor=actor, purpose=purpose,
                               request_id=request_id, provenance=provenance, exact=exact,
                               original=partial(restore_original, self.player, self.station,
                                                source.original) if with_originals else None)


class CentralExportDesk(ExportDeskBase):
    ledger = CENTER
    subject = "center-export-request"

    def __init__(self, *, catalog: Catalog, gate: Gate, audit: AuditLog,
                 player: CentralPlayer, exporter_for: Callable[[str], Exporter],
                 settings: ExportSettings, clock: Callable[[], datetime],
                 new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
                 reached: Callable[[str], None] = lambda _point: None) -> None:
        self.catalog, self.gate, self.audit, self.player = catalog, gate, audit, player
        self.exporter_for, self.settings, self.clock = exporter_for, settings, clock
        self.new_id, self.reached = new_id, reached

    @staticmethod
    def _subjects(view: RequestView) -> list[str]:
        return [f"center-export-request:{view.id}", f"station:{view.station_id}",
                f"recording:{view.recording_id}"]

    def _require(self, actor: Actor, permission: P, view: RequestView) -> None:
        assert view.station_id is not None and view.recording_id is not None
        self.player.require(actor, view.station_id, view.recording_id,
                            self._subjects(view), permission)

    def _load(self, request_id: str) -> RequestView:
        with Session(self.catalog.engine) as s:
            found = load_requests(s, now=self.clock(), ids=[request_id], ledger=CENTER)
        if not found:
            raise NotFound(f"no center export request {request_id}", request=request_id)
        view = found[0]
        assert view.recording_id is not None
        item = ExportItem(view.recording_id, parse_offset(view.start or "", None),
                          parse_offset(view.end or "", None))
        return replace(view, items=(item,))

    def request(self, actor: Actor, *, station: str, recording: str, start: str, end: str,
                purpose: str, recipient: str, reason: str = "",
                originals: bool = False) -> RequestView:
        """Ask to take [start, end) of a station's recording out of the center
        (``originals``: the camera file too, restored from the object store)."""
        if purpose not in self.settings.purposes:
            raise InvalidRequest(f"unknown purpose {purpose!r}; one of "
                                 f"{list(self.settings.purposes)}", purpose=purpose)
        if purpose in self.settings.public_purposes:
            raise InvalidRequest(f"{purpose} makes footage public: only a redacted "
                                 "derivative may go, and redactions are made at the "
                                 "station", purpose=purpose)
        if not recipient.strip():
            raise InvalidRequest("a recipient is required")
        row = CentralExportRequest(id=self.new_id(), station_id=station,
                                   recording_id=recording, start=start, end=end,
                                   purpose=purpose, recipient=recipient.strip(),
                                   requested_by=actor.name, reason=reason, at=self.clock())
        view = RequestView(id=row.id, case_id=None, case_number=None, recording_id=recording,
                           start=start, end=end, purpose=purpose, recipient=row.recipient,
                           requested_by=actor.name, reason=reason, at=row.at,
                           status="pending", decisions=(), station_id=station)
        self._require(actor, P.EXPORT_REQUEST, view)
        item = ExportItem(recording, parse_offset(start, None), parse_offset(end, None))
        if item.end_us <= item.start_us:
            raise InvalidRequest("the clip's end must come after its start", start=start,
                                 end=end)
        with self.catalog.transaction() as s:
            s.add(row)
            if originals:
                s.flush()  # the option names the request
                s.add(CentralExportOption(request_id=row.id, originals=True, at=row.at))
            self.audit.append(s, actor=actor.audit_name, action="center.export.request",
                              subjects=self._subjects(view),
                              details={"purpose": purpose, "recipient": row.recipient,
                                       "start": start, "end": end, "reason": reason,
                                       "originals": originals,
                                       "items": [item.to_json()]}, at=row.at)
        return self._load(row.id)

    def _decide(self, actor: Actor, request_id: str, decision: str,
                reason: str) -> RequestView:
        view = self._load(request_id)
        self._require(actor, P.EXPORT_APPROVE, view)
        decide(catalog=self.catalog, audit=self.audit, gate=self.gate, ledger=CENTER,
               view=view, actor=actor, decision=decision, reason=reason,
               valid_h=self.settings.approval_valid_h, subjects=self._subjects(view),
               now=self.clock())
        return self._load(request_id)

    def show(self, actor: Actor, request_id: str) -> RequestView:
        view = self._load(request_id)
        self._require(actor, self._reading(actor), view)
        self.gate.read(actor, "center.export.show", self._subjects(view))
        return view

    def list(self, actor: Actor, *, status: str | None = None) -> builtins.list[RequestView]:
        """Requests whose recording the actor may see (every linked case), oldest first."""
        self.gate.require(actor, self._reading(actor))
        with Session(self.catalog.engine) as s:
            views = load_requests(s, now=self.clock(), ledger=CENTER)
        seen = [v for v in views if (status is None or v.status == status)
                and self.player.visible(actor, v.station_id or "", v.recording_id or "")]
        self.gate.read(actor, "center.export.list",
                       [f"center-export-request:{v.id}" for v in seen], {"status": status})
        return seen

    def run(self, actor: Actor, request_id: str, *, out: Path,
            exclusive: bool = False) -> builtins.list[Package]:
        """Write the package of an approved request once (records.exportrun); as at a
        station, ``exclusive`` (the service, holding the run lock) resumes a dead run."""
        view = self._runnable(actor, request_id, exclusive=exclusive)
        resume = exclusive and view.status == "running"
        if exclusive:
            remove_partial(out)
        check_out(out)
        assert view.station_id is not None
        return ExportRun(catalog=self.catalog, audit=self.audit,
                         exporter=self.exporter_for(view.station_id), clock=self.clock,
                         reached=self.reached, actor=actor, view=view,
                         subjects=self._subjects(view), out=out,
                         book=Casebook(catalog=self.catalog), ledger=CENTER).run(resume=resume)

    def check_run(self, actor: Actor, request_id: str) -> RequestView:
        """What :meth:`run` checks before it spends the approval (refusals audited),
        nothing written: asked before a ``center_export`` job is queued for a worker."""
        return self._runnable(actor, request_id, exclusive=True)

    def _runnable(self, actor: Actor, request_id: str, *, exclusive: bool) -> RequestView:
        view = self._load(request_id)
        self._require(actor, P.EXPORT_RUN, view)
        if view.status != "approved" and not (exclusive and view.status == "running"):
            self._refuse(actor, view, f"center export request {view.id} is {view.status}, "
                         "not approved; nothing leaves without a valid approval")
        return view

    def package(self, actor: Actor, request_id: str, *,
                read: str = "center.export.download") -> RequestView:
        """A request already run, for fetching its package (``export.run``; audited)."""
        view = self._load(request_id)
        self._require(actor, P.EXPORT_RUN, view)
        if view.status != "used":
            self._refuse(actor, view, f"center export request {view.id} is {view.status}: "
                         "no package to fetch")
        self.gate.read(actor, read, self._subjects(view), {"exports": list(view.exports)})
        return view


__all__ = ["CentralExportDesk", "CentralExporter", "CentralSource"]
