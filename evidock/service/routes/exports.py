"""Export requests, approvals, runs and downloads."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["exports"])
