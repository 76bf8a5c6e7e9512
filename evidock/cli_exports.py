"""What `evidock export` and `evidock center export` share: the request id and --out
arguments, how a request reads, and the run/download flow that lands packages at
--out (all of it, checked, or nothing).

The two services answer in the same shape; only the paths, the command to suggest and
who keeps the package differ, so those are the :class:`Downloads` fields.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from evidock.cli_base import Reply
from evidock.output import show_time, zoned

if TYPE_CHECKING:
    from evidock.client import Station

IdArg = Annotated[str, typer.Argument(help="Export request id.")]
OutOpt = Annotated[Path, typer.Option("--out", help="New (or empty) directory.")]


def print_request(req: Mapping[str, Any]) -> None:
    scope = f"case {req['case_number']}" if req["case_id"] else \
        f"recording {req['recording_id']}"
    typer.echo(f"request {req['id']}: {req['status']}")
    typer.echo(f"  {scope}; purpose {req['purpose']}; to {req['recipient']}")
    typer.echo(f"  requested by {req['requested_by']} at {show_time(req['at'])}")
    for d in req["decisions"]:
        until = f", valid until {show_time(d['valid_until'])}" if d["valid_until"] else ""
        typer.echo(f"  {d['decision']} by {d['by']} at {show_time(d['at'])}{until} "
                   f"{d['reason']}")
    for item in req["items"]:
        start_us, end_us = item["range_us"]
        typer.echo(f"  item {item['recording_id']} "
                   f"[{start_us / 1e6:.3f}, {end_us / 1e6:.3f}) s")
    for note in req["skipped"]:
        typer.echo(f"  skipped {note}")
    # What the package will hold, for the approver to see before approving.
    if req.get("redaction_id"):
        typer.echo(f"  package: only the redacted derivative of redaction "
                   f"{req['redaction_id']} (技术处理后的衍生件), nothing of the original")
        return
    typer.echo("  package: " + ("exact (only the trimmed ranges, no covering segments)"
                                if req.get("exact") else "covering segments + trimmed ranges")
               + "; originals: " + ("yes" if req.get("originals") else "no"))


def print_list(reqs: list[dict[str, Any]]) -> None:
    for r in reqs:
        scope = r["case_number"] if r["case_id"] else r["recording_id"]
        typer.echo(f"{r['id']}  {r['status']:8} {r['purpose']}  {scope}  "
                   f"to {r['recipient']}  by {r['requested_by']} at {show_time(r['at'])}")


def print_packages(packages: list[dict[str, Any]]) -> None:
    for p in packages:
        typer.echo(f"{p['dir']}  export {p['export_id']}  {', '.join(p['segments'])}")


def request_out(config: Path | None, path: str,
                body: Mapping[str, Any] | None = None) -> Reply:
    """GET ``path`` (or POST ``body`` to it): one request, shown in local time."""
    from evidock.client import station

    with station(config) as st:
        req = zoned(st.get(path) if body is None else st.post(path, body), st.zone_name)
    return Reply(req, human=lambda: print_request(req))


@dataclass(frozen=True, kw_only=True)
class Downloads:
    """Running a request and fetching its packages from one service."""

    path: Callable[..., str]  # (request_id, *rest) -> the service's path
    command: str  # e.g. "evidock export": what to suggest for fetching again
    keeper: str  # who keeps the package when a download breaks: station or center
    what: str  # "packages" or "package", for the queued message

    def run(self, request_id: str, out: Path, config: Path | None) -> Reply:
        """Run an approved request (once) and download what it wrote into ``out``."""
        from evidock.client import station
        from evidock.download import landing

        # --out is checked (and a place beside it made) before the one run is spent.
        with landing(out) as tmp, station(config) as st:
            ran = st.post(self.path(request_id, "run"))
            if ran.get("status") == "queued":  # [jobs] queue: a worker runs it, later
                tmp.rmdir()  # nothing lands at --out
            else:
                self.fetch(st, request_id, ran["files"], tmp, out)
        if ran.get("status") == "queued":
            return Reply(ran, human=lambda: typer.echo(
                f"{request_id}: run queued (job {ran['job_id'] or 'already queued'}); once "
                f"an `evidock worker` has run it, `{self.command} download {request_id} "
                f"--out {out}` fetches the {self.what}"))
        packages = [{**p, "dir": str(out / p["dir"])} for p in ran["packages"]]
        return Reply({"request_id": request_id, "out": str(out), "packages": packages},
                     human=lambda: print_packages(packages))

    def download(self, request_id: str, out: Path, config: Path | None) -> Reply:
        """Fetch the packages of a request already run (again) into ``out``."""
        from evidock.client import station
        from evidock.download import landing

        with landing(out) as tmp, station(config) as st:
            listed = st.get(self.path(request_id, "files"))
            self.fetch(st, request_id, listed["files"], tmp, out)
        files = listed["files"]
        return Reply({"request_id": request_id, "out": str(out),
                      "exports": listed["exports"], "files": len(files),
                      "bytes": sum(f["size"] for f in files)})

    def fetch(self, st: Station, request_id: str, raw_files: object, tmp: Path,
              out: Path) -> None:
        """Download the request's packages into ``tmp``, checked against ``raw_files``."""
        from evidock.download import listing, receive
        from integrity.errors import TransferFailed

        files = listing(raw_files)
        try:
            with st.stream("GET", self.path(request_id, "download")) as response:
                receive(response.iter_bytes(), tmp, files)
        except TransferFailed as exc:
            raise TransferFailed(
                f"{exc.message}; nothing was written at {out}. The {self.keeper} keeps "
                f"the package: `{self.command} download {request_id} --out {out}` "
                "fetches it again", **exc.details) from None


__all__ = ["Downloads", "IdArg", "OutOpt", "print_list", "print_packages",
           "print_request", "request_out"]
