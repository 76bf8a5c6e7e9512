"""`evidock dock ...`: the docking-station daemon (run), its bays (status), deadlines (overdue).

The daemon's process (pipeline over ``Services``, signals, systemd) is
evidock/dock_daemon.py. Runnable without the top-level CLI as
``python -m evidock.cmd_dock run``.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Annotated, Any

import typer

from evidock.cli_base import ConfigOpt, JsonOpt, Reply, command
from integrity.errors import ConfigError

dock_app = typer.Typer(no_args_is_help=True, help="The docking-station daemon and its bays.")


@dock_app.command("run")
@command
def run(config: ConfigOpt = None) -> Reply:
    """Run the dock daemon in the foreground (for systemd Type=notify)."""
    from evidock.dock_daemon import serve

    return Reply(None, exit_code=serve(config))


def _pid_alive(pid: Any) -> bool:
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dock_app.command("status")
@command
def status(config: ConfigOpt = None, as_json: JsonOpt = False) -> Reply:
    """Each bay: camera, officer, state, files and bytes done, throughput, ETA, error."""
    from config import load_settings
    from docks.settings import status_file
    from docks.status import read_status

    path = status_file(load_settings(config_file=config))
    doc = read_status(path) or {"bays": {}, "unregistered": [], "ignored": 0}
    doc["running"] = _pid_alive(doc.get("pid"))
    doc["status_file"] = str(path)
    return Reply(doc, human=lambda: _print_status(doc))


def _print_status(doc: dict[str, Any]) -> None:
    from docks.status import format_bay

    typer.echo(f"daemon: {'running' if doc['running'] else 'not running'} "
               f"(status {doc['status_file']}, updated {doc.get('updated_at', 'never')})")
    for bay in doc["bays"].values():
        typer.echo(format_bay(bay))
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
    from config import load_settings
    from docks.overdue import overdue, parse_window
    from evidock.wiring import Services

    settings = load_settings(config_file=config)
    try:
        span = parse_window(window) if window else \
            timedelta(hours=settings.dock.overdue_window_h)
    except ValueError as exc:
        raise ConfigError(str(exc), key="--window") from exc
    svc = Services.from_config(settings)
    try:
        rows = [r.to_json() for r in overdue(svc.catalog, now=svc.clock(), window=span)]
    finally:
        svc.close()
    hours = span.total_seconds() / 3600
    return Reply({"window_h": hours, "overdue": rows}, human=lambda: _print_overdue(hours, rows),
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
