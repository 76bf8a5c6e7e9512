"""The station service's FastAPI application, built from its collaborators."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from evidock.output import rezone_text
from evidock.service.errors import error_body, status_of
from evidock.service.identity import Identity, StationIdentity
from evidock.service.routes import (
    audit,
    cases,
    center_exports,
    center_retention,
    coverage,
    equipment,
    exports,
    holds,
    operations,
    parties,
    redactions,
    reports,
    retention,
    reviews,
    sessions,
    station,
    statistics,
    witness,
)
from evidock.wiring import Services
from integrity.errors import EvidockError, InvalidRequest

API = "/api/v1"
DESK = "/desk"


def build_app(*, services: Services, identity: Identity | None = None) -> FastAPI:
    """The API over ``services``; ``identity`` decides who asks (the station's own by
    default: socket peer credentials, else a login)."""
    app = FastAPI(title="evidock station service", version="1",
                  openapi_url=f"{API}/openapi.json", docs_url=None, redoc_url=None)
    app.state.services = services
    app.state.identity = identity or StationIdentity(gate=services.gate,
                                                     session_user=sessions.session_user)
    app.add_middleware(_ZoneHeader, zone=services.settings.station.local_zone_name)
    app.add_exception_handler(EvidockError, _evidock_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _invalid)  # type: ignore[arg-type]
    for module in (station, sessions, cases, coverage, statistics, exports, holds, retention,
                   audit, operations, parties, equipment, reviews, reports, redactions,
                   witness, center_retention, center_exports):
        router = module.router
        app.include_router(router, prefix=API)
    from evidock.web.desk import mount  # the pages pull in Jinja2: only when serving
    mount(app)
    return app


class _ZoneHeader:
    """Every answer names the station's zone (clients show its UTC times in it). Pure
    ASGI, so downloads stream through untouched."""

    def __init__(self, app: ASGIApp, zone: str) -> None:
        self.app = app
        self.header = (coverage.ZONE_HEADER.lower().encode("ascii"), zone.encode("ascii"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def named(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [h for h in message.get("headers", []) if h[0] != self.header[0]]
                message["headers"] = [*kept, self.header]
            await send(message)
        await self.app(scope, receive, named if scope["type"] == "http" else send)


async def _evidock_error(request: Request, exc: EvidockError) -> Response:
    if request.url.path.startswith(DESK):
        from evidock.web.desk import error_page
        return error_page(request, exc)
    body = error_body(exc)
    # People read the message: its times in the station's zone (details stay as data).
    zone = request.app.state.services.settings.station.local_zone
    body["error"]["message"] = rezone_text(body["error"]["message"], zone)
    return JSONResponse(body, status_code=status_of(exc))


async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
    # The CLI validates its own arguments; this is for other clients.
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(x) for x in first.get("loc", ()))
    err = InvalidRequest(f"{where}: {first.get('msg', 'invalid request')}", field=where)
    return JSONResponse(error_body(err), status_code=422)
