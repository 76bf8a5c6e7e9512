"""CLI: station keys, renditions (process) and recovery. Offline verification is
evidock/cmd_verify.py; clip exports go through approved requests (evidock/cmd_export.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from archive.catalog.models import Rendition
from config import load_settings
from evidock.output import emit_json, guarded
from evidock.output import show as _show
from evidock.wiring import Services
from ingest.salvage import Recoverer
from integrity.errors import NotFound

JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")]
ConfigOpt = Annotated[Path | None, typer.Option("--config", help="TOML config file.",
                                                envvar="EVIDOCK_CONFIG")]

keys_app = typer.Typer(no_args_is_help=True, help="The station's Ed25519 signing keys.")


def _services(config: Path | None) -> Services:
    return Services.from_config(load_settings(config_file=config))


@keys_app.command("init")
def keys_init(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Create the station key (once); show it if it exists."""
    def body() -> None:
        svc = _services(config)
        key, created = svc.keys.init()
        _show({"key_id": key.key_id, "created": created,
               "private_key": str(svc.keys.private_path)}, as_json)
    guarded(as_json, body)


@keys_app.command("show")
def keys_show(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """The current key id and every public key kept for verification."""
    def body() -> None:
        ring = _services(config).keys.keyring()
        _show({"current": ring.current, "keys": [k.key_id for k in ring.keys]}, as_json)
    guarded(as_json, body)


@keys_app.command("rotate")
def keys_rotate(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """New signing key; old public keys stay so earlier signatures still verify."""
    def body() -> None:
        svc = _services(config)
        key = svc.keys.rotate()
        _show({"key_id": key.key_id, "keys": len(svc.keys.keyring().keys)}, as_json)
    guarded(as_json, body)


@keys_app.command("export-public")
def keys_export(out: Annotated[Path | None, typer.Option("--out")] = None,
                config: ConfigOpt = None) -> None:
    """Print (or write) the current public key as PEM, to publish for verifiers."""
    def body() -> None:
        pem = _services(config).keys.keyring().current_key.to_pem()
        if out is None:
            typer.echo(pem.decode(), nl=False)
        else:
            out.write_bytes(pem)
    guarded(False, body)


def process(
    recording: Annotated[str | None, typer.Argument(help="Recording id.")] = None,
    all_pending: Annotated[bool, typer.Option("--all", help="Every pending recording.")] = False,
    config: ConfigOpt = None, as_json: JsonOpt = False,
) -> None:
    """Make the archival renditions that are missing (idempotent)."""
    def body() -> list[Rendition]:
        svc = _services(config)
        renderer = svc.renderer()
        if recording is not None:
            rec = svc.catalog.recording(recording)
            return [renderer.render(rec)]
        if not all_pending:
            raise NotFound("name a recording id or pass --all")
        return [renderer.render(r) for r in renderer.pending()]
    rows = guarded(as_json, body)
    report = [{"recording_id": r.recording_id, "status": r.status, "code": r.code,
               "reason": r.reason, "merkle_root": r.merkle_root} for r in rows]
    if as_json:
        emit_json({"renditions": report})
    else:
        for r in report:
            typer.echo(f"{r['status']:7} {r['code']:28} {r['recording_id']} {r['reason']}")
    raise typer.Exit(1 if any(r.status == "failed" for r in rows) else 0)


def recover(
    recording: Annotated[str, typer.Argument(help="Recording id of a damaged original.")],
    config: ConfigOpt = None, as_json: JsonOpt = False,
) -> None:
    """Salvage what is readable from a damaged recording, as a labelled derivative."""
    def body() -> dict[str, object]:
        svc = _services(config)
        row = Recoverer(store=svc.store, catalog=svc.catalog, prober=svc.prober,
                        clock=svc.clock).recover(svc.catalog.recording(recording))
        return {"derivative_id": row.id, "status": row.status, "code": row.code,
                "reason": row.reason, "label": row.label, "blake3": row.blake3}
    result = guarded(as_json, body)
    _show(result, as_json)
    raise typer.Exit(0 if result["status"] == "ok" else 1)


__all__ = ["keys_app", "process", "recover"]
