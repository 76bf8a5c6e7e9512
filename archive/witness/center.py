"""The station's client of its center's witness API (HTTPS, mutual TLS).

Two calls: the last head the center countersigned for this station, and a new head with
the consistency proof from that one. The center's answer is not trusted: a
countersignature is kept only after it verifies with the center's keyring (from the
station's root-owned config) and names exactly the head that was sent. Errors keep their
codes: a fork the center found is :class:`LogFork` here too.
"""

from __future__ import annotations

import json
import ssl
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from archive.audit.format import SignedHead
from archive.keystore import StationKeys
from archive.witness.cosign import Cosigned
from config.witness import CenterSettings
from integrity.errors import (
    CenterUnavailable,
    ConfigError,
    EvidockError,
    LogFork,
    WitnessRefused,
)
from integrity.keys import Keyring

_API = "/api/v1/witness/stations"
_FEED = "/api/v1/feed/stations"
#: Bounds what a center may send back (a countersigned head is well under 4 KiB).
MAX_ANSWER = 256 << 10
#: A station's holds (all it was ever given, ~400 bytes each) and decisions.
RETENTION_ANSWER = 32 << 20


class CenterClient:
    def __init__(self, *, settings: CenterSettings, home: Path) -> None:
        self.settings = settings
        self.paths = settings.paths(home)

    def keyring(self) -> Keyring:
        try:
            return StationKeys.read_keyring(self.paths["keyring"])
        except EvidockError as exc:
            raise ConfigError(f"center.keyring: {exc.message}", key="center.keyring",
                              **exc.details) from exc

    def _tls(self) -> ssl.SSLContext:
        ca, cert = self.paths.get("ca_file"), self.paths.get("client_cert")
        try:
            ctx = ssl.create_default_context(cafile=str(ca) if ca is not None else None)
            if cert is not None:
                ctx.load_cert_chain(str(cert), str(self.paths["client_key"]))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"center: cannot load the TLS files: {exc}",
                              key="center.client_cert") from exc
        return ctx

    def _client(self) -> httpx.Client:
        return httpx.Client(base_url=self.settings.url.rstrip("/"), verify=self._tls(),
                            timeout=self.settings.timeout_s, follow_redirects=False,
                            # the center's CSRF rule for certificate-borne requests
                            headers={"X-Evidock-Client": "evidock-station"})

    def latest(self, station_id: str) -> Cosigned | None:
        doc = self._call("GET", f"{_API}/{quote(station_id, safe='')}/latest")
        raw = doc.get("cosigned")
        return None if raw is None else _parse(raw)

    def submit(self, head: SignedHead, proof: dict[str, Any] | None) -> Cosigned:
        doc = self._call("POST", f"{_API}/{quote(head.station_id, safe='')}/heads",
                         json={"head": head.to_dict(), "proof": proof})
        return _parse(doc.get("cosigned"))

    def position(self, station_id: str) -> int:
        """The next event seq the center wants from this station."""
        doc = self._call("GET", f"{_FEED}/{quote(station_id, safe='')}/position")
        seq = doc.get("next_seq")
        if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
            raise CenterUnavailable("the center's position is not a non-negative integer")
        return seq

    def send(self, station_id: str, events: list[dict[str, Any]]) -> dict[str, Any]:
        """Hand in a batch of events; the center's account of what it kept."""
        doc = self._call("POST", f"{_FEED}/{quote(station_id, safe='')}/events",
                         json={"events": events})
        if not isinstance(doc.get("next_seq"), int) or not isinstance(doc.get("kept"), int):
            raise CenterUnavailable("the center's answer to a batch lacks next_seq/kept")
        return doc

    def retention(self, station_id: str, deletions: list[dict[str, Any]]) -> dict[str, Any]:
        """Report open deletions; the station's center holds and the decisions on them
        (retention/center_sync.py checks what it is given)."""
        doc = self._call("POST", f"/api/v1/center/stations/{quote(station_id, safe='')}"
                         "/retention", json={"deletions": deletions}, limit=RETENTION_ANSWER)
        if not isinstance(doc.get("holds"), list) or not isinstance(doc.get("decisions"),
                                                                    list):
            raise CenterUnavailable("the center's retention answer lacks holds/decisions")
        return doc

    def _call(self, method: str, path: str, *, limit: int = MAX_ANSWER,
              **kwargs: Any) -> dict[str, Any]:
        try:
            with self._client() as client, client.stream(method, path, **kwargs) as answer:
                body = _bounded(answer, limit)
                status = answer.status_code
        except httpx.HTTPError as exc:
            raise CenterUnavailable(f"the center at {self.settings.url} cannot be reached: "
                                    f"{exc.__class__.__name__}: {exc}",
                                    url=self.settings.url) from exc
        doc = _json(body, status)
        if status >= 400:
            raise _error(doc, status)
        return doc


def _bounded(answer: httpx.Response, limit: int = MAX_ANSWER) -> bytes:
    out = bytearray()
    for chunk in answer.iter_bytes():
        out += chunk
        if len(out) > limit:
            raise CenterUnavailable("the center's answer is too large", limit=limit)
    return bytes(out)


def _json(body: bytes, status: int) -> dict[str, Any]:
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        raise CenterUnavailable(f"the center answered HTTP {status} without a JSON object",
                                status=status)
    return doc


def _error(doc: dict[str, Any], status: int) -> EvidockError:
    raw = doc.get("error")
    err: dict[str, Any] = raw if isinstance(raw, dict) else {}
    code, message = str(err.get("code", "")), str(err.get("message", ""))
    raw_details = err.get("details")
    details: dict[str, Any] = raw_details if isinstance(raw_details, dict) else {}
    if code == LogFork.code:
        return LogFork(f"the center reports: {message}", **details)
    if code == WitnessRefused.code:
        return WitnessRefused(f"the center refused the head: {message}", **details)
    return CenterUnavailable(f"the center answered HTTP {status} {code}: {message}",
                             status=status, center_code=code)


def _parse(raw: object) -> Cosigned:
    try:
        return Cosigned.from_dict(raw)  # type: ignore[arg-type]
    except EvidockError as exc:
        raise CenterUnavailable(f"the center's countersigned head is malformed: "
                                f"{exc.message}") from exc
