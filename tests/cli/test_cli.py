"""The evidock command as a user runs it: exit codes, one-line errors, JSON shape."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from evidock_testing import migrated_home


def evidock(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "evidock", *args], capture_output=True,
                          text=True, timeout=300,
                          env=dict(os.environ, EVIDOCK_HOME=str(home), **env))


def test_init_is_idempotent(tmp_path: Path) -> None:
    home = tmp_path / "h"
    first = evidock(home, "init", "--json")
    second = evidock(home, "init", "--json")
    assert first.returncode == second.returncode == 0
    assert json.loads(first.stdout)["config_written"] is True
    assert json.loads(second.stdout)["config_written"] is False
    assert (home / "catalog.sqlite3").is_file() and (home / "store").is_dir()


def test_ingest_json_shape_and_exit_codes(tmp_path: Path, camera: Path) -> None:
    home = migrated_home(tmp_path / "h")
    run = evidock(home, "ingest", str(camera), "--device", "ZFY0001", "--json")
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert set(out) == {"session", "files", "summary", "renditions"}
    assert {r["code"] for r in out["renditions"]} >= {"R_REMUX", "R_NONE"}
    for f in out["files"]:
        assert {"path", "status", "code", "size", "blake3", "sha256", "recording_id"} <= set(f)
    assert out["summary"]["ingested"] == len(out["files"])
    (camera / "DCIM" / "100MEDIA" / "oops.MP4").write_bytes(b"")
    run = evidock(home, "ingest", str(camera), "--device", "ZFY0001", "--json")
    assert run.returncode == 1
    summary = json.loads(run.stdout)["summary"]
    assert summary["duplicate"] == len(out["files"]) and summary["flagged"] == 1


def test_human_output_names_each_file(tmp_path: Path, camera: Path) -> None:
    run = evidock(migrated_home(tmp_path / "h"), "ingest", str(camera), "--device", "ZFY0001",
                  COLUMNS="200")
    assert run.returncode == 0, run.stderr
    assert "completed" in run.stdout and "ingested" in run.stdout


@pytest.mark.parametrize(("args", "code"), [
    (["ingest", "/nonexistent/camera", "--device", "X"], "E_SOURCE_INVALID"),
    (["ingest", ".", "--device", "X", "--model", "nope"], "E_CONFIG"),
])
def test_fatal_errors_are_one_line_and_exit_2(tmp_path: Path, args: list[str],
                                              code: str) -> None:
    run = evidock(migrated_home(tmp_path / "h"), *args)
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"evidock: {code}:")
    run = evidock(tmp_path / "h", *args, "--json")
    assert json.loads(run.stdout)["error"]["code"] == code


def test_bad_config_is_one_line_naming_the_key(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[ingest]\nmax_depth = -3\n")
    run = evidock(tmp_path / "h", "init", "--config", str(cfg))
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1 and "ingest.max_depth" in run.stderr


def test_disk_full_is_fatal_and_leaves_camera_untouched(tmp_path: Path, camera: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs as the store")
    small = tmp_path / "small"
    small.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(small)],
                             capture_output=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        before = sorted(p.name for p in camera.rglob("*"))
        run = evidock(migrated_home(tmp_path / "h"), "ingest", str(camera), "--device",
                      "ZFY0001", "--json", "--wipe-after-verify",
                      EVIDOCK_PATHS__STORE=str(small / "store"))
        out = json.loads(run.stdout)
        assert run.returncode == 2
        code = out["summary"]["error"]["code"] if "summary" in out else out["error"]["code"]
        assert code == "E_DISK_FULL"
        assert sorted(p.name for p in camera.rglob("*")) == before
        assert not list((small / "store" / ".staging").iterdir()), "no partial object left"
    finally:
        subprocess.run(["umount", str(small)], check=False)


def test_whoami_maps_the_account_and_refuses_strangers(tmp_path: Path) -> None:
    from evidock_testing import write_agency_config

    home = tmp_path / "home"
    write_agency_config(home)
    run = evidock(home, "whoami", "--json", EVIDOCK_USER="legal")
    assert run.returncode == 0, run.stderr
    me = json.loads(run.stdout)
    assert me["user"] == "legal" and me["display"] == "王法制"
    assert "export.approve" in me["permissions"] and "export.run" not in me["permissions"]
    stranger = evidock(home, "whoami", "--json", EVIDOCK_USER="nobody")
    assert stranger.returncode == 3
    assert json.loads(stranger.stdout)["error"]["code"] == "E_UNKNOWN_USER"
