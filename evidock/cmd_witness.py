"""CLI: witnessing of audit logs between a station and its center.

Thin clients of the station service (`/api/v1/witness/…`). At a station, `push` has the
log witnessed by the center now and `received` lists the countersignatures kept; at a
center, `conflicts` lists the heads that did not extend a station's witnessed log.
Wired into the main app by evidock/cli.py::

    app.add_typer(cmd_witness.witness_app, name="witness")
    app.add_typer(cmd_witness.center_app, name="center")
"""

from __future__ import annotations

from datetime import tzinfo
from typing import Annotated, Any

import typer

from evidock.cli_base import ConfigOpt, JsonOpt, Reply, command
from evidock.output import show_time, zone_of, zoned

witness_app = typer.Typer(no_args_is_help=True, add_completion=False,
                          help="Have the audit log witnessed by the center; forks found.")


def _call(config: Any, method: str, path: str, **params: Any) -> tuple[Any, tzinfo]:
    """The answer with its instants in the station's zone (signed content as signed),
    and that zone, to show the signed times in too."""
    from evidock.client import station

    with station(config) as st:
        answer = st.post(path, {}) if method == "POST" else st.get(path, **params)
        return zoned(answer, st.zone_name), zone_of(st.zone_name)


@witness_app.command("push")
@command
def push(config: ConfigOpt = None, as_json: JsonOpt = False) -> Reply:
    """Send the center the audit events it lacks, then have the log's signed head
    witnessed; keep the countersignature."""
    out, zone = _call(config, "POST", "/witness/push")
    c = out["cosigned"]

    ev = out["events"]

    def human() -> None:
        typer.echo(f"events: {ev['kept']} sent, the center holds {ev['next_seq']} of "
                   f"{ev['size']}" + (f"; waiting at event {ev['waiting']['seq']}: "
                                      f"{ev['waiting']['reason']}" if ev["waiting"] else ""))
        typer.echo(f"witnessed: {c['head']['size']} events, root {c['head']['root'][:16]}… "
                   f"by {c['witness']} at {show_time(c['witnessed_at'], zone)} (the center had "
                   f"witnessed {out['witnessed_size']} before)")
    # Events still waiting for their blobs in the object store: not done (exit 1).
    return Reply(out, human, exit_code=1 if ev["waiting"] else 0)


@witness_app.command("received")
@command
def received(limit: Annotated[int, typer.Option("--limit", help="At most this many.")] = 20,
             config: ConfigOpt = None, as_json: JsonOpt = False) -> Reply:
    """The countersignatures this station kept, newest first."""
    out, zone = _call(config, "GET", "/witness/received", limit=limit)

    def human() -> None:
        for c in out["cosigned"]:
            typer.echo(f"{c['head']['size']:>10}  {c['head']['root'][:16]}…  "
                       f"{c['witness']}  {show_time(c['witnessed_at'], zone)}")
        typer.echo(f"{len(out['cosigned'])} countersigned heads")
    return Reply(out, human)


@witness_app.command("status")
@command
def status(config: ConfigOpt = None, as_json: JsonOpt = False) -> Reply:
    """Center: each station's mirrored events, last countersigned head and conflicts;
    exit 1 if any station is stale (no head witnessed lately) or has a conflict."""
    out, zone = _call(config, "GET", "/witness/status")

    def human() -> None:
        for st in out["stations"]:
            when = show_time(st["witnessed_at"], zone) if st["witnessed_at"] else "never"
            flags = " STALE" * st["stale"] + f" {st['conflicts']} conflicts" * bool(
                st["conflicts"])
            typer.echo(f"{st['station_id']}  events {st['mirrored']}  head "
                       f"{st['size'] if st['size'] is not None else '-'}  witnessed "
                       f"{when}{flags}")
    bad = any(st["stale"] or st["conflicts"] for st in out["stations"])
    return Reply(out, human, exit_code=1 if bad else 0)


@witness_app.command("conflicts")
@command
def conflicts(station: Annotated[str | None, typer.Option("--station", help="Only this "
                                                         "station's.")] = None,
              config: ConfigOpt = None, as_json: JsonOpt = False) -> Reply:
    """Center: every head that did not extend a station's witnessed log (exit 1 if any)."""
    out, _ = _call(config, "GET", "/witness/conflicts", station=station)

    def human() -> None:
        for c in out["conflicts"]:
            typer.echo(f"E_LOG_FORK [station:{c['station_id']}] {c['kind']}: {c['reason']} "
                       f"({show_time(c['detected_at'])}; conflict {c['id']})")
        typer.echo(f"{len(out['conflicts'])} conflicts")
    return Reply(out, human, exit_code=1 if out["conflicts"] else 0)


center_app = typer.Typer(no_args_is_help=True, add_completion=False,
                         help="At a center: the cases and recordings of every station.")


@center_app.command("cases")
@command
def center_cases(number: Annotated[str | None, typer.Option("--number")] = None,
                 station: Annotated[str | None, typer.Option("--station")] = None,
                 limit: Annotated[int, typer.Option("--limit")] = 100,
                 config: ConfigOpt = None, as_json: JsonOpt = False) -> Reply:
    """The cases of every station you may see, newest first."""
    out, _ = _call(config, "GET", "/center/cases", number=number, station=station,
                   limit=limit)

    def human() -> None:
        for c in out["cases"]:
            typer.echo(f"{c['station_id']}  {c['number']}  {c['unit']}  {c['sensitivity']}")
        typer.echo(f"{len(out['cases'])} cases")
    return Reply(out, human)


@center_app.command("recordings")
@command
def center_recordings(officer: Annotated[str | None, typer.Option("--officer")] = None,
                      station: Annotated[str | None, typer.Option("--station")] = None,
                      case: Annotated[str | None, typer.Option("--case")] = None,
                      limit: Annotated[int, typer.Option("--limit")] = 100,
                      config: ConfigOpt = None, as_json: JsonOpt = False) -> Reply:
    """The recordings of every station you may see, newest first."""
    out, _ = _call(config, "GET", "/center/recordings", officer=officer, station=station,
                   case=case, limit=limit)

    def human() -> None:
        for r in out["recordings"]:
            typer.echo(f"{r['station_id']}  {r['recording_id'][:12]}  {r['officer'] or '-'}  "
                       f"{show_time(r['ingested_at'])}  {r['path']}")
        typer.echo(f"{len(out['recordings'])} recordings")
    return Reply(out, human)


@center_app.command("sweep")
@command
def center_sweep(sample: Annotated[int, typer.Option("--sample", help="Blobs to check.")]
                 = 100,
                 station: Annotated[str | None, typer.Option("--station")] = None,
                 config: ConfigOpt = None, as_json: JsonOpt = False) -> Reply:
    """Check a random sample of the stations' blobs in the object store (present, locked,
    the right bytes); every finding listed, exit 1 if any."""
    from evidock.client import station as client

    with client(config) as st:
        out = st.post("/center/sweep", {"sample": sample, "station": station})

    def human() -> None:
        for f in out["findings"]:
            typer.echo(f"{f['code']} [{f['subject']}]: {f['message']}")
        typer.echo(f"{out['checked']} blobs checked, {len(out['findings'])} findings")
    return Reply(out, human, exit_code=1 if out["findings"] else 0)
