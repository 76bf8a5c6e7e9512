"""The parties (当事人) a case's dossier shows: name, ID type, a masked ID number, role.

``case show`` is read far more often than the party list, and its output is printed,
pasted and screenshotted: the full number stays behind ``case party list`` (also
``party.view``), the dossier shows enough to tell parties apart (110105********002X).
Only a reader with ``party.view`` who may see the case gets them (records/dossier.py);
the audit event counts them, never names them.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, col, select

from archive.catalog import Catalog
from records.parties import CaseParty, fold_parties


def mask_id(number: str) -> str:
    """Long numbers (居民身份证, 统一社会信用代码: 18) keep their first 6 and last 4;
    shorter ones (passports) their first and last 2; very short ones nothing."""
    n = len(number)
    if n >= 14:
        keep_head, keep_tail = 6, 4
    elif n >= 6:
        keep_head, keep_tail = 1, 2
    else:
        keep_head, keep_tail = 0, 0
    return number[:keep_head] + "*" * (n - keep_head - keep_tail) + number[n - keep_tail:]


@dataclass(frozen=True, slots=True, kw_only=True)
class PartyShown:
    id: int
    name: str
    id_type: str
    id_number_masked: str
    role: str

    def to_json(self) -> dict[str, object]:
        return {"id": self.id, "name": self.name, "id_type": self.id_type,
                "id_number_masked": self.id_number_masked, "role": self.role}


def current_parties(catalog: Catalog, case_id: str) -> tuple[PartyShown, ...]:
    """The case's current parties (corrected and removed ones left out), oldest first."""
    with Session(catalog.engine) as s:
        rows = list(s.exec(select(CaseParty).where(col(CaseParty.case_id) == case_id)))
    return tuple(PartyShown(id=p.id, name=p.name, id_type=p.id_type,
                            id_number_masked=mask_id(p.id_number), role=p.role)
                 for p in fold_parties(rows) if p.active)


__all__ = ["PartyShown", "current_parties", "mask_id"]
