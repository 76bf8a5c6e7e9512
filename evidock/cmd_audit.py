"""CLI: the audit log (head, proof, consistency, verify), fixity, and refused verbs.

Wired into the main app by evidock/cli.py::

    app.add_typer(cmd_audit.audit_app, name="audit")
    app.command()(cmd_audit.fixity)
    cmd_audit.install_refusals(app)
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from evidock.cli_base import (
    ConfigOpt,
    JsonOpt,
    Reply,
    actor_name,
    command,
    json_command,
    services,
)
from integrity.errors import FixityError, KeyError_

if TYPE_CHECKING:
    from archive.fixity import FixityPlan
    from evidock.wiring import Services
    from integrity.keys import Keyring

REFUSED_VERBS = ("delete", "edit", "rm")

audit_app = typer.Typer(no_args_is_help=True, add_completion=False,
                        help="The tamper-evident audit log: signed heads, proofs, verify.")


def _findings_printer(findings: Iterable[object], summary: str) -> Callable[[], None]:
    """Every finding on its own line, then one summary line."""
    def print_them() -> None:
        for finding in findings:
            typer.echo(str(finding))
        typer.echo(summary)
    return print_them


@audit_app.command("head")
@json_command
def head(config: ConfigOpt = None) -> Reply:
    """Print the current signed tree head as JSON (signing and storing a new one if the
    log grew). Save the output elsewhere: `audit verify --against` detects truncation."""
    with services(config) as svc:
        log = svc.audit()
        latest = log.latest_head()
        current = latest if latest is not None and latest.size == log.size() else \
            log.sign_head(at=svc.clock())
        return Reply(current.to_dict())


@audit_app.command("proof")
@json_command
def proof(seq: Annotated[int, typer.Argument(help="Sequence number of the event.")],
          size: Annotated[int | None, typer.Option("--size", help="Tree size to prove "
                                                   "against (default: latest head).")] = None,
          config: ConfigOpt = None) -> Reply:
    """Print an inclusion proof for event SEQ (JSON, O(log n) hashes)."""
    with services(config) as svc:
        return Reply(svc.audit().prove(seq, tree_size=size))


@audit_app.command("consistency")
@json_command
def consistency(old: Annotated[int, typer.Argument(help="Older tree size.")],
                new: Annotated[int | None, typer.Argument(help="Newer size (default: now).")]
                = None, config: ConfigOpt = None) -> Reply:
    """Print a consistency proof between two tree sizes (JSON)."""
    with services(config) as svc:
        return Reply(svc.audit().consistency(old, new))


def _keyring(svc: Services) -> Keyring | None:
    try:
        return svc.keys.keyring()
    except KeyError_:
        return None


@audit_app.command("verify")
@command
def verify(against: Annotated[list[Path] | None, typer.Option(
               "--against", help="A saved head (JSON from `audit head`); repeatable.")] = None,
           config: ConfigOpt = None, as_json: JsonOpt = False) -> Reply:
    """Recompute the whole log; report every inconsistency. Exit 1 on any finding."""
    from archive.audit.verify import load_heads, verify_log

    try:
        saved = load_heads(p.read_bytes() for p in against or [])
    except OSError as exc:
        raise typer.BadParameter(f"cannot read saved head: {exc}") from exc
    with services(config) as svc:
        report = verify_log(svc.catalog.engine, keyring=_keyring(svc), saved=saved)
        event = svc.audit().record(
            actor=actor_name(), action="audit.verify", subjects=[],
            details={"ok": report.ok, "events": report.events, "heads": report.heads,
                     "codes": sorted({f.code for f in report.findings})}, at=svc.clock())
        summary = (f"{'ok' if report.ok else 'FINDINGS'}: {report.events} events, "
                   f"{report.heads} heads, {len(report.findings)} findings")
        return Reply({**report.to_dict(), "audit_seq": event.seq},
                     human=_findings_printer(report.findings, summary),
                     exit_code=report.exit_code)


def _plan(all_: bool, sample: int | None, since: str | None, seed: int | None,
          sha256: bool) -> FixityPlan:
    from archive.audit.format import parse_iso
    from archive.fixity import FixityPlan

    chosen = [name for name, on in (("--all", all_), ("--sample", sample is not None),
                                    ("--since", since is not None)) if on]
    if len(chosen) > 1:
        raise FixityError(f"choose one of --all, --sample, --since (got {chosen})")
    seed = seed if seed is not None else random.SystemRandom().randrange(2**32)
    if sample is not None:
        return FixityPlan("sample", seed, sample=sample, sha256=sha256)
    if since is not None:
        return FixityPlan("since", seed, since=parse_iso(since, "--since"), sha256=sha256)
    return FixityPlan("all", seed, sha256=sha256)


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
    config: ConfigOpt = None, as_json: JsonOpt = False,
) -> Reply:
    """Re-hash stored objects from disk against the catalog; find missing, altered and
    unexpected ones. Exit 1 on any finding."""
    from archive.fixity import Fixity

    with services(config) as svc:
        plan = _plan(all_, sample, since, seed, sha256)
        report = Fixity(catalog=svc.catalog, store=svc.store, audit=svc.audit(),
                        clock=svc.clock).run(plan, actor=actor_name())
        summary = (f"fixity {plan.mode} (seed {plan.seed}): {report.checked} objects, "
                   f"{report.bytes_read / 1e6:.1f} MB, {len(report.findings)} findings")
        return Reply(report.to_dict(), human=_findings_printer(report.findings, summary),
                     exit_code=report.exit_code)


def _refusal(verb: str) -> Callable[..., None]:
    @command
    def refused(ctx: typer.Context, config: ConfigOpt = None, as_json: JsonOpt = False,
                ) -> None:
        from archive.audit.log import refuse

        with services(config) as svc:
            raise refuse(svc.audit(), verb=verb, target=" ".join(ctx.args) or "(none)",
                         actor=actor_name(), at=svc.clock())
    refused.__doc__ = f"Refused: evidence is never {verb}-ed (the attempt is audited)."
    return refused


def install_refusals(app: typer.Typer) -> None:
    """Hidden `delete`/`edit`/`rm` commands that refuse, say why, and audit the attempt."""
    for verb in REFUSED_VERBS:
        app.command(verb, hidden=True, context_settings={
            "allow_extra_args": True, "ignore_unknown_options": True})(_refusal(verb))


__all__ = ["REFUSED_VERBS", "audit_app", "fixity", "install_refusals"]
