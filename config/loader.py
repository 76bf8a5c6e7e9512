"""The one configuration loader: packaged defaults, a TOML file, the dock file, environment
overrides. Every command, the dock daemon and the scheduler load settings through it."""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from config.settings import Settings
from integrity.errors import ConfigError

ENV_PREFIX = "EVIDOCK_"
_RESERVED = {"EVIDOCK_HOME", "EVIDOCK_CONFIG", "EVIDOCK_DOCK_CONFIG"}
DEFAULT_HOME = Path.home() / ".local" / "share" / "evidock"
# A model-level check names its key at the start of its message ("dock.cameras: ...").
_KEYED_MESSAGE = re.compile(r"^([a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)*): (.+)$", re.DOTALL)


def default_toml() -> str:
    return resources.files("config").joinpath("evidock.toml").read_text(encoding="utf-8")


def load_settings(
    *, config_file: Path | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Build Settings; any problem raises ConfigError naming the key at fault.

    Layers, later ones winning: built-in defaults; ``config_file`` (else EVIDOCK_CONFIG,
    else $EVIDOCK_HOME/evidock.toml when present); the ``[dock]`` table of the dock file
    (EVIDOCK_DOCK_CONFIG, else $EVIDOCK_HOME/dock.toml when present), which keeps a
    station's bay map apart from the shared config; EVIDOCK_<SECTION>__<KEY> variables.
    """
    env = os.environ if environ is None else environ
    home = _home(env)
    data = _parse(default_toml(), "built-in defaults")
    chosen = _config_path(config_file, env, home)
    if chosen is not None:
        data = _merge(data, _read_file(chosen))
    data = _merge(data, _dock_layer(home, env))
    data = _merge(data, _env_overrides(env))
    data["home"] = str(home)
    return validate_settings(data)


def config_files(*, config_file: Path | None = None,
                 environ: Mapping[str, str] | None = None) -> tuple[Path, ...]:
    """The files :func:`load_settings` reads with these arguments (for trust checks)."""
    env = os.environ if environ is None else environ
    home = _home(env)
    chosen = _config_path(config_file, env, home)
    dock = _dock_path(home, env)
    return tuple(p for p in (chosen, dock) if p is not None)


def _home(env: Mapping[str, str]) -> Path:
    return Path(env.get("EVIDOCK_HOME") or DEFAULT_HOME).expanduser().absolute()


def _config_path(config_file: Path | None, env: Mapping[str, str], home: Path) -> Path | None:
    chosen = config_file or (Path(env["EVIDOCK_CONFIG"]) if env.get("EVIDOCK_CONFIG") else None)
    if chosen is None and (home / "evidock.toml").is_file():
        chosen = home / "evidock.toml"
    return chosen


def _dock_path(home: Path, env: Mapping[str, str]) -> Path | None:
    named = env.get("EVIDOCK_DOCK_CONFIG")
    path = Path(named) if named else home / "dock.toml"
    return path if named or path.is_file() else None


def with_dock_table(settings: Settings, table: Mapping[str, Any]) -> Settings:
    """``settings`` with its ``[dock]`` table replaced, checked exactly as when loaded."""
    return validate_settings({**dict(settings), "dock": dict(table)})


def _dock_layer(home: Path, env: Mapping[str, str]) -> dict[str, Any]:
    """``{"dock": table}`` from the dock file; nothing when the default one is absent."""
    path = _dock_path(home, env)
    if path is None:
        return {}
    table = _read_file(path).get("dock", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [dock] must be a table", key="dock", file=str(path))
    return {"dock": table}


def _read_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}", file=str(path)) from exc
    return _parse(text, str(path))


def _parse(text: str, origin: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{origin}: not valid TOML: {exc}", file=origin) from exc


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge tables; arrays (camera_models, dock.bays) are replaced, not appended."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _env_overrides(env: Mapping[str, str]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name, raw in env.items():
        if not name.startswith(ENV_PREFIX) or name in _RESERVED or "__" not in name:
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX):].split("__")]
        if not all(parts):
            raise ConfigError(f"environment override {name}: empty key part", key=name)
        node = found
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = _literal(raw)
    return found


def _literal(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def validate_settings(data: Mapping[str, Any]) -> Settings:
    """Settings from parsed TOML; the first problem becomes one ConfigError line."""
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        keyed = _KEYED_MESSAGE.match(message)
        if not key and keyed:
            key, message = keyed.groups()
        key = key or "(top level)"
        raise ConfigError(f"config key {key}: {message}", key=key, errors=len(exc.errors())) \
            from exc


def write_default_config(path: Path) -> bool:
    """Write the commented defaults to ``path`` unless it exists. True if written."""
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(default_toml(), encoding="utf-8")
    os.replace(tmp, path)
    return True
