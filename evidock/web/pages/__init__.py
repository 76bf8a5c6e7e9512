"""The desk's page areas, one module each with its own ``router`` (found here, so an
area is added by adding its module)."""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType


def _modules() -> list[ModuleType]:
    found = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "router"):
            found.append(module)
    return found


MODULES = _modules()

__all__ = ["MODULES"]
