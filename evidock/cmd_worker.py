"""CLI: `evidock worker`, one worker of the PostgreSQL job queue (evidock/jobqueue/).

Wired into the main app by evidock/cli.py. Runnable without the top-level CLI as
``python -m evidock.cmd_worker``.
"""

from __future__ import annotations

from typing import Annotated

import typer

from evidock.cli_base import ConfigOpt, JsonOpt, Reply, command


@command
def worker(config: ConfigOpt = None,
           name: Annotated[str | None, typer.Option(
               "--name", help="Name in the logs (default: host:pid).")] = None,
           as_json: JsonOpt = False) -> Reply:
    """Run one job-queue worker in the foreground (systemd Type=notify): renditions
    queued in the catalog's PostgreSQL database ([jobs] queue = "postgres"); start any
    number, on any machine. SIGTERM: the running jobs finish first. Root or the service
    account only."""
    from evidock.jobqueue.worker import serve
    from evidock.operators import require_operator

    require_operator(config, command="worker")
    return Reply(None, exit_code=serve(config, name=name))


__all__ = ["worker"]

if __name__ == "__main__":
    typer.run(worker)
