"""A recording's labels wherever it is reached from.

A recording has no label of its own: it is as secret as the strictest case it is
actively linked to, and belongs to the units of all of them. So whatever reaches it
through one case (an export of a case, a list, a count, an audit event naming it) must
check every case it is linked to, not only the one it was reached through.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from integrity.errors import HiddenItem
from records.casebook import Casebook
from records.dossier import recording_visible
from records.permissions import Actor, Gate, P


def hidden_recordings(book: Casebook, actor: Actor, ids: Iterable[str], *,
                      labels_only: bool = False) -> list[str]:
    """Those of ``ids`` the actor may not see (sorted); ``labels_only``: by the units
    and labels of their cases alone, not ``recording.view`` (coverage says whether
    footage exists to readers who may not watch it)."""
    wanted = sorted(set(ids))
    linked = book.sensitivity_of_recordings(wanted)
    return [r for r in wanted if not (actor.sees_every(linked[r]) if labels_only
                                      else recording_visible(actor, linked[r]))]


def require_items(gate: Gate, book: Casebook, actor: Actor, permission: P, *,
                  subjects: Sequence[str], ids: Iterable[str], what: str) -> None:
    """Pass, or audit the refusal and raise :class:`HiddenItem` naming the hidden
    recordings (never the cases that hide them: their numbers are as secret)."""
    hidden = hidden_recordings(book, actor, ids)
    if hidden:
        gate.refuse(actor, permission, [*subjects, *(f"recording:{r}" for r in hidden)],
                    f"{len(hidden)} recording(s) of {what} are linked to cases beyond what "
                    f"{actor.name} may see: {', '.join(hidden)}", error=HiddenItem)


__all__ = ["hidden_recordings", "require_items"]
