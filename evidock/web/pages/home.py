"""The desk's front page: who you are, and where each of your tasks lives."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from evidock.web.base import Desk, render

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
def home(call: Desk) -> HTMLResponse:
    return render(call, "home.html")


__all__ = ["router"]
