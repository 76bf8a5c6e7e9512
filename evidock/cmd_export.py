"""CLI: exports out of the archive — request, approve or reject, run once, download,
list, show. A client of the station service, which decides every step.

未经批准不得擅自对外提供: there is no direct export; a package is written only by
`export run` for a request another person approved. The service writes it in its own
area; this command downloads it into ``--out`` (all of it, checked, or nothing).
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

import typer

from evidock.cli_base import ConfigOpt, JsonOpt, Reply, command
from evidock.cli_exports import Downloads, IdArg, OutOpt, print_list, request_out
from evidock.output import zoned

export_app = typer.Typer(no_args_is_help=True, help="Exports need an approved request "
                         "(未经批准不得擅自对外提供): request, approve/reject, run, "
                         "download, discard, list, show.")


def _path(request_id: str, *rest: str) -> str:
    return "/".join(["/exports", quote(request_id, safe=""), *rest])


EXPORTS = Downloads(path=_path, command="evidock export", keeper="station",
                    what="packages")


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
    return request_out(config, "/exports", {
        "purpose": purpose, "recipient": recipient, "case": case, "recording": recording,
        "start": start, "end": end, "reason": reason, "exact": exact,
        "originals": originals, "redaction": redaction})


@export_app.command("approve")
@command
def approve(request_id: IdArg, reason: Annotated[str, typer.Option("--reason")] = "",
            config: ConfigOpt = None, as_json: JsonOpt = False) -> Reply:
    """Approve someone else's pending request (valid for exports.approval_valid_h)."""
    return request_out(config, _path(request_id, "approve"), {"reason": reason})


@export_app.command("reject")
@command
def reject(request_id: IdArg, reason: Annotated[str, typer.Option("--reason")],
           config: ConfigOpt = None, as_json: JsonOpt = False) -> Reply:
    """Reject someone else's pending request."""
    return request_out(config, _path(request_id, "reject"), {"reason": reason})


@export_app.command("discard")
@command
def discard(request_id: IdArg, reason: Annotated[str, typer.Option("--reason")],
            config: ConfigOpt = None, as_json: JsonOpt = False) -> Reply:
    """End an approved request, or one whose run was interrupted, for good (a new
    request is then needed)."""
    return request_out(config, _path(request_id, "discard"), {"reason": reason})


@export_app.command("show")
@command
def show(request_id: IdArg, config: ConfigOpt = None, as_json: JsonOpt = False) -> Reply:
    """One request: status, decisions and what it covers."""
    return request_out(config, _path(request_id))


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
    return Reply(answer, human=lambda: print_list(answer["requests"]))


@export_app.command("run")
@command
def run(request_id: IdArg, out: OutOpt, config: ConfigOpt = None,
        as_json: JsonOpt = False) -> Reply:
    """Write the packages of an approved request (once) and download them into --out."""
    return EXPORTS.run(request_id, out, config)


@export_app.command("download")
@command
def download(request_id: IdArg, out: OutOpt, config: ConfigOpt = None,
             as_json: JsonOpt = False) -> Reply:
    """Fetch the packages of a request already run (again) into --out."""
    return EXPORTS.download(request_id, out, config)


__all__ = ["EXPORTS", "export_app"]
