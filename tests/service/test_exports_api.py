"""Exports through the station service: the CLI runs as the real OS account of each
user, the service decides, writes the package in its own area and streams it; the
client checks every byte against the service's listing and writes all or nothing.
Real ffmpeg footage, real SQLite, the offline verifier as a plain subprocess."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from evidock_testing import offloaded_home, ok_json, run_evidock, without_pending
from service_support import RunningService, account, audit_rows, open_dir, run_as, serving
from station_homes import first_video

from archive.audit.log import AuditEvent
from archive.keystore import StationKeys
from config import load_settings
from evidock.wiring import Services
from fixtures.camera import CameraTree

CASE = "邵城管罚〔2019〕第001号"
# The inspector may also approve here, so that approving their own request reaches the
# two-person rule (with the default roles it is refused earlier, for lack of the right).
ROLES = """
[access.roles]
inspector = ["case.view", "recording.view", "recording.play", "export.request",
             "export.run", "export.approve", "coverage.view"]
"""


@dataclass
class Station:
    svc: RunningService
    home: Path
    video: str  # a video recording with a rendition, its first 2 s linked to CASE
    pem: Path
    outbox: Path  # every account may make its --out here

    def cli(self, *args: str, user: str) -> subprocess.CompletedProcess[str]:
        return self.svc.cli(*args, user=user)

    def out(self, name: str) -> Path:
        return self.outbox / name

    def events(self, action: str) -> list[AuditEvent]:
        return audit_rows(self.home, action)

    def request(self, *extra: str, user: str = "inspector") -> str:
        scope = extra or ("--recording", self.video)
        made = ok_json(self.cli("export", "request", *scope, "--purpose", "行政复议",
                                "--recipient", "复议机关", "--json", user=user))
        return str(made["id"])

    def approved(self, *extra: str, user: str = "inspector") -> str:
        rid = self.request(*extra, user=user)
        ok_json(self.cli("export", "approve", rid, "--json", user="legal"))
        return rid


def _prepare(home: Path, camera: Path) -> tuple[str, bytes]:
    """A station that offloaded and rendered the camera, with CASE linked (as a clerk);
    returns a video's id and the station's public key (PEM)."""
    offloaded_home(home, camera, extra_toml=ROLES)
    svc = Services.from_config(load_settings(environ={"EVIDOCK_HOME": str(home)}))
    try:
        video = first_video(svc)
        clerk = svc.gate().by_name("clerk")
        svc.cases().create(clerk, number=CASE, case_type="行政处罚", unit="城东中队")
        svc.cases().link(clerk, CASE, video, stage="调查取证", reason="现场检查",
                         start_us=0, end_us=2_000_000)
    finally:
        svc.close()
    return video, StationKeys(directory=home / "keys").keyring().current_key.to_pem()


@pytest.fixture(scope="module")
def station(tmp_path_factory: pytest.TempPathFactory,
            camera_template: CameraTree) -> Iterator[Station]:
    root = tmp_path_factory.mktemp("exports-api")
    home = root / "home"
    video, pem = _prepare(home, camera_template.root)
    (root / "station.pem").write_bytes(pem)
    outbox = open_dir("evidock-out-")
    outbox.chmod(0o1777)  # like /tmp: each account makes and keeps its own entries
    try:
        with serving(home) as svc:
            yield Station(svc, home, video, root / "station.pem", outbox)
    finally:
        shutil.rmtree(outbox, ignore_errors=True)


def _verify(package: Path, pem: Path, tmp: Path) -> dict[str, Any]:
    """The offline verifier, a plain subprocess with no station around it."""
    out: dict[str, Any] = ok_json(run_evidock(tmp / "no-home", "verify", str(package),
                                              "--key", str(pem), "--json"))
    return out


def _leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))


# --------------------------------------------------------------------------- the happy path


def test_request_self_approval_approval_run_and_offline_verify(station: Station,
                                                               tmp_path: Path) -> None:
    made = ok_json(station.cli("export", "request", "--case", CASE, "--purpose", "行政复议",
                               "--recipient", "复议机关", "--reason", "申请人申请复议",
                               "--json", user="inspector"))
    rid = made["id"]
    assert (made["status"], made["case_number"], made["requested_by"]) == (
        "pending", CASE, "inspector")
    assert [(i["recording_id"], i["range_us"]) for i in made["items"]] == [
        (station.video, [0, 2_000_000])]

    mine = station.cli("export", "approve", rid, "--json", user="inspector")
    assert mine.returncode == 3, (mine.stdout, mine.stderr)
    err = json.loads(mine.stdout)["error"]
    assert err["code"] == "E_SELF_APPROVAL"
    refused = station.events("access.refused")[-1]
    assert refused.seq == err["details"]["audit_seq"]
    assert (refused.actor, refused.details["code"]) == ("user:inspector", "E_SELF_APPROVAL")
    assert f"export-request:{rid}" in refused.subjects

    approved = ok_json(station.cli("export", "approve", rid, "--reason", "依法提供",
                                   "--json", user="legal"))
    assert (approved["status"], approved["approved_by"]) == ("approved", "legal")

    out = station.out("case-export")
    ran = ok_json(station.cli("export", "run", rid, "--out", str(out), "--json",
                              user="inspector"))
    package = out / f"01-{station.video}"
    assert set(ran) == {"request_id", "out", "packages"} and ran["out"] == str(out)
    [listed] = ran["packages"]
    assert listed["dir"] == str(package) and listed["segments"] == ["seg00000.mp4"]
    assert sorted(p.name for p in out.iterdir()) == [package.name, "case", "request.json"]
    doc = json.loads((out / "request.json").read_text(encoding="utf-8"))
    assert (doc["requested_by"], doc["approved_by"], doc["exported_by"]) == (
        "inspector", "legal", "inspector")
    assert doc["packages"][0]["export_id"] == listed["export_id"]
    verdict = _verify(package, station.pem, tmp_path)
    assert (verdict["target"], verdict["ok"], without_pending(verdict["findings"])) == (
        str(package), True, [])
    assert _leftovers(out) == []

    # Run once: the second run is refused (audited), and writes nothing.
    again = station.cli("export", "run", rid, "--out", str(station.out("again")), "--json",
                        user="inspector")
    assert again.returncode == 3
    assert json.loads(again.stdout)["error"]["code"] == "E_NOT_APPROVED"
    assert not station.out("again").exists() and _leftovers(station.out("again")) == []
    run_event = station.events("export.run")[-1]
    assert run_event.actor == "user:inspector" and f"export-request:{rid}" in run_event.subjects
    assert run_event.details["exports"] == [listed["export_id"]]
    assert station.events("read.export.download")[-1].actor == "user:inspector"


def test_human_output_is_rendered_from_the_service_answer(station: Station) -> None:
    rid = station.approved()
    shown = station.cli("export", "show", rid, user="legal")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == f"request {rid}: approved"
    assert lines[1] == f"  recording {station.video}; purpose 行政复议; to 复议机关"
    assert lines[2].startswith("  requested by inspector at ")
    assert lines[3].startswith("  approved by legal at ") and ", valid until " in lines[3]
    assert lines[4].startswith(f"  item {station.video} [0.000, ")
    listed = station.cli("export", "list", "--status", "approved", user="legal")
    assert listed.returncode == 0, listed.stderr
    [line] = [x for x in listed.stdout.splitlines() if x.startswith(rid)]
    assert line.split()[1:3] == ["approved", "行政复议"] and "by inspector" in line
    out = station.out("human")
    run = station.cli("export", "run", rid, "--out", str(out), user="inspector")
    assert run.returncode == 0, run.stderr
    [line] = run.stdout.splitlines()
    assert line.startswith(f"{out}  export ") and line.endswith("seg00000.mp4")


# --------------------------------------------------------------------------- refusals


def test_an_officer_may_request_but_not_approve_run_or_download(station: Station) -> None:
    mine = station.request(user="officer")
    other = station.approved()
    refused = station.cli("export", "approve", mine, "--json", user="officer")
    assert refused.returncode == 3
    assert json.loads(refused.stdout)["error"]["code"] == "E_FORBIDDEN"
    ok_json(station.cli("export", "approve", mine, "--json", user="legal"))
    for args in (("run", mine), ("run", other)):
        out = station.out(f"officer-{args[1]}")
        run = station.cli("export", *args, "--out", str(out), "--json", user="officer")
        assert run.returncode == 3, (run.stdout, run.stderr)
        assert json.loads(run.stdout)["error"]["code"] == "E_FORBIDDEN"
        assert not out.exists() and _leftovers(out) == []
    shown = ok_json(station.cli("export", "show", mine, "--json", user="officer"))
    assert shown["status"] == "approved" and shown["exports"] == []
    ok_json(station.cli("export", "run", other, "--out", str(station.out("theirs")),
                        "--json", user="inspector"))
    out = station.out("officer-download")
    fetched = station.cli("export", "download", other, "--out", str(out), "--json",
                          user="officer")
    assert fetched.returncode == 3
    assert json.loads(fetched.stdout)["error"]["code"] == "E_FORBIDDEN"
    assert not out.exists()


def test_a_request_not_yet_run_has_nothing_to_download(station: Station) -> None:
    rid = station.approved()
    out = station.out("not-run")
    run = station.cli("export", "download", rid, "--out", str(out), "--json",
                      user="inspector")
    assert run.returncode == 1
    assert json.loads(run.stdout)["error"]["code"] == "E_CONFLICT" and not out.exists()


def test_two_runs_at_once_export_once(station: Station) -> None:
    rid = station.approved()
    outs = [station.out("race-a"), station.out("race-b")]
    with ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(lambda o: station.cli("export", "run", rid, "--out", str(o),
                                                   "--json", user="inspector"), outs))
    assert sorted(r.returncode for r in runs) == [0, 3], [(r.stdout, r.stderr) for r in runs]
    loser = next(r for r in runs if r.returncode)
    assert json.loads(loser.stdout)["error"]["code"] == "E_NOT_APPROVED"
    assert [o.exists() for o in outs].count(True) == 1


def test_a_run_replaces_what_a_crashed_run_left_in_the_area(station: Station,
                                                            tmp_path: Path) -> None:
    rid = station.approved()
    area = station.home / "exports"
    (area / rid / "data").mkdir(parents=True)
    (area / rid / "data" / "half.mp4").write_bytes(b"half a segment")
    (area / f".{rid}.partial-crashed").mkdir()
    out = station.out("after-crash")
    ok_json(station.cli("export", "run", rid, "--out", str(out), "--json", user="inspector"))
    assert not (out / "data" / "half.mp4").exists()
    assert not (area / f".{rid}.partial-crashed").exists()
    assert _verify(out, station.pem, tmp_path)["ok"] is True


def test_a_run_the_service_cannot_write_leaves_nothing_and_stays_approved(
        station: Station, tmp_path: Path) -> None:
    rid = station.approved()
    area = station.home / "exports"
    aside = station.home / "exports.aside"
    area.mkdir(exist_ok=True)  # the first run makes it: this test may be the module's first
    area.rename(aside)
    area.write_text("not a directory")  # the service's area is unusable
    out = station.out("unwritable")
    try:
        run = station.cli("export", "run", rid, "--out", str(out), "--json",
                          user="inspector")
    finally:
        area.unlink()
        aside.rename(area)
    assert run.returncode == 2, (run.stdout, run.stderr)
    assert json.loads(run.stdout)["error"]["code"] == "E_STORE_UNWRITABLE"
    assert not out.exists() and _leftovers(out) == []
    shown = ok_json(station.cli("export", "show", rid, "--json", user="inspector"))
    assert shown["status"] == "approved" and shown["exports"] == []
    ok_json(station.cli("export", "run", rid, "--out", str(out), "--json", user="inspector"))
    assert _verify(out, station.pem, tmp_path)["ok"] is True


# --------------------------------------------------------------------------- downloads


def test_a_package_altered_in_the_area_is_refused_and_leaves_nothing(
        station: Station, tmp_path: Path) -> None:
    rid = station.approved()
    first = station.out("first")
    ok_json(station.cli("export", "run", rid, "--out", str(first), "--json", user="inspector"))
    segment = station.home / "exports" / rid / "data" / "segments" / "seg00000.mp4"
    original = segment.read_bytes()
    altered = bytearray(original)
    altered[len(altered) // 2] ^= 0x01
    segment.write_bytes(bytes(altered))
    out = station.out("altered")
    run = station.cli("export", "download", rid, "--out", str(out), "--json",
                      user="inspector")
    assert run.returncode == 2, (run.stdout, run.stderr)
    err = json.loads(run.stdout)["error"]
    assert err["code"] == "E_TRANSFER" and err["details"]["name"] == "data/segments/seg00000.mp4"
    assert f"evidock export download {rid} --out {out}" in err["message"]
    assert not out.exists() and _leftovers(out) == []

    segment.write_bytes(original)  # the station's copy repaired: the request still serves
    fetched = ok_json(station.cli("export", "download", rid, "--out", str(out), "--json",
                                  user="inspector"))
    assert fetched["request_id"] == rid and fetched["out"] == str(out)
    assert _verify(out, station.pem, tmp_path)["ok"] is True
    assert station.events("read.export.files")[-1].actor == "user:inspector"


_TAMPERING_CLIENT = """
import json, sys
from pathlib import Path
import httpx
from evidock.client import Station
from evidock.cmd_export import EXPORTS
from evidock.download import landing
from integrity.errors import EvidockError

sock, rid, out, how, at = sys.argv[1:6]

class Altered(httpx.SyncByteStream):
    def __init__(self, inner):
        self.inner, self.seen = inner, 0
    def __iter__(self):
        for piece in self.inner:
            lo, self.seen = self.seen, self.seen + len(piece)
            if how == "truncate" and self.seen > int(at):
                yield piece[: int(at) - lo]
                return
            if how == "flip" and lo <= int(at) < self.seen:
                piece = bytearray(piece)
                piece[int(at) - lo] ^= 0x01
                piece = bytes(piece)
            yield piece
    def close(self):
        self.inner.close()

class Tampering(httpx.BaseTransport):
    def __init__(self):
        self.inner = httpx.HTTPTransport(uds=sock)
    def handle_request(self, request):
        response = self.inner.handle_request(request)
        if request.url.path.endswith("/download"):
            return httpx.Response(response.status_code, headers=response.headers,
                                  stream=Altered(response.stream),
                                  extensions=response.extensions)
        return response

st = Station(socket=sock, transport=Tampering())
try:
    with landing(Path(out)) as tmp:
        listed = st.get(f"/exports/{rid}/files")
        EXPORTS.fetch(st, rid, listed["files"], tmp, Path(out))
except EvidockError as exc:
    print(json.dumps({"error": exc.to_dict()}))
    sys.exit(exc.exit_code)
"""


def _middle_of_largest_file(files: list[dict[str, Any]]) -> int:
    """The stream offset of the middle byte of the largest file (short names: one
    512-byte header each), so the flip lands in file data, never in padding."""
    offset, best = 0, (-1, 0)
    for f in files:
        assert len(f["path"]) < 100  # no pax header
        offset += tarfile.BLOCKSIZE
        best = max(best, (f["size"], offset + f["size"] // 2))
        offset += f["size"] + (-f["size"] % tarfile.BLOCKSIZE)
    return best[1]


@pytest.mark.parametrize("how", ["flip", "truncate"])
def test_a_download_altered_in_transit_is_refused_and_leaves_nothing(
        station: Station, how: str) -> None:
    rid = station.approved()
    ok_json(station.cli("export", "run", rid, "--out", str(station.out(f"ok-{how}")),
                        "--json", user="inspector"))
    files = _files(station, rid)
    assert len(files) > 5
    at = _middle_of_largest_file(files)
    out = station.out(f"transit-{how}")
    run = run_as(account("inspector"), [sys.executable, "-c", _TAMPERING_CLIENT,
                                        str(station.svc.socket), rid, str(out), how, str(at)])
    assert run.returncode == 2, (run.stdout, run.stderr)
    err = json.loads(run.stdout)["error"]
    assert err["code"] == "E_TRANSFER", err
    assert not out.exists() and _leftovers(out) == []


def _files(station: Station, rid: str) -> list[dict[str, Any]]:
    """The service's listing, asked as the inspector (a tiny client of its own)."""
    script = ("import json, sys; from evidock.client import Station; "
              "print(json.dumps(Station(socket=sys.argv[1]).get("
              "f'/exports/{sys.argv[2]}/files')['files']))")
    run = run_as(account("inspector"), [sys.executable, "-c", script,
                                        str(station.svc.socket), rid],
                 )
    assert run.returncode == 0, run.stderr
    files: list[dict[str, Any]] = json.loads(run.stdout)
    return files
