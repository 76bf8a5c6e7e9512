"""CLI: `evidock ingest`, offloading one camera by hand (the dock daemon does it per bay)."""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from evidock.cli_base import ConfigOpt, JsonOpt, Reply, command, services

if TYPE_CHECKING:
    from evidock.wiring import Services
    from ingest.outcome import OffloadReport, OffloadRequest


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
    from ingest.outcome import OffloadRequest

    request = OffloadRequest(source=source, device_serial=device, officer_id=officer,
                             camera_model=model, wipe_after_verify=wipe)
    report, renditions = _run(config, request, as_json, make_renditions)
    # A rendition that fails for a recording ingested as playable is an error; one of a
    # file already flagged at ingest is expected.
    playable_failed = [r for r in renditions
                       if r["status"] == "failed" and r["status_at_ingest"] == "ingested"]
    return Reply({**report.to_json(), "renditions": renditions},
                 human=functools.partial(_print_ingest, report, renditions),
                 exit_code=max(report.exit_code, 1 if playable_failed else 0))


def _run(config: Path | None, request: OffloadRequest, as_json: bool,
         make_renditions: bool) -> tuple[OffloadReport, list[dict[str, object]]]:
    with services(config) as svc:
        progress = None
        if not as_json and sys.stderr.isatty():
            from rich.console import Console

            from evidock.progress import RichProgress

            progress = RichProgress(Console(stderr=True))
        try:
            report = svc.offloader().run(request, progress)
        finally:
            if progress is not None:
                progress.stop()
        if not make_renditions or report.outcome in ("interrupted", "failed"):
            return report, []
        return report, _renditions(svc, report)


def _renditions(svc: Services, report: OffloadReport) -> list[dict[str, object]]:
    """Renditions for this offload's new recordings (duplicates were made before)."""
    renderer = svc.renderer()
    wanted = {f.recording_id: f for f in report.files
              if f.recording_id and f.status in ("ingested", "flagged")}
    out: list[dict[str, object]] = []
    for rec in renderer.pending():
        if rec.id in wanted:
            row = renderer.render(rec)
            out.append({"recording_id": rec.id, "path": rec.original_display,
                        "status": row.status, "code": row.code, "reason": row.reason,
                        "merkle_root": row.merkle_root,
                        "status_at_ingest": wanted[rec.id].status})
    return out


def _print_ingest(report: OffloadReport, renditions: list[dict[str, object]]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table("status", "code", "file", "size", "blake3", title=f"session {report.session_id}")
    table.columns[2].overflow = "fold"
    for f in report.files:
        table.add_row(f.status + (" (wiped)" if f.wiped else ""), f.code, f.display,
                      "" if f.size is None else str(f.size), (f.blake3 or "")[:16])
    console.print(table)
    counts = ", ".join(f"{n} {s}" for s, n in report.counts().items() if n)
    rate = report.bytes_copied / report.seconds / 1e6 if report.seconds > 0 else 0.0
    console.print(f"{report.outcome}: {counts or 'no files'}; "
                  f"{report.bytes_copied / 1e6:.1f} MB in {report.seconds:.1f}s ({rate:.0f} MB/s)")
    if report.error is not None:
        typer.echo(f"evidock: {report.error.code}: {report.error.message}", err=True)
    if renditions:
        table = Table("rendition", "code", "file", "merkle root", title="archival renditions")
        for r in renditions:
            table.add_row(str(r["status"]), str(r["code"]), str(r["path"]),
                          str(r["merkle_root"] or "")[:16])
        console.print(table)


__all__ = ["ingest"]
