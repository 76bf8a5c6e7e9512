"""Web sessions: signed cookies naming sessions the service holds in memory.

The cookie carries only a random session id, signed (itsdangerous, HMAC-SHA1 over a key
in the service's keys directory, made on first start, 0600) and time-stamped, so a
forged or stale cookie is refused before any lookup. The session itself (user, the
credential it was opened with, its CSRF token, expiry) lives in this process only:
logging out ends it for good, and restarting the service ends them all. Each session
has its own CSRF token (synchronizer pattern) that a state-changing request must echo
in the ``X-CSRF-Token`` header; a cross-site page cannot read it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from itsdangerous import BadSignature, URLSafeTimedSerializer

from integrity.errors import ConfigError

COOKIE = "evidock_session"
CSRF_HEADER = "X-CSRF-Token"
SECRET_FILE = "session.key"
#: Sessions a user may hold at once; logging in again past this ends the oldest.
PER_USER = 20
_SALT = "evidock.session.v1"


@dataclass(frozen=True, slots=True)
class WebSession:
    sid: str
    user: str
    credential: int
    csrf: str
    started_at: datetime
    expires_at: datetime

    @property
    def tag(self) -> str:
        """A short name for audit events that does not reveal the session id."""
        return hashlib.sha256(self.sid.encode()).hexdigest()[:12]


def load_secret(keys_dir: Path) -> bytes:
    """The cookie-signing key, made on first use; refused if others could read it."""
    path = keys_dir / SECRET_FILE
    if not path.exists():
        keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = keys_dir / f".{SECRET_FILE}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, (secrets.token_hex(32) + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # never clobbers a key another start made meanwhile
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    st = os.stat(path, follow_symlinks=False)
    if not stat.S_ISREG(st.st_mode) or stat.S_IMODE(st.st_mode) & 0o077:
        raise ConfigError(f"{path}: the session key must be a regular file only its owner "
                          f"can read (chmod 600), not mode {stat.S_IMODE(st.st_mode):04o}",
                          key="paths.keys", file=str(path))
    try:
        return bytes.fromhex(path.read_text(encoding="ascii").strip())
    except (UnicodeDecodeError, ValueError):
        raise ConfigError(f"{path}: not a session key (remove it: the service makes a new "
                          "one and everyone logs in again)", key="paths.keys",
                          file=str(path)) from None


class WebSessions:
    def __init__(self, *, secret: bytes, hours: float,
                 clock: Callable[[], datetime]) -> None:
        self._signer = URLSafeTimedSerializer(secret, salt=_SALT)
        self.lifetime = timedelta(hours=hours)
        self.clock = clock
        self._live: dict[str, WebSession] = {}
        self._lock = threading.Lock()

    def issue(self, *, user: str, credential: int) -> tuple[str, WebSession]:
        """A new session (a new id at every login: no fixation) and its cookie value."""
        now = self.clock()
        session = WebSession(sid=secrets.token_urlsafe(32), user=user,
                             credential=credential, csrf=secrets.token_urlsafe(32),
                             started_at=now, expires_at=now + self.lifetime)
        with self._lock:
            self._forget(now, user)
            self._live[session.sid] = session
        return self._signer.dumps(session.sid), session

    def find(self, cookie: str | None) -> WebSession | None:
        """The live session a cookie names; None for no cookie, a bad or stale one."""
        if not cookie:
            return None
        try:
            sid = self._signer.loads(cookie, max_age=int(self.lifetime.total_seconds()))
        except BadSignature:  # includes SignatureExpired
            return None
        with self._lock:
            session = self._live.get(str(sid))
            if session is not None and session.expires_at <= self.clock():
                del self._live[session.sid]
                return None
        return session

    def end(self, sid: str) -> bool:
        with self._lock:
            return self._live.pop(sid, None) is not None

    @staticmethod
    def csrf_ok(session: WebSession, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(session.csrf.encode(),
                                                         token.encode())

    def _forget(self, now: datetime, user: str) -> None:
        """Drop expired sessions, and the user's oldest past :data:`PER_USER`."""
        for sid in [s for s, v in self._live.items() if v.expires_at <= now]:
            del self._live[sid]
        mine = sorted((v for v in self._live.values() if v.user == user),
                      key=lambda v: v.started_at)
        for old in mine[:max(0, len(mine) - PER_USER + 1)]:
            del self._live[old.sid]


__all__ = ["COOKIE", "CSRF_HEADER", "WebSession", "WebSessions", "load_secret"]
