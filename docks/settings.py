"""The dock daemon's settings: ``Settings.dock``, loaded by the one config loader.

The ``[dock]`` table may also come from a separate file (``$EVIDOCK_HOME/dock.toml`` or
``EVIDOCK_DOCK_CONFIG``), which keeps per-station bay maps apart from the shared config;
:func:`config.load_settings` reads it as one of its layers.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from config import Settings
from config.dock import DRIVERS, BayEntry, CameraEntry, DockSettings, SourceKind, WipePolicy
from config.loader import with_dock_table

__all__ = ["DRIVERS", "BayEntry", "CameraEntry", "DockSettings", "SourceKind", "WipePolicy",
           "load_dock_settings", "mount_dir", "run_dir", "status_file"]


def run_dir(settings: Settings) -> Path:
    """Status file and private mount points: ``dock.run_dir``, else $EVIDOCK_HOME/run."""
    return Path(settings.dock.run_dir) if settings.dock.run_dir else settings.home / "run"


def status_file(settings: Settings) -> Path:
    return run_dir(settings) / "dock-status.json"


def mount_dir(settings: Settings) -> Path:
    return run_dir(settings) / "mnt"


def load_dock_settings(settings: Settings, raw: Mapping[str, Any] | None) -> DockSettings:
    """A ``[dock]`` table checked as the loader checks it (camera models must exist)."""
    return with_dock_table(settings, raw or {}).dock
