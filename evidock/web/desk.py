"""The web desk: server-rendered pages under ``/desk`` in the station service's app.

Mounted by :func:`evidock.service.app.build_app`. Every page is answered with a strict
Content-Security-Policy (only this origin's scripts, styles, images and media; no inline
script or style, no frames), so markup that slipped through escaping still cannot run.
Static files are this package's own (the vendored htmx with its licence): the desk
loads nothing from outside, as stations sit on a LAN without internet.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from evidock.service.errors import status_of
from evidock.service.routes.sessions import web_desk
from evidock.service.websession import COOKIE
from evidock.web import i18n
from evidock.web.base import PREFIX, NotLoggedIn, redirect, render, safe_next, token
from integrity.errors import EvidockError, LoginFailed, LoginThrottled

STATIC = Path(__file__).with_name("static")
LOGIN_COOKIE = "evidock_login"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "media-src 'self' blob:; connect-src 'self'; font-src 'self'; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")
HEADERS = [(b"content-security-policy", CSP.encode()),
           (b"x-content-type-options", b"nosniff"),
           (b"x-frame-options", b"DENY"),
           (b"referrer-policy", b"same-origin"),
           (b"cross-origin-opener-policy", b"same-origin")]

router = APIRouter(include_in_schema=False)


class DeskHeaders:
    """Security headers on every answer under the desk's prefix. Pure ASGI, so a
    streamed download passes through untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.names = {name for name, _ in HEADERS}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope.get("path", "")).startswith(PREFIX):
            await self.app(scope, receive, send)
            return

        async def headed(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [h for h in message.get("headers", []) if h[0] not in self.names]
                message["headers"] = [*kept, *HEADERS]
            await send(message)
        await self.app(scope, receive, headed)


def mount(app: FastAPI) -> None:
    """Add the desk's pages, its static files and its error pages to ``app``."""
    from evidock.web import pages  # the page modules, each with its own router

    app.add_middleware(DeskHeaders)
    app.mount(f"{PREFIX}/static", StaticFiles(directory=STATIC), name="desk-static")
    app.include_router(router, prefix=PREFIX)
    for module in pages.MODULES:
        app.include_router(module.router, prefix=PREFIX)
    app.add_exception_handler(NotLoggedIn, _to_login)  # type: ignore[arg-type]


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "") -> Response:
    """The login form; its token is a SameSite=Strict cookie's twin, so another site
    cannot post this form for someone (login CSRF)."""
    nonce = token()
    response = render(None, "login.html", request=request, next=safe_next(next),
                      login_token=nonce, failed="")
    _login_cookie(response, request, nonce)
    return response


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    form = await request.form()
    words = i18n.words(i18n.pick(request))
    user, password = str(form.get("user", "")), str(form.get("password", ""))
    nonce, back = str(form.get("login_token", "")), safe_next(form.get("next"))
    failed, status = "", 200
    if not nonce or nonce != request.cookies.get(LOGIN_COOKIE):
        failed, status = words.gettext("The login form expired. Please try again."), 400
    elif not user or not password:
        failed, status = words.gettext("Enter your user name and password."), 400
    else:
        desk = web_desk(request.app)
        try:
            cookie, _session = desk.login(user, password, address=_address(request))
        except LoginThrottled as exc:
            failed = words.gettext("Too many failed logins. Try again in %(s)s seconds.",
                                   s=exc.details.get("retry_after_s", 60))
            status = 429
        except (LoginFailed, EvidockError):
            failed, status = words.gettext("Wrong user name or password."), 401
        else:
            done = redirect(back)
            done.set_cookie(COOKIE, cookie, path="/", httponly=True, samesite="strict",
                                secure=request.url.scheme == "https",
                                max_age=int(desk.sessions.lifetime.total_seconds()))
            done.delete_cookie(LOGIN_COOKIE, path=PREFIX)
            return done
    fresh = token()
    response = render(None, "login.html", request=request, status=status, next=back,
                      login_token=fresh, failed=failed, words=words, user=user)
    _login_cookie(response, request, fresh)
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    from evidock.web.base import desk_call

    call = await desk_call(request)  # checks the form's CSRF token
    web_desk(request.app).logout(call.session, address=_address(request))
    response = redirect(f"{PREFIX}/login")
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict",
                           secure=request.url.scheme == "https")
    return response


@router.get("/lang/{lang}")
def switch_language(lang: str, next: str = "") -> Response:
    response = redirect(safe_next(next))
    if lang in i18n.LANGUAGES:
        response.set_cookie(i18n.COOKIE, lang, path="/", samesite="strict",
                            max_age=365 * 86400)
    return response


def _login_cookie(response: Response, request: Request, nonce: str) -> None:
    response.set_cookie(LOGIN_COOKIE, nonce, path=PREFIX, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https", max_age=3600)


def _address(request: Request) -> str:
    return request.client.host if request.client else "local"


async def _to_login(request: Request, exc: NotLoggedIn) -> Response:
    if request.headers.get("hx-request") == "true":  # htmx: reload the whole page there
        return Response(status_code=401, headers={"HX-Redirect": f"{PREFIX}/login"})
    from urllib.parse import quote
    return RedirectResponse(f"{PREFIX}/login?next={quote(exc.path, safe='')}",
                            status_code=303)


def error_page(request: Request, exc: EvidockError) -> Response:
    """A refusal or bad request on a page, in the user's language, with its code."""
    words = i18n.words(i18n.pick(request))
    title = words.gettext(exc.code)
    return render(None, "error.html", request=request, status=status_of(exc), words=words,
                  code=exc.code, title=title if title != exc.code else "",
                  message=str(exc), audit_seq=exc.details.get("audit_seq"))


__all__ = ["CSP", "DeskHeaders", "error_page", "mount"]
