"""Fixtures for the dock tests: small real cameras (ffmpeg-made), copied per test."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from fixtures.camera import CameraTree, build_camera
from fixtures.media import ClipSpec

_CLIPS = (ClipSpec(duration_s=2.0, height=360),)


@pytest.fixture(scope="session")
def mini_cameras(tmp_path_factory: pytest.TempPathFactory) -> dict[str, CameraTree]:
    """Two small cameras (a clip, a photo, a log each), built once per session."""
    root = tmp_path_factory.mktemp("dock-cameras")
    start = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
    return {serial: build_camera(root / serial, serial=serial, officer=officer, start=start,
                                 clips=_CLIPS, audio=False)
            for serial, officer in (("ZFY0001", "123456"), ("DSJ0002", "654321"))}


@pytest.fixture
def cam_a(mini_cameras: dict[str, CameraTree], tmp_path: Path) -> Path:
    dest = tmp_path / "src-ZFY0001"
    shutil.copytree(mini_cameras["ZFY0001"].root, dest)
    return dest


@pytest.fixture
def cam_b(mini_cameras: dict[str, CameraTree], tmp_path: Path) -> Path:
    dest = tmp_path / "src-DSJ0002"
    shutil.copytree(mini_cameras["DSJ0002"].root, dest)
    return dest
