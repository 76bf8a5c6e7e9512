"""The `evidock` command line: the command tree. Each command lives in an ``evidock/cmd_*``
module and runs under :func:`evidock.cli_base.command` (one error handler, one printer).

Building the tree stays light: no catalog, SQLAlchemy, boto3 or ffmpeg is imported until
a command runs, so ``evidock --help`` starts fast. A command named on the command line
is run from a tree holding only it: typer turning all ~110 commands into click's took
~65 ms of every command's start (issue 14).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
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

HELP = "evidock: verified ingest and integrity for body-worn camera footage."


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


@command
def whoami(config: ConfigOpt = None, as_json: JsonOpt = False) -> dict[str, object]:
    """The evidock user this OS account maps to, with roles and permissions."""
    from evidock.client import station

    with station(config) as st:
        answer: dict[str, object] = st.get("/whoami")
    return answer


def _cmd(fn: Callable[..., object], name: str | None = None) -> Callable[[typer.Typer], None]:
    def add(tree: typer.Typer) -> None:
        tree.command(name)(fn)
    return add


def _group(sub: typer.Typer, name: str) -> Callable[[typer.Typer], None]:
    def add(tree: typer.Typer) -> None:
        tree.add_typer(sub, name=name)
    return add


cmd_witness.center_app.add_typer(cmd_center_retention.center_hold_app, name="hold")
cmd_witness.center_app.add_typer(cmd_center_retention.center_retention_app,
                                 name="retention")
cmd_witness.center_app.add_typer(cmd_center_export.center_export_app, name="export")
cmd_case.case_app.add_typer(cmd_party.party_app, name="party")

#: Every top-level command and group, in the order `evidock --help` lists them.
PARTS: dict[str, Callable[[typer.Typer], None]] = {
    "init": _cmd(init),
    "whoami": _cmd(whoami),
    "ingest": _cmd(cmd_ingest.ingest),
    "serve": _cmd(cmd_serve.serve),
    "keys": _group(cmd_media.keys_app, "keys"),
    "audit": _group(cmd_audit.audit_app, "audit"),
    "upload": _group(cmd_upload.upload_app, "upload"),
    "witness": _group(cmd_witness.witness_app, "witness"),
    "center": _group(cmd_witness.center_app, "center"),
    "dock": _group(cmd_dock.dock_app, "dock"),
    "case": _group(cmd_case.case_app, "case"),
    "recording": _group(cmd_case.recording_app, "recording"),
    "export": _group(cmd_export.export_app, "export"),
    "retention": _group(cmd_retention.retention_app, "retention"),
    "hold": _group(cmd_retention.hold_app, "hold"),
    "scheduler": _group(cmd_scheduler.scheduler_app, "scheduler"),
    "worker": _cmd(cmd_worker.worker),
    "admin": _group(cmd_admin.admin_app, "admin"),
    "equipment": _group(cmd_equipment.equipment_app, "equipment"),
    "review": _group(cmd_review.review_app, "review"),
    "redaction": _group(cmd_redaction.redaction_app, "redaction"),
    "report": _group(cmd_report.report_app, "report"),
    "verify-report": _cmd(cmd_report.verify_report, "verify-report"),
    "fixity": _cmd(cmd_audit.fixity),
    "repair": _cmd(cmd_audit.repair),
    "coverage": _group(cmd_coverage.coverage_app, "coverage"),
    "stats": _cmd(cmd_stats.stats),
    "process": _cmd(cmd_media.process),
    "verify": _cmd(cmd_verify.verify),
    "verify-c2pa": _cmd(cmd_c2pa.verify_c2pa, "verify-c2pa"),
    "recover": _cmd(cmd_media.recover),
}


def build(only: str | None = None) -> typer.Typer:
    """The command tree; with ``only``, that top-level command alone (with the refusals,
    which also keep typer from treating a lone command as the whole program)."""
    tree = typer.Typer(no_args_is_help=True, add_completion=False, help=HELP)
    for name, add in PARTS.items():
        if only is None or name == only:
            add(tree)
    cmd_audit.install_refusals(tree)
    return tree


app = build()


def main() -> None:
    first = sys.argv[1] if len(sys.argv) > 1 else None
    (build(first) if first in PARTS else app)()
