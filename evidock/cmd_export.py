"""CLI: export commands (being written)."""

from __future__ import annotations

import typer

export_app = typer.Typer(no_args_is_help=True, help="export commands.")
