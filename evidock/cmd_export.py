"""CLI: exports out of the archive — request, approve or reject, run once, list, show.

未经批准不得擅自对外提供: there is no direct export; a package is written only by
`export run` for a request another person approved.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from evidock.cli_base import ConfigOpt, JsonOpt, Reply, acting, command

if TYPE_CHECKING:
    from records.exportbook import Package, RequestView
    from records.exports import ExportDesk
    from records.permissions import Actor

IdArg = Annotated[str, typer.Argument(help="Export request id.")]

export_app = typer.Typer(no_args_is_help=True, help="Exports need an approved request "
                         "(未经批准不得擅自对外提供): request, approve/reject, run, list, show.")


@contextmanager
def _desk(config: Path | None) -> Iterator[tuple[ExportDesk, Actor]]:
    with acting(config) as (svc, actor):
        yield svc.exports(), actor


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


def _request_out(config: Path | None, act: Callable[[ExportDesk, Actor], RequestView]) -> Reply:
    with _desk(config) as (desk, actor):
        req = act(desk, actor)
    return Reply(req.to_json(), human=lambda: _print_request(req))


@export_app.command("request")
@command
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
) -> Reply:
    """Ask to take a case's footage, or (a range of) a recording, out of the archive."""
    return _request_out(config, lambda d, a: d.request(
        a, case=case, recording=recording, start=start, end=end, purpose=purpose,
        recipient=recipient, reason=reason))


@export_app.command("approve")
@command
def approve(request_id: IdArg, reason: Annotated[str, typer.Option("--reason")] = "",
            config: ConfigOpt = None, as_json: JsonOpt = False) -> Reply:
    """Approve someone else's pending request (valid for exports.approval_valid_h)."""
    return _request_out(config, lambda d, a: d.approve(a, request_id, reason=reason))


@export_app.command("reject")
@command
def reject(request_id: IdArg, reason: Annotated[str, typer.Option("--reason")],
           config: ConfigOpt = None, as_json: JsonOpt = False) -> Reply:
    """Reject someone else's pending request."""
    return _request_out(config, lambda d, a: d.reject(a, request_id, reason=reason))


@export_app.command("show")
@command
def show(request_id: IdArg, config: ConfigOpt = None, as_json: JsonOpt = False) -> Reply:
    """One request: status, decisions and what it covers."""
    return _request_out(config, lambda d, a: d.show(a, request_id))


@export_app.command("list")
@command
def list_(
    status: Annotated[str | None, typer.Option("--status", help="pending, approved, "
                                               "rejected, expired or used.")] = None,
    case: Annotated[str | None, typer.Option("--case", help="Case number or id.")] = None,
    config: ConfigOpt = None, as_json: JsonOpt = False,
) -> Reply:
    """Requests you may see, oldest first."""
    with _desk(config) as (desk, actor):
        reqs = [r.to_json() for r in desk.list(actor, status=status, case=case)]
    return Reply({"requests": reqs}, human=lambda: _print_list(reqs))


def _print_list(reqs: list[dict[str, object]]) -> None:
    for r in reqs:
        scope = r["case_number"] if r["case_id"] else r["recording_id"]
        typer.echo(f"{r['id']}  {r['status']:8} {r['purpose']}  {scope}  "
                   f"to {r['recipient']}  by {r['requested_by']}")


@export_app.command("run")
@command
def run(request_id: IdArg,
        out: Annotated[Path, typer.Option("--out", help="New (or empty) directory.")],
        config: ConfigOpt = None, as_json: JsonOpt = False) -> Reply:
    """Write the packages of an approved request (once)."""
    with _desk(config) as (desk, actor):
        packages = desk.run(actor, request_id, out=out)
    return Reply({"request_id": request_id, "out": str(out),
                  "packages": [p.to_json() for p in packages]},
                 human=lambda: _print_packages(packages))


def _print_packages(packages: list[Package]) -> None:
    for p in packages:
        typer.echo(f"{p.path}  export {p.export_id}  {', '.join(p.segments)}")


__all__ = ["export_app"]
