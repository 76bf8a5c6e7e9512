"""`evidock verify-c2pa`: read an exported clip's content credentials (C2PA) offline.

Beside `evidock verify`, never instead of it: `verify` checks the station's own
signatures and stays free of c2pa; this asks the C2PA reader (c2pa-python) whether the
clip's manifest is intact and its signer chains to the anchors given.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from evidock.cli_base import JsonOpt, Reply, command
from integrity.errors import NotFound

if TYPE_CHECKING:
    from records.c2pa_sign import C2paReport


def _print(report: C2paReport, anchored: bool) -> None:
    typer.echo(f"{report.file}: {report.state}")
    for failure in report.failures:
        typer.echo(f"  {failure['code']}: {failure['explanation']}")
    if report.state == "Valid" and anchored:
        typer.echo("  intact, but the signer does not chain to the anchors given")
    elif report.state == "Valid":
        typer.echo("  intact; give --anchors (the agency's C2PA CA) to check who signed it")


@command
def verify_c2pa(
    file: Annotated[Path, typer.Argument(help="A clip with content credentials, e.g. "
                                              "PACKAGE/data/derivative/clip.mp4.")],
    anchors: Annotated[Path | None, typer.Option(
        "--anchors", help="PEM file of the trust anchors (the agency's C2PA CA).")] = None,
    as_json: JsonOpt = False,
) -> Reply:
    """Check an exported clip's C2PA manifest: Trusted (intact, signer chains to
    --anchors), Valid (intact, signer not anchored) or Invalid (each failure named)."""
    from records.c2pa_sign import read_back

    if not file.is_file():
        raise NotFound(f"{file} is not a file", path=str(file))
    if anchors is not None and not anchors.is_file():
        raise NotFound(f"--anchors: {anchors} is not a file", path=str(anchors))
    report = read_back(file, anchors_pem=anchors.read_bytes() if anchors else None)
    return Reply(report.to_dict(), human=lambda: _print(report, anchors is not None),
                 exit_code=0 if report.ok else 1)
