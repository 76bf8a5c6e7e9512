"""The bad-input camera: every hostile entry gets the right outcome and nothing escapes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from evidock_testing import tree_snapshot

from evidock.wiring import Services
from fixtures.badinput import BadTree, build_bad_inputs
from ingest.outcome import OffloadRequest


@pytest.fixture(scope="module")
def bad_template(tmp_path_factory: pytest.TempPathFactory) -> BadTree:
    base = tmp_path_factory.mktemp("bad")
    return build_bad_inputs(base / "cam", outside=base / "outside")


@pytest.fixture
def bad(bad_template: BadTree) -> BadTree:
    return bad_template


def _status_of(report, rel: bytes) -> tuple[str, str]:
    for f in report.files:
        if f.relpath == rel:
            return f.status, f.code
        if f.code == "S_TOO_DEEP" and rel.startswith(f.relpath):
            return f.status, f.code
    raise AssertionError(f"no outcome for {rel!r}")


def test_every_hostile_entry_gets_its_expected_outcome(services: Services, bad: BadTree) -> None:
    before = tree_snapshot(bad.root)
    outside_before = tree_snapshot(bad.outside)
    report = services.offloader().run(OffloadRequest(source=bad.root, device_serial="ZFY0099"))
    wrong = []
    for entry in bad.entries:
        status, code = _status_of(report, entry.relpath)
        if status != entry.expected:
            wrong.append((entry.what, entry.expected, status, code))
    assert not wrong, wrong
    assert report.exit_code == 1 and report.outcome == "findings"
    assert tree_snapshot(bad.root) == before and tree_snapshot(bad.outside) == outside_before
    # nothing from outside the tree reached the store
    outside_bytes = {p.read_bytes() for p in bad.outside.rglob("*") if p.is_file()}
    stored = {p.read_bytes() for p in services.store.root.rglob("*")
              if p.is_file() and ".staging" not in p.parts and p.name != ".staging.lock"}
    assert not outside_bytes & stored


def test_flagged_files_are_preserved_bit_exact(services: Services, bad: BadTree) -> None:
    report = services.offloader().run(OffloadRequest(source=bad.root, device_serial="ZFY0099"))
    flagged = [f for f in report.files if f.status == "flagged"]
    assert {"F_TRUNCATED", "F_UNPLAYABLE", "F_EMPTY", "F_FORMAT_MISMATCH",
            "F_NAME_UNPARSED"} <= {c for f in flagged for c in f.flags}
    for f in flagged:
        original = Path(os.fsdecode(os.path.join(os.fsencode(bad.root), f.relpath)))
        assert services.store.path_for(f.blake3).read_bytes() == original.read_bytes()


def test_raw_names_survive_as_bytes(services: Services, bad: BadTree) -> None:
    services.offloader().run(OffloadRequest(source=bad.root, device_serial="ZFY0099"))
    odd = bad.by_what("non-utf8-name").relpath
    recs = {r.original_path: r for r in services.catalog.recordings()}
    assert odd in recs
    assert "\\xff\\xfe" in recs[odd].original_display
    newline = bad.by_what("newline-inner").relpath
    assert "\n" not in recs[newline].original_display and "\\n" in recs[newline].original_display
