"""`evidock dock ...`: the docking-station daemon (run), its bays (status), deadlines (overdue).

The daemon's process (pipeline over ``Services``, signals, systemd) is
evidock/dock_daemon.py; it runs as the service account and writes its bays to
``run/dock-status.json``, which `dock status` asks the station service for. Runnable
without the top-level CLI as ``python -m evidock.cmd_dock run``.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from evidock.cli_base import ConfigOpt, JsonOpt, Reply, command

dock_app = typer.Typer(no_args_is_help=True, help="The docking-station daemon and its bays.")


@dock_app.command("run")
@command
def run(config: ConfigOpt = None) -> Reply:
    """Run the dock daemon in the foreground (for systemd Type=notify). Root or the
    service account only: it mounts, reads and wipes cameras and writes the store."""
    from evidock.dock_daemon import serve
    from evidock.operators import require_operator

    require_operator(config, command="dock run")
    return Reply(None, exit_code=serve(config))


@dock_app.command("status")
@command
def status(config: ConfigOpt = None, as_json: JsonOpt = False) -> Reply:
    """Each bay: camera, officer, state, files and bytes done, throughput, ETA, error."""
    from evidock.client import station

    with station(config) as st:
        doc: dict[str, Any] = st.get("/dock/status")
    return Reply(doc, human=lambda: _print_status(doc))


def _print_status(doc: dict[str, Any]) -> None:
    from docks.status import format_bay

    typer.echo(f"daemon: {'running' if doc['running'] else 'not running'} "
               f"(status {doc['status_file']}, updated {doc.get('updated_at', 'never')})")
    for bay in doc["bays"].values():
        typer.echo(format_bay(bay))
    stamps = doc.get("timestamps")
    if stamps:
        typer.echo(f"timestamps: {stamps['pending']} signed manifest(s)/tree head(s) waiting "
                   f"for an RFC 3161 token ({stamps['tsas']} TSA(s) configured)")
    for dev in doc.get("unregistered", []):
        typer.echo(f"unregistered camera-like device {dev['vendor_id']}:{dev['model_id']} "
                   f"{dev['name']!r} serial {dev['serial']}; to register:\n{dev['register']}")


@dock_app.command("overdue")
@command
def overdue_cmd(
    window: Annotated[str | None, typer.Option("--window", help="e.g. 24h, 90m, 2d "
                                               "(default: dock.overdue_window_h)")] = None,
    config: ConfigOpt = None, as_json: JsonOpt = False,
) -> Reply:
    """Cameras and officers not offloaded within the window (provincial rule: 24 h)."""
    from evidock.client import station

    with station(config) as st:
        doc: dict[str, Any] = st.get("/dock/overdue", window=window)
    hours, rows = float(doc["window_h"]), list(doc["overdue"])
    return Reply(doc, human=lambda: _print_overdue(hours, rows),
                 exit_code=1 if rows else 0)


def _print_overdue(hours: float, rows: list[dict[str, Any]]) -> None:
    for r in rows:
        last = r["last_offload"] or "never"
        typer.echo(f"{r['kind']:7} {r['id']:12} last offload {last}  "
                   f"last attempt {r['last_attempt']} ({r['last_outcome']})")
    typer.echo(f"{len(rows)} overdue (window {hours:g} h)")


@dock_app.command("udev-rules")
@command
def udev_rules_cmd(config: ConfigOpt = None) -> None:
    """Print the udev rules for the camera registry (tags cameras, keeps udisks away)."""
    from config import load_settings
    from docks.registry import udev_rules

    typer.echo(udev_rules(load_settings(config_file=config).dock), nl=False)


__all__ = ["dock_app"]

if __name__ == "__main__":
    dock_app()
