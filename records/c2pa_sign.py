"""Content credentials (C2PA) on an export's exact-range clip, beside the station's signature.

With ``[exports] c2pa = true`` the service signs ``data/derivative/clip.<ext>`` with a C2PA
manifest (``c2pa-python``) right after the trim and *before* the derivative statement
takes the clip's digests, so the station's own signature covers the credentialed file.
The manifest's actions run from capture to export: ``c2pa.opened`` (the camera original:
camera, officer, camera start, digests), the rendition (``c2pa.repackaged`` for a stream
copy, else ``c2pa.transcoded``; tool and argv), the trim (``c2pa.edited``: range, argv)
and the export (``c2pa.published``: request, approver, purpose). The rendition manifest's
RFC 3161 token, when the station has one, rides in an ``org.evidock.timestamp``
assertion; c2pa's own TSA option is left unset (a LAN station has no TSA at export time,
and the token is checked by ``evidock verify``, not by C2PA readers).

C2PA needs an X.509 chain whose leaf has an EKU (emailProtection or document signing);
it supports ES256/384/512, PS256/384/512 and Ed25519, never SM2. It sits beside the
station's Ed25519 signatures, never instead of them. The c2pa library is imported only
when a clip is signed or read.
"""

from __future__ import annotations

import base64
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from archive.catalog import Catalog, Recording
from archive.catalog.models import Rendition
from archive.timestamp_rows import MANIFEST
from archive.timestamps import token_for
from config.access import ExportSettings
from integrity import manifest as mf
from integrity.errors import ConfigError, EvidockError, MediaError
from records.models import Export

MIME = {"mp4": "video/mp4", "m4a": "audio/mp4", "wav": "audio/wav"}
_CURVES = {"secp256r1": "es256", "secp384r1": "es384", "secp521r1": "es512"}
GENERATOR = "evidock"


class Trimmed(Protocol):
    """What the trim reports (records.trim.TrimResult), as far as C2PA tells it."""

    @property
    def argv(self) -> tuple[str, ...]: ...
    @property
    def tool(self) -> str: ...
    @property
    def method(self) -> str: ...
    @property
    def offset_us(self) -> int: ...
    @property
    def duration_us(self) -> int: ...


@dataclass(frozen=True, kw_only=True)
class Credential:
    """The agency's C2PA signing chain (leaf first) and its private key, as PEM."""

    chain_pem: bytes
    key_pem: bytes
    alg: str  # es256 | es384 | es512 | ps256 | ed25519


def _read_private(path: Path, what: str) -> bytes:
    """A key file as the keystore keeps station.key: a regular file no one else reads."""
    try:
        info = os.lstat(path)
    except OSError as exc:
        raise ConfigError(f"exports.{what}: cannot read {path}: {exc.strerror}",
                          key=f"exports.{what}", path=str(path)) from exc
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"exports.{what}: {path} is not a regular file",
                          key=f"exports.{what}", path=str(path))
    if what == "c2pa_key" and info.st_mode & 0o077:
        raise ConfigError(f"exports.c2pa_key: {path} is readable by others; chmod 600 it "
                          "(only the service account may read a signing key)",
                          key="exports.c2pa_key", path=str(path), mode=oct(info.st_mode))
    return path.read_bytes()


def algorithm_of(key_pem: bytes) -> str:
    """The C2PA signing algorithm for a private key; SM2 and others are refused."""
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ConfigError(f"exports.c2pa_key: not a usable PEM private key ({exc}); C2PA "
                          "takes EC P-256/384/521, RSA or Ed25519, not SM2",
                          key="exports.c2pa_key") from None
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name in _CURVES:
        return _CURVES[key.curve.name]
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "ed25519"
    if isinstance(key, rsa.RSAPrivateKey):
        return "ps256"
    raise ConfigError("exports.c2pa_key: C2PA signs with EC P-256/384/521, RSA or Ed25519 "
                      "keys only", key="exports.c2pa_key", type=type(key).__name__)


def load_credential(settings: ExportSettings, home: Path) -> Credential | None:
    """The configured credential (None: C2PA is off). Read by the service only."""
    paths = settings.c2pa_paths(home)
    if paths is None:
        return None
    chain, key = _read_private(paths[0], "c2pa_cert"), _read_private(paths[1], "c2pa_key")
    if chain.count(b"-----BEGIN CERTIFICATE-----") < 2:
        raise ConfigError("exports.c2pa_cert: give the leaf and its issuing CA chain; C2PA "
                          "refuses a self-signed leaf", key="exports.c2pa_cert",
                          path=str(paths[0]))
    return Credential(chain_pem=chain, key_pem=key, alg=algorithm_of(key))


def _when(rec: Recording) -> str | None:
    return None if rec.camera_start is None else mf.format_utc(rec.camera_start)


def _opened(rec: Recording, original: mf.OriginalRef, manifest: mf.Manifest) -> dict[str, Any]:
    return {"action": "c2pa.opened", "parameters": {
        "ingredientIds": ["original"],
        "description": "the camera's original recording, offloaded and archived unchanged",
        "org.evidock.capture": {"camera": manifest.device_serial,
                                "officer": manifest.officer_id, "camera_start": _when(rec),
                                "original": original.to_dict()}},
        "softwareAgent": {"name": f"body-worn camera {manifest.device_serial}"},
        **({"when": _when(rec)} if rec.camera_start else {})}


def _rendered(manifest: mf.Manifest) -> dict[str, Any]:
    rendition = manifest.rendition
    copied = "copy" in rendition.argv
    return {"action": "c2pa.repackaged" if copied else "c2pa.transcoded",
            "when": manifest.created_at, "softwareAgent": {"name": rendition.tool},
            "parameters": {"description": "segmented for the archive"
                           + (" (stream copy)" if copied else ""),
                           "org.evidock.rendition": {
                               "station": manifest.station_id, "kind": rendition.kind,
                               "container": rendition.container,
                               "argv": list(rendition.argv),
                               "merkle_root": manifest.merkle_root}}}


def _trimmed(export: Export, made: Trimmed) -> dict[str, Any]:
    return {"action": "c2pa.edited", "when": mf.format_utc(export.created_at),
            "softwareAgent": {"name": made.tool},
            "parameters": {"description": "the approved range cut from the segments",
                           "org.evidock.trim": {
                               # c2pa turns a JSON array of integers into a byte
                               # string: the range goes as two named numbers.
                               "start_us": export.start_us, "end_us": export.end_us,
                               "offset_us": made.offset_us, "duration_us": made.duration_us,
                               "method": made.method, "argv": list(made.argv)}}}


def _published(export: Export, request: dict[str, object] | None) -> dict[str, Any]:
    keys = ("request_id", "case_number", "purpose", "recipient", "requested_by",
            "approved_by", "approved_at", "exported_by")
    facts = {k: (request or {}).get(k) for k in keys}
    return {"action": "c2pa.published", "when": mf.format_utc(export.created_at),
            "parameters": {"description": "exported on an approved request",
                           "org.evidock.export": {"export_id": export.id,
                                                  "actor": export.actor,
                                                  "purpose": export.purpose, **facts}}}


def manifest_for(*, rec: Recording, manifest: mf.Manifest, export: Export, made: Trimmed,
                 request: dict[str, object] | None, ext: str,
                 token: dict[str, object] | None) -> dict[str, Any]:
    """The C2PA manifest definition of one exported clip (pure)."""
    original = next(o for o in manifest.originals if o.recording_id == rec.id)
    assertions: list[dict[str, Any]] = [{"label": "c2pa.actions", "data": {"actions": [
        _opened(rec, original, manifest), _rendered(manifest), _trimmed(export, made),
        _published(export, request)]}}]
    if token is not None:
        assertions.append({"label": "org.evidock.timestamp", "data": token})
    return {"claim_generator_info": [{"name": GENERATOR}],
            "title": f"clip.{ext}", "format": MIME[ext],
            "ingredients": [{"title": original.name, "format": MIME.get(
                Path(original.name).suffix.lower().lstrip("."), "application/octet-stream"),
                "relationship": "parentOf", "label": "original",
                "instance_id": f"blake3:{original.blake3}"}],
            "assertions": assertions}


def _token(catalog: Catalog, rendition: Rendition) -> dict[str, object] | None:
    """The rendition manifest's RFC 3161 token, as the assertion carries it."""
    if rendition.manifest_blake3 is None:
        return None
    found = token_for(catalog, kind=MANIFEST, subject=rendition.manifest_blake3)
    if found is None:
        return None
    return {"stamps": "rendition manifest", "manifest_blake3": found.subject,
            "sha256": found.sha256, "station_claimed_at": mf.format_utc(found.claimed_at),
            "tsa_url": found.tsa_url, "rfc3161_token": base64.b64encode(found.token).decode()}


@dataclass(frozen=True, kw_only=True)
class C2paSigner:
    """Signs an export's derivative clip in place (records.package calls it). The chain
    and key are read at each signing, so a desk that only lists requests never reads
    them and a replaced certificate takes effect without a restart."""

    settings: ExportSettings
    home: Path
    catalog: Catalog

    def __call__(self, clip: Path, *, export: Export, signed: mf.SignedManifest,
                 made: Trimmed, request: dict[str, object] | None) -> None:
        ext = clip.suffix.lstrip(".")
        if ext not in MIME:
            raise MediaError(f"C2PA cannot sign a .{ext} clip", ext=ext)
        credential = load_credential(self.settings, self.home)
        if credential is None:
            raise ConfigError("exports.c2pa is off", key="exports.c2pa")
        rec, rendition, _segs = self.catalog.rendered(export.recording_id)
        assert rendition is not None  # a derivative is cut from a rendition
        definition = manifest_for(rec=rec, manifest=signed.manifest, export=export, made=made,
                                  request=request, ext=ext, token=_token(self.catalog,
                                                                         rendition))
        sign_file(clip, definition=definition, credential=credential, mime=MIME[ext])


def sign_file(path: Path, *, definition: dict[str, Any], credential: Credential,
              mime: str) -> None:
    """Embed a signed C2PA manifest in ``path`` (written beside it, then renamed over)."""
    import c2pa

    tmp = path.with_name(f".{path.name}.c2pa")
    try:
        info = c2pa.C2paSignerInfo(credential.alg.encode(), credential.chain_pem,
                                   credential.key_pem, None)
        with c2pa.Signer.from_info(info) as signer, c2pa.Builder(definition) as builder, \
                open(path, "rb") as src, open(tmp, "w+b") as dst:
            builder.sign(signer, mime, src, dst)
            dst.flush()
            os.fsync(dst.fileno())
    except c2pa.C2paError as exc:
        tmp.unlink(missing_ok=True)
        raise EvidockError(f"C2PA signing of {path.name} failed: {exc}; check "
                           "exports.c2pa_cert (a CA-issued leaf with digitalSignature, an "
                           "EKU and an authority key identifier, then its chain) and "
                           "exports.c2pa_key", path=str(path)) from None
    os.replace(tmp, path)


@dataclass(frozen=True, kw_only=True)
class C2paReport:
    """What a C2PA reader says of a file: Trusted (intact, signer anchored), Valid
    (intact), Invalid (each failure code named) or Absent (no manifest), and why."""

    file: str
    state: str
    failures: tuple[dict[str, str], ...]
    active_manifest: dict[str, Any] | None

    @property
    def ok(self) -> bool:
        return self.state == "Trusted"

    def to_dict(self) -> dict[str, object]:
        return {"file": self.file, "state": self.state, "ok": self.ok,
                "failures": list(self.failures), "active_manifest": self.active_manifest}


def read_back(path: Path, *, anchors_pem: bytes | None) -> C2paReport:
    """Read and validate ``path``'s C2PA manifest; trusted only through ``anchors_pem``."""
    import c2pa

    trust: dict[str, Any] = {} if anchors_pem is None else {
        "trust": {"user_anchors": anchors_pem.decode("ascii", "replace")}}
    ctx = c2pa.Context.from_dict({"verify": {"verify_trust": anchors_pem is not None},
                                  **trust})
    mime = MIME.get(path.suffix.lower().lstrip("."), "video/mp4")
    with open(path, "rb") as fh:
        try:
            reader = c2pa.Reader.try_create(mime, fh, context=ctx)
        except c2pa.C2paError as exc:
            return C2paReport(file=str(path), state="Invalid", active_manifest=None,
                              failures=({"code": "manifest.unreadable",
                                         "explanation": str(exc)},))
        if reader is None:
            return C2paReport(file=str(path), state="Absent", active_manifest=None,
                              failures=({"code": "manifest.absent", "explanation":
                                         "the file carries no C2PA manifest"},))
        with reader:
            state = reader.get_validation_state() or "Invalid"
            results = reader.get_validation_results() or {}
            active = reader.get_active_manifest()
    failures = tuple({"code": str(f.get("code")), "explanation": str(f.get("explanation"))}
                     for f in (results.get("activeManifest") or {}).get("failure", []))
    return C2paReport(file=str(path), state=state, failures=failures, active_manifest=active)


__all__ = ["MIME", "C2paReport", "C2paSigner", "Credential", "algorithm_of",
           "load_credential", "manifest_for", "read_back", "sign_file"]
