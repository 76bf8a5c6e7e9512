"""How commands speak: one line for people, one JSON object for machines.

One time convention: the store and the catalog keep UTC; every time a person reads is
in the station's zone with its offset (``2026-12-01 09:00:00+08:00``, :func:`show_time`)
and JSON carries the same instant as ISO 8601 with that offset (:func:`zone_times`).
The station names its zone in a header of every answer (``station.timezone``, else
``station.camera_timezone``); the client keeps it as ``Station.zone_name``.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping
from datetime import UTC, date, datetime, tzinfo
from typing import Any, NoReturn, TypeGuard, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import typer

from integrity.errors import EvidockError

#: An ISO 8601 instant with its offset (what the service's JSON carries); nothing else
#: is rewritten, so free text that merely contains a date stays as written.
_INSTANT = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d(:\d\d(\.\d{1,6})?)?(Z|[+-]\d\d:\d\d)")
#: Keys whose value is what was recorded (an audit event's details, a signed document):
#: shown verbatim, never re-zoned.
#: People's own words (a reason, a title) are theirs even when they look like a time.
VERBATIM = frozenset({"details", "manifest", "signature", "signed", "head", "proof",
                      "cosigned", "witnessed",
                      "clip", "request_doc", "reason", "note", "title", "description",
                      "message", "filename", "name", "purpose"})


def zone_of(name: str | None) -> tzinfo:
    """The zone a station named; UTC when it named none (or one this host lacks)."""
    try:
        return ZoneInfo(name) if name else UTC
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def show_time(value: datetime | str | None, zone: tzinfo | None = None) -> str:
    """A time as people read it: ``2026-12-01 09:00:00+08:00`` in ``zone`` (None: the
    offset the value carries, e.g. after :func:`zone_times`), microseconds dropped;
    "" for none."""
    if value is None or value == "":
        return ""
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    if when.utcoffset() is None:  # the catalog's naive values are UTC
        when = when.replace(tzinfo=UTC)
    if zone is not None:
        when = when.astimezone(zone)
    return when.replace(microsecond=0).isoformat(sep=" ")


def is_instant(value: object) -> TypeGuard[str]:
    """Whether ``value`` is an ISO 8601 instant with an offset (as the service sends)."""
    return isinstance(value, str) and _INSTANT.fullmatch(value) is not None


def iso_time(when: datetime, zone: tzinfo) -> str:
    """The same instant as ISO 8601 in ``zone`` with its offset (JSON)."""
    return (when if when.utcoffset() is not None else when.replace(tzinfo=UTC)
            ).astimezone(zone).isoformat()


def zone_times(obj: Any, zone: tzinfo) -> Any:
    """``obj`` (a service answer) with every ISO 8601 instant re-zoned to ``zone``: the
    same instants, with the station's offset. Recorded content (:data:`VERBATIM`) is left
    as it was written."""
    if isinstance(obj, str):
        return iso_time(datetime.fromisoformat(obj), zone) if _INSTANT.fullmatch(obj) else obj
    if isinstance(obj, Mapping):
        return {k: v if k in VERBATIM else zone_times(v, zone) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [zone_times(v, zone) for v in obj]
    return obj


#: Instants inside a sentence (an error message, a rule's reason): ISO 8601 with an
#: offset, or the retention rules' "2026-12-01 01:00 UTC".
_IN_TEXT = re.compile(r"(?<![\d-])(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?(?:Z|[+-]\d\d:\d\d))"
                      r"|(?<![\d-])(\d{4}-\d\d-\d\d \d\d:\d\d) UTC\b")


def rezone_text(text: str, zone: tzinfo) -> str:
    """A sentence the station wrote with the times in it shown in ``zone``."""
    def one(found: re.Match[str]) -> str:
        iso, utc = found.group(1), found.group(2)
        return show_time(iso if iso is not None else f"{utc}+00:00", zone)
    return _IN_TEXT.sub(one, text)


J = TypeVar("J")


def zoned(answer: J, zone_name: str | None) -> J:
    """A service answer as commands show it (human and ``--json``): its instants in the
    zone the station named (:attr:`evidock.client.Station.zone_name`)."""
    out: J = zone_times(answer, zone_of(zone_name))
    return out


def _json_default(value: object) -> object:
    if isinstance(value, datetime | date):  # ISO 8601 (with the offset it carries)
        return value.isoformat()
    return str(value)


def emit_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, indent=None, default=_json_default)
                     + "\n")
    sys.stdout.flush()


def show(obj: dict[str, object], as_json: bool) -> None:
    """A flat result: one JSON object, or ``key: value`` lines for people."""
    if as_json:
        emit_json(obj)
    else:
        for key, value in obj.items():
            typer.echo(f"{key}: {show_time(value) if is_instant(value) else value}")


def fail(exc: EvidockError, *, as_json: bool) -> NoReturn:
    """End the command with ``exc``: its exit code and one line (or the JSON error)."""
    if as_json:
        emit_json({"error": exc.to_dict()})
    else:
        typer.echo(f"evidock: {exc.code}: {exc.message}", err=True)
    raise typer.Exit(exc.exit_code)
