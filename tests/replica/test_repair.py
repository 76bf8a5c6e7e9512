"""Repair: a blob fixity finds damaged or missing is restored from its verified WORM copy
on a real S3 server (SeaweedFS), the damaged bytes kept in quarantine, every repair an
audit event, and a copy that is not the catalog's bytes refused with nothing placed."""

from __future__ import annotations

import io
import json
import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from evidock_testing import events_of, open_services, write_agency_config
from s3server import WeedServer
from service_support import serving
from sqlmodel import Session, col, select
from storage_support import (
    T0,
    AddBlob,
    StoredBlob,
    client_for,
    file_sha256,
    make_bucket,
    pseudo_random,
    queue_for,
    retain,
)

from archive.audit.log import AuditLog
from archive.catalog import Catalog
from archive.fixity import Fixity, FixityCheck, FixityPlan
from archive.replica.download import Wanted, _Bounded
from archive.replica.objectstore import ObjectStore
from archive.replica.queue import UploadEvent
from archive.replica.repair import Repairer, RepairReport
from archive.store import ContentStore
from config import load_settings
from integrity.errors import RepairMismatch, RepairUnavailable


def _clock() -> datetime:
    return datetime.now(UTC)


def _uploaded(catalog: Catalog, store: ContentStore, objects: ObjectStore,
              add_blob: AddBlob, *, size: int = 300_000, seed: int = 0) -> StoredBlob:
    """A blob in the station's store whose WORM copy the upload queue verified."""
    blob = add_blob(size=size, seed=seed)
    queue = queue_for(catalog, store, objects)
    queue.enqueue(blob.blake3, now=T0, retain_until=retain())
    assert [i.state for i in queue.run_due(now=T0).items] == ["verified"]
    return blob


def _flip(path: Path, offset: int) -> bytes:
    """Flip one byte of a (read-only) stored blob in place; its bytes afterwards."""
    path.chmod(0o644)
    with open(path, "r+b") as fh:
        fh.seek(offset)
        old = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([old[0] ^ 0x01]))
    path.chmod(0o444)
    return path.read_bytes()


def _repairer(catalog: Catalog, store: ContentStore, objects: ObjectStore) -> Repairer:
    return Repairer(catalog=catalog, store=store, objects=objects,
                    audit=AuditLog(catalog=catalog), clock=_clock)


def _fixity_codes(catalog: Catalog, store: ContentStore) -> list[tuple[str, str | None]]:
    fixity = Fixity(catalog=catalog, store=store, audit=AuditLog(catalog=catalog),
                    clock=_clock)
    report = fixity.run(FixityPlan("all"), actor="user:auditor")
    return [(f.code, f.subject) for f in report.findings]



def _checks(catalog: Catalog, b3: str) -> list[FixityCheck]:
    with Session(catalog.engine) as s:
        return list(s.exec(select(FixityCheck).where(FixityCheck.blake3 == b3)
                           .order_by(col(FixityCheck.id))))


def _verified_version(catalog: Catalog, b3: str) -> str | None:
    with Session(catalog.engine) as s:
        [event] = s.exec(select(UploadEvent).where(UploadEvent.blake3 == b3,
                                                   UploadEvent.event == "verified")).all()
    return event.version_id


def _staging_files(store: ContentStore) -> list[Path]:
    return [p for p in (store.root / ".staging").rglob("*") if p.is_file()]


def _quarantine(store: ContentStore) -> list[Path]:
    qdir = store.root / ".quarantine"
    return sorted(qdir.iterdir()) if qdir.is_dir() else []


def test_a_flipped_byte_is_restored_bit_exact_and_the_damaged_copy_kept(
        catalog: Catalog, store: ContentStore, objects: ObjectStore,
        add_blob: AddBlob) -> None:
    blob = _uploaded(catalog, store, objects, add_blob, seed=1)
    damaged = _flip(blob.path, 1234)
    assert _fixity_codes(catalog, store) == [("E_FIXITY_ALTERED", blob.blake3)]

    report = _repairer(catalog, store, objects).repair([blob.blake3], actor="user:admin")

    [item] = report.items
    assert (item.code, item.found, report.ok) == ("I_REPAIR_RESTORED", "damaged", True)
    assert blob.path.read_bytes() == pseudo_random(300_000, 1)  # bit-exact
    assert stat.S_IMODE(blob.path.stat().st_mode) == 0o444  # read-only, as stored
    [kept] = _quarantine(store)
    assert kept.read_bytes() == damaged  # the damaged bytes, not destroyed
    assert item.quarantined == str(kept.relative_to(store.root))
    assert kept.name.startswith(f"{blob.blake3}.")
    assert item.key == objects.key_for(blob.blake3)
    assert item.version_id == _verified_version(catalog, blob.blake3) is not None
    [event] = events_of(catalog, "fixity.repaired")
    assert (event.actor, event.subjects) == ("user:admin", [blob.blake3])
    assert event.details["quarantined"] == item.quarantined
    assert (event.details["sha256"], event.details["bytes"]) == (blob.sha256, blob.size)
    assert event.details["version_id"] == item.version_id
    assert "tampering" in event.details["note"]
    # The re-check is a fixity run of its own: a new, passing check row with SHA-256.
    assert report.recheck is not None and report.recheck.findings == ()
    last = _checks(catalog, blob.blake3)[-1]
    assert (last.ok, last.code, last.digests) == (True, "I_FIXITY_OK", "blake3+sha256")
    assert last.run_id == report.recheck.run_id
    assert _fixity_codes(catalog, store) == []  # quarantine is not a stray
    assert _staging_files(store) == []


def test_a_deleted_blob_is_restored(catalog: Catalog, store: ContentStore,
                                    objects: ObjectStore, add_blob: AddBlob) -> None:
    blob = _uploaded(catalog, store, objects, add_blob, seed=2)
    blob.path.unlink()
    assert _fixity_codes(catalog, store) == [("E_FIXITY_MISSING", blob.blake3)]
    report = _repairer(catalog, store, objects).repair([blob.blake3], actor="user:admin")
    [item] = report.items
    assert (item.code, item.found, item.quarantined) == ("I_REPAIR_RESTORED", "missing",
                                                        None)
    assert file_sha256(blob.path) == blob.sha256
    assert _quarantine(store) == []
    assert _fixity_codes(catalog, store) == []
    assert [e.details["found"] for e in events_of(catalog, "fixity.repaired")] == ["missing"]


def test_a_newer_version_at_the_key_is_not_what_is_read(
        catalog: Catalog, store: ContentStore, objects: ObjectStore,
        add_blob: AddBlob) -> None:
    """Someone puts other bytes at the blob's key: the verified version is read back."""
    blob = _uploaded(catalog, store, objects, add_blob, seed=3)
    objects.client.put_object(Bucket=objects.bucket, Key=objects.key_for(blob.blake3),
                              Body=pseudo_random(blob.size, 99))
    blob.path.unlink()
    report = _repairer(catalog, store, objects).repair([blob.blake3], actor="user:admin")
    assert [i.code for i in report.items] == ["I_REPAIR_RESTORED"]
    assert file_sha256(blob.path) == blob.sha256


def _redirect_get(objects: ObjectStore, key: str, *, hide_version: bool) -> None:
    """Every GetObject of this client reads ``key`` (latest) instead: a store that
    answers with another object than the one asked for (``hide_version``: and does not
    say which version it sent, as stores without versioning do)."""
    def swap(params: dict[str, Any], **_: Any) -> None:
        params["Key"] = key
        params.pop("VersionId", None)

    def unversioned(parsed: dict[str, Any], **_: Any) -> None:
        parsed.pop("VersionId", None)
    objects.client.meta.events.register("before-parameter-build.s3.GetObject", swap)
    if hide_version:
        objects.client.meta.events.register("after-call.s3.GetObject", unversioned)


@pytest.mark.parametrize(("other_size", "hide", "why"), [
    (300_000, True, "is not blob"), (299_999, True, "has 299999 bytes"),
    (300_000, False, "answered version")], ids=["digest", "size", "version"])
def test_a_remote_object_that_is_not_the_blob_is_refused(  # noqa: PLR0917
        catalog: Catalog, store: ContentStore, objects: ObjectStore, add_blob: AddBlob,
        other_size: int, hide: bool, why: str) -> None:
    blob = _uploaded(catalog, store, objects, add_blob, seed=4)
    other = _uploaded(catalog, store, objects, add_blob, size=other_size, seed=5)
    damaged = _flip(blob.path, 7)
    inode = blob.path.stat().st_ino
    _redirect_get(objects, objects.key_for(other.blake3), hide_version=hide)
    repairer = _repairer(catalog, store, objects)
    want = Wanted(blake3=blob.blake3, sha256=blob.sha256, size=blob.size)
    with pytest.raises(RepairMismatch, match=why):
        repairer.restore(want)

    report = repairer.repair([blob.blake3], actor="user:admin")

    [item] = report.items
    assert (item.code, item.found, report.exit_code) == ("E_REPAIR_MISMATCH", "damaged", 1)
    assert report.recheck is None
    assert blob.path.read_bytes() == damaged and blob.path.stat().st_ino == inode
    assert _quarantine(store) == [] and _staging_files(store) == []
    assert _fixity_codes(catalog, store) == [("E_FIXITY_ALTERED", blob.blake3)]
    [event] = events_of(catalog, "fixity.repair_failed")
    assert event.details["code"] == "E_REPAIR_MISMATCH"
    assert event.details["key"] == objects.key_for(blob.blake3)
    assert event.details["bucket"] == objects.bucket
    assert events_of(catalog, "fixity.repaired") == []


def test_a_disk_that_does_not_keep_the_download_places_nothing(
        catalog: Catalog, store: ContentStore, objects: ObjectStore,
        add_blob: AddBlob) -> None:
    """The one-way-in guarantee holds for a repair too: a byte flipped in the staged
    download after its fsync (the disk did not keep it) is caught by the re-read."""
    blob = _uploaded(catalog, store, objects, add_blob, seed=12)
    blob.path.unlink()
    flipped: list[Path] = []

    def flip(staged: Path) -> None:
        flipped.append(staged)
        _flip(staged, 99)
    bad_disk = ContentStore(root=store.root, before_reread=flip)
    report = _repairer(catalog, bad_disk, objects).repair([blob.blake3], actor="user:a")
    assert [i.code for i in report.items] == ["E_DIGEST_MISMATCH"]
    assert len(flipped) == 1 and not blob.path.exists()
    assert _staging_files(store) == [] and _quarantine(store) == []
    assert [e.details["found"] for e in events_of(catalog, "fixity.repair_failed")] == [
        "missing"]


def test_without_a_verified_upload_nothing_changes(
        catalog: Catalog, store: ContentStore, objects: ObjectStore, weed: WeedServer,
        add_blob: AddBlob) -> None:
    never = add_blob(size=5000, seed=6)
    damaged = _flip(never.path, 0)
    elsewhere = _uploaded(catalog, store, objects, add_blob, size=5000, seed=7)
    elsewhere.path.unlink()
    # The same station, its [upload] now naming another bucket.
    moved = ObjectStore(client=client_for(weed.endpoint), bucket=make_bucket(weed.endpoint))
    repairer = _repairer(catalog, store, moved)
    with pytest.raises(RepairUnavailable):
        repairer.restore(Wanted(blake3=never.blake3, sha256=never.sha256, size=never.size))

    report = repairer.repair([never.blake3, elsewhere.blake3], actor="user:admin")

    assert [i.code for i in report.items] == ["E_REPAIR_UNAVAILABLE"] * 2
    assert objects.bucket in report.items[1].message  # where its copy is
    assert never.path.read_bytes() == damaged and not elsewhere.path.exists()
    assert _quarantine(store) == []
    assert len(events_of(catalog, "fixity.repair_failed")) == 2


def test_an_intact_blob_is_not_downloaded(catalog: Catalog, store: ContentStore,
                                          objects: ObjectStore, add_blob: AddBlob) -> None:
    blob = _uploaded(catalog, store, objects, add_blob, seed=8)
    asked: list[str] = []
    objects.client.meta.events.register("before-parameter-build.s3.GetObject",
                                        lambda params, **_: asked.append(params["Key"]))
    report = _repairer(catalog, store, objects).repair([blob.blake3], actor="user:admin")
    assert [i.code for i in report.items] == ["I_REPAIR_NOT_NEEDED"]
    assert (asked, report.recheck, report.ok) == ([], None, True)
    assert len(events_of(catalog, "fixity.repair_not_needed")) == 1


def test_a_symlink_planted_at_the_name_is_quarantined_as_it_is(
        catalog: Catalog, store: ContentStore, objects: ObjectStore,
        add_blob: AddBlob, tmp_path: Path) -> None:
    blob = _uploaded(catalog, store, objects, add_blob, seed=9)
    decoy = tmp_path / "decoy"
    decoy.write_bytes(b"not evidence")
    blob.path.unlink()
    blob.path.symlink_to(decoy)
    report = _repairer(catalog, store, objects).repair([blob.blake3], actor="user:admin")
    assert [i.code for i in report.items] == ["I_REPAIR_RESTORED"]
    assert not blob.path.is_symlink() and file_sha256(blob.path) == blob.sha256
    [kept] = _quarantine(store)
    assert kept.is_symlink() and os.readlink(kept) == str(decoy)
    assert decoy.read_bytes() == b"not evidence"  # never followed, never written


@pytest.fixture
def station(tmp_path: Path, weed: WeedServer) -> Iterator[tuple[Path, dict[str, str]]]:
    home = tmp_path / "home"
    write_agency_config(home)
    env = {"EVIDOCK_HOME": str(home), "EVIDOCK_UPLOAD__ENABLED": "true",
           "EVIDOCK_UPLOAD__ENDPOINT_URL": weed.endpoint.url,
           "EVIDOCK_UPLOAD__BUCKET": make_bucket(weed.endpoint),
           "EVIDOCK_UPLOAD__RETENTION_DAYS": "1",
           "EVIDOCK_UPLOAD__ACCESS_KEY_ID": weed.endpoint.access_key,
           "EVIDOCK_UPLOAD__SECRET_ACCESS_KEY": weed.endpoint.secret_key}
    yield home, env


def test_the_admin_repairs_through_the_service_and_the_cli(
        station: tuple[Path, dict[str, str]]) -> None:
    home, env = station
    svc = open_services(load_settings(environ=env))
    try:
        from evidock_testing import stored_blob  # noqa: PLC0415

        b3, sha = stored_blob(svc.store, svc.catalog, pseudo_random(70_000, 10), at=T0)
        queue = svc.upload_queue()
        queue.enqueue(b3, now=T0, retain_until=retain())
        assert [i.state for i in queue.run_due(now=T0).items] == ["verified"]
        path = svc.store.path_for(b3)
    finally:
        svc.close()
    damaged = _flip(path, 500)
    with serving(home, env=env) as st:
        refused = st.cli("repair", b3, "--json", user="supervisor")
        fixed = st.cli("fixity", "--repair", "--json", user="admin")
        again = st.cli("fixity", "--json", user="admin")
        asked = st.cli("repair", b3, user="admin")
    assert refused.returncode == 3, refused.stdout
    assert json.loads(refused.stdout)["error"]["code"] == "E_FORBIDDEN"
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    out = json.loads(fixed.stdout)
    assert [f["code"] for f in out["findings"]] == ["E_FIXITY_ALTERED"]
    assert (out["resolved"], out["unresolved"]) == (True, 0)
    [item] = out["repair"]["items"]
    assert (item["blake3"], item["code"]) == (b3, "I_REPAIR_RESTORED")
    assert (home / "store" / item["quarantined"]).read_bytes() == damaged
    assert file_sha256(path) == sha
    assert again.returncode == 0 and json.loads(again.stdout)["findings"] == []
    assert asked.returncode == 0, asked.stderr
    assert asked.stdout.startswith(f"I_REPAIR_NOT_NEEDED [{b3}]")
    catalog = Catalog.open(load_settings(environ=env).catalog_url)
    try:
        [event] = events_of(catalog, "fixity.repaired")
        refusals = [e for e in events_of(catalog, "access.refused")
                    if e.details.get("permission") == "fixity.repair"]
    finally:
        catalog.close()
    assert (event.actor, event.details["quarantined"]) == ("user:admin", item["quarantined"])
    assert [e.actor for e in refusals] == ["user:supervisor"]


def test_the_download_checks_both_digests_and_leaves_nothing_staged(
        catalog: Catalog, store: ContentStore, objects: ObjectStore,
        add_blob: AddBlob) -> None:
    blob = _uploaded(catalog, store, objects, add_blob, seed=11)
    want = Wanted(blake3=blob.blake3, sha256=blob.sha256, size=blob.size)
    with store.stage() as stager:
        staged = objects.download(want, stager)
        assert (staged.digests.size, staged.digests.sha256) == (blob.size, blob.sha256)
        assert staged.path.parent == stager.directory  # the store's own staging
        other_sha = Wanted(blake3=blob.blake3, sha256="0" * 64, size=blob.size)
        with pytest.raises(RepairMismatch, match="not blob"):
            objects.download(other_sha, stager)
        assert [p.name for p in stager.directory.iterdir()] == [staged.path.name]


def test_a_body_longer_than_the_catalog_says_stops_at_the_first_byte_too_many(
        store: ContentStore) -> None:
    with store.stage() as stager:
        body = io.BytesIO(b"x" * 11)
        with pytest.raises(RepairMismatch, match="longer"):
            stager.copy(_Bounded(body, size=10, key="k"), chunk_size=4)
        assert body.tell() == 11 and list(stager.directory.iterdir()) == []
        exact = stager.copy(_Bounded(io.BytesIO(b"y" * 10), size=10, key="k"))
        assert exact.digests.size == 10


def test_a_repair_report_fails_on_any_failed_item() -> None:
    from archive.replica.repair import RepairOutcome  # noqa: PLC0415

    ok = RepairOutcome(blake3="a" * 64, code="I_REPAIR_RESTORED", message="")
    bad = RepairOutcome(blake3="b" * 64, code="E_REPAIR_UNAVAILABLE", message="")
    assert RepairReport(items=(ok,)).exit_code == 0
    assert RepairReport(items=(ok, bad)).exit_code == 1
