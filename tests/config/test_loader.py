"""The config loader: defaults, files, environment overrides, one clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from config import load_settings
from fixtures import camera as fx
from integrity.errors import ConfigError


def test_defaults_put_everything_under_home(tmp_path: Path) -> None:
    s = load_settings(environ={"EVIDOCK_HOME": str(tmp_path)})
    assert s.home == tmp_path
    assert s.store_dir == tmp_path / "store"
    assert s.catalog_url == f"sqlite:///{tmp_path / 'catalog.sqlite3'}"
    assert s.ingest.default_camera_model in {m.name for m in s.camera_models}


def test_camera_model_patterns_match_the_fixture_schemes(tmp_path: Path) -> None:
    s = load_settings(environ={"EVIDOCK_HOME": str(tmp_path)})
    assert s.camera_model("generic-dcim").patterns == (fx.SCHEME_A_PATTERN,)
    assert s.camera_model("generic-record").patterns == (fx.SCHEME_B_PATTERN,)
    assert s.camera_model("generic-dcim").start_format == fx.SCHEME_A_START_FORMAT
    assert s.camera_model("generic-record").start_format == fx.SCHEME_B_START_FORMAT


def test_env_overrides_are_typed(tmp_path: Path) -> None:
    s = load_settings(environ={"EVIDOCK_HOME": str(tmp_path), "EVIDOCK_INGEST__MAX_DEPTH": "8",
                               "EVIDOCK_STATION__ID": "bay-room-3"})
    assert s.ingest.max_depth == 8
    assert s.station.id == "bay-room-3"


def test_file_in_home_is_read(tmp_path: Path) -> None:
    (tmp_path / "evidock.toml").write_text('[station]\nid = "from-file"\n')
    assert load_settings(environ={"EVIDOCK_HOME": str(tmp_path)}).station.id == "from-file"


@pytest.mark.parametrize(("text", "key"), [
    ("[ingest]\nmax_depth = 0\n", "ingest.max_depth"),
    ("[ingest]\nchunk_size = 'big'\n", "ingest.chunk_size"),
    ("[ingest]\nchunk_size = 5000\n", "ingest.chunk_size"),  # not whole pages
    ("[station]\ncamera_timezone = 'Mars/Olympus'\n", "station.camera_timezone"),
    ("[ingest]\nno_such_key = 1\n", "ingest.no_such_key"),
    ("[ingest]\ndefault_camera_model = 'nope'\n", "ingest.default_camera_model"),
    ("[[camera_models]]\nname='x'\npatterns=['(']\nstart_format='%Y'\n", "camera_models"),
])
def test_bad_config_names_the_key(tmp_path: Path, text: str, key: str) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings(config_file=cfg, environ={"EVIDOCK_HOME": str(tmp_path)})
    assert key in str(info.value)
    assert "\n" not in str(info.value)


def test_not_toml_is_a_config_error(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("this is [ not toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(config_file=cfg, environ={"EVIDOCK_HOME": str(tmp_path)})
