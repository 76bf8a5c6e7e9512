"""What an export run believes only if the audit log vouches for it.

An approval (any decision row of the request) and each case link a package would carry
must be bound to its audit event (archive/bindings.py). A row written into the catalog
directly, by someone with database access but no way into the signed log, is named
here so that the run is refused before a byte leaves (and ``audit verify`` reports it).
"""

from __future__ import annotations

from sqlmodel import Session, col, select

from archive.bindings import vouched
from archive.catalog import Catalog
from records.exportbook import RequestView
from records.models import CaseLink, ExportDecision


def unvouched(catalog: Catalog, view: RequestView) -> list[str]:
    """The request's decision rows and its items' link rows no audit event vouches for."""
    links = [i.link_id for i in view.items if i.link_id is not None]
    with Session(catalog.engine) as s:
        decisions = list(s.exec(select(ExportDecision).where(
            ExportDecision.request_id == view.id).order_by(col(ExportDecision.id))))
        rows = list(s.exec(select(CaseLink).where(col(CaseLink.id).in_(links))))
        good = {id(r) for r in [*vouched(s, decisions), *vouched(s, rows)]}
    return [f"{d.decision} decision {d.id} by {d.actor}" for d in decisions
            if id(d) not in good] + [f"case link {r.id} of recording {r.recording_id}"
                                     for r in rows if id(r) not in good]


__all__ = ["unvouched"]
