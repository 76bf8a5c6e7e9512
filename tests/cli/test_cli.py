"""The evidock command as people run it: exit codes, one-line errors, JSON shape.

`init` is the operator's (root or the service account) and works on the files itself;
`ingest` and `whoami` run as real agency accounts against a real `evidock serve`
(tests/service_support.py), which reads the camera as its own account.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from evidock_testing import AGENCY_TOML, write_agency_config
from service_support import (
    SERVICE_ACCOUNT,
    RunningService,
    audit_events,
    ensure_accounts,
    open_copy,
    open_dir,
    run_as,
    serving,
)
from small_disk import tmpfs

from fixtures.camera import CameraTree

EVIDOCK = [sys.executable, "-m", "evidock"]


def evidock(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`evidock ARGS` as this (root) process: the operator."""
    return subprocess.run([*EVIDOCK, *args], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, EVIDOCK_HOME=str(home), **env))


@pytest.fixture
def open_home() -> Iterator[Path]:
    """A home path every test account can reach (pytest's tmp is root's alone)."""
    parent = open_dir("evidock-home-")
    yield parent / "home"
    shutil.rmtree(parent, ignore_errors=True)


@pytest.fixture
def shared_camera(camera_template: CameraTree) -> Iterator[Path]:
    """The template camera where every test account can read it (and nobody swap it)."""
    with open_copy(camera_template.root) as cam:
        yield cam


def test_init_is_idempotent_and_hands_the_station_to_the_service_account(
        tmp_path: Path) -> None:
    ensure_accounts()
    home = tmp_path / "h"
    first = evidock(home, "init", "--account", SERVICE_ACCOUNT, "--json")
    second = evidock(home, "init", "--account", SERVICE_ACCOUNT, "--json")
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    one, two = json.loads(first.stdout), json.loads(second.stdout)
    assert one["config_written"] is True and two["config_written"] is False
    assert one["key_id"] == two["key_id"] and one["account"] == SERVICE_ACCOUNT
    assert (home / "catalog.sqlite3").is_file() and (home / "store").is_dir()
    service = _uid(SERVICE_ACCOUNT)
    for path, mode in [(home, 0o750), (home / "keys", 0o700), (home / "store", 0o750),
                       (home / "catalog.sqlite3", 0o600), (home / "keys" / "station.key", 0o600)]:
        st = path.stat()
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (service, mode), path
    config = (home / "evidock.toml").stat()  # the rules stay root's; the service reads them
    assert (config.st_uid, config.st_gid, stat.S_IMODE(config.st_mode)) == (
        0, _gid(SERVICE_ACCOUNT), 0o640)


def test_init_as_root_needs_an_existing_service_account(tmp_path: Path) -> None:
    run = evidock(tmp_path / "h", "init", "--account", "evt-no-such-account", "--json")
    assert run.returncode == 2
    error = json.loads(run.stdout)["error"]
    assert (error["code"], error["details"]["key"]) == ("E_CONFIG", "service.account")


@pytest.mark.parametrize("args", [
    ["init"], ["admin", "migrate"], ["admin", "migrate", "--check"], ["keys", "init"],
    ["keys", "rotate"], ["scheduler", "run-once", "overdue"], ["scheduler", "jobs"],
    ["scheduler", "run"], ["dock", "run"]])
def test_operator_commands_refuse_other_accounts(args: list[str], open_home: Path) -> None:
    ensure_accounts()
    home = open_home
    write_agency_config(home)
    before = sorted(p.name for p in home.rglob("*"))
    env = {"EVIDOCK_HOME": str(home)}
    human = run_as("evt-officer", [*EVIDOCK, *args], env=env)
    assert human.returncode == 3, (human.stdout, human.stderr)
    assert human.stderr.startswith("evidock: E_NOT_OPERATOR: ") and "root" in human.stderr
    assert human.stderr.count("\n") == 1
    if args[-1] != "run":  # the daemons print no JSON
        run = run_as("evt-officer", [*EVIDOCK, *args, "--json"], env=env)
        assert run.returncode == 3, (run.stdout, run.stderr)
        error = json.loads(run.stdout)["error"]
        assert error["code"] == "E_NOT_OPERATOR"
        assert (error["details"]["account"], error["details"]["service_account"]) == (
            "evt-officer", "evidock")
    assert sorted(p.name for p in home.rglob("*")) == before, "nothing touched"


def test_the_service_account_itself_is_an_operator(open_home: Path) -> None:
    ensure_accounts()
    home = open_home
    home.mkdir()
    (home / "evidock.toml").write_text(f'[service]\naccount = "{SERVICE_ACCOUNT}"\n')
    os.chown(home, _uid(SERVICE_ACCOUNT), _gid(SERVICE_ACCOUNT))
    env = {"EVIDOCK_HOME": str(home)}
    run = run_as(SERVICE_ACCOUNT, [*EVIDOCK, "init", "--json"], env=env)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["account"] == SERVICE_ACCOUNT
    rotated = run_as(SERVICE_ACCOUNT, [*EVIDOCK, "keys", "rotate", "--json"], env=env)
    assert rotated.returncode == 0, rotated.stderr
    assert json.loads(rotated.stdout)["keys"] == 2


def test_after_init_other_accounts_cannot_read_the_catalog_blobs_or_keys(
        shared_camera: Path, open_home: Path) -> None:
    """The service (as the service account) works on the home `init` made; an officer's
    own process cannot open what it holds."""
    home = open_home
    init = evidock(home, "init", "--account", SERVICE_ACCOUNT, "--json")
    assert init.returncode == 0, init.stderr
    (home / "evidock.toml").write_text(AGENCY_TOML, encoding="utf-8")  # root's, 0640
    with serving(home, run_as_account=SERVICE_ACCOUNT) as svc:
        run = svc.cli("ingest", str(shared_camera), "--device", "ZFY0001", "--json",
                      user="clerk")
    assert run.returncode == 0, run.stderr
    blob = json.loads(run.stdout)["files"][0]["blake3"]
    private = [home / "catalog.sqlite3", home / "store" / blob[:2] / blob[2:4] / blob,
               home / "keys" / "station.key", home / "keys" / "keyring.json"]
    assert all(p.is_file() for p in private)
    probe = ("import sys\nfor p in sys.argv[1:]:\n    try:\n        open(p, 'rb').close()\n"
             "        print('read', p)\n    except PermissionError:\n        print('denied', p)\n")
    for who in ("evt-officer", "evt-nobody"):
        out = run_as(who, [sys.executable, "-c", probe, *map(str, private)])
        assert out.returncode == 0, out.stderr
        assert out.stdout.split("\n")[:-1] == [f"denied {p}" for p in private], who


def test_ingest_json_shape_and_exit_codes(tmp_path: Path, shared_camera: Path) -> None:
    home = tmp_path / "h"
    write_agency_config(home)
    with serving(home) as svc:
        run = svc.cli("ingest", str(shared_camera), "--device", "ZFY0001", "--json")
        assert run.returncode == 0, run.stderr
        out = json.loads(run.stdout)
        assert set(out) == {"session", "files", "summary", "renditions"}
        assert {r["code"] for r in out["renditions"]} >= {"R_REMUX", "R_NONE"}
        for f in out["files"]:
            assert {"path", "status", "code", "size", "blake3", "sha256",
                    "recording_id"} <= set(f)
        assert out["summary"]["ingested"] == len(out["files"])
        (shared_camera / "DCIM" / "100MEDIA" / "oops.MP4").write_bytes(b"")
        run = svc.cli("ingest", str(shared_camera), "--device", "ZFY0001", "--json",
                      user="officer")
    assert run.returncode == 1
    summary = json.loads(run.stdout)["summary"]
    assert summary["duplicate"] == len(out["files"]) and summary["flagged"] == 1
    asked = audit_events(home, "ingest.request")  # who asked, before the camera was read
    assert [actor for actor, _ in asked] == ["user:clerk", "user:officer"]
    assert asked[0][1] == {"officer": None, "model": None, "wipe": False, "process": True}


def test_human_output_names_each_file(tmp_path: Path, shared_camera: Path) -> None:
    home = tmp_path / "h"
    write_agency_config(home)
    with serving(home) as svc:
        run = svc.cli("ingest", str(shared_camera), "--device", "ZFY0001")
    assert run.returncode == 0, run.stderr
    assert "completed" in run.stdout and "ingested" in run.stdout
    assert "DCIM" in run.stdout and "archival renditions" in run.stdout


@pytest.mark.parametrize(("args", "code"), [
    (["ingest", "/nonexistent/camera", "--device", "X"], "E_SOURCE_INVALID"),
    (["ingest", ".", "--device", "X", "--model", "nope"], "E_CONFIG"),
])
def test_fatal_errors_are_one_line_and_exit_2(agency_service: RunningService, args: list[str],
                                              code: str) -> None:
    svc = agency_service
    run = svc.cli(*args)
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"evidock: {code}:")
    run = svc.cli(*args, "--json")
    assert json.loads(run.stdout)["error"]["code"] == code


def test_ingest_is_refused_for_what_the_user_could_not_touch(
        tmp_path: Path, shared_camera: Path, open_home: Path) -> None:
    """The service reads as its own account, so it offloads only a camera the asker could
    read (and wipe only one they could write), never the station itself; refusals are
    audited, and nothing is read or deleted."""
    home = open_home  # one the clerk could read: refused as the station's own
    write_agency_config(home)
    files = sorted(p for p in shared_camera.rglob("*") if p.is_file())
    with serving(home) as svc:
        admin = svc.cli("ingest", str(shared_camera), "--device", "X", "--json",
                        user="admin")  # runs the system, offloads nothing
        shared_camera.chmod(0o700)  # root's alone now; the CLI itself would stop here,
        unreadable = _ask_directly(svc, str(shared_camera))  # so ask the API directly
        shared_camera.chmod(0o755)
        no_wipe = svc.cli("ingest", str(shared_camera), "--device", "X", "--json",
                          "--wipe-after-verify")  # readable, but not the clerk's to delete
        station = svc.cli("ingest", str(home), "--device", "X", "--json")
        private = svc.cli("ingest", str(tmp_path), "--device", "X", "--json")
    messages = []
    for run in (admin, unreadable, no_wipe, station, private):
        assert run.returncode == 3, run.stdout
        error = json.loads(run.stdout)["error"]
        assert error["code"] == "E_FORBIDDEN"
        messages.append(error["message"])
    assert "lacks ingest.run" in messages[0]
    assert "cannot be read" in messages[1] and "cannot be written" in messages[2]
    assert "the station's own files" in messages[3]
    assert "cannot be entered" in messages[4]
    assert sorted(p for p in shared_camera.rglob("*") if p.is_file()) == files
    refusals = [(actor, d["permission"]) for actor, d in audit_events(home, "access.refused")]
    assert refusals == [("user:admin", "ingest.run")] + [("user:clerk", "ingest.run")] * 4


def _ask_directly(svc: RunningService, source: str) -> subprocess.CompletedProcess[str]:
    """POST /offloads as the clerk with the client library, as a modified CLI could."""
    script = ("import json, sys\nfrom evidock.client import Station\n"
              "from integrity.errors import EvidockError\n"
              "st = Station(socket=sys.argv[1])\ntry:\n"
              "    print(json.dumps(st.post('/offloads', {'source': sys.argv[2], "
              "'device': 'X'})))\n"
              "except EvidockError as exc:\n"
              "    print(json.dumps({'error': exc.to_dict()}))\n"
              "    sys.exit(exc.exit_code)\n")
    return run_as("evt-clerk", [sys.executable, "-c", script, str(svc.socket), source])


def test_bad_config_is_one_line_naming_the_key(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[ingest]\nmax_depth = -3\n")
    run = evidock(tmp_path / "h", "init", "--config", str(cfg))
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1 and "ingest.max_depth" in run.stderr


def test_disk_full_is_fatal_and_leaves_camera_untouched(tmp_path: Path,
                                                        shared_camera: Path) -> None:
    with tmpfs(tmp_path / "small", "600k") as small:
        home = tmp_path / "h"
        write_agency_config(home)
        before = sorted(p.name for p in shared_camera.rglob("*"))
        os.chown(shared_camera, _uid("evt-clerk"), -1)  # the clerk's camera: theirs to wipe
        with serving(home, env={"EVIDOCK_PATHS__STORE": str(small / "store")}) as svc:
            run = svc.cli("ingest", str(shared_camera), "--device", "ZFY0001", "--json",
                          "--wipe-after-verify")
        out = json.loads(run.stdout)
        assert run.returncode == 2
        code = out["summary"]["error"]["code"] if "summary" in out else out["error"]["code"]
        assert code == "E_DISK_FULL"
        assert sorted(p.name for p in shared_camera.rglob("*")) == before
        assert not list((small / "store" / ".staging").iterdir()), "no partial object left"


def test_whoami_maps_the_account_and_refuses_strangers(agency_service: RunningService,
                                                       ) -> None:
    run = agency_service.cli("whoami", "--json", user="legal")
    stranger = agency_service.cli("whoami", "--json", user="evt-nobody")
    assert run.returncode == 0, run.stderr
    me = json.loads(run.stdout)
    assert me["user"] == "legal" and me["display"] == "王法制"
    assert "export.approve" in me["permissions"] and "export.run" not in me["permissions"]
    assert stranger.returncode == 3
    assert json.loads(stranger.stdout)["error"]["code"] == "E_UNKNOWN_USER"


def _uid(name: str) -> int:
    import pwd

    return pwd.getpwnam(name).pw_uid


def _gid(name: str) -> int:
    import pwd

    return pwd.getpwnam(name).pw_gid
