"""CLI: case commands (being written)."""

from __future__ import annotations

import typer

case_app = typer.Typer(no_args_is_help=True, help="case commands.")
recording_app = typer.Typer(no_args_is_help=True, help="recording commands.")
