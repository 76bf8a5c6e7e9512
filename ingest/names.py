"""Camera file names → what they say (serial, officer, start time), by configured patterns.

Parsing is by the camera model's patterns only, never guesswork: a name that matches
none is reported as unparsed, and the file is still stored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

from config import CameraModel


@dataclass(frozen=True)
class ParsedName:
    start: datetime  # aware, UTC
    serial: str | None
    officer: str | None
    seq: int | None


class NameParser:
    def __init__(self, *, model: CameraModel, zone: tzinfo) -> None:
        self.model = model
        self._zone = zone
        self._patterns = tuple(re.compile(p) for p in model.patterns)
        self._log_patterns = tuple(re.compile(p) for p in model.log_patterns)

    def parse(self, name: bytes) -> ParsedName | None:
        """The name's meaning, or None if it is not text or matches no pattern."""
        try:
            text = name.decode("utf-8")
        except UnicodeDecodeError:
            return None
        for pattern in self._patterns:
            match = pattern.fullmatch(text)
            if match is None:
                continue
            try:
                local = datetime.strptime(match["start"], self.model.start_format)
            except ValueError:
                continue  # e.g. month 13: the name lies, so it is not parsed
            groups = match.groupdict()
            seq = groups.get("seq")
            return ParsedName(
                start=local.replace(tzinfo=self._zone).astimezone(UTC),
                serial=groups.get("serial"),
                officer=groups.get("officer"),
                seq=int(seq) if seq else None,
            )
        return None

    def is_known_log(self, name: bytes) -> bool:
        text = name.decode("utf-8", "replace")
        return any(p.fullmatch(text) for p in self._log_patterns)
