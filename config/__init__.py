"""Settings schema and the one loader (TOML file + environment overrides)."""

from config.loader import load_settings, write_default_config
from config.settings import CameraModel, Settings

__all__ = ["CameraModel", "Settings", "load_settings", "write_default_config"]
