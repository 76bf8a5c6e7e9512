"""The original camera file in a center package: restored from the object store, proven.

The center holds no originals. For a request with ``originals`` it reads the station's
original back from the object store (:meth:`CentralPlayer.read_back`: the newest version
that is the blob, an impostor version passed over, bounded by the size, BLAKE3 and
SHA-256 compared, re-read from the disk) into its own staging, never into its store
(an original can be many GB), and copies it into the package hashing again. What the
bytes must be is what the station signed: the manifest's original (proven with the
station's key before this runs); the center's index, filled from the mirrored
``ingest.file`` event, must say the same, or nothing is written.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import and_, select

from archive.catalog.types import table_of
from archive.replica.download import Wanted
from archive.witness.index import CentralRecording
from integrity import manifest as mf
from integrity.digest import copy_and_hash
from integrity.errors import DigestMismatch, RemoteUnproven, RepairMismatch
from records import originals
from records.centralplay import CentralPlayer

_R = table_of(CentralRecording)


def restore_original(player: CentralPlayer, station: str, ref: mf.OriginalRef,
                     data: Path) -> dict[str, object]:
    """Write the original ``ref`` names into ``data/originals/``; its clip.json entry."""
    _agrees_with_index(player, station, ref)
    want = Wanted(blake3=ref.blake3, sha256=ref.sha256, size=ref.size)
    folder = data / originals.DIR
    folder.mkdir(exist_ok=True)
    dest = folder / originals.name_for(ref.name, ref.recording_id)
    with player.store.stage() as stager:
        try:
            staged = player.read_back(station, want, stager)
        except RepairMismatch as exc:
            raise RemoteUnproven(f"station {station}'s original {ref.blake3} in the object "
                                 f"store does not prove out: {exc.message}",
                                 **{**exc.details, "station": station}) from exc
        with open(staged.path, "rb") as src, open(dest, "wb") as out:
            digests = copy_and_hash(src, out)
    if (digests.blake3, digests.sha256) != (ref.blake3, ref.sha256):
        raise DigestMismatch(f"the original of {ref.recording_id} changed on its way into "
                             "the package", expected=ref.blake3, actual=digests.blake3)
    return {"file": f"{originals.DIR}/{dest.name}", "size": ref.size, "blake3": ref.blake3,
            "sha256": ref.sha256}


def _agrees_with_index(player: CentralPlayer, station: str, ref: mf.OriginalRef) -> None:
    with player.catalog.engine.connect() as conn:
        row = conn.execute(select(_R.c.blake3, _R.c.sha256, _R.c.size).where(and_(
            _R.c.station_id == station, _R.c.recording_id == ref.recording_id))).first()
    if row is None or (row.blake3, row.sha256, row.size) != (ref.blake3, ref.sha256,
                                                             ref.size):
        raise RemoteUnproven(f"the center's index does not hold the original of "
                             f"{ref.recording_id} as station {station} signed it",
                             station=station, recording=ref.recording_id,
                             blake3=ref.blake3)


__all__ = ["restore_original"]
