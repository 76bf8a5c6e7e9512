"""Settings schema and the one loader (TOML files + environment overrides).

The names below load on first use (PEP 562), so reading a constant such as
``config.jobs.JOB_IDS`` for CLI help does not build the whole settings schema.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from config.loader import load_settings, write_default_config
    from config.settings import CameraModel, Settings

__all__ = ["CameraModel", "Settings", "load_settings", "write_default_config"]

_HOME = {"CameraModel": "config.settings", "Settings": "config.settings",
         "load_settings": "config.loader", "write_default_config": "config.loader"}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'config' has no attribute {name!r}")
    value = getattr(import_module(_HOME[name]), name)
    globals()[name] = value
    return value
