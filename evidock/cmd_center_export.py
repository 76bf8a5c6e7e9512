"""CLI: `evidock center export …` — exports from the center, the station's shape.

request (a clip of a station's recording), approve or reject (someone else), run once
(the center reads the footage back from the object store, proves it, packages it and
this command downloads it into ``--out``, all of it checked or nothing), download
again, list, show. A client of the center's service, which decides every step.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

import typer

from evidock.cli_base import ConfigOpt, JsonOpt, Reply, command
from evidock.cli_exports import Downloads, IdArg, OutOpt, print_list, request_out
from evidock.output import zoned

center_export_app = typer.Typer(
    no_args_is_help=True, add_completion=False,
    help="Exports from the center (未经批准不得擅自对外提供): request, approve/reject, "
         "run, download, list, show. Verify a package with both keys: `evidock verify "
         "DIR --key STATION.pem --center-key CENTER.pem`.")


def _path(request_id: str | None = None, *rest: str) -> str:
    head = ["/center/exports"] + ([quote(request_id, safe="")] if request_id else [])
    return "/".join([*head, *rest])


CENTER_EXPORTS = Downloads(path=_path, command="evidock center export", keeper="center",
                           what="package")


@center_export_app.command("request")
@command
def request(
    station: Annotated[str, typer.Option("--station", help="The station's id.")],
    recording: Annotated[str, typer.Option("--recording", help="Recording id.")],
    start: Annotated[str, typer.Option("--start", help="Seconds or H:MM:SS.")],
    end: Annotated[str, typer.Option("--end", help="Seconds or H:MM:SS.")],
    purpose: Annotated[str, typer.Option("--purpose", help="One of exports.purposes.")],
    recipient: Annotated[str, typer.Option("--recipient", help="Who receives it.")],
    reason: Annotated[str, typer.Option("--reason")] = "",
    originals: Annotated[bool, typer.Option("--originals", help="Include the original "
                                            "camera file, restored from the object "
                                            "store and proven.")] = False,
    config: ConfigOpt = None, as_json: JsonOpt = False,
) -> Reply:
    """Ask to take a clip of a station's recording out of the center."""
    return request_out(config, _path(), {
        "station": station, "recording": recording, "start": start, "end": end,
        "purpose": purpose, "recipient": recipient, "reason": reason,
        "originals": originals})


@center_export_app.command("approve")
@command
def approve(request_id: IdArg, reason: Annotated[str, typer.Option("--reason")] = "",
            config: ConfigOpt = None, as_json: JsonOpt = False) -> Reply:
    """Approve someone else's pending request."""
    return request_out(config, _path(request_id, "approve"), {"reason": reason})


@center_export_app.command("reject")
@command
def reject(request_id: IdArg, reason: Annotated[str, typer.Option("--reason")],
           config: ConfigOpt = None, as_json: JsonOpt = False) -> Reply:
    """Reject someone else's pending request."""
    return request_out(config, _path(request_id, "reject"), {"reason": reason})


@center_export_app.command("show")
@command
def show(request_id: IdArg, config: ConfigOpt = None, as_json: JsonOpt = False) -> Reply:
    """One request: status, decisions and the clip it covers."""
    return request_out(config, _path(request_id))


@center_export_app.command("list")
@command
def list_(status: Annotated[str | None, typer.Option("--status")] = None,
          config: ConfigOpt = None, as_json: JsonOpt = False) -> Reply:
    """Requests you may see, oldest first."""
    from evidock.client import station

    with station(config) as st:
        answer = zoned(st.get(_path(), status=status), st.zone_name)
    return Reply(answer, human=lambda: print_list(answer["requests"]))


@center_export_app.command("run")
@command
def run(request_id: IdArg, out: OutOpt, config: ConfigOpt = None,
        as_json: JsonOpt = False) -> Reply:
    """Write the package of an approved request (once) and download it into --out."""
    return CENTER_EXPORTS.run(request_id, out, config)


@center_export_app.command("download")
@command
def download(request_id: IdArg, out: OutOpt, config: ConfigOpt = None,
             as_json: JsonOpt = False) -> Reply:
    """Fetch the package of a request already run (again) into --out."""
    return CENTER_EXPORTS.download(request_id, out, config)


__all__ = ["center_export_app"]
