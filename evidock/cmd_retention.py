"""CLI: retention (`evidock retention plan|schedule|pending|approve|run`) and legal holds
(`evidock hold add|release|list`).

Every command acts as the evidock user running it (`Services.actor()`) at the clock's
"now"; the executor and the hold desk check permissions and audit.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from evidock.acting import as_user
from evidock.output import emit_json
from evidock.output import show as _show
from evidock.wiring import Services
from integrity.errors import InvalidRequest
from records.permissions import Actor
from retention.actions import PendingView, RunReport
from retention.holds import HoldView

JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")]
ConfigOpt = Annotated[Path | None, typer.Option("--config", help="TOML config file.",
                                                envvar="EVIDOCK_CONFIG")]
ReasonOpt = Annotated[str, typer.Option("--reason", help="Why (kept in the record).")]

retention_app = typer.Typer(no_args_is_help=True,
                            help="Retention: plan, schedule, approve and run deletions.")
hold_app = typer.Typer(no_args_is_help=True,
                       help="Legal holds: nothing a hold covers is deleted.")



# ---------------------------------------------------------------------- retention


@retention_app.command("plan")
def plan(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Dry run: what the rules decide for every recording now (nothing changes)."""
    report = as_user(config, as_json,
                  lambda svc, actor: svc.retention().plan(actor, svc.clock()))
    if as_json:
        emit_json(report.to_dict())
        return
    for d in report.decisions:
        typer.echo(f"{d.action:6} {d.rule:22} {d.recording_id}  {d.reason}")
    typer.echo(", ".join(f"{k} {v}" for k, v in report.summary.items()))


@retention_app.command("schedule")
def schedule(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Schedule each due deletion (the grace period starts); cancel those now kept."""
    report = as_user(config, as_json,
                  lambda svc, actor: svc.retention().schedule(actor, svc.clock()))
    if as_json:
        emit_json(report.to_dict())
        return
    for c in report.changes:
        typer.echo(f"{c.step:9} {c.recording_id}  due {c.due_at.isoformat()}  {c.reason}")
    out = report.to_dict()
    typer.echo(f"{out['scheduled']} scheduled, {out['cancelled']} cancelled, "
               f"{out['open']} pending")


@retention_app.command("pending")
def pending(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Scheduled deletions, their due dates and approvals."""
    def fn(svc: Services, actor: Actor) -> tuple[datetime, list[PendingView]]:
        now = svc.clock()
        return now, svc.retention().pending(now, actor=actor)
    now, views = as_user(config, as_json, fn)
    if as_json:
        emit_json({"now": now.isoformat(), "pending": [v.to_json(now) for v in views]})
        return
    for v in views:
        approvals = "approved by " + ", ".join(v.approvals) if v.approved else "not approved"
        typer.echo(f"{'due' if v.due(now) else 'grace':5} {v.due_at.isoformat()}  "
                   f"{v.recording_id}  scheduled by {v.scheduled_by}; {approvals}; {v.reason}")
    typer.echo(f"{len(views)} pending")


@retention_app.command("approve")
def approve(recording: Annotated[str, typer.Argument(help="Recording id.")],
            config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Approve a scheduled deletion (a different user from the one who scheduled it)."""
    view = as_user(config, as_json,
                lambda svc, actor: svc.retention().approve(actor, recording))
    _show(view.to_json(), as_json)


@retention_app.command("run")
def run(dry_run: Annotated[bool, typer.Option("--dry-run",
                                              help="Report what would be deleted.")] = False,
        config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Delete the due, approved recordings' content, leaving a tombstone for each."""
    report = as_user(config, as_json,
                  lambda svc, actor: svc.retention().run(actor, svc.clock(), dry_run=dry_run))
    if as_json:
        emit_json(report.to_dict())
    else:
        _print_run(report)
    raise typer.Exit(report.exit_code)


def _print_run(report: RunReport) -> None:
    for o in report.outcomes:
        extra = f" ({len(o.removed)} blobs, {len(o.kept)} kept)" if o.removed or o.kept else ""
        typer.echo(f"{o.status:12} {o.code:30} {o.recording_id}{extra}  {o.reason}")
    counts = report.to_dict()["counts"]
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "nothing pending"
    typer.echo(f"dry run: {summary}" if report.dry_run else summary)
    if report.swept:
        typer.echo(f"removed {len(report.swept)} blob(s) left by an interrupted run")


# ---------------------------------------------------------------------- holds


def _print_hold(view: HoldView) -> None:
    state = "active" if view.active else f"released by {view.released_by}"
    typer.echo(f"{view.id}  {view.scope}:{view.label}  by {view.placed_by} "
               f"{view.placed_at.isoformat()}  {state}  {view.reason}")


@hold_app.command("add")
def hold_add(reason: ReasonOpt,
             case: Annotated[str | None, typer.Option("--case", help="Case number.")] = None,
             recording: Annotated[str | None, typer.Option("--recording",
                                                           help="Recording id.")] = None,
             officer: Annotated[str | None, typer.Option("--officer",
                                                         help="Police number.")] = None,
             config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Place a legal hold on a case, a recording or an officer's footage."""
    def fn(svc: Services, actor: Actor) -> HoldView:
        given = [(s, t) for s, t in (("case", case), ("recording", recording),
                                     ("officer", officer)) if t is not None]
        if len(given) != 1:
            raise InvalidRequest("name exactly one of --case, --recording, --officer")
        scope, target = given[0]
        return svc.holds().add(actor, scope=scope, target=target, reason=reason)
    _show(as_user(config, as_json, fn).to_json(), as_json)


@hold_app.command("release")
def hold_release(hold: Annotated[str, typer.Argument(help="Hold id.")], reason: ReasonOpt,
                 config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Release a hold (a different user from the one who placed it)."""
    view = as_user(config, as_json,
                lambda svc, actor: svc.holds().release(actor, hold, reason=reason))
    _show(view.to_json(), as_json)


@hold_app.command("list")
def hold_list(all_holds: Annotated[bool, typer.Option("--all",
                                                      help="Released holds too.")] = False,
              config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Holds in force (or all of them)."""
    views = as_user(config, as_json,
                 lambda svc, actor: svc.holds().list(actor, active_only=not all_holds))
    if as_json:
        emit_json({"holds": [v.to_json() for v in views]})
        return
    for v in views:
        _print_hold(v)
    typer.echo(f"{len(views)} hold(s)")


__all__ = ["hold_app", "retention_app"]
