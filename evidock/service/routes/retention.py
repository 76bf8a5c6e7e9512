"""Retention: plan, schedule, pending, approve, run."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["retention"])
