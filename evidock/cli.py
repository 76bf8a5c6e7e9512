"""The `evidock` command line: the command tree. Each command lives in an ``evidock/cmd_*``
module and runs under :func:`evidock.cli_base.command` (one error handler, one printer).

Building the tree stays light: no catalog, SQLAlchemy, boto3 or ffmpeg is imported until
a command runs, so ``evidock --help`` starts fast.
"""

from __future__ import annotations

from typing import Annotated

import typer

from evidock import (
    cmd_admin,
    cmd_audit,
    cmd_c2pa,
    cmd_case,
    cmd_center_export,
    cmd_center_retention,
    cmd_coverage,
    cmd_dock,
    cmd_equipment,
    cmd_export,
    cmd_ingest,
    cmd_media,
    cmd_party,
    cmd_redaction,
    cmd_report,
    cmd_retention,
    cmd_review,
    cmd_scheduler,
    cmd_serve,
    cmd_stats,
    cmd_upload,
    cmd_verify,
    cmd_witness,
    cmd_worker,
)
from evidock.cli_base import ConfigOpt, JsonOpt, command

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="evidock: verified ingest and integrity for body-worn camera footage.")


@app.command()
@command
def init(config: ConfigOpt = None,
         account: Annotated[str | None, typer.Option(
             "--account", help="As root: the service account that will own the station's "
                               "files (default: [service] account).")] = None,
         profile: Annotated[str | None, typer.Option(
             "--profile", help="Crypto profile of a new station key: default (Ed25519) "
                               "or gm (SM2 with SM3, GB/T 32918; adds SM3 digests to "
                               "exports). Fixed once the key exists; change it with "
                               "`evidock keys rotate --profile`.")] = None,
         as_json: JsonOpt = False) -> dict[str, object]:
    """Create EVIDOCK_HOME (config, catalog, store, station key) for the service account;
    bring the catalog's schema to this evidock's revision. Safe to run again. Root or
    the service account only."""
    from evidock.operators import init_station, require_operator

    require_operator(config, command="init")
    return init_station(config, account=account, profile=profile)


@app.command()
@command
def whoami(config: ConfigOpt = None, as_json: JsonOpt = False) -> dict[str, object]:
    """The evidock user this OS account maps to, with roles and permissions."""
    from evidock.client import station

    with station(config) as st:
        answer: dict[str, object] = st.get("/whoami")
    return answer


app.command()(cmd_ingest.ingest)
app.command()(cmd_serve.serve)
app.add_typer(cmd_media.keys_app, name="keys")
app.add_typer(cmd_audit.audit_app, name="audit")
app.add_typer(cmd_upload.upload_app, name="upload")
app.add_typer(cmd_witness.witness_app, name="witness")
cmd_witness.center_app.add_typer(cmd_center_retention.center_hold_app, name="hold")
cmd_witness.center_app.add_typer(cmd_center_retention.center_retention_app,
                                 name="retention")
cmd_witness.center_app.add_typer(cmd_center_export.center_export_app, name="export")
app.add_typer(cmd_witness.center_app, name="center")
app.add_typer(cmd_dock.dock_app, name="dock")
cmd_case.case_app.add_typer(cmd_party.party_app, name="party")
app.add_typer(cmd_case.case_app, name="case")
app.add_typer(cmd_case.recording_app, name="recording")
app.add_typer(cmd_export.export_app, name="export")
app.add_typer(cmd_retention.retention_app, name="retention")
app.add_typer(cmd_retention.hold_app, name="hold")
app.add_typer(cmd_scheduler.scheduler_app, name="scheduler")
app.command()(cmd_worker.worker)
app.add_typer(cmd_admin.admin_app, name="admin")
app.add_typer(cmd_equipment.equipment_app, name="equipment")
app.add_typer(cmd_review.review_app, name="review")
app.add_typer(cmd_redaction.redaction_app, name="redaction")
app.add_typer(cmd_report.report_app, name="report")
app.command("verify-report")(cmd_report.verify_report)
app.command()(cmd_audit.fixity)
app.command()(cmd_audit.repair)
app.add_typer(cmd_coverage.coverage_app, name="coverage")
app.command()(cmd_stats.stats)
app.command()(cmd_media.process)
app.command()(cmd_verify.verify)
app.command("verify-c2pa")(cmd_c2pa.verify_c2pa)
app.command()(cmd_media.recover)


cmd_audit.install_refusals(app)


def main() -> None:
    app()
