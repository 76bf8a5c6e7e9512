"""Logging in over the network: password, session cookie, CSRF."""

from __future__ import annotations

from fastapi import APIRouter, Request

router = APIRouter(tags=["sessions"])


def session_user(request: Request) -> str | None:
    """The evidock user of a valid session cookie on this request; None without one."""
    return None
