"""What every desk page shares: who is asking, in which language, and how a page is drawn.

A page is a client of the same desks and the same :class:`~records.permissions.Gate` as
the API (no second set of rules): :func:`desk_call` identifies the browser's user by the
service's own session cookie (:mod:`evidock.service.sessions`) and, for a form post,
checks the session's CSRF token from the form field (a page without script cannot set a
header). Not logged in → the login page; a refusal or a bad request → an error page in
the user's language with the stable code, so nothing is swallowed.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import python_multipart  # noqa: F401 - Starlette parses the forms with it: fail at start
from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from evidock.service.login import Call
from evidock.service.routes.sessions import web_desk
from evidock.service.websession import COOKIE, WebSession
from evidock.web import i18n
from evidock.wiring import Services
from records.permissions import Actor, P

PREFIX = "/desk"
TEMPLATES = Path(__file__).with_name("templates")
CSRF_FIELD = "csrf_token"
#: Rows per page of every list; lists are paginated in the database.
PAGE_SIZE = 50
#: The desk's areas: path under the prefix, title (an English msgid), the permission
#: that shows it in the menu (the pages check their own; the menu only hides links).
NAV = (("/station", "Station", P.INGEST_RUN), ("/footage", "Footage", P.RECORDING_VIEW),
       ("/cases", "Cases", P.CASE_VIEW), ("/exports", "Exports", P.EXPORT_REQUEST),
       ("/statistics", "Statistics", P.STATS_VIEW), ("/audit", "Audit", P.AUDIT_VIEW),
       ("/retention", "Holds and retention", P.HOLD_PLACE),
       ("/center", "Center", P.CASE_VIEW))
#: Every station's cases and recordings: only at a center ([[witness.stations]]), for
#: whoever may view cases or recordings.
CENTER = "/center"


class NotLoggedIn(Exception):
    """No (live) session on a page request: the answer is the login page."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path


@dataclass(frozen=True, slots=True)
class DeskCall:
    """One page request: the user, the services, the language, the session."""

    request: Request
    actor: Actor
    svc: Services
    words: i18n.Words
    session: WebSession
    form: dict[str, Any] = field(default_factory=dict)

    @property
    def zone(self) -> tzinfo:
        return self.svc.settings.station.local_zone

    def _(self, message: str, **values: object) -> str:
        return self.words.gettext(message, **values)


def _nav(actor: Actor | None, *, center: bool = False) -> list[tuple[str, str]]:
    if actor is None:
        return []
    return [(PREFIX + path, title) for path, title, need in NAV
            if (path != CENTER or center) and (
                actor.may(need) or (need is P.EXPORT_REQUEST and actor.may(P.EXPORT_APPROVE))
                or (need is P.HOLD_PLACE and actor.may(P.RETENTION_PLAN))
                or (need is P.INGEST_RUN and actor.may(P.EQUIPMENT_VIEW))
                or (path == CENTER and actor.may(P.RECORDING_VIEW)))]


def environment() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), undefined=StrictUndefined,
                      autoescape=select_autoescape(default=True, default_for_string=True),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["urlpart"] = lambda v: quote(str(v), safe="")
    return env


_ENV = environment()


async def desk_call(request: Request) -> DeskCall:
    """The logged-in user of a page request (and, for a post, its checked form)."""
    svc: Services = request.app.state.services
    words = i18n.words(i18n.pick(request))
    form: dict[str, Any] = {}
    headers = dict(request.headers)
    if request.method not in ("GET", "HEAD"):
        data = await request.form()
        form = {k: data.getlist(k) if len(data.getlist(k)) > 1 else data.get(k)
                for k in data}
        token = data.get(CSRF_FIELD)
        if isinstance(token, str):  # else htmx's header (desk.js), if any
            headers["x-csrf-token"] = token
    address = request.client.host if request.client else "local"
    call = Call(address=address, method=request.method, path=request.url.path,
                headers=headers)
    session = web_desk(request.app).session_of(request.cookies.get(COOKIE), call)
    if session is None:
        raise NotLoggedIn(request.url.path + (f"?{request.url.query}"
                                              if request.url.query else ""))
    actor = svc.gate().by_name(session.user)
    return DeskCall(request=request, actor=actor, svc=svc, words=words, session=session,
                    form=form)


Desk = Annotated[DeskCall, Depends(desk_call)]


def position(us: int | None) -> str:
    """A place on a recording's timeline as people read and type it back: ``0:10``,
    ``1:02:03``, with milliseconds when there are any (``0:10.5``); "" for none. One
    form on every page, so a range reads the same on the footage, case and export pages."""
    if us is None:
        return ""
    whole, frac = divmod(max(0, us), 1_000_000)
    hours, rest = divmod(whole, 3600)
    text = f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else \
        f"{rest // 60}:{rest % 60:02d}"
    return text + (f".{frac // 1000:03d}".rstrip("0").rstrip(".") if frac >= 1000 else "")


def local_time(when: datetime | str | None, zone: tzinfo, *, seconds: bool = True) -> str:
    """A UTC instant as the station's wall clock (what people read on the desk)."""
    if when is None or when == "":
        return ""
    if isinstance(when, str):
        when = datetime.fromisoformat(when)
    if when.tzinfo is None:
        return when.isoformat(sep=" ", timespec="seconds")
    return when.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S" if seconds
                                          else "%Y-%m-%d %H:%M")


def render(call: DeskCall | None, name: str, *, request: Request | None = None,
           status: int = 200, words: i18n.Words | None = None, **context: Any,
           ) -> HTMLResponse:
    """A page (or, for an htmx request, its fragment) drawn for this user."""
    request = request or (call.request if call else None)
    assert request is not None
    words = words or (call.words if call else i18n.words(i18n.pick(request)))
    zone = call.zone if call else request.app.state.services.settings.station.local_zone
    base = {
        "request": request, "call": call, "me": call.actor if call else None,
        "csrf": call.session.csrf if call else "", "csrf_field": CSRF_FIELD,
        "lang": words.lang, "languages": i18n.LANGUAGES, "_": words.gettext,
        "ngettext": words.ngettext, "prefix": PREFIX,
        "when": lambda v, seconds=True: local_time(v, zone, seconds=seconds),
        "station": request.app.state.services.settings.station,
        "htmx": request.headers.get("hx-request") == "true",
        "nav": _nav(call.actor if call else None,
                    center=bool(request.app.state.services.settings.witness.stations)),
        "path": request.url.path,
        "here": request.url.path + (f"?{request.url.query}" if request.url.query else ""),
    }
    html = _ENV.get_template(name).render(**base, **context)
    return HTMLResponse(html, status_code=status)


def redirect(path: str) -> RedirectResponse:
    """After a successful post: see the result (303, so a reload does not post again)."""
    return RedirectResponse(path, status_code=303)


def safe_next(value: object) -> str:
    """Only a path of this desk may be a place to return to (no open redirect)."""
    text = value if isinstance(value, str) else ""
    if text.startswith(PREFIX + "/") and not text.startswith("//") and "\\" not in text:
        return text
    return PREFIX + "/"


def token() -> str:
    return secrets.token_urlsafe(24)


def no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response


__all__ = ["CSRF_FIELD", "NAV", "PAGE_SIZE", "PREFIX", "Desk", "DeskCall", "NotLoggedIn",
           "desk_call", "local_time", "redirect", "render", "safe_next", "token"]
