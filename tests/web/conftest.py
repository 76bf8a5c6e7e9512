"""The desk's browser fixtures (tests/desk_support.py)."""

from desk_support import desk_station  # noqa: F401 - a fixture
