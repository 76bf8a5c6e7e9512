"""Verify a stored recording: its row, original blob, signed manifest, every segment blob.

Reports every finding, cheapest first: the catalog row against the recording's signed
record and its ingest event (archive/sealcheck.py), presence and sizes, then the
manifest signature and its agreement with the catalog, then the digests (which read
every byte).
"""

from __future__ import annotations

from archive.catalog import Catalog, Recording
from archive.catalog.models import Rendition, Segment
from archive.keystore import StationKeys
from archive.sealcheck import SealCheck
from archive.store import ContentStore
from integrity import manifest as mf
from integrity.codes import Code
from integrity.errors import EvidockError, KeyError_
from integrity.findings import E_DIGEST_MISMATCH, Finding
from integrity.keys import Keyring
from integrity.package import E_MISSING_FILE, E_ORIGINAL_MISMATCH, E_SIZE_MISMATCH, blake3_file

E_CATALOG_MISMATCH = Code.E_CATALOG_MISMATCH


class StoredVerifier:
    def __init__(self, *, store: ContentStore, catalog: Catalog, keys: StationKeys) -> None:
        self.store, self.catalog, self.keys = store, catalog, keys

    def _load(self, recording_id: str) -> tuple[Recording, Rendition | None, list[Segment]]:
        return self.catalog.rendered(recording_id)

    def verify(self, recording_id: str) -> list[Finding]:
        rec, rendition, segs = self._load(recording_id)
        # The row itself first: against its signed record and the log of its ingest.
        findings = SealCheck(catalog=self.catalog, store=self.store,
                             keyring=self._keyring()).recording(rec)
        blobs = [(rec.original_display, rec.blake3, rec.size)] + \
            [(s.name, s.blake3, s.size) for s in segs]
        present = [b for b in blobs if self._present(b, findings)]
        if rendition is not None:
            findings += self._manifest(rec, rendition, segs)
        findings += [f for name, b3, _ in present if (f := self._digest(name, b3)) is not None]
        return findings

    def _keyring(self) -> Keyring | None:
        try:
            return self.keys.keyring()
        except KeyError_:
            return None

    def _present(self, blob: tuple[str, str, int], findings: list[Finding]) -> bool:
        name, b3, size = blob
        path = self.store.path_for(b3)
        if not path.is_file():
            findings.append(Finding(E_MISSING_FILE, "blob missing from the store", name,
                                    {"blake3": b3}))
            return False
        if path.stat().st_size != size:
            findings.append(Finding(E_SIZE_MISMATCH, "stored size differs from the catalog",
                                    name, {"expected": size, "actual": path.stat().st_size}))
            return False
        return True

    def _digest(self, name: str, b3: str) -> Finding | None:
        actual = blake3_file(self.store.path_for(b3))
        if actual == b3:
            return None
        return Finding(E_DIGEST_MISMATCH, "stored bytes differ from their digest", name,
                       {"expected": b3, "actual": actual})

    def _manifest(self, rec: Recording, rendition: Rendition, segs: list[Segment],
                  ) -> list[Finding]:
        assert rendition.manifest_blake3 is not None
        try:
            data = self.store.path_for(rendition.manifest_blake3).read_bytes()
            signed = mf.load_signed(data)
        except FileNotFoundError:
            return [Finding(E_MISSING_FILE, "manifest missing from the store", "manifest")]
        except EvidockError as exc:
            return [Finding.from_error(exc, "manifest")]
        findings = mf.verify_signed_manifest(signed, self.keys.keyring(), "manifest")
        original = mf.OriginalRef(recording_id=rec.id, name=rec.original_display,
                                  size=rec.size, blake3=rec.blake3, sha256=rec.sha256)
        if original not in signed.manifest.originals:
            findings.append(Finding(E_ORIGINAL_MISMATCH, "manifest signs another original",
                                    "manifest", {"catalog": original.to_dict()}))
        listed = [(s.index, s.name, s.size, s.blake3, s.start_us, s.end_us) for s in segs]
        signed_list = [(e.index, e.name, e.size, e.blake3, e.start_us, e.end_us)
                       for e in signed.manifest.entries()]
        if listed != signed_list:
            findings.append(Finding(E_CATALOG_MISMATCH, "catalog segments differ from the "
                                    "signed manifest", "manifest"))
        return findings
