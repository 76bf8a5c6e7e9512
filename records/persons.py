"""Who counts as a person for a two-person rule (deletions, permanent marks, exports).

A built-in actor (``system:…``, such as the scheduler) is never a person: what it does
on a timer is nobody's consent. An evidock user is one person whatever roles they hold,
and people are told apart by user name: an OS account or a certificate subject maps to
one user only (``config.access``), so one login can never be two people.
"""

from __future__ import annotations

from collections.abc import Iterable

#: Actor names of built-in actors start with this; user names cannot hold ":".
SYSTEM_PREFIX = "system:"


def is_person(name: str) -> bool:
    """Is ``name`` (an actor name as stored in rows) a human user?"""
    return bool(name) and not name.startswith(SYSTEM_PREFIX)


def people(names: Iterable[str]) -> tuple[str, ...]:
    """The distinct people among ``names``, in first-seen order (built-ins left out)."""
    return tuple(dict.fromkeys(n for n in names if is_person(n)))


__all__ = ["SYSTEM_PREFIX", "is_person", "people"]
