"""CLI: case records (`evidock case …`) and marks on recordings (`evidock recording …`).

Thin clients of the station service: the service identifies the user behind the socket,
the desk and the dossier decide and audit, and what is printed is rendered from the
service's JSON answer, its times in the station's zone with the offset (evidock/output.py).
Times without a zone are read by the service in the agency's local zone
(station.camera_timezone), as the written case record gives them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote

import typer

from evidock.cli_base import ConfigOpt, JsonOpt, ReasonOpt, Reply, command
from evidock.output import show_time, zoned
from integrity.errors import InvalidRequest

if TYPE_CHECKING:
    from rich.table import Table

NumberArg = Annotated[str, typer.Argument(help="Case number as written (or case id).")]
RecordingArg = Annotated[str, typer.Argument(help="Recording id.")]
Json = dict[str, Any]

case_app = typer.Typer(no_args_is_help=True,
                       help="Case records: create, link footage, stages, documents, find.")
recording_app = typer.Typer(no_args_is_help=True,
                            help="Recordings: show one; marks and retention categories.")


def _post(config: Path | None, path: str, body: Json) -> Json:
    from evidock.client import station  # httpx: not needed to build `--help`

    with station(config) as st:
        answer: Json = st.post(path, body)
        return zoned(answer, st.zone_name)


def _get(config: Path | None, path: str, **params: Any) -> Json:
    """The service's answer, its times in the station's zone (human and ``--json``)."""
    from evidock.client import station

    with station(config) as st:
        answer: Json = st.get(path, **params)
        return zoned(answer, st.zone_name)


def _us(value: int | None) -> str:
    return "" if value is None else f"{value / 1e6:.3f}s"


def _when(value: str | None) -> str:
    """As people read it: the station's zone with its offset (the answer is zoned)."""
    return show_time(value)


# ---------------------------------------------------------------------- writing


@case_app.command("create")
@command
def create(number: Annotated[str, typer.Argument(help="e.g. 邵城管罚〔2019〕第001号.")],
           case_type: Annotated[str, typer.Option("--type", help="Case type (cases.types).")],
           unit: Annotated[str, typer.Option("--unit", help="Unit owning the case.")],
           title: Annotated[str, typer.Option("--title")] = "",
           sensitivity: Annotated[str, typer.Option(
               "--sensitivity", help="none, 个人隐私, 商业秘密 or 国家秘密.")] = "none",
           config: ConfigOpt = None, as_json: JsonOpt = False) -> Json:
    """Open a case under its number as the agency writes it."""
    return _post(config, "/cases", {"number": number, "type": case_type, "unit": unit,
                                    "title": title, "sensitivity": sensitivity})


@case_app.command("link")
@command
def link(number: NumberArg, recording: RecordingArg,
         stage: Annotated[str, typer.Option("--stage", help="Stage (cases.stages).")],
         reason: ReasonOpt,
         start: Annotated[str | None, typer.Option(
             "--start", help="Seconds, H:MM:SS or zoned ISO time.")] = None,
         end: Annotated[str | None, typer.Option(
             "--end", help="Seconds, H:MM:SS or zoned ISO time.")] = None,
         config: ConfigOpt = None, as_json: JsonOpt = False) -> Json:
    """Link a recording (or [start, end) of it) to a case at a stage."""
    return _post(config, "/cases/links", {"case": number, "recording": recording,
                                          "stage": stage, "reason": reason, "start": start,
                                          "end": end})


@case_app.command("unlink")
@command
def unlink(link_id: Annotated[int, typer.Argument(help="Link id (from `case show`).")],
           reason: ReasonOpt, config: ConfigOpt = None, as_json: JsonOpt = False) -> Json:
    """Remove a link; the link and its removal stay in the case's history."""
    return _post(config, f"/cases/links/{link_id}/unlink", {"reason": reason})


@case_app.command("attach")
@command
def attach(number: NumberArg,
           file: Annotated[Path, typer.Argument(help="Document (PDF, DOCX, scan…).")],
           description: Annotated[str, typer.Option("--description")] = "",
           config: ConfigOpt = None, as_json: JsonOpt = False) -> Json:
    """Store a document of the case by its hash, as footage is stored (this command
    reads the file and sends its bytes; the station stores them)."""
    from evidock.client import station
    from evidock.transfer import open_outgoing

    doc = open_outgoing(file)
    with station(config) as st:
        answer: Json = st.request(
            "POST", "/cases/documents", content=doc.pieces(),
            params={"case": number, "filename": doc.name, "description": description},
            headers={"Content-Length": str(doc.size),
                     "Content-Type": "application/octet-stream"})
        return zoned(answer, st.zone_name)


@case_app.command("close")
@command
def close(number: NumberArg, reason: ReasonOpt,
          when: Annotated[str | None, typer.Option(
              "--date", help="Closing date as recorded (ISO; default now). Never before "
              "the case was created or reopened, its footage began or a stage ended, nor "
              "after now.")] = None,
          config: ConfigOpt = None, as_json: JsonOpt = False) -> Json:
    """Close a case (retention periods run from the closing date)."""
    return _post(config, "/cases/close", {"case": number, "reason": reason, "date": when})


@case_app.command("reopen")
@command
def reopen(number: NumberArg, reason: ReasonOpt, config: ConfigOpt = None,
           as_json: JsonOpt = False) -> Json:
    """Reopen a closed case."""
    return _post(config, "/cases/reopen", {"case": number, "reason": reason})


@case_app.command("stage")
@command
def stage(number: NumberArg,
          name: Annotated[str, typer.Argument(help="Stage (cases.stages).")],
          start: Annotated[str, typer.Option("--start", help="ISO time (local if no zone).")],
          end: Annotated[str, typer.Option("--end", help="ISO time (local if no zone).")],
          note: Annotated[str, typer.Option("--note")] = "",
          config: ConfigOpt = None, as_json: JsonOpt = False) -> Json:
    """Record when a stage took place, from the written case record."""
    return _post(config, "/cases/stages", {"case": number, "stage": name, "start": start,
                                           "end": end, "note": note})


@recording_app.command("mark")
@command
def mark(recording: RecordingArg,
         value: Annotated[str, typer.Argument(help="Mark, e.g. 作为证据使用.")],
         reason: ReasonOpt,
         remove: Annotated[bool, typer.Option("--remove", help=(
             "Take the mark off. A permanent mark (retention.permanent_marks) takes two "
             "people: the first call requests it, a different person with recording.unmark "
             "(legal reviewer) confirms with the same command."))] = False,
         config: ConfigOpt = None, as_json: JsonOpt = False) -> Json:
    """Put a mark on a recording (or take it off with --remove)."""
    return _post(config, f"/recordings/{quote(recording, safe='')}/marks",
                 {"mark": value, "reason": reason, "remove": remove})


@recording_app.command("categorize")
@command
def categorize(recording: RecordingArg,
               category: Annotated[str, typer.Argument(help="Retention category.")],
               reason: ReasonOpt, config: ConfigOpt = None, as_json: JsonOpt = False,
               ) -> Json:
    """Set a recording's retention category (the latest one counts)."""
    return _post(config, f"/recordings/{quote(recording, safe='')}/category",
                 {"category": category, "reason": reason})


# ---------------------------------------------------------------------- reading


@case_app.command("show")
@command
def show(number: NumberArg, config: ConfigOpt = None, as_json: JsonOpt = False) -> Reply:
    """Everything about a case: links (with removed ones), footage, stages, documents."""
    dossier = _get(config, "/cases/show", case=number)
    return Reply(dossier, human=lambda: _print_dossier(dossier))


@case_app.command("list")
@command
def list_cases(unit: Annotated[str | None, typer.Option("--unit")] = None,
               status: Annotated[str | None, typer.Option("--status",
                                                          help="open or closed.")] = None,
               case_type: Annotated[str | None, typer.Option("--type")] = None,
               config: ConfigOpt = None, as_json: JsonOpt = False) -> Reply:
    """The cases you may see."""
    answer = _get(config, "/cases", unit=unit, status=status, type=case_type)
    return Reply(answer, human=lambda: _print_cases(answer["cases"]))


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
         party_id: Annotated[str | None, typer.Option(
             "--party-id", help="Cases with a party of this ID number ('-': stdin).")] = None,
         party_name: Annotated[str | None, typer.Option(
             "--party-name", help="Cases with a party whose name contains this.")] = None,
         config: ConfigOpt = None, as_json: JsonOpt = False) -> Reply:
    """Footage matching every given filter (camera start time, else ingest time); with
    --party-id or --party-name, the cases you may see with such a party instead."""
    if party_id is not None or party_name is not None:
        from evidock.cmd_party import find_by_party

        if any(x is not None for x in (case, officer, device, unit, stage, since, until)):
            raise InvalidRequest("--party-id/--party-name find cases: give no footage "
                                 "filter with them")
        return find_by_party(config, id_number=party_id, name=party_name)
    answer = _get(config, "/recordings", case=case, officer=officer, device=device,
                  unit=unit, stage=stage, since=since, until=until)
    return Reply(answer, human=lambda: _print_found(answer["recordings"]))


@case_app.command("document")
@command
def document(number: NumberArg,
             digest: Annotated[str, typer.Argument(help="BLAKE3 or SHA-256 (`case show`).")],
             out: Annotated[Path, typer.Option(
                 "--out", help="New file, or a directory to write it in by its name.")],
             config: ConfigOpt = None, as_json: JsonOpt = False) -> Json:
    """Fetch a case document, checked against its digests, into a new file."""
    from evidock.client import station
    from evidock.transfer import receive, refuse_existing

    if not out.is_dir():
        refuse_existing(out)  # before asking: a fetch is an audited read
    with station(config) as st, st.stream("GET", "/cases/documents",
                                          params={"case": number, "digest": digest}) as got:
        saved = receive(got, out, fallback_name=digest)
    return {"case": number, "filename": saved.name, "path": str(saved.path),
            "size": saved.size, "blake3": saved.blake3, "sha256": saved.sha256}


@recording_app.command("show")
@command
def show_recording(recording: RecordingArg, config: ConfigOpt = None,
                   as_json: JsonOpt = False) -> Reply:
    """One recording: facts, marks, links (with removed ones), renditions, segments."""
    answer = _get(config, f"/recordings/{quote(recording, safe='')}")
    return Reply(answer, human=lambda: _print_recording(answer))


# ---------------------------------------------------------------------- printing


def _print_cases(cases: list[Json]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(cases)} case(s)")
    table.add_column("number", no_wrap=True)  # copied into other commands: never cut
    for name in ("type", "unit", "status", "sensitivity", "title", "created"):
        table.add_column(name)
    for c in cases:
        table.add_row(c["number"], c["type"], c["unit"], c["status"], c["sensitivity"],
                      c["title"], _when(c["created_at"]))
    Console().print(table)


def _recording_table(title: str, rows: list[Json], cases: list[str] | None = None) -> Table:
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
        table.add_row(r["id"], r["name"].rsplit("/", 1)[-1], _when(r["camera_start"]),
                      r["kind"], r["status"] + (f" {','.join(r['flags'])}" if r["flags"] else ""),
                      " ".join(r["marks"]) + (f" [{r['category']}]" if r["category"] else ""),
                      *([cases[i]] if cases is not None else []))
    return table


def _print_dossier(d: Json) -> None:
    from rich.console import Console
    from rich.table import Table

    console, c = Console(), d["case"]
    closed = f" {_when(c['closed_at'])}" if c["closed_at"] else ""
    console.print(f"{c['number']}  {c['title']}\n{c['type']} · {c['unit']} · {c['status']}"
                  f"{closed} · {c['sensitivity']}")
    links = Table("link", "recording", "stage", "start", "end", "by", "reason", "state",
                  title="links")
    for x in d["links"]:
        gone = x["removed"]
        state = "active" if gone is None else f"removed by {gone['by']}: {gone['reason']}"
        state += " (recording hidden from you)" if x.get("hidden") else ""
        links.add_row(str(x["id"]), x["recording_id"], x["stage"], _us(x["start_us"]),
                      _us(x["end_us"]), x["linked_by"], x["reason"], state)
    console.print(links)
    hidden = f" ({d['hidden_recordings']} not shown)" if d["hidden_recordings"] else ""
    console.print(_recording_table(f"recordings{hidden}", d["recordings"]))
    stages = Table("stage", "start", "end", "note", title="stages")
    for s in d["stages"]:
        stages.add_row(s["stage"], _when(s["start_at"]), _when(s["end_at"]), s["note"])
    docs = Table("id", "file", "size", "sha256", "description", title="documents")
    for a in d["attachments"]:
        docs.add_row(str(a["id"]), a["filename"], str(a["size"]), a["sha256"][:16],
                     a["description"])
    exports = Table("export", "recording", "range", "purpose", "by", "at", title="exports")
    for e in d["exports"]:
        exports.add_row(e["id"], e["recording_id"],
                        f"{_us(e['start_us'])}–{_us(e['end_us'])}", e["purpose"], e["by"],
                        _when(e["at"]))
    # 法制审核 decisions (records/reviews.py): the last is in force
    reviews = Table("at", "reviewer", "decision", "reason", title="review decisions")
    for r in d.get("reviews", ()):
        reviews.add_row(_when(r["at"]), r["by"], r["decision"], r["reason"])
    # 当事人: only for party.view (key absent otherwise); full numbers: `case party list`
    parties = Table("name", "ID type", "ID number", "role", title="parties")
    for p in d.get("parties", ()):
        parties.add_row(p["name"], p["id_type"], p["id_number_masked"], p["role"])
    for table in (parties, stages, docs, exports, reviews):
        if table.row_count:
            console.print(table)


def _print_found(found: list[Json]) -> None:
    from rich.console import Console

    cases = ["\n".join(f"{x['case']} {x['stage']}" for x in f["links"]) for f in found]
    Console().print(_recording_table(f"{len(found)} recording(s)",
                                     [f["recording"] for f in found], cases))


def _print_recording(d: Json) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(_recording_table(f"recording ({d['sensitivity']})", [d["recording"]]))
    links = Table("link", "case", "stage", "start", "end", "state", title="links")
    for x in d["links"]:
        links.add_row(str(x["id"]), x["case"], x["stage"], _us(x["start_us"]),
                      _us(x["end_us"]), "active" if x["active"] else "removed")
    segments = Table("rendition", "status", "segment", "start", "end", "size", "blake3",
                     title="renditions")
    for r in d["renditions"]:
        segments.add_row(r["id"], r["status"], "", "", "", "", r["code"])
        for s in r["segments"]:
            segments.add_row("", "", str(s["index"]), _us(s["start_us"]), _us(s["end_us"]),
                             str(s["size"]), s["blake3"][:16])
    for table in (links, segments):
        if table.row_count:
            console.print(table)


__all__ = ["case_app", "recording_app"]
