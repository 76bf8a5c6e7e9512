"""What every route may ask FastAPI for: the services and the user behind the request."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from evidock.wiring import Services
from records.permissions import Actor


def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


def actor(request: Request) -> Actor:
    """Identify the caller; an unknown one is refused (and audited) before any work."""
    who: Actor = request.app.state.identity(request)
    return who


ServicesDep = Annotated[Services, Depends(services)]
ActorDep = Annotated[Actor, Depends(actor)]
