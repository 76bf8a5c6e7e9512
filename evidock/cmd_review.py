"""CLI: review decisions (法制审核) on a case, a client of the station service.

A legal reviewer records 同意 / 暂不同意 / 不同意 with a reason; nobody who worked on
the case as its clerk (created it, linked its footage, recorded its stages or attached
its documents) may. Decisions are never changed: a later one is a new row, the last is
in force. `case show` lists them too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from evidock.cli_base import ConfigOpt, JsonOpt, ReasonOpt, Reply, command
from evidock.output import show_time, zoned

Json = dict[str, Any]
review_app = typer.Typer(no_args_is_help=True, add_completion=False,
                         help="Review decisions (法制审核) on cases.")
CaseArg = Annotated[str, typer.Argument(help="Case number (as written) or id.")]


def _call(config: Path | None, method: str, **kwargs: Any) -> Json:
    from evidock.client import station  # httpx: not needed to build `--help`

    with station(config) as st:
        answer: Json = st.request(method, "/reviews", **kwargs)
        return zoned(answer, st.zone_name)


@review_app.command()
@command
def decide(case: CaseArg,
           decision: Annotated[str, typer.Option(
               "--decision", help="同意 | 暂不同意 | 不同意")],
           reason: ReasonOpt, config: ConfigOpt = None, as_json: JsonOpt = False) -> Reply:
    """Record a review decision on a case (legal reviewers; never the case's clerk)."""
    answer = _call(config, "POST", json={"case": case, "decision": decision,
                                          "reason": reason})
    r = answer["review"]
    return Reply(answer, human=lambda: typer.echo(
        f"{case}: {r['decision']} by {r['by']} at {show_time(r['at'])} (audit event "
        f"{r['audit_seq']}): {r['reason']}"))


@review_app.command("list")
@command
def list_(case: CaseArg, config: ConfigOpt = None, as_json: JsonOpt = False) -> Reply:
    """Every decision on a case, oldest first; the last is in force."""
    answer = _call(config, "GET", params={"case": case})
    return Reply(answer, human=lambda: _print(answer))


def _print(answer: Json) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("#", "at", "reviewer", "decision", "reason",
                  title=f"review decisions: {answer['case']}")
    for r in answer["reviews"]:
        table.add_row(str(r["id"]), show_time(r["at"]), r["by"], r["decision"], r["reason"])
    console = Console()
    console.print(table)
    current = answer["current"]
    console.print(f"in force: {current['decision']} ({current['by']})" if current
                  else "no decision yet")


__all__ = ["review_app"]
