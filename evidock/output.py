"""How commands speak: one line for people, one JSON object for machines."""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

import typer

from integrity.errors import EvidockError


def emit_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, indent=None, default=str) + "\n")
    sys.stdout.flush()


def show(obj: dict[str, object], as_json: bool) -> None:
    """A flat result: one JSON object, or ``key: value`` lines for people."""
    if as_json:
        emit_json(obj)
    else:
        for key, value in obj.items():
            typer.echo(f"{key}: {value}")


def fail(exc: EvidockError, *, as_json: bool) -> NoReturn:
    """End the command with ``exc``: its exit code and one line (or the JSON error)."""
    if as_json:
        emit_json({"error": exc.to_dict()})
    else:
        typer.echo(f"evidock: {exc.code}: {exc.message}", err=True)
    raise typer.Exit(exc.exit_code)
