"""EvidockError → HTTP response, and back again in the client.

The body carries the same ``{"error": {code, message, details}}`` the CLI prints with
``--json`` plus the exit code, so a command run through the service prints and exits
exactly as it did when it ran in-process.
"""

from __future__ import annotations

from typing import Any

from integrity.errors import (
    Conflict,
    EvidockError,
    Forbidden,
    InvalidRequest,
    LoginFailed,
    LoginThrottled,
    NotFound,
    Refused,
    UnknownUser,
)

#: Most specific first: the first class the error is an instance of decides.
_STATUS: tuple[tuple[type[EvidockError], int], ...] = (
    (UnknownUser, 401),
    (LoginFailed, 401),
    (LoginThrottled, 429),
    (Forbidden, 403),
    (Refused, 403),  # actions evidock never performs (delete, edit): refused, audited
    (NotFound, 404),
    (Conflict, 409),
    (InvalidRequest, 422),
)


def status_of(error: EvidockError) -> int:
    for cls, status in _STATUS:
        if isinstance(error, cls):
            return status
    # A finding-style error (exit 1) is the request's outcome, not a server fault.
    return 400 if error.exit_code == 1 else 500


def error_body(error: EvidockError) -> dict[str, Any]:
    return {"error": error.to_dict(), "exit_code": error.exit_code}


def _subclasses(cls: type[EvidockError]) -> list[type[EvidockError]]:
    out = [cls]
    for sub in cls.__subclasses__():
        out.extend(_subclasses(sub))
    return out


def error_class(code: str) -> type[EvidockError]:
    """The error class of a code (the registry gives each class its own code)."""
    for cls in _subclasses(EvidockError):
        if cls.code == code:
            return cls
    return EvidockError


def rebuild(body: dict[str, Any]) -> EvidockError:
    """The error a service answered, as the same class with the same data."""
    err = body.get("error") or {}
    cls = error_class(str(err.get("code", "")))
    details = err.get("details")
    data = {str(k): v for k, v in details.items()} if isinstance(details, dict) else {}
    data.pop("message", None)  # the positional parameter's name
    return cls(str(err.get("message", "")), **data)
