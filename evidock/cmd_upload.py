"""CLI: a copy of every blob in WORM object storage (`evidock upload status|run`)."""

from __future__ import annotations

from typing import Annotated

import typer

from evidock.cli_base import ConfigOpt, JsonOpt, Reply, actor_name, command, services

upload_app = typer.Typer(no_args_is_help=True,
                         help="Copies of every blob in WORM object storage (Object Lock).")


@upload_app.command("status")
@command
def status(config: ConfigOpt = None, as_json: JsonOpt = False) -> dict[str, object]:
    """What is queued, due now, verified and failed (with codes), and bytes left."""
    with services(config) as svc:
        return svc.upload_queue().status(now=svc.clock()).to_dict()


@upload_app.command("run")
@command
def run(limit: Annotated[int, typer.Option("--limit", min=1,
                                           help="At most this many items.")] = 1000,
        retry_failed: Annotated[bool, typer.Option(
            "--retry-failed", help="Requeue failed items first (after fixing the cause).")]
        = False,
        config: ConfigOpt = None, as_json: JsonOpt = False) -> Reply:
    """Queue every blob not yet queued, then upload and verify what is due, in batches.

    Exit 0 when every attempted item was verified, 1 when some are left queued (to be
    retried later) or failed.
    """
    from evidock.jobs import upload_pass

    with services(config) as svc:
        added, done = upload_pass(svc, limit=limit, retry_failed=retry_failed)
    counts = {s: sum(1 for i in done if i.state == s) for s in ("verified", "queued",
                                                                "failed")}
    return Reply({"enqueued": added, "attempted": len(done), **counts,
                  "problems": [{"blake3": i.blake3, "state": i.state, "code": i.code}
                               for i in done if i.state != "verified"]},
                 exit_code=0 if counts["verified"] == len(done) else 1)


@upload_app.command("sync-retention")
@command
def sync_retention(
        full: Annotated[bool, typer.Option(
            "--full", help="Ask the store about every copy, not only those whose recorded "
                           "lock is short of the plan.")] = False,
        config: ConfigOpt = None, as_json: JsonOpt = False) -> Reply:
    """Extend remote COMPLIANCE locks to the retention plan (never shorter) and set or
    clear legal holds; each change audited. Exit 1 on findings."""
    from evidock import jobs

    with services(config) as svc:
        svc.upload_queue()  # E_CONFIG unless [upload] is enabled
        result = jobs.execute("remote_retention", svc, actor=actor_name(),
                              full=full).to_dict()
    return Reply(result, exit_code=int(str(result["exit_code"])))


__all__ = ["upload_app"]
