"""Logging in over the network: password, session cookie, CSRF.

``POST /login`` (JSON ``{"user", "password"}``) sets the session cookie (HttpOnly,
SameSite=Strict, Secure over HTTPS) and answers the session's CSRF token;
``GET /session`` says who is calling and how, with the token again; ``POST /logout``
ends the session. Only JSON is accepted at ``/login``: a cross-site HTML form cannot
send it, so no other site can log a browser in as someone else.
"""

from __future__ import annotations

import threading

from fastapi import APIRouter, FastAPI, Request, Response
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from evidock.service import passwords
from evidock.service.deps import ActorDep
from evidock.service.login import Call, WebDesk
from evidock.service.peer import STATE_KEY as PEER_KEY
from evidock.service.throttle import LoginThrottle
from evidock.service.tls import client_subject
from evidock.service.websession import COOKIE, CSRF_HEADER, WebSession, WebSessions, load_secret
from evidock.wiring import Services
from integrity.errors import InvalidRequest
from records.credentials import CredentialBook

router = APIRouter(tags=["sessions"])
_MADE = threading.Lock()


def web_desk(app: FastAPI) -> WebDesk:
    """The app's one login desk (made on first use; the service makes it at start-up
    when it listens on TCP, so a bad session key stops it there)."""
    with _MADE:
        desk = getattr(app.state, "web_desk", None)
        if not isinstance(desk, WebDesk):
            svc: Services = app.state.services
            secret = load_secret(svc.settings.keys_dir)
            desk = WebDesk(
                settings=svc.settings, audit=svc.audit(), clock=svc.clock,
                credentials=CredentialBook(catalog=svc.catalog, audit=svc.audit(),
                                           clock=svc.clock),
                sessions=WebSessions(secret=secret, hours=svc.settings.service.session_hours,
                                     clock=svc.clock),
                throttle=LoginThrottle(limit=svc.settings.service.login_attempts_per_minute))
            app.state.web_desk = desk
    return desk


def _call(request: Request) -> Call:
    address = request.client.host if request.client else "local"
    return Call(address=address, method=request.method, path=request.url.path,
                headers=request.headers)


def session_user(request: Request) -> str | None:
    """The evidock user of a verified client certificate or a valid session cookie on
    this request; None without either."""
    desk, call = web_desk(request.app), _call(request)
    subject = client_subject(request)
    if subject is not None:
        return desk.certificate_user(subject, call)
    session = desk.session_of(request.cookies.get(COOKIE), call)
    return None if session is None else session.user


class LoginBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user: str = Field(pattern=r"^[A-Za-z0-9._@-]{1,64}$")
    password: SecretStr = Field(min_length=1, max_length=passwords.MAX_LENGTH)


def _session_json(session: WebSession, *, via: str) -> dict[str, object]:
    return {"user": session.user, "via": via, "csrf_token": session.csrf,
            "csrf_header": CSRF_HEADER, "expires_at": session.expires_at.isoformat()}


@router.post("/login")
def login(body: LoginBody, request: Request, response: Response) -> dict[str, object]:
    """Check the password, open a session: its cookie, and the CSRF token to send with
    every state-changing request."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        raise InvalidRequest("log in with a JSON body (Content-Type: application/json)",
                             field="content-type")
    desk = web_desk(request.app)
    cookie, session = desk.login(body.user, body.password.get_secret_value(),
                                 address=_call(request).address)
    response.set_cookie(COOKIE, cookie, max_age=int(desk.sessions.lifetime.total_seconds()),
                        path="/", httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")
    return _session_json(session, via="password")


@router.post("/logout")
def logout(request: Request, response: Response, actor: ActorDep) -> dict[str, object]:
    """End this request's session (its CSRF token is needed, as for any change)."""
    desk = web_desk(request.app)
    session = desk.sessions.find(request.cookies.get(COOKIE))
    ended = session is not None and desk.logout(session, address=_call(request).address)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict",
                           secure=request.url.scheme == "https")
    return {"user": actor.name, "logged_out": ended}


@router.get("/session")
def current(request: Request, actor: ActorDep) -> dict[str, object]:
    """Who is calling, and how: the station socket, a client certificate, a session."""
    if getattr(request.state, PEER_KEY, None) is not None:
        return {"user": actor.name, "via": "socket"}
    if client_subject(request) is not None:
        return {"user": actor.name, "via": "certificate",
                "subject": client_subject(request)}
    session = web_desk(request.app).sessions.find(request.cookies.get(COOKIE))
    if session is None:  # cannot happen: the actor came from this cookie
        return {"user": actor.name, "via": "password"}
    return _session_json(session, via="password")
