"""CLI: signed reports (PDF + detached ``.sig.json``) and their offline check.

`evidock report custody` and `evidock coverage --pdf` ask the station service, which
renders and signs; the client writes the PDF and its signature beside each other only
after checking that the signature vouches for the bytes received (else nothing is left
at --out). `evidock verify-report` needs no station: anyone holding the PDF, its
signature file and the station's public key checks it.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from evidock.cli_base import ConfigOpt, JsonOpt, Reply, command
from integrity.errors import Conflict, TransferFailed

if TYPE_CHECKING:
    from integrity.findings import Finding

Json = dict[str, Any]
report_app = typer.Typer(no_args_is_help=True, add_completion=False,
                         help="Signed reports: chain of custody (证据保管链).")
OutOpt = Annotated[Path, typer.Option("--out", help="Where to write the PDF (its signature "
                                                    "goes beside it, + .sig.json).")]
_SIG_HEADER = "x-evidock-report-signature"


def _receive(answer: Any, tmp: Path) -> bytes:
    """The body into ``tmp`` (new file), piece by piece; the signature header."""
    sig = base64.b64decode(answer.headers.get(_SIG_HEADER, ""), validate=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    with os.fdopen(fd, "wb") as fh:
        for piece in answer.iter_bytes():
            fh.write(piece)
        fh.flush()
        os.fsync(fh.fileno())
    return sig


def fetch_report(config: Path | None, path: str, params: Json, out: Path) -> Json:
    """GET a signed report into ``out`` and ``out``.sig.json, checked, or nothing."""
    from evidock.client import station
    from integrity.reportsign import SUFFIX, report_findings

    sig_out = out.with_name(out.name + SUFFIX)
    if out.exists() or sig_out.exists():
        raise Conflict(f"{out} or its signature file exists already; not overwritten",
                       path=str(out))
    tmp = out.with_name(f".{out.name}.{os.getpid()}.part")
    try:
        with station(config) as st, st.stream("GET", path, params=params) as answer:
            sig = _receive(answer, tmp)
        findings = report_findings(tmp.read_bytes(), sig, subject=out.name)
        failed = [f for f in findings if not f.code.startswith("W_")]
        if failed:
            raise TransferFailed(f"the report received does not match its signature: "
                                f"{failed[0]}", path=str(out))
        tmp_sig = tmp.with_name(tmp.name + SUFFIX)
        tmp_sig.write_bytes(sig)
        os.replace(tmp_sig, sig_out)
        os.replace(tmp, out)  # the PDF appears last, its signature already beside it
    finally:
        tmp.unlink(missing_ok=True)
    from integrity.canonical import parse_json_object

    stmt = parse_json_object(sig)["statement"]
    return {"out": str(out), "signature": str(sig_out),
            **{k: stmt[k] for k in ("report", "size", "sha256", "blake3", "audit_head")}}


def print_fetched(r: Json) -> None:
    head = r["audit_head"]
    typer.echo(f"{r['out']}: {r['report']} report, {r['size']} bytes, sha256 {r['sha256']}")
    typer.echo(f"signed: {r['signature']} (audit tree head {head['size']}, root "
               f"{head['root'][:16]}…, key {head['key_id']})")


@report_app.command()
@command
def custody(
    recording: Annotated[str | None, typer.Argument(help="Recording id.")] = None,
    export: Annotated[str | None, typer.Option("--export", help="Export request id.")] = None,
    case: Annotated[str | None, typer.Option("--case", help="Case number.")] = None,
    out: OutOpt = Path("report.pdf"), config: ConfigOpt = None, as_json: JsonOpt = False,
) -> Reply:
    """Chain-of-custody report (证据保管链) of a recording, an export request's footage
    or a case's: identity, digests, camera, officer, dock, renditions, fixity, and
    every access, link, export and approval, against a signed audit tree head."""
    params = {k: v for k, v in (("recording", recording), ("export", export),
                                ("case", case)) if v is not None}
    result = fetch_report(config, "/reports/custody", params, out)
    return Reply(result, human=lambda: print_fetched(result))


def _findings(pdf: Path, key: Path | None) -> tuple[Json | None, list[Finding]]:
    from integrity.package import trusted_key
    from integrity.reportsign import verify_report_file

    trusted, refused = trusted_key(key) if key is not None else (None, [])
    stmt, findings = verify_report_file(pdf, trusted=trusted)
    return stmt, [*refused, *findings]


@command
def verify_report(
    pdf: Annotated[Path, typer.Argument(help="The report PDF (its .sig.json beside it).")],
    key: Annotated[Path | None, typer.Option("--key", help="Station public key (PEM).")] = None,
    as_json: JsonOpt = False,
) -> Reply:
    """Verify a signed report offline: its bytes, the station's signature and the audit
    tree head it names; every finding is reported. Exit 1 on any failure."""
    stmt, findings = _findings(pdf, key)
    shown = [f.to_dict() for f in findings]
    failed = [f for f in shown if not str(f["code"]).startswith("W_")]

    def human() -> None:
        for f in shown:
            where = f" [{f['subject']}]" if f["subject"] else ""
            typer.echo(f"{f['code']}{where}: {f['message']}")
        if stmt is not None and isinstance(stmt.get("audit_head"), dict):
            head = stmt["audit_head"]
            typer.echo(f"{stmt.get('report')} report made {stmt.get('made_at')} by "
                       f"{stmt.get('made_by')} against audit tree head {head.get('size')} "
                       f"(root {str(head.get('root'))[:16]}…, key {head.get('key_id')})")
        typer.echo("OK: verified" if not failed else f"FAILED: {len(failed)} finding(s)")

    return Reply({"report": str(pdf), "ok": not failed, "statement": stmt,
                  "findings": shown}, human=human, exit_code=1 if failed else 0)


__all__ = ["fetch_report", "print_fetched", "report_app", "verify_report"]
