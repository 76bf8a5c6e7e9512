"""CLI: coverage of the recording list (being written)."""

from __future__ import annotations


def coverage() -> None:
    """Which required stages of which cases have footage (音像记录事项清单)."""
