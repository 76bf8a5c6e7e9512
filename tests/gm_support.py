"""Stations of the 国密 (gm) crypto profile for tests: `evidock init --profile gm` as the
operator, then everything through the real service (as the service account, as systemd
runs it) and the agency's real OS accounts: ingest, a case, an export of it."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from evidock_testing import AGENCY_TOML, ok_json, run_evidock
from service_support import (
    SERVICE_ACCOUNT,
    RunningService,
    ensure_accounts,
    open_copy,
    open_dir,
    serving,
)

from config import load_settings
from evidock.wiring import Services
from fixtures.camera import CameraTree

CASE = "邵城管罚〔2019〕第001号"


@dataclass
class Made:
    """A station home and what its first export made."""

    home: Path
    init: dict[str, Any]
    show: dict[str, Any]
    pem: Path
    video: str
    out: Path  # the export's --out: 01-<video>/ (clip package), case/, request.json

    @property
    def package(self) -> Path:
        return self.out / f"01-{self.video}"


def outbox() -> Path:
    """A directory every test account may reach and make its --out in (like /tmp): the
    station home lives there too (the service account must reach it)."""
    box = open_dir("evidock-gm-out-")
    box.chmod(0o1777)
    return box


@contextmanager
def inspecting(home: Path) -> Iterator[Services]:
    """In-process services (this root process) to read the catalog and store; the
    catalog files SQLite may create are handed back to the service account after."""
    svc = Services.from_config(load_settings(environ={"EVIDOCK_HOME": str(home)}))
    try:
        yield svc
    finally:
        svc.close()
        pw = pwd.getpwnam(SERVICE_ACCOUNT)
        for path in home.glob("catalog.sqlite3*"):
            os.chown(path, pw.pw_uid, pw.pw_gid)


def serve(home: Path) -> AbstractContextManager[RunningService]:
    """The station service as the service account, as systemd runs it."""
    return serving(home, run_as_account=SERVICE_ACCOUNT)


def export_case(home: Path, out: Path) -> None:
    """CASE requested by the inspector, approved by the legal reviewer, run by the
    inspector: each the CLI as that user's OS account against the real service."""
    with serve(home) as svc:
        _export_case(svc, out)


def _export_case(svc: RunningService, out: Path) -> None:
    rid = ok_json(svc.cli("export", "request", "--case", CASE, "--purpose", "行政复议",
                          "--recipient", "复议机关", "--json", user="inspector"))["id"]
    ok_json(svc.cli("export", "approve", rid, "--json", user="legal"))
    ok_json(svc.cli("export", "run", rid, "--out", str(out), "--json", user="inspector"))


def make_station(root: Path, camera: Path, *profile: str) -> Made:
    """`evidock init [--profile ...]` as the operator (root), then, through one run of the
    service, an ingest as the clerk, CASE linked, and CASE exported into ``root``/out."""
    ensure_accounts()
    home = root / "home"
    home.mkdir()
    (home / "evidock.toml").write_text(AGENCY_TOML, encoding="utf-8")
    init = ok_json(run_evidock(home, "init", *profile, "--account", SERVICE_ACCOUNT, "--json"))
    with open_copy(camera) as cam, serve(home) as svc:
        show = ok_json(svc.cli("keys", "show", "--json", user="officer"))
        pem = svc.cli("keys", "export-public", user="officer")
        assert pem.returncode == 0, pem.stderr
        ingest = ok_json(svc.cli("ingest", str(cam), "--device", "ZFY0001", "--json",
                                 user="clerk"))
        pem_path = root / "station.pem"
        pem_path.write_text(pem.stdout, encoding="ascii")
        video = next(r["recording_id"] for r in ingest["renditions"]
                     if r["path"].endswith(".MP4") and r["status"] == "ok")
        ok_json(svc.cli("case", "create", CASE, "--type", "行政处罚", "--unit", "城东中队",
                        "--json", user="clerk"))
        ok_json(svc.cli("case", "link", CASE, video, "--stage", "调查取证", "--reason",
                        "现场检查", "--start", "0", "--end", "2", "--json", user="clerk"))
        _export_case(svc, root / "out")
    return Made(home, init, show, pem_path, video, root / "out")


@pytest.fixture(scope="session")
def gm_made(camera_template: CameraTree) -> Iterator[Made]:
    """A gm station and its case export, made once: tests read them, and use the
    station through its service (which adds only audit events and reports); a test that
    changes the home works on :func:`own_copy`, one that edits a package on a copy of it."""
    root = outbox()
    try:
        yield make_station(root, camera_template.root, "--profile", "gm")
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def default_made(camera_template: CameraTree) -> Iterator[Made]:
    """A station of the default profile and its case export, made once (as gm_made)."""
    root = outbox()
    try:
        yield make_station(root, camera_template.root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def own_copy(made: Made) -> Iterator[Made]:
    """``made`` with a private copy of its home (owners and modes kept: the service
    account's files stay its own), for a test that changes the station; its export is
    the original's (read it, or copy it)."""
    root = outbox()
    try:
        subprocess.run(["cp", "-a", str(made.home), str(root / "home")], check=True,
                       timeout=120)
        yield replace(made, home=root / "home")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def retag(package: Path) -> None:
    """Recompute every tag manifest the package holds over its top-level tag files, as
    a forger who edited them would (so only what the signatures protect can tell)."""
    import hashlib

    from integrity.package import bag_manifest_lines

    tags = sorted(p for p in package.iterdir()
                  if p.is_file() and not p.name.startswith("tagmanifest-"))
    for manifest in package.glob("tagmanifest-*.txt"):
        algo = manifest.name.removeprefix("tagmanifest-").removesuffix(".txt")
        manifest.write_bytes(bag_manifest_lines(
            {p.name: hashlib.new(algo, p.read_bytes()).hexdigest() for p in tags}))
