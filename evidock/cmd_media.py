"""CLI: station keys, renditions (process) and recovery. Offline verification is
evidock/cmd_verify.py; clip exports go through approved requests (evidock/cmd_export.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from evidock.cli_base import ConfigOpt, JsonOpt, Reply, command, services
from integrity.errors import NotFound

keys_app = typer.Typer(no_args_is_help=True, help="The station's Ed25519 signing keys.")


@keys_app.command("init")
@command
def keys_init(config: ConfigOpt = None, as_json: JsonOpt = False) -> dict[str, object]:
    """Create the station key (once); show it if it exists."""
    with services(config) as svc:
        key, created = svc.keys.init()
        return {"key_id": key.key_id, "created": created,
                "private_key": str(svc.keys.private_path)}


@keys_app.command("show")
@command
def keys_show(config: ConfigOpt = None, as_json: JsonOpt = False) -> dict[str, object]:
    """The current key id and every public key kept for verification."""
    with services(config) as svc:
        ring = svc.keys.keyring()
    return {"current": ring.current, "keys": [k.key_id for k in ring.keys]}


@keys_app.command("rotate")
@command
def keys_rotate(config: ConfigOpt = None, as_json: JsonOpt = False) -> dict[str, object]:
    """New signing key; old public keys stay so earlier signatures still verify."""
    with services(config) as svc:
        key = svc.keys.rotate()
        return {"key_id": key.key_id, "keys": len(svc.keys.keyring().keys)}


@keys_app.command("export-public")
@command
def keys_export(out: Annotated[Path | None, typer.Option("--out")] = None,
                config: ConfigOpt = None) -> None:
    """Print (or write) the current public key as PEM, to publish for verifiers."""
    with services(config) as svc:
        pem = svc.keys.keyring().current_key.to_pem()
    if out is None:
        typer.echo(pem.decode(), nl=False)
    else:
        out.write_bytes(pem)


@command
def process(
    recording: Annotated[str | None, typer.Argument(help="Recording id.")] = None,
    all_pending: Annotated[bool, typer.Option("--all", help="Every pending recording.")] = False,
    config: ConfigOpt = None, as_json: JsonOpt = False,
) -> Reply:
    """Make the archival renditions that are missing (idempotent)."""
    with services(config) as svc:
        renderer = svc.renderer()
        if recording is not None:
            rows = [renderer.render(svc.catalog.recording(recording))]
        elif all_pending:
            rows = [renderer.render(r) for r in renderer.pending()]
        else:
            raise NotFound("name a recording id or pass --all")
        report: list[dict[str, object]] = [
            {"recording_id": r.recording_id, "status": r.status, "code": r.code,
             "reason": r.reason, "merkle_root": r.merkle_root} for r in rows]
    return Reply({"renditions": report}, human=lambda: _print_renditions(report),
                 exit_code=1 if any(r["status"] == "failed" for r in report) else 0)


def _print_renditions(report: list[dict[str, object]]) -> None:
    for r in report:
        typer.echo(f"{r['status']:7} {r['code']:28} {r['recording_id']} {r['reason']}")


@command
def recover(
    recording: Annotated[str, typer.Argument(help="Recording id of a damaged original.")],
    config: ConfigOpt = None, as_json: JsonOpt = False,
) -> Reply:
    """Salvage what is readable from a damaged recording, as a labelled derivative."""
    from ingest.salvage import Recoverer

    with services(config) as svc:
        row = Recoverer(store=svc.store, catalog=svc.catalog, prober=svc.prober,
                        clock=svc.clock).recover(svc.catalog.recording(recording))
        result = {"derivative_id": row.id, "status": row.status, "code": row.code,
                  "reason": row.reason, "label": row.label, "blake3": row.blake3}
    return Reply(result, exit_code=0 if result["status"] == "ok" else 1)


__all__ = ["keys_app", "process", "recover"]
