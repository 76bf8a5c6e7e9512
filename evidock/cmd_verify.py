"""`evidock verify`: anyone runs it offline on a clip package, so it stays light.

At import it needs only typer and `integrity`; the catalog, SQLAlchemy and the rest of
the CLI load only to verify a stored recording. `evidock.entry` sends `evidock verify …`
here without importing the full command tree (start-up was most of a verify's time).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from evidock.output import emit_json, guarded
from integrity.errors import KeyError_, NotFound
from integrity.findings import Finding
from integrity.keys import PublicKey
from integrity.package import is_failure, verify_package

JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")]
ConfigOpt = Annotated[Path | None, typer.Option("--config", help="TOML config file.",
                                                envvar="EVIDOCK_CONFIG")]


def _package(target: Path, key: Path | None) -> list[Finding]:
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
    from config import load_settings
    from evidock.wiring import Services

    svc = Services.from_config(load_settings(config_file=config))
    try:
        return StoredVerifier(store=svc.store, catalog=svc.catalog,
                              keys=svc.keys).verify(recording_id)
    finally:
        svc.close()


def verify(
    target: Annotated[str, typer.Argument(help="Clip package directory or recording id.")],
    key: Annotated[Path | None, typer.Option("--key", help="Station public key (PEM).")] = None,
    config: ConfigOpt = None, as_json: JsonOpt = False,
) -> None:
    """Verify a clip package (offline) or a stored recording; report every finding."""
    def body() -> list[Finding]:
        if Path(target).is_dir():
            return _package(Path(target), key)
        if "/" in target or Path(target).exists():
            raise NotFound(f"{target} is not a clip package directory", path=target)
        if key is not None:
            raise KeyError_("--key applies to clip packages; stored recordings use the "
                            "station keyring")
        return _stored(target, config)
    findings = guarded(as_json, body)
    failed = [f for f in findings if is_failure(f)]
    if as_json:
        emit_json({"target": target, "ok": not failed,
                   "findings": [f.to_dict() for f in findings]})
    else:
        for f in findings:
            typer.echo(str(f))
        typer.echo("OK: verified" if not failed else f"FAILED: {len(failed)} finding(s)")
    raise typer.Exit(1 if failed else 0)


verify_app = typer.Typer(add_completion=False)
verify_app.command()(verify)
