"""CLI: a copy of every blob in WORM object storage (`evidock upload status|run`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from config import load_settings
from evidock.jobs import upload_pass
from evidock.output import guarded
from evidock.output import show as _show
from evidock.wiring import Services

JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")]
ConfigOpt = Annotated[Path | None, typer.Option("--config", help="TOML config file.",
                                                envvar="EVIDOCK_CONFIG")]
upload_app = typer.Typer(no_args_is_help=True,
                         help="Copies of every blob in WORM object storage (Object Lock).")


@upload_app.command("status")
def status(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """What is queued, due now, verified and failed (with codes), and bytes left."""
    def body() -> None:
        svc = Services.from_config(load_settings(config_file=config))
        try:
            _show(svc.upload_queue().status(now=svc.clock()).to_dict(), as_json)
        finally:
            svc.close()
    guarded(as_json, body)


@upload_app.command("run")
def run(limit: Annotated[int, typer.Option("--limit", min=1,
                                           help="At most this many items.")] = 1000,
        retry_failed: Annotated[bool, typer.Option(
            "--retry-failed", help="Requeue failed items first (after fixing the cause).")]
        = False,
        config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Queue every blob not yet queued, then upload and verify what is due, in batches.

    Exit 0 when every attempted item was verified, 1 when some are left queued (to be
    retried later) or failed.
    """
    def body() -> int:
        svc = Services.from_config(load_settings(config_file=config))
        try:
            added, done = upload_pass(svc, limit=limit, retry_failed=retry_failed)
        finally:
            svc.close()
        counts = {s: sum(1 for i in done if i.state == s) for s in ("verified", "queued",
                                                                    "failed")}
        _show({"enqueued": added, "attempted": len(done), **counts,
               "problems": [{"blake3": i.blake3, "state": i.state, "code": i.code}
                            for i in done if i.state != "verified"]}, as_json)
        return 0 if counts["verified"] == len(done) else 1
    raise typer.Exit(guarded(as_json, body))


@upload_app.command("sync-retention")
def sync_retention(
        full: Annotated[bool, typer.Option(
            "--full", help="Ask the store about every copy, not only those whose recorded "
                           "lock is short of the plan.")] = False,
        config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Extend remote COMPLIANCE locks to the retention plan (never shorter) and set or
    clear legal holds; each change audited. Exit 1 on findings."""
    from evidock import jobs
    from evidock.cmd_audit import actor_name

    def body() -> dict[str, object]:
        svc = Services.from_config(load_settings(config_file=config))
        try:
            svc.upload_queue()  # E_CONFIG unless [upload] is enabled
            return jobs.execute("remote_retention", svc, actor=actor_name(),
                                full=full).to_dict()
        finally:
            svc.close()
    result = guarded(as_json, body)
    _show(result, as_json)
    raise typer.Exit(int(str(result["exit_code"])))
