"""The dock file (``$EVIDOCK_HOME/dock.toml`` or EVIDOCK_DOCK_CONFIG) is one layer of the
one loader: over the main config's ``[dock]``, under environment overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from config import load_settings
from integrity.errors import ConfigError

CAMERA = '[[dock.cameras]]\nname = "zfy"\nvendor_id = "2bdf"\ncamera_model = "{model}"\n'


def test_dock_toml_in_home_overrides_the_dock_table_key_by_key(tmp_path: Path) -> None:
    (tmp_path / "evidock.toml").write_text("[dock]\nmax_parallel = 3\nwipe = 'never'\n")
    (tmp_path / "dock.toml").write_text("[dock]\nwipe = 'remote'\n" + CAMERA.format(
        model="generic-dcim") + "[station]\nid = 'ignored'\n")
    s = load_settings(environ={"EVIDOCK_HOME": str(tmp_path)})
    assert (s.dock.max_parallel, s.dock.wipe) == (3, "remote")
    assert [c.name for c in s.dock.cameras] == ["zfy"]
    assert s.station.id != "ignored"  # only the [dock] table of the dock file counts


def test_named_dock_file_then_environment(tmp_path: Path) -> None:
    named = tmp_path / "bays.toml"
    named.write_text("[dock]\nmax_parallel = 5\nsettle_s = 2\n")
    s = load_settings(environ={"EVIDOCK_HOME": str(tmp_path), "EVIDOCK_DOCK_CONFIG": str(named),
                               "EVIDOCK_DOCK__MAX_PARALLEL": "7"})
    assert (s.dock.max_parallel, s.dock.settle_s) == (7, 2)


@pytest.mark.parametrize(("text", "key"), [
    (CAMERA.format(model="nope"), "dock.cameras"),
    ("dock = 3\n", "dock"),
    ("[dock]\nwipe = 'always'\n", "dock.wipe"),
])
def test_bad_dock_file_names_the_key(tmp_path: Path, text: str, key: str) -> None:
    (tmp_path / "dock.toml").write_text(text)
    with pytest.raises(ConfigError) as err:
        load_settings(environ={"EVIDOCK_HOME": str(tmp_path)})
    assert err.value.details["key"] == key
    assert "\n" not in str(err.value)


def test_a_named_dock_file_that_is_missing_is_an_error(tmp_path: Path) -> None:
    gone = tmp_path / "gone.toml"
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(environ={"EVIDOCK_HOME": str(tmp_path), "EVIDOCK_DOCK_CONFIG": str(gone)})
