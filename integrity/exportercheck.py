"""Whose key a package's statements must carry: the station's, or the exporting center's.

A station's package is signed throughout by the station. A package the center made from
footage it read back (clip.json names an ``exporter``) keeps the station's signed
manifest (checked against the station's key: ``--key``), while its own statements —
clip.json, the derivative, the gm layer — are the center's (checked against
``--center-key``). Keeping the two roles apart means the center's key can never stand
for a manifest, nor a station's key for the center's claims.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from integrity.codes import Code
from integrity.findings import Finding
from integrity.keys import KEY_ID_RE, PublicKey

EXPORTER_KEYRING = "keys/exporter.json"  # in data/
_FIELDS = {"role", "id", "key_id", "keyring"}


def declared(clip: Any) -> dict[str, Any] | None:
    """clip.json's ``exporter`` block (None: the station made the package itself)."""
    block = clip.get("exporter") if isinstance(clip, dict) else None
    return block if isinstance(block, dict) else None


def well_formed(block: dict[str, Any]) -> bool:
    return (set(block) == _FIELDS and block["role"] == "center"
            and isinstance(block["id"], str) and block["keyring"] == EXPORTER_KEYRING
            and isinstance(block["key_id"], str) and bool(KEY_ID_RE.fullmatch(block["key_id"])))


@dataclass
class StatementKeys:
    """The keys a package's statements are checked against, and whether a person gave
    them; ``findings`` says what does not fit (a center key for a station's package)."""

    known: Mapping[str, PublicKey]
    trusted: bool
    who: str  # in findings: "the given key", "the given center key"
    center: bool
    findings: list[Finding] = field(default_factory=list)


def statement_keys(clip: Any, *, station: Mapping[str, PublicKey], station_trusted: bool,
                   center: Mapping[str, PublicKey] | None,
                   own_keyring: Callable[[], Mapping[str, PublicKey]]) -> StatementKeys:
    """The keys for clip.json's signature (and the derivative's, the gm layer's).

    ``station``: the manifest's keys (given, or the package's keyring); ``center``: the
    keys given with ``--center-key``; ``own_keyring``: reads the package's
    keys/exporter.json (only for a center's package without ``--center-key``)."""
    block = declared(clip)
    if block is None:
        found = [] if center is None else [Finding(
            Code.E_KEY_MISMATCH, "a center key was given, but this package names no "
            "exporting center: its station signed it", "clip.json")]
        return StatementKeys(station, station_trusted, "the given key", False, found)
    if not well_formed(block):
        return StatementKeys({}, center is not None, "the center", True, [Finding(
            Code.E_PACKAGE_INVALID, "clip.json's exporter is not {role: center, id, "
            "key_id, keyring: keys/exporter.json}", "clip.json")])
    if center is not None:
        return StatementKeys(center, True, "the given center key", True)
    return StatementKeys(own_keyring(), False, "a key of the package's exporter keyring",
                         True)


def untrusted(keys: StatementKeys, clip: Any) -> list[Finding]:
    """The warning for a center's statements checked only against the package's copy."""
    if not keys.center or keys.trusted or keys.findings:
        return []
    block = declared(clip) or {}
    return [Finding(Code.W_KEY_UNTRUSTED, f"clip.json was signed by center "
                    f"{block.get('id')!s:.64}, checked against the key shipped in the "
                    "package; pass --center-key with the center's published key to trust it",
                    EXPORTER_KEYRING, {"key_id": block.get("key_id")})]


__all__ = ["EXPORTER_KEYRING", "StatementKeys", "declared", "statement_keys", "untrusted",
           "well_formed"]
