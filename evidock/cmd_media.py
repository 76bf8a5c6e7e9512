"""CLI: station keys, renditions (process) and recovery. Offline verification is
evidock/cmd_verify.py; clip exports go through approved requests (evidock/cmd_export.py).

`keys init|rotate` change the key files, so they are the operator's (root or the
service account) and run in-process; everything else asks the station service.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from evidock.cli_base import ConfigOpt, JsonOpt, Reply, command

keys_app = typer.Typer(no_args_is_help=True,
                       help="The station's signing keys (Ed25519, or SM2 in the gm profile).")
ProfileOpt = Annotated[str | None, typer.Option(
    "--profile", help="default (Ed25519) or gm (SM2 with SM3, GB/T 32918).")]


@keys_app.command("init")
@command
def keys_init(config: ConfigOpt = None, profile: ProfileOpt = None,
              as_json: JsonOpt = False) -> dict[str, object]:
    """Create the station key (once; `evidock init` does); show it if it exists.
    Root or the service account only."""
    from config import load_settings
    from evidock.operators import follow_home, require_operator
    from evidock.wiring import Services

    require_operator(config, command="keys init")
    svc = Services.from_config(load_settings(config_file=config))
    try:
        key, created = svc.keys.init(profile=profile)
        follow_home(svc.settings, svc.keys.directory)
        return {"key_id": key.key_id, "created": created, "alg": key.alg,
                "private_key": str(svc.keys.private_path)}
    finally:
        svc.close()


@keys_app.command("show")
@command
def keys_show(config: ConfigOpt = None, as_json: JsonOpt = False) -> dict[str, object]:
    """The current key id and every public key kept for verification."""
    from evidock.client import station

    with station(config) as st:
        answer: dict[str, object] = st.get("/keys")
    return answer


@keys_app.command("rotate")
@command
def keys_rotate(config: ConfigOpt = None, profile: ProfileOpt = None,
                as_json: JsonOpt = False) -> dict[str, object]:
    """New signing key (same algorithm, or --profile's); old public keys stay so earlier
    signatures still verify. Root or the service account only."""
    from config import load_settings
    from evidock.operators import follow_home, require_operator
    from evidock.wiring import Services

    require_operator(config, command="keys rotate")
    svc = Services.from_config(load_settings(config_file=config))
    try:
        key = svc.keys.rotate(profile=profile)
        follow_home(svc.settings, svc.keys.directory)
        return {"key_id": key.key_id, "alg": key.alg, "keys": len(svc.keys.keyring().keys)}
    finally:
        svc.close()


@keys_app.command("export-public")
@command
def keys_export(out: Annotated[Path | None, typer.Option("--out")] = None,
                keyring: Annotated[bool, typer.Option(
                    "--keyring", help="Every public key as a keyring file (JSON), for a "
                    "center's [[witness.stations]] or a station's [center] keyring.")]
                = False,
                config: ConfigOpt = None) -> None:
    """Print (or write) the current public key as PEM, to publish for verifiers."""
    import json

    from evidock.client import station

    with station(config) as st:
        text = (json.dumps(st.get("/keys/keyring"), indent=2) + "\n" if keyring
                else str(st.get("/keys/public")["pem"]))
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_bytes(text.encode("ascii"))  # the client's path, written by the client


@command
def process(
    recording: Annotated[str | None, typer.Argument(help="Recording id.")] = None,
    all_pending: Annotated[bool, typer.Option("--all", help="Every pending recording.")] = False,
    config: ConfigOpt = None, as_json: JsonOpt = False,
) -> Reply:
    """Make the archival renditions that are missing (idempotent)."""
    from evidock.client import station

    with station(config) as st:
        answer: dict[str, Any] = st.post("/renditions", {"recording": recording,
                                                         "all": all_pending})
    report: list[dict[str, Any]] = answer["renditions"]
    return Reply(answer, human=lambda: _print_renditions(report),
                 exit_code=1 if any(r["status"] == "failed" for r in report) else 0)


def _print_renditions(report: list[dict[str, Any]]) -> None:
    for r in report:
        typer.echo(f"{r['status']:7} {r['code']:28} {r['recording_id']} {r['reason']}")


@command
def recover(
    recording: Annotated[str, typer.Argument(help="Recording id of a damaged original.")],
    config: ConfigOpt = None, as_json: JsonOpt = False,
) -> Reply:
    """Salvage what is readable from a damaged recording, as a labelled derivative."""
    from evidock.client import station

    with station(config) as st:
        result: dict[str, Any] = st.post("/derivatives", {"recording": recording})
    return Reply(result, exit_code=0 if result["status"] == "ok" else 1)


__all__ = ["keys_app", "process", "recover"]
