"""`evidock verify`: anyone runs it offline on a clip package, so it stays light.

At import it needs only typer; `integrity` loads to verify a package, the catalog,
SQLAlchemy and the rest of the CLI only to verify a stored recording. `evidock.entry`
sends `evidock verify …` here without importing the full command tree (start-up was
most of a verify's time).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from evidock.cli_base import ConfigOpt, JsonOpt, Reply, command
from integrity.errors import KeyError_, NotFound

if TYPE_CHECKING:
    from integrity.findings import Finding


def _package(target: Path, key: Path | None) -> list[Finding]:
    from integrity.keys import PublicKey
    from integrity.package import verify_package

    trusted = None
    if key is not None:
        try:
            pem = key.read_bytes()
        except OSError as exc:
            raise KeyError_(f"cannot read {key}: {exc.strerror}", path=str(key)) from exc
        public = PublicKey.from_pem(pem)
        trusted = {public.key_id: public}
    return verify_package(target, trusted=trusted)


def _stored(recording_id: str, config: Path | None) -> list[Finding]:
    from archive.verify_stored import StoredVerifier
    from evidock.cli_base import services

    with services(config) as svc:
        return StoredVerifier(store=svc.store, catalog=svc.catalog,
                              keys=svc.keys).verify(recording_id)


@command
def verify(
    target: Annotated[str, typer.Argument(help="Clip package directory or recording id.")],
    key: Annotated[Path | None, typer.Option("--key", help="Station public key (PEM).")] = None,
    config: ConfigOpt = None, as_json: JsonOpt = False,
) -> Reply:
    """Verify a clip package (offline) or a stored recording; report every finding."""
    from integrity.package import is_failure

    if Path(target).is_dir():
        findings = _package(Path(target), key)
    elif "/" in target or Path(target).exists():
        raise NotFound(f"{target} is not a clip package directory", path=target)
    elif key is not None:
        raise KeyError_("--key applies to clip packages; stored recordings use the "
                        "station keyring")
    else:
        findings = _stored(target, config)
    failed = [f for f in findings if is_failure(f)]
    return Reply({"target": target, "ok": not failed,
                  "findings": [f.to_dict() for f in findings]},
                 human=lambda: _print_findings(findings, failed),
                 exit_code=1 if failed else 0)


def _print_findings(findings: list[Finding], failed: list[Finding]) -> None:
    for f in findings:
        typer.echo(str(f))
    typer.echo("OK: verified" if not failed else f"FAILED: {len(failed)} finding(s)")


verify_app = typer.Typer(add_completion=False)
verify_app.command()(verify)
