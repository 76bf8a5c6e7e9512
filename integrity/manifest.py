"""The signed rendition manifest: what a station made from which originals, and its seal.

Design choices (also in the report to the lead):

* Media times are **integer microseconds** (``start_us``/``end_us``): exact, and JSON
  numbers stay integers under RFC 8785 (floats are refused, see :mod:`integrity.canonical`).
* ``created_at`` is passed in (this package reads no clock) and stored in one spelling:
  ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z`` in UTC, fraction only when non-zero.
* ``merkle_root`` is RFC 6962 with H = BLAKE3 over the leaf data = each segment's raw
  32-byte BLAKE3 digest. If the rendition has an init segment it **is leaf 0** (index 0,
  ``start_us == end_us == 0``) and media segments are numbered from 1, so a segment's
  ``index`` is always its leaf index and the init segment is covered by inclusion proofs.
* The signature is Ed25519 over the canonical (JCS) bytes of the ``manifest`` object.
  File form: ``{"manifest": {...}, "signature": {"alg", "key_id", "sig"}}``, itself
  canonical, without a trailing newline.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields, is_dataclass, replace
from datetime import UTC, datetime
from typing import Any, NoReturn

from integrity import keys, merkle
from integrity.canonical import (
    MAX_SAFE_INT,
    canonical_bytes,
    parse_canonical,
    parse_json_object,
)
from integrity.errors import ManifestInvalid, SignatureInvalid
from integrity.findings import (
    E_KEY_UNKNOWN,
    E_MERKLE_ROOT_MISMATCH,
    E_SIGNATURE_INVALID,
    Finding,
)

VERSION = 1
HASH_ALGO = "blake3"
RENDITION_KINDS = ("remux", "transcode", "audio")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_SIG_HEX = re.compile(r"[0-9a-f]{128}")


# --------------------------------------------------------------------------- validation


def _fail(field: str, message: str, **details: Any) -> NoReturn:
    raise ManifestInvalid(f"{field}: {message}" if field else message, field=field, **details)


@contextmanager
def _within(prefix: str) -> Iterator[None]:
    """Prefix the failing field of nested values, e.g. ``segments[3].blake3``."""
    try:
        yield
    except ManifestInvalid as exc:
        inner = str(exc.details.get("field") or "")
        full = f"{prefix}.{inner}" if inner else prefix
        details = {**exc.details, "field": full}
        message = exc.message.removeprefix(f"{inner}: ") if inner else exc.message
        raise ManifestInvalid(f"{full}: {message}", **details) from None


def _text(value: object, field: str, *, optional: bool = False) -> None:
    if optional and value is None:
        return
    if not isinstance(value, str) or not value.strip():
        _fail(field, "must be a non-empty string", value=value)


def _int(value: object, field: str, minimum: int = 0) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(field, "must be an integer", value=value)
    if value < minimum:
        _fail(field, f"must be >= {minimum}", value=value)
    if value > MAX_SAFE_INT:
        _fail(field, "exceeds JSON's exact integer range", value=value)


def _hex64(value: object, field: str) -> None:
    if not isinstance(value, str) or not _HEX64.fullmatch(value):
        _fail(field, "must be 64 lowercase hex digits", value=value)


def _tuple_of(value: object, kind: type, field: str) -> None:
    if not isinstance(value, tuple):
        _fail(field, "must be a tuple", value=type(value).__name__)
    for i, item in enumerate(value):
        if not isinstance(item, kind):
            _fail(f"{field}[{i}]", f"must be {kind.__name__}", value=type(item).__name__)


def _fields(data: object, cls: type) -> dict[str, Any]:
    """The object's members, which must be exactly the dataclass's fields."""
    return _fields_named(data, [f.name for f in fields(cls)])


def _fields_named(data: object, names: Sequence[str]) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        _fail("", "must be a JSON object")
    for name in names:
        if name not in data:
            _fail(name, "missing field")
    for name in data:
        if name not in names:
            _fail(str(name), "unknown field")
    return dict(data)


def _as_dict(value: Any) -> dict[str, Any]:
    """A dataclass as a JSON object: every field (None included), tuples as lists."""
    return {f.name: _as_json(getattr(value, f.name)) for f in fields(value)}


def _as_json(value: object) -> object:
    if is_dataclass(value) and not isinstance(value, type):
        return _as_dict(value)
    if isinstance(value, tuple):
        return [_as_json(v) for v in value]
    return value


def format_utc(moment: datetime) -> str:
    """The one spelling of ``created_at``; ``moment`` must be timezone-aware."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        _fail("created_at", "datetime must be timezone-aware")
    utc = moment.astimezone(UTC)
    frac = f".{utc.microsecond:06d}" if utc.microsecond else ""
    # isoformat, not strftime: strftime does not zero-pad years before 1000 on glibc.
    return utc.replace(tzinfo=None, microsecond=0).isoformat() + frac + "Z"


def _created_at(value: object) -> None:
    if not isinstance(value, str) or not value.endswith("Z"):
        _fail("created_at", "must be an ISO-8601 UTC string ending in Z", value=value)
    try:
        canonical = format_utc(datetime.fromisoformat(value))
    except (ValueError, OverflowError):
        _fail("created_at", "not a valid ISO-8601 time", value=value)
    if canonical != value:
        _fail("created_at", "must be spelled YYYY-MM-DDTHH:MM:SS[.ffffff]Z", value=value)


# --------------------------------------------------------------------------- values


@dataclass(frozen=True)
class OriginalRef:
    """An original recording (as offloaded from the camera) the rendition was made from."""

    recording_id: str
    name: str
    size: int
    blake3: str
    sha256: str

    def __post_init__(self) -> None:
        _text(self.recording_id, "recording_id")
        _text(self.name, "name")
        _int(self.size, "size")
        _hex64(self.blake3, "blake3")
        _hex64(self.sha256, "sha256")

    def to_dict(self) -> dict[str, Any]:
        return _as_dict(self)

    @classmethod
    def from_dict(cls, data: object) -> OriginalRef:
        return cls(**_fields(data, cls))


@dataclass(frozen=True)
class SegmentEntry:
    """One rendition file. ``index`` is its Merkle leaf index; times in microseconds."""

    index: int
    start_us: int
    end_us: int
    size: int
    blake3: str
    name: str

    def __post_init__(self) -> None:
        _int(self.index, "index")
        _int(self.start_us, "start_us")
        _int(self.end_us, "end_us", self.start_us)
        _int(self.size, "size", 1)
        _hex64(self.blake3, "blake3")
        _text(self.name, "name")

    @property
    def digest(self) -> bytes:
        """The raw BLAKE3 digest: this segment's Merkle leaf data."""
        return bytes.fromhex(self.blake3)

    def to_dict(self) -> dict[str, Any]:
        return _as_dict(self)

    @classmethod
    def from_dict(cls, data: object) -> SegmentEntry:
        return cls(**_fields(data, cls))


@dataclass(frozen=True)
class Rendition:
    """How the segments were made: ``tool`` e.g. "ffmpeg 5.1.6" and its exact argv."""

    kind: str
    container: str
    tool: str
    argv: tuple[str, ...]
    init_segment: SegmentEntry | None = None

    def __post_init__(self) -> None:
        if self.kind not in RENDITION_KINDS:
            _fail("kind", f"must be one of {', '.join(RENDITION_KINDS)}", value=self.kind)
        _text(self.container, "container")
        _text(self.tool, "tool")
        _tuple_of(self.argv, str, "argv")
        if self.init_segment is not None and not isinstance(self.init_segment, SegmentEntry):
            _fail("init_segment", "must be a segment entry or null")

    def to_dict(self) -> dict[str, Any]:
        return _as_dict(self)

    @classmethod
    def from_dict(cls, data: object) -> Rendition:
        raw = _fields(data, cls)
        if not isinstance(raw["argv"], list):
            _fail("argv", "must be a list of strings")
        init = raw["init_segment"]
        if init is not None:
            with _within("init_segment"):
                init = SegmentEntry.from_dict(init)
        return cls(raw["kind"], raw["container"], raw["tool"], tuple(raw["argv"]), init)


@dataclass(frozen=True, kw_only=True)
class Manifest:
    """Everything the station asserts about one rendition; sealed by :func:`sign_manifest`."""

    version: int = VERSION
    station_id: str
    device_serial: str
    officer_id: str | None
    created_at: str
    originals: tuple[OriginalRef, ...]
    rendition: Rendition
    segments: tuple[SegmentEntry, ...]
    hash_algo: str = HASH_ALGO
    merkle_root: str

    def __post_init__(self) -> None:
        if self.version != VERSION or isinstance(self.version, bool):
            _fail("version", f"unsupported manifest version (want {VERSION})", value=self.version)
        _text(self.station_id, "station_id")
        _text(self.device_serial, "device_serial")
        _text(self.officer_id, "officer_id", optional=True)
        _created_at(self.created_at)
        _tuple_of(self.originals, OriginalRef, "originals")
        if not self.originals:
            _fail("originals", "at least one original is required")
        ids = [o.recording_id for o in self.originals]
        if len(set(ids)) != len(ids):
            _fail("originals", "recording_id appears twice")
        if not isinstance(self.rendition, Rendition):
            _fail("rendition", "must be a Rendition")
        _tuple_of(self.segments, SegmentEntry, "segments")
        if self.hash_algo != HASH_ALGO:
            _fail("hash_algo", f"must be {HASH_ALGO!r}", value=self.hash_algo)
        _hex64(self.merkle_root, "merkle_root")
        self._check_layout()

    def _check_layout(self) -> None:
        """Leaf indexes contiguous; media times increasing and non-overlapping."""
        if not self.segments:
            _fail("segments", "at least one segment is required")
        init = self.rendition.init_segment
        if init is not None and (init.index, init.start_us, init.end_us) != (0, 0, 0):
            _fail("rendition.init_segment", "init segment must have index 0 and zero times")
        first = 0 if init is None else 1
        previous_end = 0
        for i, seg in enumerate(self.segments):
            where = f"segments[{i}]"
            if seg.index != first + i:
                _fail(f"{where}.index", f"must be {first + i} (contiguous)", value=seg.index)
            if seg.end_us <= seg.start_us:
                _fail(f"{where}.end_us", "must be after start_us", value=seg.end_us)
            if seg.start_us < previous_end:
                _fail(f"{where}.start_us", "overlaps the previous segment", value=seg.start_us)
            previous_end = seg.end_us
        names = [e.name for e in self.entries()]
        if len(set(names)) != len(names):
            _fail("segments", "two entries share a file name")

    def entries(self) -> tuple[SegmentEntry, ...]:
        """Every file in Merkle leaf order: the init segment (if any) first."""
        init = self.rendition.init_segment
        return self.segments if init is None else (init, *self.segments)

    def leaf_hashes(self) -> list[bytes]:
        return [merkle.leaf_hash(e.digest, merkle.BLAKE3) for e in self.entries()]

    def computed_merkle_root(self) -> str:
        return merkle_root_of(self.entries())

    def inclusion_proof(self, leaf_index: int) -> merkle.InclusionProof:
        return merkle.inclusion_proof(self.leaf_hashes(), leaf_index, merkle.BLAKE3)

    def to_dict(self) -> dict[str, Any]:
        return _as_dict(self)

    def to_canonical_bytes(self) -> bytes:
        return canonical_bytes(self.to_dict())

    @classmethod
    def from_dict(cls, data: object) -> Manifest:
        """Validate every field; ManifestInvalid names the first failing one."""
        if isinstance(data, Mapping) and data.get("version") != VERSION:
            _fail("version", "unsupported manifest version", value=data.get("version"))
        raw = _fields(data, cls)
        for key in ("originals", "segments"):
            if not isinstance(raw[key], list):
                _fail(key, "must be a list")
        originals, segments = [], []
        for i, item in enumerate(raw["originals"]):
            with _within(f"originals[{i}]"):
                originals.append(OriginalRef.from_dict(item))
        for i, item in enumerate(raw["segments"]):
            with _within(f"segments[{i}]"):
                segments.append(SegmentEntry.from_dict(item))
        with _within("rendition"):
            raw["rendition"] = Rendition.from_dict(raw["rendition"])
        return cls(**{**raw, "originals": tuple(originals), "segments": tuple(segments)})

    @classmethod
    def from_canonical_bytes(cls, data: bytes) -> Manifest:
        return cls.from_dict(parse_canonical(data))


def merkle_root_of(entries: Sequence[SegmentEntry]) -> str:
    """RFC 6962 root (H = BLAKE3) over the entries' raw digests, in the given order."""
    return merkle.root([e.digest for e in entries], merkle.BLAKE3).hex()


def build_manifest(
    *,
    station_id: str,
    device_serial: str,
    officer_id: str | None,
    created_at: datetime | str,
    originals: Sequence[OriginalRef],
    rendition: Rendition,
    segments: Sequence[SegmentEntry],
) -> Manifest:
    """A manifest with its Merkle root computed (init segment, if any, as leaf 0)."""
    when = format_utc(created_at) if isinstance(created_at, datetime) else created_at
    draft = Manifest(  # validated with a placeholder root, then sealed with the real one
        station_id=station_id,
        device_serial=device_serial,
        officer_id=officer_id,
        created_at=when,
        originals=tuple(originals),
        rendition=rendition,
        segments=tuple(segments),
        merkle_root="0" * 64,
    )
    return replace(draft, merkle_root=draft.computed_merkle_root())


# --------------------------------------------------------------------------- signing


@dataclass(frozen=True)
class SignedManifest:
    manifest: Manifest
    key_id: str
    signature_hex: str

    def to_dict(self) -> dict[str, Any]:
        sig = {"alg": keys.alg_of(self.key_id), "key_id": self.key_id, "sig": self.signature_hex}
        return {"manifest": self.manifest.to_dict(), "signature": sig}


def sign_manifest(manifest: Manifest, keypair: keys.KeyPair) -> SignedManifest:
    signature = keys.sign(keypair, manifest.to_canonical_bytes())
    return SignedManifest(manifest, keypair.key_id, signature.hex())


def dump_signed(signed: SignedManifest) -> bytes:
    """The canonical file bytes (no trailing newline: it would not be canonical)."""
    return canonical_bytes(signed.to_dict())


def _signature_block(doc: Mapping[str, Any]) -> tuple[str, str]:
    """(key_id, sig hex) from the file form's "signature" object, validated."""
    block = doc.get("signature")
    with _within("signature"):
        raw = _fields_named(block, ("alg", "key_id", "sig"))
        if not isinstance(raw["key_id"], str) or not keys.KEY_ID_RE.fullmatch(raw["key_id"]):
            _fail("key_id", "must look like ed25519:|sm2:<32 hex digits>", value=raw["key_id"])
        if not keys.signature_alg_ok(raw["alg"], raw["key_id"]):
            _fail("alg", "must be the algorithm its key_id names (ed25519 or sm2)",
                  value=raw["alg"])
        if not isinstance(raw["sig"], str) or not _SIG_HEX.fullmatch(raw["sig"]):
            _fail("sig", "must be 128 lowercase hex digits")
    return raw["key_id"], raw["sig"]


def load_signed(data: bytes) -> SignedManifest:
    """Strictly parse the file form: canonical bytes, known fields, valid manifest."""
    doc = _fields_named(parse_canonical(data), ("manifest", "signature"))
    key_id, sig = _signature_block(doc)
    with _within("manifest"):
        manifest = Manifest.from_dict(doc["manifest"])
    return SignedManifest(manifest, key_id, sig)


# --------------------------------------------------------------------------- verification

KeySource = Mapping[str, keys.PublicKey] | keys.Keyring


def _signature_findings(
    message: bytes, key_id: str, sig_hex: str, known: KeySource, subject: str | None
) -> list[Finding]:
    by_id = known.by_id() if isinstance(known, keys.Keyring) else known
    public = by_id.get(key_id)
    details = {"key_id": key_id}
    if public is None or public.key_id != key_id:
        return [Finding(E_KEY_UNKNOWN, "signing key is not in the keyring", subject, details)]
    try:
        keys.verify(public, message, bytes.fromhex(sig_hex))
    except (ValueError, SignatureInvalid):
        return [
            Finding(E_SIGNATURE_INVALID, "manifest signature does not verify", subject, details)
        ]
    return []


def _root_findings(manifest: Manifest, subject: str | None) -> list[Finding]:
    computed = manifest.computed_merkle_root()
    if computed == manifest.merkle_root:
        return []
    return [
        Finding(
            E_MERKLE_ROOT_MISMATCH,
            "merkle_root does not match the segment digests",
            subject,
            {"expected": manifest.merkle_root, "computed": computed},
        )
    ]


def verify_signed_manifest(
    signed: SignedManifest, public_keys: KeySource, subject: str | None = None
) -> list[Finding]:
    """Every problem with ``signed`` (empty list: valid). Never raises for bad evidence."""
    message = signed.manifest.to_canonical_bytes()
    findings = _signature_findings(
        message, signed.key_id, signed.signature_hex, public_keys, subject
    )
    return findings + _root_findings(signed.manifest, subject)


def verify_signed_bytes(
    data: bytes, public_keys: KeySource, subject: str | None = None
) -> list[Finding]:
    """Verify a manifest file's bytes, reporting every finding rather than the first.

    The signature is checked over the canonical bytes of the "manifest" object even when
    the file is not canonical or the manifest fails validation, so a pretty-printed or
    partly broken file still says whether its signature holds.
    """
    findings: list[Finding] = []
    try:
        doc = parse_canonical(data)
    except ManifestInvalid as exc:
        findings.append(Finding.from_error(exc, subject))
        try:
            doc = parse_json_object(data)
        except ManifestInvalid:
            return findings
    try:
        _fields_named(doc, ("manifest", "signature"))
    except ManifestInvalid as exc:
        findings.append(Finding.from_error(exc, subject))
    findings += _file_signature_findings(doc, public_keys, subject)
    try:
        with _within("manifest"):
            manifest = Manifest.from_dict(doc.get("manifest"))
    except ManifestInvalid as exc:
        findings.append(Finding.from_error(exc, subject))
    else:
        findings += _root_findings(manifest, subject)
    return findings


def _file_signature_findings(
    doc: Mapping[str, Any], public_keys: KeySource, subject: str | None
) -> list[Finding]:
    body = doc.get("manifest")
    try:
        key_id, sig = _signature_block(doc)
        if not isinstance(body, Mapping):
            return []  # nothing was signed; the manifest check reports it
        message = canonical_bytes(body)
    except ManifestInvalid as exc:
        return [Finding.from_error(exc, subject)]
    return _signature_findings(message, key_id, sig, public_keys, subject)
