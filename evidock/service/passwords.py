"""Password hashing: argon2id (argon2-cffi's RFC 9106 low-memory profile: 64 MiB, t=3).

Each verification holds 64 MiB for ~50 ms, so the service hashes at most
:data:`CONCURRENT` passwords at once: a burst of logins queues instead of exhausting the
station's memory. A login for a user without a password still verifies (against a hash
of nothing anyone knows), so the answer takes as long whether or not the user exists.
"""

from __future__ import annotations

import secrets
import threading
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from integrity.errors import InvalidRequest

#: The shortest password `evidock admin passwd` accepts.
MIN_LENGTH = 10
MAX_LENGTH = 1024
CONCURRENT = 2

_HASHER = PasswordHasher()
_SLOTS = threading.BoundedSemaphore(CONCURRENT)


@cache
def _decoy() -> str:
    return _HASHER.hash(secrets.token_hex(32))


def check_strength(user: str, password: str) -> None:
    """Refuse a password that is too short, too long, or the user's own name."""
    if len(password) < MIN_LENGTH:
        raise InvalidRequest(f"the password must have at least {MIN_LENGTH} characters",
                             field="password", minimum=MIN_LENGTH)
    if len(password) > MAX_LENGTH:
        raise InvalidRequest(f"the password may have at most {MAX_LENGTH} characters",
                             field="password", maximum=MAX_LENGTH)
    if password.casefold() == user.casefold():
        raise InvalidRequest("the password must not be the user name", field="password")


def hash_password(password: str) -> str:
    with _SLOTS:
        return _HASHER.hash(password)


def verify(stored: str | None, password: str) -> bool:
    """True if ``password`` matches ``stored`` (None: no password; always False, same
    cost)."""
    with _SLOTS:
        try:
            return _HASHER.verify(stored or _decoy(), password) and stored is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False


__all__ = ["MAX_LENGTH", "MIN_LENGTH", "check_strength", "hash_password", "verify"]
