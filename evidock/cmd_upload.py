"""CLI: a copy of every blob in WORM object storage (`evidock upload status|run|
sync-retention`), asked of the station service (``upload.run``: the admin)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from evidock.cli_base import ConfigOpt, JsonOpt, Reply, command

upload_app = typer.Typer(no_args_is_help=True,
                         help="Copies of every blob in WORM object storage (Object Lock).")


@upload_app.command("status")
@command
def status(config: ConfigOpt = None, as_json: JsonOpt = False) -> dict[str, object]:
    """What is queued, due now, verified and failed (with codes), and bytes left."""
    from evidock.client import station

    with station(config) as st:
        answer: dict[str, object] = st.get("/uploads/status")
    return answer


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
    from evidock.client import station

    with station(config) as st:
        answer: dict[str, Any] = st.post("/uploads/run", {"limit": limit,
                                                          "retry_failed": retry_failed})
    return Reply(answer, exit_code=0 if answer["verified"] == answer["attempted"] else 1)


@upload_app.command("sync-retention")
@command
def sync_retention(
        full: Annotated[bool, typer.Option(
            "--full", help="Ask the store about every copy, not only those whose recorded "
                           "lock is short of the plan.")] = False,
        config: ConfigOpt = None, as_json: JsonOpt = False) -> Reply:
    """Extend remote COMPLIANCE locks to the retention plan (never shorter) and set or
    clear legal holds; each change audited. Exit 1 on findings."""
    from evidock.client import station

    with station(config) as st:
        result: dict[str, Any] = st.post("/uploads/sync-retention", {"full": full})
    return Reply(result, exit_code=int(str(result["exit_code"])))


__all__ = ["upload_app"]
