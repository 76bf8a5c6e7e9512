"""CLI: the periodic-job daemon (`evidock scheduler run|jobs|run-once`).

Wired into the main app by evidock/cli.py as ``app.add_typer(scheduler_app,
name="scheduler")``. Runnable without the top-level CLI as
``python -m evidock.cmd_scheduler run``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from config import load_settings
from config.scheduler import JOB_IDS
from evidock import jobs as _jobs
from evidock.output import emit_json, guarded
from evidock.scheduler import opened, serve
from evidock.wiring import Services
from integrity.errors import InvalidRequest

JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")]
ConfigOpt = Annotated[Path | None, typer.Option("--config", help="TOML config file.",
                                                envvar="EVIDOCK_CONFIG")]
scheduler_app = typer.Typer(no_args_is_help=True,
                            help="Periodic jobs: retention planning, remote retention, fixity, "
                                 "uploads, overdue offloads, signed audit heads.")


@scheduler_app.command("run")
def run(config: ConfigOpt = None) -> None:
    """Run the scheduler in the foreground (systemd Type=notify); SIGTERM stops it after
    the jobs in flight."""
    raise typer.Exit(guarded(False, lambda: serve(config)))


@scheduler_app.command("jobs")
def jobs(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Every job: interval (0 = disabled) and the stored next run time."""
    def body() -> list[dict[str, object]]:
        settings = load_settings(config_file=config)
        Services.from_config(settings).close()  # creates the catalog if it is new
        with opened(settings, config) as sched:
            return sched.jobs()
    rows = guarded(as_json, body)
    if as_json:
        emit_json({"jobs": rows})
        return
    for r in rows:
        every = f"every {r['every_s']}s" if r["enabled"] else "disabled"
        typer.echo(f"{r['job']:17} {every:15} next {r['next_run_time'] or '-'}")


@scheduler_app.command("run-once")
def run_once(job: Annotated[str, typer.Argument(help=f"One of: {', '.join(JOB_IDS)}.")],
             config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Run one job now (audited like a scheduled run). Exit 0 ok/skipped, 1 findings."""
    def body() -> dict[str, object]:
        if job not in JOB_IDS:
            raise InvalidRequest(f"unknown job {job!r}; one of {', '.join(JOB_IDS)}",
                                 job=job)
        return _jobs.run_job(job, str(config) if config is not None else None)
    result = guarded(as_json, body)
    if as_json:
        emit_json(result)
    else:
        for key, value in result.items():
            typer.echo(f"{key}: {value}")
    raise typer.Exit(int(str(result["exit_code"])))


__all__ = ["scheduler_app"]

if __name__ == "__main__":
    scheduler_app()
