"""CLI: retention commands (being written)."""

from __future__ import annotations

import typer

retention_app = typer.Typer(no_args_is_help=True, help="retention commands.")
hold_app = typer.Typer(no_args_is_help=True, help="hold commands.")
