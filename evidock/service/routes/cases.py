"""Case records, links, stages, documents, marks on recordings."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["cases"])
