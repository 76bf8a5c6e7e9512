"""`evidock dock ...`: the docking-station daemon (run), its bays (status), deadlines (overdue).

Composition root for ``docks``: wires ``Services`` into the ``docks.runner.Pipeline``
protocol, supplies the clocks, handles signals (SIGTERM/SIGINT: stop after the file in
flight; SIGHUP: reload config) and talks to systemd. Runnable without the top-level CLI
as ``python -m evidock.cmd_dock run``.
"""

from __future__ import annotations

import faulthandler
import json
import logging
import os
import selectors
import signal
import socket
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer

from config import Settings, load_settings
from docks.daemon import Config, Dock
from docks.job import event
from docks.overdue import overdue, parse_window
from docks.registry import udev_rules
from docks.sdnotify import Notifier
from docks.settings import DockSettings, dock_config_file, load_dock_settings, read_dock_table
from docks.status import format_bay, read_status
from evidock.output import emit_json, guarded
from evidock.wiring import Services, utc_now
from ingest.hooks import FifoHooks, Hooks
from ingest.outcome import OffloadReport, OffloadRequest
from ingest.progress import Progress
from integrity.errors import ConfigError

dock_app = typer.Typer(no_args_is_help=True, help="The docking-station daemon and its bays.")
JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")]
ConfigOpt = Annotated[Path | None, typer.Option("--config", help="TOML config file.",
                                                envvar="EVIDOCK_CONFIG")]


class ServicesPipeline:
    """docks.runner.Pipeline over Services: one Offloader per offload, shared hooks."""

    def __init__(self, svc: Services, *, hooks: Hooks) -> None:
        self.svc = svc
        self.hooks = hooks  # one per process, so test pause points count across bays
        self._render = threading.Lock()  # renditions one at a time: 2 cores, ffmpeg

    def offload(self, request: OffloadRequest, progress: Progress, *,
                clock_drift_s: float | None = None) -> OffloadReport:
        if clock_drift_s is not None:
            request = replace(request, clock_drift_s=clock_drift_s)
        offloader = self.svc.offloader()  # wired exactly as `evidock ingest` wires it
        offloader.hooks = self.hooks
        return offloader.run(request, progress)

    def process(self, report: OffloadReport) -> int:
        wanted = {f.recording_id for f in report.files
                  if f.recording_id and f.status in ("ingested", "flagged")}
        if not wanted:
            return 0
        with self._render:
            renderer = self.svc.renderer()
            rows = [renderer.render(rec) for rec in renderer.pending() if rec.id in wanted]
        return sum(1 for r in rows if r.status == "failed")


def load_config(config: Path | None) -> tuple[Settings, DockSettings]:
    """Settings plus the dock's: ``settings.dock`` once config carries it, else dock.toml."""
    settings = load_settings(config_file=config)
    path = dock_config_file(settings)
    if path.is_file():
        return settings, load_dock_settings(settings, read_dock_table(path))
    return settings, DockSettings.model_validate(settings.dock.model_dump())


class _JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage()
        if msg.startswith("{"):
            return msg
        return json.dumps({"event": "log", "level": record.levelname, "message": msg,
                           **({"exc": self.formatException(record.exc_info)}
                              if record.exc_info else {})}, ensure_ascii=False)


def _logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonLines())
    root = logging.getLogger("evidock.dock")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    root.propagate = False


class _Signals:
    """Signals arrive as bytes on a socket (signal.set_wakeup_fd), read in a selector."""

    WATCHED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)

    def __init__(self) -> None:
        self._r, self._w = socket.socketpair()
        for s in (self._r, self._w):
            s.setblocking(False)
        for sig in self.WATCHED:
            signal.signal(sig, lambda *_: None)  # the byte on the socket is what counts
        signal.set_wakeup_fd(self._w.fileno(), warn_on_full_buffer=False)
        self._sel = selectors.DefaultSelector()
        self._sel.register(self._r, selectors.EVENT_READ)

    def wait(self, timeout: float | None) -> list[int]:
        if not self._sel.select(timeout):
            return []
        try:
            return list(self._r.recv(64))
        except BlockingIOError:
            return []

    def close(self) -> None:
        signal.set_wakeup_fd(-1)
        self._sel.close()
        self._r.close()
        self._w.close()


def serve(config: Path | None) -> int:
    """Run the daemon in the foreground until SIGTERM/SIGINT."""
    _logging()
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # kill -USR1: thread stacks
    settings, dock_settings = load_config(config)
    svc = Services.from_config(settings)
    notifier = Notifier()
    pipeline = ServicesPipeline(svc, hooks=FifoHooks.from_env(os.environ))
    dock = Dock(config=Config(settings, dock_settings), pipeline=pipeline, clock=utc_now,
                monotonic=time.monotonic)
    dock.board.listeners.append(lambda _bay: _notify_status(notifier, dock))
    signals = _Signals()
    try:
        dock.start()
        notifier.ready(dock.summary())
        event("ready", pid=os.getpid(), sources=list(dock_settings.sources),
              status=str(dock.board.path))
        _main_loop(dock, signals, notifier, config)
        notifier.stopping()
        event("stopping", active=dock.active())
        dock.stop()
        event("stopped")
    finally:
        signals.close()
        svc.close()
    return 0


def _notify_status(notifier: Notifier, dock: Dock) -> None:
    notifier.status(dock.summary())


def _main_loop(dock: Dock, signals: _Signals, notifier: Notifier,
               config: Path | None) -> None:
    tick = notifier.watchdog_s / 2 if notifier.watchdog_s else None
    while True:
        got = signals.wait(tick)
        if signal.SIGTERM in got or signal.SIGINT in got:
            return
        if signal.SIGHUP in got:
            notifier.reloading()
            try:
                dock.reload(Config(*load_config(config)))
            except ConfigError as exc:  # keep running on the old config
                event("reload-failed", error=exc.to_dict())
            notifier.ready(dock.summary())
        notifier.watchdog()


@dock_app.command("run")
def run(config: ConfigOpt = None) -> None:
    """Run the dock daemon in the foreground (for systemd Type=notify)."""
    raise typer.Exit(guarded(False, lambda: serve(config)))


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
def status(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Each bay: camera, officer, state, files and bytes done, throughput, ETA, error."""
    def body() -> dict[str, Any]:
        settings, dock_settings = load_config(config)
        path = dock_settings.status_file(settings)
        doc = read_status(path) or {"bays": {}, "unregistered": [], "ignored": 0}
        doc["running"] = _pid_alive(doc.get("pid"))
        doc["status_file"] = str(path)
        return doc
    doc = guarded(as_json, body)
    if as_json:
        emit_json(doc)
        return
    typer.echo(f"daemon: {'running' if doc['running'] else 'not running'} "
               f"(status {doc['status_file']}, updated {doc.get('updated_at', 'never')})")
    for bay in doc["bays"].values():
        typer.echo(format_bay(bay))
    for dev in doc.get("unregistered", []):
        typer.echo(f"unregistered camera-like device {dev['vendor_id']}:{dev['model_id']} "
                   f"{dev['name']!r} serial {dev['serial']}; to register:\n{dev['register']}")


@dock_app.command("overdue")
def overdue_cmd(
    window: Annotated[str | None, typer.Option("--window", help="e.g. 24h, 90m, 2d "
                                               "(default: dock.overdue_window_h)")] = None,
    config: ConfigOpt = None, as_json: JsonOpt = False,
) -> None:
    """Cameras and officers not offloaded within the window (provincial rule: 24 h)."""
    def body() -> tuple[float, list[dict[str, Any]]]:
        settings, dock_settings = load_config(config)
        try:
            span = parse_window(window) if window else None
        except ValueError as exc:
            raise ConfigError(str(exc), key="--window") from exc
        if span is None:
            from datetime import timedelta
            span = timedelta(hours=dock_settings.overdue_window_h)
        svc = Services.from_config(settings)
        try:
            rows = overdue(svc.catalog, now=svc.clock(), window=span)
        finally:
            svc.close()
        return span.total_seconds() / 3600, [r.to_json() for r in rows]
    hours, rows = guarded(as_json, body)
    if as_json:
        emit_json({"window_h": hours, "overdue": rows})
    else:
        for r in rows:
            last = r["last_offload"] or "never"
            typer.echo(f"{r['kind']:7} {r['id']:12} last offload {last}  "
                       f"last attempt {r['last_attempt']} ({r['last_outcome']})")
        typer.echo(f"{len(rows)} overdue (window {hours:g} h)")
    raise typer.Exit(1 if rows else 0)


@dock_app.command("udev-rules")
def udev_rules_cmd(config: ConfigOpt = None) -> None:
    """Print the udev rules for the camera registry (tags cameras, keeps udisks away)."""
    _, dock_settings = guarded(False, lambda: load_config(config))
    typer.echo(udev_rules(dock_settings), nl=False)


__all__ = ["ServicesPipeline", "dock_app", "serve"]

if __name__ == "__main__":
    dock_app()
