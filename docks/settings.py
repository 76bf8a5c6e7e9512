"""The dock daemon's settings.

The ``[dock]`` table lives in the main config (``config.dock``, ``Settings.dock``). A
separate file (``$EVIDOCK_HOME/dock.toml`` or ``EVIDOCK_DOCK_CONFIG``) still overrides it
when present, which keeps per-station bay maps apart from the shared config.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from config import Settings
from config.dock import (
    DRIVERS,
    BayEntry,
    CameraEntry,
    SourceKind,
    WipePolicy,
)
from config.dock import DockSettings as _DockSettings
from integrity.errors import ConfigError

__all__ = ["DRIVERS", "BayEntry", "CameraEntry", "DockSettings", "SourceKind", "WipePolicy",
           "dock_config_file", "load_dock_settings", "read_dock_table"]


class DockSettings(_DockSettings):
    """The folded ``Settings.dock`` plus paths derived from EVIDOCK_HOME."""

    def run_path(self, settings: Settings) -> Path:
        return Path(self.run_dir) if self.run_dir else settings.home / "run"

    def status_file(self, settings: Settings) -> Path:
        return self.run_path(settings) / "dock-status.json"

    def mount_dir(self, settings: Settings) -> Path:
        return self.run_path(settings) / "mnt"


def load_dock_settings(settings: Settings, raw: Mapping[str, Any] | None) -> DockSettings:
    """Validate the raw ``[dock]`` table; camera models must exist in ``settings``."""
    try:
        dock = DockSettings.model_validate(dict(raw or {}))
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(["dock", *(str(p) for p in first["loc"])])
        message = first["msg"].removeprefix("Value error, ")
        raise ConfigError(f"config key {key}: {message}", key=key) from exc
    known = {m.name for m in settings.camera_models}
    wanted = [("cameras", c.camera_model) for c in dock.cameras]
    wanted += [("bays", b.camera_model) for b in dock.bays if b.camera_model]
    for where, name in wanted:
        if name not in known:
            raise ConfigError(f"config key dock.{where}: camera model {name!r} is not one of "
                              f"camera_models {sorted(known)}", key=f"dock.{where}")
    return dock


def dock_config_file(settings: Settings, env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    named = env.get("EVIDOCK_DOCK_CONFIG")
    return Path(named) if named else settings.home / "dock.toml"


def read_dock_table(path: Path) -> dict[str, Any]:
    """The ``[dock]`` table of a TOML file; an absent file means all defaults."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read dock config {path}: {exc}", file=str(path)) from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}", file=str(path)) from exc
    table = data.get("dock", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [dock] must be a table", key="dock")
    return table
