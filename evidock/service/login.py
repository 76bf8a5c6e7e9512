"""Who is calling over TCP: a password login's session, or a client certificate.

Every login failure is an audit event ``access.login_failed`` (reason, client address,
never the password) and counts against the account and the address
(:class:`~evidock.service.throttle.LoginThrottle`); a lockout is audited when it starts.
A successful login is ``access.login``, a logout ``access.logout``. A state-changing
request riding on a session cookie must carry that session's CSRF token, one riding on a
client certificate the ``X-Evidock-Client`` header (a cross-site form can set neither);
a refusal is ``access.refused`` with the code, like every other refusal.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NoReturn

from archive.audit.log import AuditLog
from config import Settings
from evidock.service import passwords
from evidock.service.throttle import LoginThrottle, Verdict
from evidock.service.websession import WebSession, WebSessions
from integrity.errors import CsrfRejected, LoginFailed, LoginThrottled, UnknownUser
from records.credentials import CredentialBook

#: Methods that change nothing (no CSRF token needed).
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CLIENT_HEADER = "X-Evidock-Client"


@dataclass(frozen=True, slots=True)
class Call:
    """What identifies one request over TCP, as the route saw it."""

    address: str
    method: str
    path: str
    headers: Mapping[str, str]

    @property
    def changes(self) -> bool:
        return self.method.upper() not in SAFE_METHODS


class WebDesk:
    def __init__(self, *, settings: Settings, credentials: CredentialBook, audit: AuditLog,
                 sessions: WebSessions, throttle: LoginThrottle,
                 clock: Callable[[], datetime]) -> None:
        self.settings, self.credentials, self.audit = settings, credentials, audit
        self.sessions, self.throttle, self.clock = sessions, throttle, clock

    def login(self, user: str, password: str, *, address: str) -> tuple[str, WebSession]:
        """A new session for the right password; raise (audited) otherwise."""
        keys = (f"user:{user}", f"addr:{address}")
        verdict = self.throttle.attempt(keys)
        if not verdict.allowed:
            self._throttled(user, address, verdict)
        known = any(u.name == user for u in self.settings.access.users)
        current = self.credentials.current(user) if known else None
        if not passwords.verify(current.hash if current else None, password) \
                or current is None:
            reason = ("unknown_user" if not known else
                      "no_password" if current is None else "bad_password")
            seq = self._failed(user, address, reason, unreported=verdict.unreported)
            raise LoginFailed(f"login refused: wrong user name or password (audit event "
                              f"{seq})", user=user, audit_seq=seq)
        self.throttle.succeeded(keys)
        cookie, session = self.sessions.issue(user=user, credential=current.id)
        self.audit.record(actor=f"user:{user}", action="access.login", subjects=[],
                          details={"address": address, "via": "password",
                                   "session": session.tag,
                                   "expires_at": session.expires_at.isoformat(),
                                   **({"unreported": verdict.unreported}
                                      if verdict.unreported else {})},
                          at=self.clock())
        return cookie, session

    def logout(self, session: WebSession, *, address: str) -> bool:
        ended = self.sessions.end(session.sid)
        if ended:
            self.audit.record(actor=f"user:{session.user}", action="access.logout",
                              subjects=[], details={"address": address,
                                                    "session": session.tag},
                              at=self.clock())
        return ended

    def session_of(self, cookie: str | None, call: Call) -> WebSession | None:
        """The live session of a cookie, if its password is still the one in force; a
        state-changing call without the session's token is refused (audited)."""
        session = self.sessions.find(cookie)
        if session is None:
            return None
        if self.credentials.current_id(session.user) != session.credential:
            self.sessions.end(session.sid)  # password changed or login disabled since
            return None
        if call.changes and not self.sessions.csrf_ok(session,
                                                      call.headers.get("x-csrf-token")):
            self._csrf(f"user:{session.user}", call, "the session's CSRF token is missing "
                       "or wrong: send it in the X-CSRF-Token header (GET /api/v1/session)")
        return session

    def certificate_user(self, subject: str, call: Call) -> str:
        """The user a verified client certificate's subject maps to (refused, audited,
        when none does)."""
        user = next((u.name for u in self.settings.access.users
                     if subject in u.cert_subjects), None)
        if user is None:
            event = self.audit.record(actor=f"cert:{subject}", action="access.refused",
                                      subjects=[], details={"code": UnknownUser.code,
                                                            "address": call.address},
                                      at=self.clock())
            raise UnknownUser(f"client certificate {subject!r} is not an evidock user; an "
                              "admin adds it to [[access.users]] (cert_subjects)",
                              subject=subject, audit_seq=event.seq)
        if call.changes and not call.headers.get(CLIENT_HEADER.lower()):
            self._csrf(f"user:{user}", call, f"a state-changing request with a client "
                       f"certificate must carry the {CLIENT_HEADER} header")
        return user

    def _csrf(self, actor: str, call: Call, why: str) -> None:
        event = self.audit.record(actor=actor, action="access.refused", subjects=[],
                                  details={"code": CsrfRejected.code, "why": why,
                                           "method": call.method, "path": call.path,
                                           "address": call.address}, at=self.clock())
        raise CsrfRejected(f"refused: {why} (audit event {event.seq})", actor=actor,
                           path=call.path, audit_seq=event.seq)

    def _throttled(self, user: str, address: str, verdict: Verdict) -> NoReturn:
        wait = max(1, math.ceil(verdict.wait_s))  # whole seconds: audit details hold no floats
        seq = None
        if verdict.report:
            seq = self._failed(user, address, "locked", unreported=verdict.unreported,
                               retry_after_s=wait)
        raise LoginThrottled(
            f"login refused: too many failed logins for {user!r} or from {address} in the "
            f"last minute; try again in {wait} s", user=user, retry_after_s=wait,
            audit_seq=seq)

    def _failed(self, user: str, address: str, reason: str, **extra: Any) -> int:
        known = any(u.name == user for u in self.settings.access.users)
        details: dict[str, Any] = {"user": user, "address": address, "reason": reason,
                                   "code": (LoginThrottled if reason == "locked"
                                            else LoginFailed).code}
        details.update({k: v for k, v in extra.items() if v})
        event = self.audit.record(actor=f"user:{user}" if known else f"login:{user}",
                                  action="access.login_failed", subjects=[],
                                  details=details, at=self.clock())
        return event.seq


__all__ = ["CLIENT_HEADER", "SAFE_METHODS", "Call", "WebDesk"]
