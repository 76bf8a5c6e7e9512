"""CLI: case records (`evidock case …`) and marks on recordings (`evidock recording …`).

Every command acts as the evidock user running it (`Services.actor()`); the desk and
the dossier decide and audit. Times without a zone are read in the agency's local zone
(station.camera_timezone), as the written case record gives them.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from evidock.cli_base import ConfigOpt, JsonOpt, ReasonOpt, Reply, acting, command
from integrity.errors import InvalidRequest

if TYPE_CHECKING:
    from rich.table import Table

    from records.casebook import CaseView
    from records.dossier import CaseDossier, Found, RecordingSummary

NumberArg = Annotated[str, typer.Argument(help="Case number as written (or case id).")]
RecordingArg = Annotated[str, typer.Argument(help="Recording id.")]

case_app = typer.Typer(no_args_is_help=True,
                       help="Case records: create, link footage, stages, documents, find.")
recording_app = typer.Typer(no_args_is_help=True,
                            help="Marks and retention categories on recordings.")


def _moment(text: str, zone: tzinfo, *, name: str) -> datetime:
    """An ISO date or time; a bare date is its midnight, a naive time is local."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidRequest(f"{name}: cannot read {text!r} as an ISO 8601 date or time",
                             value=text) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=zone)


def _maybe_moment(text: str | None, zone: tzinfo, *, name: str) -> datetime | None:
    return None if text is None else _moment(text, zone, name=name)


def _us(value: int | None) -> str:
    return "" if value is None else f"{value / 1e6:.3f}s"


def _when(value: datetime | None) -> str:
    """Compact UTC for tables (JSON keeps full ISO 8601)."""
    return "" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


# ---------------------------------------------------------------------- writing


@case_app.command("create")
@command
def create(number: Annotated[str, typer.Argument(help="e.g. 邵城管罚〔2019〕第001号.")],
           case_type: Annotated[str, typer.Option("--type", help="Case type (cases.types).")],
           unit: Annotated[str, typer.Option("--unit", help="Unit owning the case.")],
           title: Annotated[str, typer.Option("--title")] = "",
           sensitivity: Annotated[str, typer.Option(
               "--sensitivity", help="none, 个人隐私, 商业秘密 or 国家秘密.")] = "none",
           config: ConfigOpt = None, as_json: JsonOpt = False) -> dict[str, object]:
    """Open a case under its number as the agency writes it."""
    with acting(config) as (svc, actor):
        return svc.cases().create(actor, number=number, case_type=case_type, unit=unit,
                                  title=title, sensitivity=sensitivity).to_json()


@case_app.command("link")
@command
def link(number: NumberArg, recording: RecordingArg,
         stage: Annotated[str, typer.Option("--stage", help="Stage (cases.stages).")],
         reason: ReasonOpt,
         start: Annotated[str | None, typer.Option(
             "--start", help="Seconds, H:MM:SS or zoned ISO time.")] = None,
         end: Annotated[str | None, typer.Option(
             "--end", help="Seconds, H:MM:SS or zoned ISO time.")] = None,
         config: ConfigOpt = None, as_json: JsonOpt = False) -> dict[str, object]:
    """Link a recording (or [start, end) of it) to a case at a stage."""
    from records.package import parse_offset

    with acting(config) as (svc, actor):
        camera_start = svc.catalog.recording(recording).camera_start
        return svc.cases().link(
            actor, number, recording, stage=stage, reason=reason,
            start_us=None if start is None else parse_offset(start, camera_start),
            end_us=None if end is None else parse_offset(end, camera_start)).to_json()


@case_app.command("unlink")
@command
def unlink(link_id: Annotated[int, typer.Argument(help="Link id (from `case show`).")],
           reason: ReasonOpt, config: ConfigOpt = None, as_json: JsonOpt = False,
           ) -> dict[str, object]:
    """Remove a link; the link and its removal stay in the case's history."""
    with acting(config) as (svc, actor):
        return svc.cases().unlink(actor, link_id, reason=reason).to_json()


@case_app.command("attach")
@command
def attach(number: NumberArg,
           file: Annotated[Path, typer.Argument(help="Document (PDF, DOCX, scan…).")],
           description: Annotated[str, typer.Option("--description")] = "",
           config: ConfigOpt = None, as_json: JsonOpt = False) -> dict[str, object]:
    """Store a document of the case by its hash, as footage is stored."""
    with acting(config) as (svc, actor):
        row = svc.cases().attach(actor, number, file, description=description)
        return {"attachment": row.id, "filename": row.filename, "size": row.size,
                "blake3": row.blake3, "sha256": row.sha256, "description": row.description}


@case_app.command("close")
@command
def close(number: NumberArg, reason: ReasonOpt,
          when: Annotated[str | None, typer.Option(
              "--date", help="Closing date as recorded (ISO; default now).")] = None,
          config: ConfigOpt = None, as_json: JsonOpt = False) -> dict[str, object]:
    """Close a case (retention periods run from the closing date)."""
    with acting(config) as (svc, actor):
        return svc.cases().close(
            actor, number, reason=reason,
            closed_at=_maybe_moment(when, svc.settings.station.zone, name="--date")).to_json()


@case_app.command("reopen")
@command
def reopen(number: NumberArg, reason: ReasonOpt, config: ConfigOpt = None,
           as_json: JsonOpt = False) -> dict[str, object]:
    """Reopen a closed case."""
    with acting(config) as (svc, actor):
        return svc.cases().reopen(actor, number, reason=reason).to_json()


@case_app.command("stage")
@command
def stage(number: NumberArg,
          name: Annotated[str, typer.Argument(help="Stage (cases.stages).")],
          start: Annotated[str, typer.Option("--start", help="ISO time (local if no zone).")],
          end: Annotated[str, typer.Option("--end", help="ISO time (local if no zone).")],
          note: Annotated[str, typer.Option("--note")] = "",
          config: ConfigOpt = None, as_json: JsonOpt = False) -> dict[str, object]:
    """Record when a stage took place, from the written case record."""
    with acting(config) as (svc, actor):
        zone = svc.settings.station.zone
        row = svc.cases().stage(actor, number, stage=name,
                                start_at=_moment(start, zone, name="--start"),
                                end_at=_moment(end, zone, name="--end"), note=note)
        return {"stage_id": row.id, "case": number, "stage": row.stage,
                "start_at": row.start_at.astimezone(UTC).isoformat(),
                "end_at": row.end_at.astimezone(UTC).isoformat(), "note": note}


@recording_app.command("mark")
@command
def mark(recording: RecordingArg,
         value: Annotated[str, typer.Argument(help="Mark, e.g. 作为证据使用.")],
         reason: ReasonOpt,
         remove: Annotated[bool, typer.Option("--remove", help="Take the mark off.")] = False,
         config: ConfigOpt = None, as_json: JsonOpt = False) -> dict[str, object]:
    """Put a mark on a recording (or take it off with --remove)."""
    with acting(config) as (svc, actor):
        return svc.cases().mark(actor, recording, mark=value, reason=reason,
                                remove=remove).to_json()


@recording_app.command("categorize")
@command
def categorize(recording: RecordingArg,
               category: Annotated[str, typer.Argument(help="Retention category.")],
               reason: ReasonOpt, config: ConfigOpt = None, as_json: JsonOpt = False,
               ) -> dict[str, object]:
    """Set a recording's retention category (the latest one counts)."""
    with acting(config) as (svc, actor):
        return svc.cases().categorize(actor, recording, category=category,
                                      reason=reason).to_json()


# ---------------------------------------------------------------------- reading


@case_app.command("show")
@command
def show(number: NumberArg, config: ConfigOpt = None, as_json: JsonOpt = False) -> Reply:
    """Everything about a case: links (with removed ones), footage, stages, documents."""
    with acting(config) as (svc, actor):
        dossier = svc.dossier().show(actor, number)
    return Reply(dossier.to_json(), human=lambda: _print_dossier(dossier))


@case_app.command("list")
@command
def list_cases(unit: Annotated[str | None, typer.Option("--unit")] = None,
               status: Annotated[str | None, typer.Option("--status",
                                                          help="open or closed.")] = None,
               case_type: Annotated[str | None, typer.Option("--type")] = None,
               config: ConfigOpt = None, as_json: JsonOpt = False) -> Reply:
    """The cases you may see."""
    with acting(config) as (svc, actor):
        cases = svc.dossier().list(actor, unit=unit, status=status, case_type=case_type)
    return Reply({"cases": [c.to_json() for c in cases]}, human=lambda: _print_cases(cases))


@case_app.command("find")
@command
def find(case: Annotated[str | None, typer.Option("--case", help="Case number.")] = None,
         officer: Annotated[str | None, typer.Option("--officer", help="Police number.")]
         = None,
         device: Annotated[str | None, typer.Option("--device", help="Camera serial.")] = None,
         unit: Annotated[str | None, typer.Option("--unit", help="Unit of a linked case.")]
         = None,
         stage: Annotated[str | None, typer.Option("--stage", help="Stage of a link.")] = None,
         since: Annotated[str | None, typer.Option("--since", help="ISO time (inclusive).")]
         = None,
         until: Annotated[str | None, typer.Option("--until", help="ISO time (exclusive).")]
         = None,
         config: ConfigOpt = None, as_json: JsonOpt = False) -> Reply:
    """Footage matching every given filter (camera start time, else ingest time)."""
    with acting(config) as (svc, actor):
        zone = svc.settings.station.zone
        found = svc.dossier().find(actor, case=case, officer=officer, device=device,
                                   unit=unit, stage=stage,
                                   since=_maybe_moment(since, zone, name="--since"),
                                   until=_maybe_moment(until, zone, name="--until"))
    return Reply({"recordings": [f.to_json() for f in found]},
                 human=lambda: _print_found(found))


# ---------------------------------------------------------------------- printing


def _print_cases(cases: list[CaseView]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(cases)} case(s)")
    table.add_column("number", no_wrap=True)  # copied into other commands: never cut
    for name in ("type", "unit", "status", "sensitivity", "title", "created"):
        table.add_column(name)
    for c in cases:
        table.add_row(c.number, c.case_type, c.unit, c.status, c.sensitivity, c.title,
                      _when(c.created_at))
    Console().print(table)


def _recording_table(title: str, rows: list[RecordingSummary],
                     cases: list[str] | None = None) -> Table:
    from rich.table import Table

    # Ids are what people copy into `case link`: never cut. The file name already
    # carries the camera serial and police number.
    table = Table(title=title)
    table.add_column("id", no_wrap=True)
    table.add_column("file", overflow="fold", min_width=20)
    table.add_column("camera start", no_wrap=True)
    for name in ("kind", "status", "marks"):
        table.add_column(name)
    if cases is not None:
        table.add_column("cases", no_wrap=True)
    for i, r in enumerate(rows):
        table.add_row(r.id, r.name.rsplit("/", 1)[-1], _when(r.camera_start), r.kind,
                      r.status + (f" {','.join(r.flags)}" if r.flags else ""),
                      " ".join(sorted(r.marks)) + (f" [{r.category}]" if r.category else ""),
                      *([cases[i]] if cases is not None else []))
    return table


def _print_dossier(d: CaseDossier) -> None:
    from rich.console import Console
    from rich.table import Table

    console, c = Console(), d.case
    console.print(f"{c.number}  {c.title}\n{c.case_type} · {c.unit} · {c.status}"
                  f"{' ' + _when(c.closed_at) if c.closed_at else ''} · {c.sensitivity}")
    links = Table("link", "recording", "stage", "start", "end", "by", "reason", "state",
                  title="links")
    for x in d.links:
        state = "active" if x.removed is None else \
            f"removed by {x.removed.actor}: {x.removed.reason}"
        links.add_row(str(x.id), x.recording_id, x.stage, _us(x.start_us), _us(x.end_us),
                      x.actor, x.reason, state)
    console.print(links)
    hidden = f" ({d.hidden_recordings} not shown)" if d.hidden_recordings else ""
    console.print(_recording_table(f"recordings{hidden}", list(d.recordings)))
    stages = Table("stage", "start", "end", "note", title="stages")
    for s in d.stages:
        stages.add_row(s.stage, _when(s.start_at), _when(s.end_at), s.note)
    docs = Table("id", "file", "size", "sha256", "description", title="documents")
    for a in d.attachments:
        docs.add_row(str(a.id), a.filename, str(a.size), a.sha256[:16], a.description)
    exports = Table("export", "recording", "range", "purpose", "by", "at", title="exports")
    for e in d.exports:
        exports.add_row(e.id, e.recording_id, f"{_us(e.start_us)}–{_us(e.end_us)}",
                        e.purpose, e.actor, _when(e.at))
    for table in (stages, docs, exports):
        if table.row_count:
            console.print(table)


def _print_found(found: list[Found]) -> None:
    from rich.console import Console

    cases = ["\n".join(f"{x.case_number} {x.stage}" for x in f.links) for f in found]
    Console().print(_recording_table(f"{len(found)} recording(s)",
                                     [f.recording for f in found], cases))


__all__ = ["case_app", "recording_app"]
