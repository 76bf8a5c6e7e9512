"""The station service's FastAPI application, built from its collaborators."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from evidock.service.errors import error_body, status_of
from evidock.service.identity import Identity, StationIdentity
from evidock.service.routes import (
    audit,
    cases,
    coverage,
    exports,
    holds,
    operations,
    retention,
    sessions,
    station,
    statistics,
)
from evidock.wiring import Services
from integrity.errors import EvidockError, InvalidRequest

API = "/api/v1"


def build_app(*, services: Services, identity: Identity | None = None) -> FastAPI:
    """The API over ``services``; ``identity`` decides who asks (the station's own by
    default: socket peer credentials, else a login)."""
    app = FastAPI(title="evidock station service", version="1",
                  openapi_url=f"{API}/openapi.json", docs_url=None, redoc_url=None)
    app.state.services = services
    app.state.identity = identity or StationIdentity(gate=services.gate,
                                                     session_user=sessions.session_user)
    app.add_exception_handler(EvidockError, _evidock_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _invalid)  # type: ignore[arg-type]
    for module in (station, sessions, cases, coverage, statistics, exports, holds, retention,
                   audit, operations):
        router = module.router
        app.include_router(router, prefix=API)
    return app


async def _evidock_error(_request: Request, exc: EvidockError) -> JSONResponse:
    return JSONResponse(error_body(exc), status_code=status_of(exc))


async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
    # The CLI validates its own arguments; this is for other clients.
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(x) for x in first.get("loc", ()))
    err = InvalidRequest(f"{where}: {first.get('msg', 'invalid request')}", field=where)
    return JSONResponse(error_body(err), status_code=422)
