"""CLI: redacted derivatives for publication (技术处理后公开), a client of the station.

A clerk or inspector requests a redaction of a recording range, with boxes drawn by hand
(plates, screens, papers) and audio to mute or cover with a tone; faces are found
automatically. The requester or a reviewer edits the plan, renders it, and a second
person — a legal reviewer or supervisor who has watched the rendered file — approves or
rejects it. The original and its renditions are never touched; the derivative is
labelled "redacted derivative" everywhere. Times are recording offsets: seconds
(``95.5``) or clock (``1:35``, ``0:01:35``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import typer

from evidock.cli_base import ConfigOpt, JsonOpt, ReasonOpt, Reply, command
from evidock.output import show_time, zoned
from integrity.errors import InvalidRequest

Json = dict[str, Any]
redaction_app = typer.Typer(no_args_is_help=True, add_completion=False,
                            help="Redacted derivatives for publication (技术处理后公开).")
IdArg = Annotated[str, typer.Argument(help="Redaction id (`redaction list`).")]
BoxOpt = Annotated[list[str] | None, typer.Option(
    "--box", help="A region over a time range: x,y,w,h@FROM-TO (source pixels; "
                  "e.g. 1200,800,300,90@0:12-0:15). Repeatable.")]
MuteOpt = Annotated[list[str] | None, typer.Option(
    "--mute", help="Silence the audio over FROM-TO (e.g. 0:20-0:22). Repeatable.")]
ToneOpt = Annotated[list[str] | None, typer.Option(
    "--tone", help="Replace the audio by a tone over FROM-TO. Repeatable.")]
StyleOpt = Annotated[str | None, typer.Option("--style", help="blur | solid")]


def _us(text: str) -> int:
    from records.package import parse_offset  # the export ranges' reading of times

    return parse_offset(text, None)


def _span(text: str, what: str) -> tuple[int, int]:
    first, dash, last = text.partition("-")
    if not dash or not first.strip() or not last.strip():
        raise InvalidRequest(f"{what} {text!r}: give FROM-TO, e.g. 0:12-0:15", value=text)
    return _us(first), _us(last)


def parse_box(text: str) -> Json:
    """``x,y,w,h@FROM-TO`` as the service takes it."""
    region, at, span = text.partition("@")
    parts = region.split(",")
    if not at or len(parts) != 4 or not all(p.strip().isdigit() for p in parts):
        raise InvalidRequest(f"--box {text!r}: give x,y,w,h@FROM-TO, e.g. "
                             "1200,800,300,90@0:12-0:15", value=text)
    return {"box": [int(p) for p in parts], "range_us": list(_span(span, "--box"))}


def _audio(mute: list[str] | None, tone: list[str] | None) -> list[Json]:
    return [{"kind": kind, "range_us": list(_span(t, f"--{kind}"))}
            for kind, texts in (("mute", mute), ("tone", tone)) for t in texts or ()]


def _call(config: Path | None, method: str, path: str, **kwargs: Any) -> Json:
    from evidock.client import station  # httpx: not needed to build `--help`

    with station(config) as st:
        answer: Json = st.request(method, path, **kwargs)
        return zoned(answer, st.zone_name)


def _path(redaction_id: str, tail: str = "") -> str:
    return f"/redactions/{quote(redaction_id, safe='')}" + (f"/{tail}" if tail else "")


def _shown(answer: Json) -> Reply:
    return Reply(answer, human=lambda: print_redaction(answer["redaction"]))


@redaction_app.command()
@command
def request(recording: Annotated[str, typer.Argument(help="Recording id.")],
            start: Annotated[str, typer.Option("--from", help="Start (0:10 or seconds).")],
            end: Annotated[str, typer.Option("--to", help="End (0:40 or seconds).")],
            reason: ReasonOpt, style: StyleOpt = None,
            no_faces: Annotated[bool, typer.Option(
                "--no-faces", help="Do not detect faces automatically.")] = False,
            box: BoxOpt = None, mute: MuteOpt = None, tone: ToneOpt = None,
            config: ConfigOpt = None, as_json: JsonOpt = False) -> Reply:
    """Request a redaction of a recording range (clerks, inspectors)."""
    body = {"recording": recording, "start_us": _us(start), "end_us": _us(end),
            "reason": reason, "style": style or "blur", "faces": not no_faces,
            "boxes": [parse_box(b) for b in box or ()], "audio": _audio(mute, tone)}
    return _shown(_call(config, "POST", "/redactions", json=body))


@redaction_app.command()
@command
def edit(redaction_id: IdArg, box: BoxOpt = None,
         remove: Annotated[list[str] | None, typer.Option(
             "--remove", help="A track or box id to drop (face-2, box-1). Repeatable.")
         ] = None,
         mute: MuteOpt = None, tone: ToneOpt = None, style: StyleOpt = None,
         config: ConfigOpt = None, as_json: JsonOpt = False) -> Reply:
    """A new plan: add boxes or audio ranges, remove tracks or boxes (never once
    approved)."""
    body = {"boxes": [parse_box(b) for b in box or ()], "remove": list(remove or ()),
            "audio": _audio(mute, tone), "style": style}
    return _shown(_call(config, "POST", _path(redaction_id, "edit"), json=body))


@redaction_app.command()
@command
def render(redaction_id: IdArg, config: ConfigOpt = None, as_json: JsonOpt = False) -> Reply:
    """Render the plan in force (ffmpeg) with its signed statement."""
    answer = _call(config, "POST", _path(redaction_id, "render"))
    if "queued" not in answer:
        return _shown(answer)
    job = answer["queued"]["job_id"]  # [jobs] queue: an `evidock worker` renders it
    return Reply(answer, human=lambda: typer.echo(
        f"{redaction_id}: render queued ({'job ' + str(job) if job else 'already queued'});"
        " `evidock redaction show` once a worker has rendered it"))


@redaction_app.command()
@command
def view(redaction_id: IdArg,
         out: Annotated[Path, typer.Option("--out", help="A new file to write it to.")],
         config: ConfigOpt = None, as_json: JsonOpt = False) -> Json:
    """Fetch the rendered file to watch it (recorded: a reviewer must have watched it
    to approve), checked against its digests."""
    from evidock.client import station
    from evidock.transfer import receive, refuse_existing

    if not out.is_dir():
        refuse_existing(out)  # before asking: a viewing is recorded
    with station(config) as st, st.stream("GET", _path(redaction_id, "file")) as got:
        saved = receive(got, out, fallback_name=f"redaction-{redaction_id}.mp4")
    return {"redaction": redaction_id, "path": str(saved.path), "size": saved.size,
            "blake3": saved.blake3, "sha256": saved.sha256,
            "label": "redacted derivative / 技术处理后的衍生件"}


@redaction_app.command()
@command
def approve(redaction_id: IdArg, reason: ReasonOpt, config: ConfigOpt = None,
            as_json: JsonOpt = False) -> Reply:
    """Approve the rendered file you watched (a second person: not the requester)."""
    return _shown(_call(config, "POST", _path(redaction_id, "approve"),
                        json={"reason": reason}))


@redaction_app.command()
@command
def reject(redaction_id: IdArg, reason: ReasonOpt, config: ConfigOpt = None,
           as_json: JsonOpt = False) -> Reply:
    """Reject the rendered file (a new plan may follow)."""
    return _shown(_call(config, "POST", _path(redaction_id, "reject"),
                        json={"reason": reason}))


@redaction_app.command()
@command
def show(redaction_id: IdArg, config: ConfigOpt = None, as_json: JsonOpt = False) -> Reply:
    """One redaction: status, the plan in force, the render's digests, every step."""
    return _shown(_call(config, "GET", _path(redaction_id)))


@redaction_app.command("list")
@command
def list_(status: Annotated[str | None, typer.Option(
              "--status", help="requested | rendered | approved | rejected | deleted")] = None,
          config: ConfigOpt = None, as_json: JsonOpt = False) -> Reply:
    """The redactions of recordings you may see."""
    answer = _call(config, "GET", "/redactions", params={"status": status} if status else {})
    return Reply(answer, human=lambda: _print_list(answer["redactions"]))


def _secs(us: int) -> str:
    return f"{us / 1e6:.3f}s"


def print_redaction(r: Json) -> None:
    typer.echo(f"redaction {r['id']} — {r['label']}")
    typer.echo(f"recording {r['recording_id']} {_secs(r['range_us'][0])}–"
               f"{_secs(r['range_us'][1])}; status {r['status']}; requested by "
               f"{r['requested_by']}: {r['reason']}")
    if r.get("deleted"):
        typer.echo(f"DELETED (tombstone {r['deleted']['tombstone']}): {r['deleted']['note']}")
    plan = r["plan"]
    if plan:
        typer.echo(f"plan: {plan['style']}, {len(plan['tracks'])} track(s), "
                   f"{len(plan['boxes'])} box(es), {len(plan['audio'])} audio range(s)")
        for t in plan["tracks"]:
            typer.echo(f"  {t['id']} ({t['source']}) {_secs(t['from_us'])}–"
                       f"{_secs(t['to_us'])}, {t['samples']} samples")
        for b in plan["boxes"]:
            typer.echo(f"  {b['id']} {b['box']} {_secs(b['range_us'][0])}–"
                       f"{_secs(b['range_us'][1])}")
        for a in plan["audio"]:
            typer.echo(f"  {a['kind']} {_secs(a['range_us'][0])}–{_secs(a['range_us'][1])}")
    if r["render"]:
        typer.echo(f"rendered: blake3 {r['render']['output_blake3']}")
    for s in r["steps"]:
        typer.echo(f"  #{s['id']} {show_time(s['at'])} {s['kind']} by {s['by']}"
                   + (f": {s['reason']}" if s["reason"] else ""))


def _print_list(rows: list[Json]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(rows)} redaction(s) — redacted derivatives")
    table.add_column("id", no_wrap=True)
    for name in ("recording", "range", "status", "requested by", "reason"):
        table.add_column(name)
    for r in rows:
        table.add_row(r["id"], r["recording_id"],
                      f"{_secs(r['range_us'][0])}–{_secs(r['range_us'][1])}", r["status"],
                      r["requested_by"], r["reason"])
    Console().print(table)


__all__ = ["parse_box", "print_redaction", "redaction_app"]
