"""``data/timestamps.json`` of an export package: the stored RFC 3161 token of each signed
thing the package carries (its rendition manifest, the tree head its audit bundle is
proven against), or an explicit "pending" entry (checked by integrity/timestampcheck.py).

The bundle's head is signed for the export itself, so it is always still queued when the
package is written; ``stamp_now`` (the station's Stamper, set when TSAs are configured)
is then run once to ask for it (and the oldest other waiting items). A TSA that does not
answer costs that run's timeout, never the export: the entry stays "pending".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from archive.catalog.repo import Catalog
from archive.catalog.types import table_of
from archive.timestamp_rows import StampItem, StampToken
from integrity import timestampcheck as tsc

_I = table_of(StampItem)
_K = table_of(StampToken)


def timestamps_file(catalog: Catalog, *, manifest: bytes | None, bundle: bytes | None,
                    stamp_now: Callable[[], object] | None = None) -> bytes:
    """The file's bytes for a package with this ``manifest.json`` and audit bundle."""
    signed = tsc.signed_in(manifest, bundle)
    tokens = {s.file: _stored(catalog, s) for s in signed}
    if stamp_now is not None and any(t is None for t in tokens.values()):
        stamp_now()
        tokens = {s.file: _stored(catalog, s) for s in signed}
    entries = []
    for s in signed:
        got = tokens[s.file]
        entries.append(tsc.entry(s, token=None if got is None else got[0],
                                 tsa_url=None if got is None else got[1]))
    return tsc.document(entries)


def _stored(catalog: Catalog, signed: tsc.Signed) -> tuple[bytes, str] | None:
    """The token stored for these exact bytes (by kind and SHA-256), if any."""
    query = (select(_K.c.token, _K.c.tsa_url)
             .select_from(_I.join(_K, _K.c.item_id == _I.c.id))
             .where(_I.c.kind == signed.kind, _I.c.sha256 == signed.sha256)
             .order_by(_K.c.id).limit(1))
    with catalog.engine.connect() as conn:
        row: Any = conn.execute(query).first()
    return None if row is None else (bytes(row.token), str(row.tsa_url))


__all__ = ["timestamps_file"]
