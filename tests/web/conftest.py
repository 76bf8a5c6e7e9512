"""The desk's browser fixtures (tests/desk_support.py)."""

from desk_support import chromium, desk_station  # noqa: F401 - fixtures
