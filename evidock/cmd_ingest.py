"""CLI: `evidock ingest`, offloading one camera by hand (the dock daemon does it per bay).

The station service reads the camera as its own account and answers with the report
when the offload (and its renditions) is done; the user only asks, and may ask only for
a camera directory they could read themselves. One JSON answer has no room for a live
progress bar, so people see a line when the request goes out and the tables after.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from evidock.cli_base import ConfigOpt, JsonOpt, Reply, command


@command
def ingest(
    source: Annotated[Path, typer.Argument(help="Mounted camera (or folder) to offload.")],
    device: Annotated[str, typer.Option("--device", help="Camera serial number.")],
    officer: Annotated[str | None, typer.Option("--officer", help="Police number.")] = None,
    model: Annotated[str | None, typer.Option("--model", help="Camera model (config).")] = None,
    wipe: Annotated[bool, typer.Option("--wipe-after-verify",
                                       help="Delete each file from the camera once its "
                                            "copy is verified and committed.")] = False,
    make_renditions: Annotated[bool, typer.Option("--process/--no-process",
                                                  help="Make renditions after the offload."
                                                  )] = True,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> Reply:
    """Offload a camera: copy, verify, store and catalogue every file."""
    from evidock.client import station

    if not as_json and sys.stderr.isatty():
        typer.echo(f"offloading {source} through the station service…", err=True)
    with station(config) as st:
        report: dict[str, Any] = st.post("/offloads", {
            "source": str(source.absolute()), "device": device, "officer": officer,
            "model": model, "wipe": wipe, "process": make_renditions})
    # A rendition that fails for a recording ingested as playable is an error; one of a
    # file already flagged at ingest is expected.
    playable_failed = [r for r in report["renditions"]
                       if r["status"] == "failed" and r["status_at_ingest"] == "ingested"]
    exit_code = int(report["summary"]["exit_code"])
    return Reply(report, human=functools.partial(_print_ingest, report),
                 exit_code=max(exit_code, 1 if playable_failed else 0))


def _print_ingest(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table("status", "code", "file", "size", "blake3",
                  title=f"session {report['session']}")
    table.columns[2].overflow = "fold"
    for f in report["files"]:
        table.add_row(f["status"] + (" (wiped)" if f["wiped"] else ""), f["code"], f["path"],
                      "" if f["size"] is None else str(f["size"]), (f["blake3"] or "")[:16])
    console.print(table)
    console.print(_summary_line(report["summary"]))
    error = report["summary"].get("error")
    if error is not None:
        typer.echo(f"evidock: {error['code']}: {error['message']}", err=True)
    if report["renditions"]:
        table = Table("rendition", "code", "file", "merkle root", title="archival renditions")
        for r in report["renditions"]:
            table.add_row(str(r["status"]), str(r["code"]), str(r["path"]),
                          str(r["merkle_root"] or "")[:16])
        console.print(table)


def _summary_line(summary: dict[str, Any]) -> str:
    states = ("ingested", "duplicate", "flagged", "skipped", "failed")
    counts = ", ".join(f"{summary[s]} {s}" for s in states if summary.get(s))
    copied, seconds = summary["bytes_copied"], summary["seconds"]
    rate = copied / seconds / 1e6 if seconds > 0 else 0.0
    return (f"{summary['outcome']}: {counts or 'no files'}; "
            f"{copied / 1e6:.1f} MB in {seconds:.1f}s ({rate:.0f} MB/s)")


__all__ = ["ingest"]
