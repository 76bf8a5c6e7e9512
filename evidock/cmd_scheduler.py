"""CLI: scheduler commands (being written)."""

from __future__ import annotations

import typer

scheduler_app = typer.Typer(no_args_is_help=True, help="scheduler commands.")
