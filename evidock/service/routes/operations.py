"""Station operations: offload, renditions, salvage, stored verification, uploads, dock status."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["operations"])
