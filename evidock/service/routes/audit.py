"""The audit log: heads, proofs, events, verification; fixity."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["audit"])
