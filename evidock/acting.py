"""Run a command body as the evidock user this OS account maps to."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from config import load_settings
from evidock.output import guarded
from evidock.wiring import Services
from records.permissions import Actor

T = TypeVar("T")


def as_user(config: Path | None, as_json: bool, fn: Callable[[Services, Actor], T]) -> T:
    """Wire services, identify the user, run ``fn``; errors become exit code + one line."""
    def body() -> T:
        svc = Services.from_config(load_settings(config_file=config))
        try:
            return fn(svc, svc.actor())
        finally:
            svc.close()
    return guarded(as_json, body)
