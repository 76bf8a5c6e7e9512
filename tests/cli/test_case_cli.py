"""`evidock case …` and `evidock recording …` as users run them: Chinese case numbers end
to end, JSON shapes, exit codes of refusals, and the acting user.

One station (agency config + the template camera, offloaded once) per module; each
subprocess costs about two seconds, so only the end-to-end tests (real argv, stdout and
exit codes) start one; the other commands run in-process.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from evidock_testing import ok_json, run_evidock, write_agency_config
from typer.testing import CliRunner

from evidock.cli import app
from fixtures.camera import CameraTree

NUMBER = "邵城管罚〔2019〕第001号"


def evidock(home: Path, *args: str, user: str | None = "clerk",
            env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_evidock(home, *args, user=user, env=env)


@dataclass
class Station:
    home: Path
    video_id: str
    photo_id: str
    audio_id: str


@pytest.fixture(scope="module")
def station(tmp_path_factory: pytest.TempPathFactory, camera_template: CameraTree) -> Station:
    home = tmp_path_factory.mktemp("case-cli") / "home"
    write_agency_config(home)
    report = ok_json(evidock(home, "ingest", str(camera_template.root), "--device", "ZFY0001",
                             "--no-process", "--json"))
    files = sorted((f["path"], f["recording_id"]) for f in report["files"])
    video = next(rid for path, rid in files if path.endswith("_0001.MP4"))
    photo = next(rid for path, rid in files if path.endswith(".JPG"))
    audio = next(rid for path, rid in files if path.endswith(".WAV"))
    return Station(home, video_id=video, photo_id=photo, audio_id=audio)


def test_a_chinese_case_number_survives_create_link_show_and_list(station: Station) -> None:
    created = ok_json(evidock(station.home, "case", "create", NUMBER, "--type", "行政处罚",
                              "--unit", "城东中队", "--title", "违规占道经营", "--json"))
    assert created["number"] == NUMBER and created["created_by"] == "clerk"
    # An absolute start: the camera named this file 16:30:00 local time (08:30:00 UTC).
    link = ok_json(evidock(station.home, "case", "link", NUMBER, station.video_id,
                           "--stage", "立案", "--reason", "现场检查全过程",
                           "--start", "2026-11-20T16:30:01+08:00", "--end", "0:00:02",
                           "--json"))
    assert (link["start_us"], link["end_us"], link["stage"]) == (1_000_000, 2_000_000, "立案")

    run = evidock(station.home, "case", "show", NUMBER, "--json")
    assert run.returncode == 0, run.stderr
    shown = json.loads(run.stdout)
    assert shown["case"]["number"].encode() == NUMBER.encode()
    assert NUMBER.encode() in run.stdout.encode()  # not \u-escaped
    assert [x["id"] for x in shown["links"]] == [link["id"]]
    assert [r["id"] for r in shown["recordings"]] == [station.video_id]

    listed = evidock(station.home, "case", "list")
    assert listed.returncode == 0, listed.stderr
    assert NUMBER in listed.stdout and "违规占道经营" in listed.stdout


def test_refusals_exit_3_and_bad_requests_exit_1(station: Station) -> None:
    refused = ok_json(evidock(station.home, "case", "create", "邵城管罚〔2019〕第009号",
                              "--type", "行政处罚", "--unit", "城东中队", "--json",
                              user="officer"), 3)
    assert refused["error"]["code"] == "E_FORBIDDEN"
    bad = evidock(station.home, "case", "create", "2019-009", "--type", "行政处罚",
                  "--unit", "城东中队")
    assert bad.returncode == 1
    assert bad.stderr.startswith("evidock: E_INVALID: ") and bad.stdout == ""
    missing = ok_json(evidock(station.home, "case", "show", "邵城管罚〔2019〕第404号",
                              "--json"), 1)
    assert missing["error"]["code"] == "E_NOT_FOUND"


def test_an_unknown_os_user_is_refused_with_exit_3(station: Station) -> None:
    run = evidock(station.home, "case", "list", "--json", user=None)
    assert ok_json(run, 3)["error"]["code"] == "E_UNKNOWN_USER"


def cli(station: Station, *args: str, user: str = "clerk2", code: int = 0) -> Any:
    """One command in-process (no interpreter start-up), its JSON result."""
    run = CliRunner().invoke(app, [*args, "--json"], env={
        "EVIDOCK_HOME": str(station.home), "EVIDOCK_USER": user, "EVIDOCK_CONFIG": None})
    assert run.exit_code == code, (args, run.stdout, run.stderr)
    return json.loads(run.stdout)


def test_stage_marks_documents_close_and_reopen_in_process(station: Station,
                                                          tmp_path: Path) -> None:
    number, photo = "邵城管罚〔2019〕第002号", station.photo_id
    doc = tmp_path / "现场检查笔录.pdf"
    doc.write_bytes(b"%PDF-1.4 record")
    cli(station, "case", "create", number, "--type", "行政检查", "--unit", "城西中队")
    cli(station, "case", "link", number, photo, "--stage", "现场检查", "--reason", "r")
    stage = cli(station, "case", "stage", number, "现场检查", "--start", "2026-11-20T16:00",
                "--end", "2026-11-20T17:00", "--note", "笔录第2页")
    assert stage["start_at"] == "2026-11-20T08:00:00+00:00"  # naive: agency local time
    assert cli(station, "recording", "mark", photo, "作为证据使用", "--reason", "证据")[
        "marks"] == ["作为证据使用"]
    assert cli(station, "recording", "mark", photo, "作为证据使用", "--reason", "again",
               code=1)["error"]["code"] == "E_CONFLICT"
    assert cli(station, "recording", "categorize", photo, "日常巡查", "--reason", "r")[
        "category"] == "日常巡查"
    attached = cli(station, "case", "attach", number, str(doc), "--description", "笔录")
    assert (attached["filename"], attached["size"]) == ("现场检查笔录.pdf", 15)
    closed = cli(station, "case", "close", number, "--reason", "结案", "--date", "2026-11-21")
    assert closed["closed_at"] == "2026-11-20T16:00:00+00:00"  # local midnight, in UTC
    assert cli(station, "case", "reopen", number, "--reason", "复议")["status"] == "open"

    (hit,) = cli(station, "case", "find", "--unit", "城西中队", "--stage", "现场检查")[
        "recordings"]
    assert hit["recording"]["id"] == photo
    assert (hit["recording"]["marks"], hit["recording"]["category"]) == (["作为证据使用"],
                                                                         "日常巡查")
    assert [x["case"] for x in hit["links"]] == [number]
    shown = cli(station, "case", "show", number, user="officer")
    assert shown["attachments"][0]["sha256"] == attached["sha256"]
    assert [s["note"] for s in shown["stages"]] == ["笔录第2页"]


def test_unlink_and_unmark_in_process(station: Station) -> None:
    number, audio = "邵城管罚〔2019〕第003号", station.audio_id
    cli(station, "case", "create", number, "--type", "行政检查", "--unit", "城西中队")
    link = cli(station, "case", "link", number, audio, "--stage", "送达", "--reason", "r")
    assert cli(station, "case", "find", "--case", number, user="clerk")["recordings"]
    assert cli(station, "case", "list", "--unit", "城西中队", "--status", "open")[
        "cases"][-1]["number"] == number

    assert cli(station, "case", "unlink", str(link["id"]), "--reason", "错")["active"] is False
    assert cli(station, "case", "find", "--case", number)["recordings"] == []
    cli(station, "recording", "mark", audio, "妨碍执法", "--reason", "r")
    assert cli(station, "recording", "mark", audio, "妨碍执法", "--reason", "r",
               "--remove")["marks"] == []
    assert cli(station, "case", "find", "--since", "yesterday", code=1)["error"][
        "code"] == "E_INVALID"
