"""CLI: the audit log (head, proof, consistency, verify), fixity, and refused verbs.

Wired into the main app by evidock/cli.py::

    app.add_typer(cmd_audit.audit_app, name="audit")
    app.command()(cmd_audit.fixity)
    cmd_audit.install_refusals(app)
"""

from __future__ import annotations

import getpass
import os
import random
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from archive.audit.log import AuditLog, HeadSigner, parse_iso, refuse
from archive.audit.verify import load_heads, verify_log
from archive.fixity import Fixity, FixityPlan
from config import load_settings
from evidock.output import emit_json, guarded
from evidock.wiring import Services
from integrity.errors import FixityError, KeyError_
from integrity.keys import Keyring

JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")]
ConfigOpt = Annotated[Path | None, typer.Option("--config", help="TOML config file.",
                                                envvar="EVIDOCK_CONFIG")]
REFUSED_VERBS = ("delete", "edit", "rm")

audit_app = typer.Typer(no_args_is_help=True, add_completion=False,
                        help="The tamper-evident audit log: signed heads, proofs, verify.")


def _services(config: Path | None) -> Services:
    return Services.from_config(load_settings(config_file=config))


def audit_log(svc: Services) -> AuditLog:
    """The audit log with the station key as head signer."""
    return AuditLog(catalog=svc.catalog,
                    signer=HeadSigner(keys=svc.keys, station_id=svc.settings.station.id))


def actor_name() -> str:
    """Who runs this command: EVIDOCK_ACTOR, else the login user."""
    return os.environ.get("EVIDOCK_ACTOR") or f"user:{getpass.getuser()}"


def _with_services(config: Path | None, as_json: bool, fn: Callable[[Services], None]) -> None:
    def body() -> None:
        svc = _services(config)
        try:
            fn(svc)
        finally:
            svc.close()
    guarded(as_json, body)



def _print_findings(findings: object, summary: str) -> None:
    """Every finding on its own line, then one summary line."""
    for finding in findings:  # type: ignore[attr-defined]
        typer.echo(str(finding))
    typer.echo(summary)

@audit_app.command("head")
def head(config: ConfigOpt = None) -> None:
    """Print the current signed tree head as JSON (signing and storing a new one if the
    log grew). Save the output elsewhere: `audit verify --against` detects truncation."""
    def run(svc: Services) -> None:
        log = audit_log(svc)
        latest = log.latest_head()
        current = latest if latest is not None and latest.size == log.size() else \
            log.sign_head(at=svc.clock())
        emit_json(current.to_dict())
    _with_services(config, True, run)


@audit_app.command("proof")
def proof(seq: Annotated[int, typer.Argument(help="Sequence number of the event.")],
          size: Annotated[int | None, typer.Option("--size", help="Tree size to prove "
                                                   "against (default: latest head).")] = None,
          config: ConfigOpt = None) -> None:
    """Print an inclusion proof for event SEQ (JSON, O(log n) hashes)."""
    _with_services(config, True,
                   lambda svc: emit_json(audit_log(svc).prove(seq, tree_size=size)))


@audit_app.command("consistency")
def consistency(old: Annotated[int, typer.Argument(help="Older tree size.")],
                new: Annotated[int | None, typer.Argument(help="Newer size (default: now).")]
                = None, config: ConfigOpt = None) -> None:
    """Print a consistency proof between two tree sizes (JSON)."""
    _with_services(config, True, lambda svc: emit_json(audit_log(svc).consistency(old, new)))


def _keyring(svc: Services) -> Keyring | None:
    try:
        return svc.keys.keyring()
    except KeyError_:
        return None


@audit_app.command("verify")
def verify(against: Annotated[list[Path] | None, typer.Option(
               "--against", help="A saved head (JSON from `audit head`); repeatable.")] = None,
           config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Recompute the whole log; report every inconsistency. Exit 1 on any finding."""
    code = 0

    def run(svc: Services) -> None:
        nonlocal code
        saved = load_heads(p.read_bytes() for p in against or [])
        report = verify_log(svc.catalog.engine, keyring=_keyring(svc), saved=saved)
        event = audit_log(svc).record(
            actor=actor_name(), action="audit.verify", subjects=[],
            details={"ok": report.ok, "events": report.events, "heads": report.heads,
                     "codes": sorted({f.code for f in report.findings})}, at=svc.clock())
        if as_json:
            emit_json({**report.to_dict(), "audit_seq": event.seq})
        else:
            _print_findings(report.findings, f"{'ok' if report.ok else 'FINDINGS'}: "
                            f"{report.events} events, {report.heads} heads, "
                            f"{len(report.findings)} findings")
        code = report.exit_code
    try:
        _with_services(config, as_json, run)
    except OSError as exc:
        raise typer.BadParameter(f"cannot read saved head: {exc}") from exc
    raise typer.Exit(code)


def _plan(all_: bool, sample: int | None, since: str | None, seed: int | None,
          sha256: bool) -> FixityPlan:
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
) -> None:
    """Re-hash stored objects from disk against the catalog; find missing, altered and
    unexpected ones. Exit 1 on any finding."""
    code = 0

    def run(svc: Services) -> None:
        nonlocal code
        plan = _plan(all_, sample, since, seed, sha256)
        report = Fixity(catalog=svc.catalog, store=svc.store, audit=audit_log(svc),
                        clock=svc.clock).run(plan, actor=actor_name())
        if as_json:
            emit_json(report.to_dict())
        else:
            _print_findings(report.findings, f"fixity {plan.mode} (seed {plan.seed}): "
                            f"{report.checked} objects, {report.bytes_read / 1e6:.1f} MB, "
                            f"{len(report.findings)} findings")
        code = report.exit_code
    _with_services(config, as_json, run)
    raise typer.Exit(code)


def _refusal(verb: str) -> Callable[..., None]:
    def command(ctx: typer.Context, config: ConfigOpt = None, as_json: JsonOpt = False,
                ) -> None:
        def run(svc: Services) -> None:
            raise refuse(audit_log(svc), verb=verb, target=" ".join(ctx.args) or "(none)",
                         actor=actor_name(), at=svc.clock())
        _with_services(config, as_json, run)
    command.__doc__ = f"Refused: evidence is never {verb}-ed (the attempt is audited)."
    return command


def install_refusals(app: typer.Typer) -> None:
    """Hidden `delete`/`edit`/`rm` commands that refuse, say why, and audit the attempt."""
    for verb in REFUSED_VERBS:
        app.command(verb, hidden=True, context_settings={
            "allow_extra_args": True, "ignore_unknown_options": True})(_refusal(verb))
