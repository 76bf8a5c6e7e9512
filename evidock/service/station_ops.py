"""What the operations endpoints share: the camera source check, access to one recording,
the renditions an offload makes, and whether the dock daemon runs."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from fastapi import Request

from evidock.service.peer import STATE_KEY, PeerCred
from evidock.service.sources import Requester, checked_source
from integrity.errors import ConfigError
from records.casebook import Casebook
from records.dossier import require_recording as _require
from records.permissions import Actor, P

if TYPE_CHECKING:
    from evidock.wiring import Services
    from ingest.outcome import OffloadReport


def known_model(svc: Services, model: str | None) -> None:
    """An unknown camera model is the same E_CONFIG the offloader raises, before any
    path is looked at."""
    try:
        svc.settings.camera_model(model)
    except KeyError:
        known = [m.name for m in svc.settings.camera_models]
        raise ConfigError(f"unknown camera model {model!r}; known: {known}",
                          key="camera_models", model=model) from None


def source_for(svc: Services, actor: Actor, request: Request, source: str, *,
               wipe: bool) -> Path:
    """The camera directory to offload for this request, or an audited refusal.

    Only on the station socket: the kernel names the account whose access to the
    camera is checked (a web login has no such account).
    """
    from config.loader import config_files
    from evidock.operators import station_paths

    peer = getattr(request.state, STATE_KEY, None)
    gate, subjects = svc.gate(), [f"source:{source}"]

    def refuse(why: str) -> NoReturn:
        gate.refuse(actor, P.INGEST_RUN, subjects, why)
        raise AssertionError("unreachable: Gate.refuse raises")

    if not isinstance(peer, PeerCred):
        refuse("a camera is offloaded at the station (its socket), not over the network")
    own = [Path(os.path.realpath(p)) for p in (*station_paths(svc.settings),
                                                 *config_files())]
    return checked_source(source, Requester.of_uid(peer.uid, peer.gid), own=own,
                          trusted=frozenset({0, os.geteuid()}), refuse=refuse, wipe=wipe)


def visible(svc: Services, actor: Actor, ids: Iterable[str]) -> set[str]:
    """Which recordings' cases (unit, label) ``actor`` may see."""
    linked = Casebook(catalog=svc.catalog).sensitivity_of_recordings(ids)
    return {rid for rid, cases in linked.items()
            if all(actor.sees(unit=c.unit, sensitivity=c.sensitivity) for c in cases)}


def require_recording(svc: Services, actor: Actor, permission: P, recording_id: str) -> None:
    """Pass, or audit the refusal: the permission and every linked case's unit and label."""
    cases = Casebook(catalog=svc.catalog).sensitivity_of_recordings([recording_id])
    _require(svc.gate(), actor, permission, recording_id, cases[recording_id])


def renditions_of(svc: Services, report: OffloadReport) -> list[dict[str, Any]]:
    """Renditions for this offload's new recordings (duplicates were made before);
    queued for the workers instead when a job queue is configured."""
    renderer = svc.renditions()
    wanted = {f.recording_id: f for f in report.files
              if f.recording_id and f.status in ("ingested", "flagged")}
    out: list[dict[str, Any]] = []
    for rec in renderer.pending():
        if rec.id in wanted:
            row = renderer.render(rec)
            out.append({"recording_id": rec.id, "path": rec.original_display,
                        "status": row.status, "code": row.code, "reason": row.reason,
                        "merkle_root": row.merkle_root,
                        "status_at_ingest": wanted[rec.id].status})
    return out


def pid_alive(pid: Any) -> bool:
    """Does the process the status file names still run? (The service runs as the dock
    daemon's account, so a signal 0 tells.)"""
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


__all__ = ["known_model", "pid_alive", "renditions_of", "require_recording", "source_for",
           "visible"]
