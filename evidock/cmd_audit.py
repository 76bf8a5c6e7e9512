"""CLI: the audit log (head, proof, consistency, events, verify), fixity and repair,
refused verbs.

Thin clients of the station service (`/api/v1/audit/…`, `/api/v1/fixity`): the service
identifies the user from the kernel, checks ``audit.view`` and records every read. The
output is rendered from the JSON the service answers. Wired into the main app by
evidock/cli.py::

    app.add_typer(cmd_audit.audit_app, name="audit")
    app.command()(cmd_audit.fixity)
    app.command()(cmd_audit.repair)
    cmd_audit.install_refusals(app)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import tzinfo
from pathlib import Path
from typing import Annotated, Any

import typer

from evidock.cli_base import ConfigOpt, JsonOpt, Reply, command, json_command
from evidock.output import rezone_text, show_time, zone_of, zoned
from integrity.errors import FixityError

#: The same verbs as records.auditdesk.REFUSED_VERBS (kept here: the command tree is
#: built without importing the desks).
REFUSED_VERBS = ("delete", "edit", "rm")

audit_app = typer.Typer(no_args_is_help=True, add_completion=False,
                        help="The tamper-evident audit log: signed heads, proofs, verify.")


def finding_line(finding: Mapping[str, Any], zone: tzinfo | None = None) -> str:
    """A finding as people read it (integrity.findings.Finding.__str__, from JSON); with
    ``zone`` (the station's), the times in its message are shown in it."""
    subject = finding.get("subject")
    where = f" [{subject}]" if subject else ""
    message = str(finding.get("message"))
    return f"{finding.get('code')}{where}: {rezone_text(message, zone) if zone else message}"


def _findings_printer(findings: Sequence[Mapping[str, Any]], summary: str,
                      zone: tzinfo | None = None) -> Callable[[], None]:
    """Every finding on its own line, then one summary line."""
    def print_them() -> None:
        for finding in findings:
            typer.echo(finding_line(finding, zone))
        typer.echo(summary)
    return print_them


def _get(config: Path | None, path: str, **params: Any) -> Any:
    from evidock.client import station

    with station(config) as st:
        return st.get(path, **params)


def _post(config: Path | None, path: str, body: Mapping[str, Any]) -> Any:
    return _post_zoned(config, path, body)[0]


def _post_zoned(config: Path | None, path: str, body: Mapping[str, Any],
                ) -> tuple[Any, tzinfo]:
    """The answer as the service wrote it (findings are data), and the station's zone
    to show their times in."""
    from evidock.client import station

    with station(config) as st:
        return st.post(path, body), zone_of(st.zone_name)


@audit_app.command("head")
@json_command
def head(config: ConfigOpt = None) -> Reply:
    """Print the signed tree head over the whole log, this read included (JSON).

    Save the output elsewhere: `audit verify --against` detects truncation."""
    return Reply(_get(config, "/audit/head"))


@audit_app.command("proof")
@json_command
def proof(seq: Annotated[int, typer.Argument(help="Sequence number of the event.")],
          size: Annotated[int | None, typer.Option("--size", help="Tree size to prove "
                                                   "against (default: latest head).")] = None,
          config: ConfigOpt = None) -> Reply:
    """Print an inclusion proof for event SEQ (JSON, O(log n) hashes)."""
    return Reply(_get(config, f"/audit/proof/{seq}", size=size))


@audit_app.command("consistency")
@json_command
def consistency(old: Annotated[int, typer.Argument(help="Older tree size.")],
                new: Annotated[int | None, typer.Argument(help="Newer size (default: now).")]
                = None, config: ConfigOpt = None) -> Reply:
    """Print a consistency proof between two tree sizes (JSON)."""
    return Reply(_get(config, "/audit/consistency", old=old, new=new))


def _event_line(event: Mapping[str, Any]) -> str:
    if event.get("hidden"):  # names records beyond the reader's units or clearance
        return f"{event.get('seq'):>8}  (hidden)"
    subjects = ",".join(str(s) for s in event.get("subjects") or []) or "-"
    return (f"{event.get('seq'):>8}  {show_time(event.get('at'))}  {event.get('actor')}  "
            f"{event.get('action')}  {subjects}")


@audit_app.command("events")
@command
def events(
    action: Annotated[str | None, typer.Option("--action", help="Exact action, or a "
                                               "prefix ending in * (read.*).")] = None,
    actor: Annotated[str | None, typer.Option("--actor", help="e.g. user:clerk.")] = None,
    subject: Annotated[str | None, typer.Option("--subject", help="One of the event's "
                                                "subjects, e.g. case:ID.")] = None,
    since: Annotated[str | None, typer.Option("--since", help="At or after (ISO, zoned).")]
    = None,
    until: Annotated[str | None, typer.Option("--until", help="Before (ISO, zoned).")]
    = None,
    after: Annotated[int | None, typer.Option("--after", help="Events after this sequence "
                                              "number (paging).")] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many (≤ 1000).")] = 100,
    config: ConfigOpt = None, as_json: JsonOpt = False,
) -> Reply:
    """List audit events, oldest first; `--after` the printed cursor for the next page."""
    from evidock.client import station

    with station(config) as st:  # its times in the station's zone; details as recorded
        page = zoned(st.get("/audit/events", action=action, actor=actor, subject=subject,
                            since=since, until=until, after=after, limit=limit),
                     st.zone_name)

    def human() -> None:
        for event in page["events"]:
            typer.echo(_event_line(event))
        more = page.get("next_after")
        hidden = page.get("hidden") or 0
        typer.echo(f"{len(page['events'])} events" +
                   (f" ({hidden} hidden: beyond your units or clearance)" if hidden else "")
                   + (f"; more: --after {more}" if more is not None else ""))
    return Reply(page, human=human)


@audit_app.command("verify")
@command
def verify(against: Annotated[list[Path] | None, typer.Option(
               "--against", help="A saved head (JSON from `audit head`); repeatable.")] = None,
           config: ConfigOpt = None, as_json: JsonOpt = False) -> Reply:
    """Recompute the whole log; report every inconsistency. Exit 1 on any finding."""
    try:  # the client's files: read here, sent as text
        saved = [p.read_bytes().decode("utf-8", "replace") for p in against or []]
    except OSError as exc:
        raise typer.BadParameter(f"cannot read saved head: {exc}") from exc
    report, zone = _post_zoned(config, "/audit/verify", {"against": saved})
    summary = (f"{'ok' if report['ok'] else 'FINDINGS'}: {report['events']} events, "
               f"{report['heads']} heads, {len(report['findings'])} findings")
    return Reply(report, human=_findings_printer(report["findings"], summary, zone),
                 exit_code=0 if report["ok"] else 1)



@audit_app.command("verify-bundle")
@command
def verify_bundle(
    target: Annotated[Path, typer.Argument(help="A clip package or case export directory, "
                                           "or an audit-bundle.json (with --key).")],
    key: Annotated[Path | None, typer.Option("--key", help="Station public key (PEM).")]
    = None,
    center_key: Annotated[Path | None, typer.Option(
        "--center-key", help="A center's package: the center's public key (PEM), which "
        "signed the bundle's index.")] = None, as_json: JsonOpt = False,
) -> Reply:
    """Check an export's audit bundle offline: every event against its inclusion proof
    and the signed tree head, nothing removed. Exit 1 on any finding (W_ ones hold)."""
    from integrity.bundle import verify_path
    from integrity.package import trusted_key

    trusted, refused = trusted_key(key) if key is not None else (None, [])
    center, refused_center = trusted_key(center_key) if center_key is not None else (None, [])
    findings = [f.to_dict() for f in [*refused, *refused_center,
                                      *verify_path(target, trusted=trusted, center=center)]]
    failed = [f for f in findings if not str(f["code"]).startswith("W_")]
    summary = "ok: bundle verified" if not failed else f"FINDINGS: {len(failed)}"
    return Reply({"target": str(target), "ok": not failed, "findings": findings},
                 human=_findings_printer(findings, summary), exit_code=1 if failed else 0)

def _mode(all_: bool, sample: int | None, since: str | None) -> str:
    chosen = [name for name, on in (("--all", all_), ("--sample", sample is not None),
                                    ("--since", since is not None)) if on]
    if len(chosen) > 1:
        raise FixityError(f"choose one of --all, --sample, --since (got {chosen})")
    return "sample" if sample is not None else "since" if since is not None else "all"


@command
def fixity(
    all_: Annotated[bool, typer.Option("--all", help="Every blob (the default).")] = False,
    sample: Annotated[int | None, typer.Option("--sample", help="N blobs, never or least "
                                               "recently proven first.")] = None,
    since: Annotated[str | None, typer.Option("--since", help="Blobs stored since this "
                                              "ISO time (with zone).")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Sampling seed (printed).")]
    = None,
    sha256: Annotated[bool, typer.Option("--sha256", help="Also check SHA-256 (slower).")]
    = False,
    repair: Annotated[bool, typer.Option("--repair", help="Then restore every blob found "
                                         "missing, altered or unreadable from its verified "
                                         "object-store copy (fixity.repair).")] = False,
    config: ConfigOpt = None, as_json: JsonOpt = False,
) -> Reply:
    """Re-hash stored objects from disk against the catalog; find missing, altered and
    unexpected ones. Exit 1 on any finding (with --repair: on any finding not repaired
    and proven by a re-check)."""
    mode = _mode(all_, sample, since)
    report, zone = _post_zoned(config, "/fixity", {
        "mode": mode, "sample": sample, "since": since, "seed": seed, "sha256": sha256,
        "repair": repair})
    summary = (f"fixity {report['mode']} (seed {report['seed']}): {report['checked']} "
               f"objects, {report['bytes'] / 1e6:.1f} MB, {len(report['findings'])} findings")
    show = _findings_printer(report["findings"], summary, zone)
    if not repair:
        return Reply(report, human=show, exit_code=0 if report["ok"] else 1)

    def human() -> None:
        show()
        _print_repair(report["repair"])
        typer.echo(f"{report['unresolved']} findings not resolved")
    return Reply(report, human=human, exit_code=0 if report["resolved"] else 1)


def _print_repair(result: Mapping[str, Any]) -> None:
    for item in result["items"]:
        typer.echo(f"{item['code']} [{item['blake3']}]: {item['message']}")
    recheck = result.get("recheck")
    checked = (f"; re-check: {'ok' if recheck['ok'] else 'FINDINGS'}"
               if recheck else "")
    typer.echo(f"repair: {result['restored']} restored, {result['failed']} failed{checked}")
    for finding in (recheck or {}).get("findings", []):
        typer.echo(finding_line(finding))


@command
def repair(
    blobs: Annotated[list[str], typer.Argument(metavar="BLOB", help="BLAKE3 names of "
                                               "the blobs (as fixity reports them).")],
    config: ConfigOpt = None, as_json: JsonOpt = False,
) -> Reply:
    """Restore damaged or missing blobs from their verified object-store copies (each
    download proven by size, BLAKE3 and SHA-256; the damaged copy kept in quarantine),
    then re-check them. Each repair is an audit event. Exit 1 on any failure."""
    result = _post(config, "/fixity/repair", {"blobs": blobs})
    return Reply(result, human=lambda: _print_repair(result),
                 exit_code=0 if result["ok"] else 1)


def _refusal(verb: str) -> Callable[..., None]:
    @command
    def refused(ctx: typer.Context, config: ConfigOpt = None, as_json: JsonOpt = False,
                ) -> None:
        # The service records the attempt under the identified user, then refuses.
        target = (" ".join(ctx.args) or "(none)")[:4096]
        _post(config, "/audit/refusals", {"verb": verb, "target": target})
    refused.__doc__ = f"Refused: evidence is never {verb}-ed (the attempt is audited)."
    return refused


def install_refusals(app: typer.Typer) -> None:
    """Hidden `delete`/`edit`/`rm` commands that refuse, say why, and audit the attempt."""
    for verb in REFUSED_VERBS:
        app.command(verb, hidden=True, context_settings={
            "allow_extra_args": True, "ignore_unknown_options": True})(_refusal(verb))


__all__ = ["REFUSED_VERBS", "audit_app", "finding_line", "fixity", "install_refusals",
           "repair"]
