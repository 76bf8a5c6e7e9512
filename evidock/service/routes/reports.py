"""Signed report PDFs: the coverage report of a case, the chain-of-custody report.

The service alone renders and signs (it holds the catalog, the log and the key). The
answer's body is the PDF, sent in pieces; the detached signature (``.sig.json``) rides
in a header, base64, so one audited request gives the client both, and the client
checks the pair before it writes anything where it was asked to.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from evidock.service.deps import ActorDep, ServicesDep
from records.reportdesk import ReportDesk
from records.reports import SignedReport

router = APIRouter(tags=["reports"])

SIGNATURE_HEADER = "X-Evidock-Report-Signature"
_CHUNK = 256 * 1024


def _desk(svc: ServicesDep) -> ReportDesk:
    station = svc.settings.station
    return ReportDesk(catalog=svc.catalog, gate=svc.gate(), audit=svc.audit(),
                      keys=svc.keys, coverage=svc.settings.coverage, station_id=station.id,
                      zone=station.local_zone, clock=svc.clock)


def _send(report: SignedReport) -> StreamingResponse:
    def pieces() -> Iterator[bytes]:
        view = memoryview(report.pdf)
        for at in range(0, len(view), _CHUNK):
            yield bytes(view[at:at + _CHUNK])

    stmt = report.statement
    headers = {SIGNATURE_HEADER: base64.b64encode(report.signature).decode("ascii"),
               "Content-Length": str(len(report.pdf)), "X-Evidock-Sha256": stmt["sha256"],
               "X-Evidock-Blake3": stmt["blake3"]}
    return StreamingResponse(pieces(), media_type="application/pdf", headers=headers)


@router.get("/reports/coverage")
def coverage_report(case: str, *, actor: ActorDep, svc: ServicesDep) -> StreamingResponse:
    """The signed coverage report of one case (needs coverage.view on it)."""
    return _send(_desk(svc).coverage(actor, case))


@router.get("/reports/custody")
def custody_report(*, actor: ActorDep, svc: ServicesDep, recording: str | None = None,
                   export: str | None = None, case: str | None = None) -> StreamingResponse:
    """The signed chain-of-custody report of a recording, an export request's
    recordings, or a case's (needs report.custody and sight of the footage)."""
    return _send(_desk(svc).custody(actor, recording=recording, export=export, case=case))


__all__ = ["SIGNATURE_HEADER", "router"]
