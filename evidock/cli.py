"""The `evidock` command line. Each command parses its arguments, wires services from
config, runs, and turns errors into an exit code and one line (or JSON)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from config import load_settings, write_default_config
from evidock import (
    cmd_audit,
    cmd_case,
    cmd_coverage,
    cmd_dock,
    cmd_export,
    cmd_media,
    cmd_retention,
    cmd_scheduler,
    cmd_upload,
    cmd_verify,
)
from evidock.output import emit_json, guarded, show
from evidock.progress import RichProgress
from evidock.wiring import Services
from ingest.outcome import OffloadReport, OffloadRequest

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="evidock: verified ingest and integrity for body-worn camera footage.")

JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")]
ConfigOpt = Annotated[Path | None, typer.Option("--config", help="TOML config file.",
                                                envvar="EVIDOCK_CONFIG")]


def services(config: Path | None) -> Services:
    return Services.from_config(load_settings(config_file=config))


@app.command()
def init(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Create EVIDOCK_HOME (config, catalog, store). Safe to run again."""

    def body() -> None:
        settings = load_settings(config_file=config)
        settings.home.mkdir(parents=True, exist_ok=True)
        wrote = write_default_config(settings.home / "evidock.toml")
        svc = Services.from_config(load_settings(config_file=config))
        svc.store.ensure()
        for d in (settings.keys_dir, settings.logs_dir):
            d.mkdir(parents=True, exist_ok=True, mode=0o700)
        svc.close()
        info = {"home": str(settings.home), "config_written": wrote,
                "catalog": settings.catalog_url, "store": str(settings.store_dir)}
        if as_json:
            emit_json(info)
        else:
            for key, value in info.items():
                typer.echo(f"{key}: {value}")

    guarded(as_json, body)


@app.command()
def whoami(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """The evidock user this OS account maps to, with roles and permissions."""

    def body() -> dict[str, object]:
        svc = services(config)
        try:
            actor = svc.actor()
        finally:
            svc.close()
        return {"user": actor.name, "display": actor.display, "roles": list(actor.roles),
                "units": sorted(actor.units) or "all",
                "clearances": ["none", *sorted(actor.clearances)],
                "permissions": sorted(p.value for p in actor.permissions)}

    show(guarded(as_json, body), as_json)


@app.command()
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
) -> None:
    """Offload a camera: copy, verify, store and catalogue every file."""
    request = OffloadRequest(source=source, device_serial=device, officer_id=officer,
                             camera_model=model, wipe_after_verify=wipe)
    report, renditions = guarded(
        as_json, lambda: _run_ingest(config, request, as_json, make_renditions))
    failed = [r for r in renditions if r["status"] == "failed"]
    if as_json:
        emit_json({**report.to_json(), "renditions": renditions})
    else:
        _print_report(report)
        _print_renditions(renditions)
    playable_failed = [r for r in failed if r["status_at_ingest"] == "ingested"]
    raise typer.Exit(max(report.exit_code, 1 if playable_failed else 0))


def _run_ingest(config: Path | None, request: OffloadRequest, as_json: bool,
                make_renditions: bool) -> tuple[OffloadReport, list[dict[str, object]]]:
    svc = services(config)
    try:
        interactive = not as_json and sys.stderr.isatty()
        progress = RichProgress(Console(stderr=True)) if interactive else None
        try:
            report = svc.offloader().run(request, progress)
        finally:
            if progress is not None:
                progress.stop()
        if not make_renditions or report.outcome in ("interrupted", "failed"):
            return report, []
        return report, _renditions(svc, report)
    finally:
        svc.close()


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


def _print_renditions(renditions: list[dict[str, object]]) -> None:
    if not renditions:
        return
    table = Table("rendition", "code", "file", "merkle root", title="archival renditions")
    for r in renditions:
        table.add_row(str(r["status"]), str(r["code"]), str(r["path"]),
                      str(r["merkle_root"] or "")[:16])
    Console().print(table)


def _print_report(report: OffloadReport) -> None:
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


app.add_typer(cmd_media.keys_app, name="keys")
app.add_typer(cmd_audit.audit_app, name="audit")
app.add_typer(cmd_upload.upload_app, name="upload")
app.add_typer(cmd_dock.dock_app, name="dock")
app.add_typer(cmd_case.case_app, name="case")
app.add_typer(cmd_case.recording_app, name="recording")
app.add_typer(cmd_export.export_app, name="export")
app.add_typer(cmd_retention.retention_app, name="retention")
app.add_typer(cmd_retention.hold_app, name="hold")
app.add_typer(cmd_scheduler.scheduler_app, name="scheduler")
app.command()(cmd_audit.fixity)
app.command()(cmd_coverage.coverage)
app.command()(cmd_media.process)
app.command()(cmd_verify.verify)
app.command()(cmd_media.recover)


cmd_audit.install_refusals(app)


def main() -> None:
    app()
