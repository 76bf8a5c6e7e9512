"""Coverage of the record (legal review)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["coverage"])
