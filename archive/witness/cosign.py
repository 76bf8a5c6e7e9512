"""A tree head countersigned by a witness: "I saw this signed head at this time".

The witness signs the JCS bytes of ``{v, kind, head, witness, witnessed_at, key_id}``,
where ``head`` is the station's whole signed head (its signature included), with its own
key. Anyone holding the witness's public keyring can check offline that the station's
log had this size and root no later than ``witnessed_at``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from archive.audit.format import SignedHead, iso, parse_iso, text_fields
from archive.keystore import StationKeys
from integrity.canonical import canonical_bytes
from integrity.errors import AuditError
from integrity.findings import E_KEY_UNKNOWN, E_SIGNATURE_INVALID, Finding
from integrity.keys import Keyring, is_valid, sign

KIND = "evidock.witnessed-head"


@dataclass(frozen=True)
class Cosigned:
    head: SignedHead
    witness_id: str
    witnessed_at: datetime
    key_id: str
    signature: str

    def signed_bytes(self) -> bytes:
        return canonical_bytes({"v": 1, "kind": KIND, "head": self.head.to_dict(),
                                "witness": self.witness_id,
                                "witnessed_at": iso(self.witnessed_at),
                                "key_id": self.key_id})

    def to_dict(self) -> dict[str, Any]:
        return {"v": 1, "kind": KIND, "head": self.head.to_dict(),
                "witness": self.witness_id, "witnessed_at": iso(self.witnessed_at),
                "key_id": self.key_id, "signature": self.signature}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Cosigned:
        if not isinstance(data, Mapping) or data.get("kind") != KIND or data.get("v") != 1:
            raise AuditError("not a witnessed head (kind evidock.witnessed-head, v 1)")
        head = data.get("head")
        if not isinstance(head, Mapping):
            raise AuditError("a witnessed head needs the station's head", field="head")
        texts = text_fields(data, ("witness", "key_id", "signature"), "witnessed head")
        return cls(SignedHead.from_dict(head), texts["witness"],
                   parse_iso(data.get("witnessed_at"), "witnessed_at"), texts["key_id"],
                   texts["signature"])

    def check(self, keyring: Keyring, subject: str) -> list[Finding]:
        """The witness's key known and its signature valid; findings, never raises."""
        key = keyring.get(self.key_id)
        if key is None:
            return [Finding(E_KEY_UNKNOWN, "countersigned by a key not in the witness's "
                            "keyring", subject, {"key_id": self.key_id})]
        try:
            signature = bytes.fromhex(self.signature)
        except ValueError:
            signature = b""
        if not is_valid(key, self.signed_bytes(), signature):
            return [Finding(E_SIGNATURE_INVALID, "countersignature does not verify", subject,
                            {"key_id": self.key_id, "size": self.head.size})]
        return []


class Cosigner:
    """Countersigns with this service's own key (the center's station key)."""

    def __init__(self, *, keys: StationKeys, witness_id: str) -> None:
        self.keys = keys
        self.witness_id = witness_id

    def cosign(self, head: SignedHead, *, at: datetime) -> Cosigned:
        key = self.keys.load()
        unsigned = Cosigned(head, self.witness_id, at, key.key_id, "")
        return Cosigned(head, self.witness_id, at, key.key_id,
                        sign(key, unsigned.signed_bytes()).hex())
