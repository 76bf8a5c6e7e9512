"""CLI: exports out of the archive — request, approve or reject, run once, download,
list, show. A client of the station service, which decides every step.

未经批准不得擅自对外提供: there is no direct export; a package is written only by
`export run` for a request another person approved. The service writes it in its own
area; this command downloads it into ``--out`` (all of it, checked, or nothing).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote

import typer

from evidock.cli_base import ConfigOpt, JsonOpt, Reply, command
from evidock.output import show_time, zoned

if TYPE_CHECKING:
    from evidock.client import Station

IdArg = Annotated[str, typer.Argument(help="Export request id.")]
OutOpt = Annotated[Path, typer.Option("--out", help="New (or empty) directory.")]

export_app = typer.Typer(no_args_is_help=True, help="Exports need an approved request "
                         "(未经批准不得擅自对外提供): request, approve/reject, run, "
                         "download, discard, list, show.")


def _path(request_id: str, *rest: str) -> str:
    return "/".join(["/exports", quote(request_id, safe=""), *rest])


def _print_request(req: Mapping[str, Any]) -> None:
    scope = f"case {req['case_number']}" if req["case_id"] else \
        f"recording {req['recording_id']}"
    typer.echo(f"request {req['id']}: {req['status']}")
    typer.echo(f"  {scope}; purpose {req['purpose']}; to {req['recipient']}")
    typer.echo(f"  requested by {req['requested_by']} at {show_time(req['at'])}")
    for d in req["decisions"]:
        until = f", valid until {show_time(d['valid_until'])}" if d["valid_until"] else ""
        typer.echo(f"  {d['decision']} by {d['by']} at {show_time(d['at'])}{until} "
                   f"{d['reason']}")
    for item in req["items"]:
        start_us, end_us = item["range_us"]
        typer.echo(f"  item {item['recording_id']} "
                   f"[{start_us / 1e6:.3f}, {end_us / 1e6:.3f}) s")
    for note in req["skipped"]:
        typer.echo(f"  skipped {note}")
    # What the package will hold, for the approver to see before approving.
    if req.get("redaction_id"):
        typer.echo(f"  package: only the redacted derivative of redaction "
                   f"{req['redaction_id']} (技术处理后的衍生件), nothing of the original")
        return
    typer.echo("  package: " + ("exact (only the trimmed ranges, no covering segments)"
                                if req.get("exact") else "covering segments + trimmed ranges")
               + "; originals: " + ("yes" if req.get("originals") else "no"))


def _request_out(config: Path | None, path: str,
                 body: Mapping[str, Any] | None = None) -> Reply:
    from evidock.client import station

    with station(config) as st:
        req = zoned(st.get(path) if body is None else st.post(path, body), st.zone_name)
    return Reply(req, human=lambda: _print_request(req))


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
    exact: Annotated[bool, typer.Option("--exact", help="No byte outside the approved "
                                        "ranges: only the trimmed derivative.")] = False,
    originals: Annotated[bool, typer.Option("--originals", help="Include the original "
                                            "camera file(s).")] = False,
    redaction: Annotated[str | None, typer.Option("--redaction", help="An approved "
                         "redaction: the package holds only its redacted derivative (the "
                         "one thing a public purpose, 信息公开, may take).")] = None,
    config: ConfigOpt = None, as_json: JsonOpt = False,
) -> Reply:
    """Ask to take a case's footage, or (a range of) a recording, or an approved redacted
    derivative out of the archive."""
    return _request_out(config, "/exports", {
        "purpose": purpose, "recipient": recipient, "case": case, "recording": recording,
        "start": start, "end": end, "reason": reason, "exact": exact,
        "originals": originals, "redaction": redaction})


@export_app.command("approve")
@command
def approve(request_id: IdArg, reason: Annotated[str, typer.Option("--reason")] = "",
            config: ConfigOpt = None, as_json: JsonOpt = False) -> Reply:
    """Approve someone else's pending request (valid for exports.approval_valid_h)."""
    return _request_out(config, _path(request_id, "approve"), {"reason": reason})


@export_app.command("reject")
@command
def reject(request_id: IdArg, reason: Annotated[str, typer.Option("--reason")],
           config: ConfigOpt = None, as_json: JsonOpt = False) -> Reply:
    """Reject someone else's pending request."""
    return _request_out(config, _path(request_id, "reject"), {"reason": reason})


@export_app.command("discard")
@command
def discard(request_id: IdArg, reason: Annotated[str, typer.Option("--reason")],
            config: ConfigOpt = None, as_json: JsonOpt = False) -> Reply:
    """End an approved request, or one whose run was interrupted, for good (a new
    request is then needed)."""
    return _request_out(config, _path(request_id, "discard"), {"reason": reason})


@export_app.command("show")
@command
def show(request_id: IdArg, config: ConfigOpt = None, as_json: JsonOpt = False) -> Reply:
    """One request: status, decisions and what it covers."""
    return _request_out(config, _path(request_id))


@export_app.command("list")
@command
def list_(
    status: Annotated[str | None, typer.Option("--status", help="pending, approved, "
                                               "rejected, expired, running, used or "
                                               "discarded.")] = None,
    case: Annotated[str | None, typer.Option("--case", help="Case number or id.")] = None,
    config: ConfigOpt = None, as_json: JsonOpt = False,
) -> Reply:
    """Requests you may see, oldest first."""
    from evidock.client import station

    with station(config) as st:
        answer = zoned(st.get("/exports", status=status, case=case), st.zone_name)
    return Reply(answer, human=lambda: _print_list(answer["requests"]))


def _print_list(reqs: list[dict[str, Any]]) -> None:
    for r in reqs:
        scope = r["case_number"] if r["case_id"] else r["recording_id"]
        typer.echo(f"{r['id']}  {r['status']:8} {r['purpose']}  {scope}  "
                   f"to {r['recipient']}  by {r['requested_by']} at {show_time(r['at'])}")


@export_app.command("run")
@command
def run(request_id: IdArg, out: OutOpt, config: ConfigOpt = None,
        as_json: JsonOpt = False) -> Reply:
    """Write the packages of an approved request (once) and download them into --out."""
    from evidock.client import station
    from evidock.download import landing

    # --out is checked (and a place beside it made) before the one run is spent.
    with landing(out) as tmp, station(config) as st:
        ran = st.post(_path(request_id, "run"))
        if ran.get("status") == "queued":  # [jobs] queue: a worker runs it, later
            tmp.rmdir()  # nothing lands at --out
        else:
            _fetch(st, request_id, ran["files"], tmp, out)
    if ran.get("status") == "queued":
        return Reply(ran, human=lambda: typer.echo(
            f"{request_id}: run queued (job {ran['job_id'] or 'already queued'}); once an "
            f"`evidock worker` has run it, `evidock export download {request_id} --out "
            f"{out}` fetches the packages"))
    packages = [{**p, "dir": str(out / p["dir"])} for p in ran["packages"]]
    return Reply({"request_id": request_id, "out": str(out), "packages": packages},
                 human=lambda: _print_packages(packages))


@export_app.command("download")
@command
def download(request_id: IdArg, out: OutOpt, config: ConfigOpt = None,
             as_json: JsonOpt = False) -> Reply:
    """Fetch the packages of a request already run (again) into --out."""
    from evidock.client import station
    from evidock.download import landing

    with landing(out) as tmp, station(config) as st:
        listed = st.get(_path(request_id, "files"))
        _fetch(st, request_id, listed["files"], tmp, out)
    files = listed["files"]
    data = {"request_id": request_id, "out": str(out), "exports": listed["exports"],
            "files": len(files), "bytes": sum(f["size"] for f in files)}
    return Reply(data)


def _fetch(st: Station, request_id: str, raw_files: object, tmp: Path, out: Path) -> None:
    """Download the request's packages into ``tmp``, checked against ``raw_files``."""
    from evidock.download import listing, receive
    from integrity.errors import TransferFailed

    files = listing(raw_files)
    try:
        with st.stream("GET", _path(request_id, "download")) as response:
            receive(response.iter_bytes(), tmp, files)
    except TransferFailed as exc:
        raise TransferFailed(
            f"{exc.message}; nothing was written at {out}. The station keeps the "
            f"package: `evidock export download {request_id} --out {out}` fetches it "
            "again", **exc.details) from None


def _print_packages(packages: list[dict[str, Any]]) -> None:
    for p in packages:
        typer.echo(f"{p['dir']}  export {p['export_id']}  {', '.join(p['segments'])}")


__all__ = ["export_app"]
