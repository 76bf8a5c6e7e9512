"""CLI: the periodic-job daemon (`evidock scheduler run|jobs|run-once`).

Wired into the main app by evidock/cli.py as ``app.add_typer(scheduler_app,
name="scheduler")``. Runnable without the top-level CLI as
``python -m evidock.cmd_scheduler run``.
"""

from __future__ import annotations

from typing import Annotated

import typer

from config.jobs import JOB_IDS
from evidock.cli_base import ConfigOpt, JsonOpt, Reply, command
from integrity.errors import InvalidRequest

scheduler_app = typer.Typer(no_args_is_help=True,
                            help="Periodic jobs: retention planning, remote retention, fixity, "
                                 "uploads, overdue offloads, signed audit heads.")


@scheduler_app.command("run")
@command
def run(config: ConfigOpt = None) -> Reply:
    """Run the scheduler in the foreground (systemd Type=notify); SIGTERM stops it after
    the jobs in flight. Root or the service account only."""
    from evidock.operators import require_operator
    from evidock.scheduler import serve

    require_operator(config, command="scheduler run")
    return Reply(None, exit_code=serve(config))


@scheduler_app.command("jobs")
@command
def jobs(config: ConfigOpt = None, as_json: JsonOpt = False) -> Reply:
    """Every job: interval (0 = disabled) and the stored next run time. Root or the
    service account only (the job store is in the catalog)."""
    from config import load_settings
    from evidock.operators import require_operator
    from evidock.scheduler import opened
    from evidock.wiring import Services

    require_operator(config, command="scheduler jobs")
    settings = load_settings(config_file=config)
    Services.from_config(settings).close()  # creates the catalog if it is new
    with opened(settings, config) as sched:
        rows = sched.jobs()
    return Reply({"jobs": rows}, human=lambda: _print_jobs(rows))


def _print_jobs(rows: list[dict[str, object]]) -> None:
    for r in rows:
        every = f"every {r['every_s']}s" if r["enabled"] else "disabled"
        typer.echo(f"{r['job']:17} {every:15} next {r['next_run_time'] or '-'}")


@scheduler_app.command("run-once")
@command
def run_once(job: Annotated[str, typer.Argument(help=f"One of: {', '.join(JOB_IDS)}.")],
             config: ConfigOpt = None, as_json: JsonOpt = False) -> Reply:
    """Run one job now (audited like a scheduled run). Exit 0 ok/skipped, 1 findings.
    Root or the service account only."""
    from evidock.jobs import run_job
    from evidock.operators import require_operator

    require_operator(config, command="scheduler run-once")
    if job not in JOB_IDS:
        raise InvalidRequest(f"unknown job {job!r}; one of {', '.join(JOB_IDS)}", job=job)
    result = run_job(job, str(config) if config is not None else None)
    return Reply(result, exit_code=int(str(result["exit_code"])))


__all__ = ["scheduler_app"]

if __name__ == "__main__":
    scheduler_app()
