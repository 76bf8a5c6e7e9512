"""CLI: retention (`evidock retention plan|schedule|pending|approve|run`) and legal holds
(`evidock hold add|release|list`).

Every command acts as the evidock user running it (`Services.actor()`) at the clock's
"now"; the executor and the hold desk check permissions and audit.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import typer

from evidock.cli_base import ConfigOpt, JsonOpt, ReasonOpt, Reply, acting, command
from integrity.errors import InvalidRequest

if TYPE_CHECKING:
    from retention.actions import PendingView, PlanReport, RunReport, ScheduleReport
    from retention.holds import HoldView

retention_app = typer.Typer(no_args_is_help=True,
                            help="Retention: plan, schedule, approve and run deletions.")
hold_app = typer.Typer(no_args_is_help=True,
                       help="Legal holds: nothing a hold covers is deleted.")


# ---------------------------------------------------------------------- retention


@retention_app.command("plan")
@command
def plan(config: ConfigOpt = None, as_json: JsonOpt = False) -> Reply:
    """Dry run: what the rules decide for every recording now (nothing changes)."""
    with acting(config) as (svc, actor):
        report = svc.retention().plan(actor, svc.clock())
    return Reply(report.to_dict(), human=lambda: _print_plan(report))


def _print_plan(report: PlanReport) -> None:
    for d in report.decisions:
        typer.echo(f"{d.action:6} {d.rule:22} {d.recording_id}  {d.reason}")
    typer.echo(", ".join(f"{k} {v}" for k, v in report.summary.items()))


@retention_app.command("schedule")
@command
def schedule(config: ConfigOpt = None, as_json: JsonOpt = False) -> Reply:
    """Schedule each due deletion (the grace period starts); cancel those now kept."""
    with acting(config) as (svc, actor):
        report = svc.retention().schedule(actor, svc.clock())
    return Reply(report.to_dict(), human=lambda: _print_schedule(report))


def _print_schedule(report: ScheduleReport) -> None:
    for c in report.changes:
        typer.echo(f"{c.step:9} {c.recording_id}  due {c.due_at.isoformat()}  {c.reason}")
    out = report.to_dict()
    typer.echo(f"{out['scheduled']} scheduled, {out['cancelled']} cancelled, "
               f"{out['open']} pending")


@retention_app.command("pending")
@command
def pending(config: ConfigOpt = None, as_json: JsonOpt = False) -> Reply:
    """Scheduled deletions, their due dates and approvals."""
    with acting(config) as (svc, actor):
        now = svc.clock()
        views = svc.retention().pending(now, actor=actor)
    return Reply({"now": now.isoformat(), "pending": [v.to_json(now) for v in views]},
                 human=lambda: _print_pending(now, views))


def _print_pending(now: datetime, views: list[PendingView]) -> None:
    for v in views:
        approvals = "approved by " + ", ".join(v.approvals) if v.approved else "not approved"
        typer.echo(f"{'due' if v.due(now) else 'grace':5} {v.due_at.isoformat()}  "
                   f"{v.recording_id}  scheduled by {v.scheduled_by}; {approvals}; {v.reason}")
    typer.echo(f"{len(views)} pending")


@retention_app.command("approve")
@command
def approve(recording: Annotated[str, typer.Argument(help="Recording id.")],
            config: ConfigOpt = None, as_json: JsonOpt = False) -> dict[str, object]:
    """Approve a scheduled deletion (a different user from the one who scheduled it)."""
    with acting(config) as (svc, actor):
        return svc.retention().approve(actor, recording).to_json()


@retention_app.command("run")
@command
def run(dry_run: Annotated[bool, typer.Option("--dry-run",
                                              help="Report what would be deleted.")] = False,
        config: ConfigOpt = None, as_json: JsonOpt = False) -> Reply:
    """Delete the due, approved recordings' content, leaving a tombstone for each."""
    with acting(config) as (svc, actor):
        report = svc.retention().run(actor, svc.clock(), dry_run=dry_run)
    return Reply(report.to_dict(), human=lambda: _print_run(report),
                 exit_code=report.exit_code)


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
@command
def hold_add(reason: ReasonOpt,
             case: Annotated[str | None, typer.Option("--case", help="Case number.")] = None,
             recording: Annotated[str | None, typer.Option("--recording",
                                                           help="Recording id.")] = None,
             officer: Annotated[str | None, typer.Option("--officer",
                                                         help="Police number.")] = None,
             config: ConfigOpt = None, as_json: JsonOpt = False) -> dict[str, object]:
    """Place a legal hold on a case, a recording or an officer's footage."""
    with acting(config) as (svc, actor):
        given = [(s, t) for s, t in (("case", case), ("recording", recording),
                                     ("officer", officer)) if t is not None]
        if len(given) != 1:
            raise InvalidRequest("name exactly one of --case, --recording, --officer")
        scope, target = given[0]
        return svc.holds().add(actor, scope=scope, target=target, reason=reason).to_json()


@hold_app.command("release")
@command
def hold_release(hold: Annotated[str, typer.Argument(help="Hold id.")], reason: ReasonOpt,
                 config: ConfigOpt = None, as_json: JsonOpt = False) -> dict[str, object]:
    """Release a hold (a different user from the one who placed it)."""
    with acting(config) as (svc, actor):
        return svc.holds().release(actor, hold, reason=reason).to_json()


@hold_app.command("list")
@command
def hold_list(all_holds: Annotated[bool, typer.Option("--all",
                                                      help="Released holds too.")] = False,
              config: ConfigOpt = None, as_json: JsonOpt = False) -> Reply:
    """Holds in force (or all of them)."""
    with acting(config) as (svc, actor):
        views = svc.holds().list(actor, active_only=not all_holds)
    return Reply({"holds": [v.to_json() for v in views]}, human=lambda: _print_holds(views))


def _print_holds(views: list[HoldView]) -> None:
    for v in views:
        _print_hold(v)
    typer.echo(f"{len(views)} hold(s)")


__all__ = ["hold_app", "retention_app"]
