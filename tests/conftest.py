"""Shared test fixtures: an isolated EVIDOCK_HOME, wired services, a camera tree.

Everything is real: SQLite files, the content store on disk, ffmpeg/ffprobe.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from desk_support import chromium  # noqa: F401 - one browser per process (see below)
from evidock_testing import REPO, StepClock, migrated_home
from service_support import agency_service  # noqa: F401 - a fixture
from worker_plan import longest_first, make_scheduler

from config import Settings, load_settings
from evidock.wiring import Services
from fixtures.camera import CameraTree, build_camera

# The browser fixture lives here only: two session fixtures (one per conftest) would start
# a second Playwright in one xdist worker ("Sync API inside the asyncio loop").


@pytest.hookimpl(trylast=True)  # after pytest's own reordering (by fixture scope)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    longest_first(items)


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """With ``--dist loadfile`` (scripts/test.sh), tests/worker_plan.py's scheduler."""
    return make_scheduler(config, log) if config.getoption("dist") == "loadfile" else None


def pytest_sessionstart(session: pytest.Session) -> None:
    """Bytecode for the project's modules, written once: the `evidock` processes the
    tests start (the service, the CLI as other accounts, the daemons) cannot or may not
    write it (PYTHONDONTWRITEBYTECODE), and would compile every module without a current
    .pyc at each start (~0.1 s of each `evidock serve`)."""
    import compileall

    for package in ("archive", "config", "docks", "evidock", "fixtures", "ingest",
                    "integrity", "records", "retention"):
        compileall.compile_dir(REPO / package, quiet=2)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """An EVIDOCK_HOME whose catalog is migrated, as `evidock init` leaves it."""
    return migrated_home(tmp_path / "home")


@pytest.fixture
def settings(home: Path) -> Settings:
    return load_settings(environ={"EVIDOCK_HOME": str(home)})


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    svc = Services.from_config(settings, clock=StepClock())
    yield svc
    svc.close()


@pytest.fixture(scope="session")
def camera_template(tmp_path_factory: pytest.TempPathFactory) -> CameraTree:
    """One synthetic camera (scheme A) per test session; copy it before changing it."""
    root = tmp_path_factory.mktemp("camera-template") / "cam"
    return build_camera(root, scheme="A", serial="ZFY0001", officer="123456",
                        start=datetime(2026, 11, 20, 8, 30, tzinfo=UTC))


@pytest.fixture
def camera(camera_template: CameraTree, tmp_path: Path) -> Path:
    """A private copy of the template camera, safe to wipe."""
    dest = tmp_path / "camera"
    shutil.copytree(camera_template.root, dest, symlinks=True)
    return dest
