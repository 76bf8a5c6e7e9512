"""CLI: exports out of the archive — request, approve or reject, run once, list, show.

未经批准不得擅自对外提供: there is no direct export; a package is written only by
`export run` for a request another person approved.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from config import load_settings
from evidock.output import emit_json, guarded
from evidock.wiring import Services
from records.exports import ExportDesk, RequestView
from records.permissions import Actor

T = TypeVar("T")

JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")]
ConfigOpt = Annotated[Path | None, typer.Option("--config", help="TOML config file.",
                                                envvar="EVIDOCK_CONFIG")]
IdArg = Annotated[str, typer.Argument(help="Export request id.")]

export_app = typer.Typer(no_args_is_help=True, help="Exports need an approved request "
                         "(未经批准不得擅自对外提供): request, approve/reject, run, list, show.")


def _with_desk(config: Path | None, act: Callable[[ExportDesk, Actor], T]) -> T:
    svc = Services.from_config(load_settings(config_file=config))
    try:
        return act(svc.exports(), svc.actor())
    finally:
        svc.close()


def _print_request(req: RequestView) -> None:
    scope = f"case {req.case_number}" if req.case_id else f"recording {req.recording_id}"
    typer.echo(f"request {req.id}: {req.status}")
    typer.echo(f"  {scope}; purpose {req.purpose}; to {req.recipient}")
    typer.echo(f"  requested by {req.requested_by} at {req.at.isoformat()}")
    for d in req.decisions:
        until = f", valid until {d.valid_until.isoformat()}" if d.valid_until else ""
        typer.echo(f"  {d.decision} by {d.actor} at {d.at.isoformat()}{until} {d.reason}")
    for item in req.items:
        typer.echo(f"  item {item.recording_id} "
                   f"[{item.start_us / 1e6:.3f}, {item.end_us / 1e6:.3f}) s")
    for note in req.skipped:
        typer.echo(f"  skipped {note}")


def _request_out(config: Path | None, as_json: bool,
                 act: Callable[[ExportDesk, Actor], RequestView]) -> None:
    req = guarded(as_json, lambda: _with_desk(config, act))
    if as_json:
        emit_json(req.to_json())
    else:
        _print_request(req)


@export_app.command("request")
def request(
    purpose: Annotated[str, typer.Option("--purpose", help="One of exports.purposes, e.g. "
                                                           "行政复议.")],
    recipient: Annotated[str, typer.Option("--recipient", help="Who receives it.")],
    case: Annotated[str | None, typer.Option("--case", help="Case number (or id): every "
                                                            "linked range.")] = None,
    recording: Annotated[str | None, typer.Option("--recording", help="Recording id.")] = None,
    start: Annotated[str | None, typer.Option("--start", help="Seconds, H:MM:SS or ISO "
                                                              "time (recording only).")] = None,
    end: Annotated[str | None, typer.Option("--end", help="Seconds, H:MM:SS or ISO time "
                                                          "(recording only).")] = None,
    reason: Annotated[str, typer.Option("--reason")] = "",
    config: ConfigOpt = None, as_json: JsonOpt = False,
) -> None:
    """Ask to take a case's footage, or (a range of) a recording, out of the archive."""
    _request_out(config, as_json, lambda d, a: d.request(
        a, case=case, recording=recording, start=start, end=end, purpose=purpose,
        recipient=recipient, reason=reason))


@export_app.command("approve")
def approve(request_id: IdArg, reason: Annotated[str, typer.Option("--reason")] = "",
            config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Approve someone else's pending request (valid for exports.approval_valid_h)."""
    _request_out(config, as_json, lambda d, a: d.approve(a, request_id, reason=reason))


@export_app.command("reject")
def reject(request_id: IdArg, reason: Annotated[str, typer.Option("--reason")],
           config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Reject someone else's pending request."""
    _request_out(config, as_json, lambda d, a: d.reject(a, request_id, reason=reason))


@export_app.command("show")
def show(request_id: IdArg, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """One request: status, decisions and what it covers."""
    _request_out(config, as_json, lambda d, a: d.show(a, request_id))


@export_app.command("list")
def list_(
    status: Annotated[str | None, typer.Option("--status", help="pending, approved, "
                                               "rejected, expired or used.")] = None,
    case: Annotated[str | None, typer.Option("--case", help="Case number or id.")] = None,
    config: ConfigOpt = None, as_json: JsonOpt = False,
) -> None:
    """Requests you may see, oldest first."""
    reqs = guarded(as_json, lambda: _with_desk(config, lambda d, a: [
        r.to_json() for r in d.list(a, status=status, case=case)]))
    if as_json:
        emit_json({"requests": reqs})
        return
    for r in reqs:
        scope = r["case_number"] if r["case_id"] else r["recording_id"]
        typer.echo(f"{r['id']}  {r['status']:8} {r['purpose']}  {scope}  "
                   f"to {r['recipient']}  by {r['requested_by']}")


@export_app.command("run")
def run(request_id: IdArg,
        out: Annotated[Path, typer.Option("--out", help="New (or empty) directory.")],
        config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Write the packages of an approved request (once)."""
    packages = guarded(as_json, lambda: _with_desk(
        config, lambda d, a: d.run(a, request_id, out=out)))
    if as_json:
        emit_json({"request_id": request_id, "out": str(out),
                   "packages": [p.to_json() for p in packages]})
        return
    for p in packages:
        typer.echo(f"{p.path}  export {p.export_id}  {', '.join(p.segments)}")


__all__ = ["export_app"]
