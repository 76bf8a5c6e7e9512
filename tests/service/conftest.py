"""The 国密 profile's stations, shared by the gm tests (tests/gm_support.py)."""

from gm_support import default_made, gm_made  # noqa: F401 - fixtures
