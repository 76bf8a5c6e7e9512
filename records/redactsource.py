"""The signed footage a redaction is made from, and the making of it.

A redaction is rendered from the recording's rendition segments over its range, as an
export clip is: the segments are first proven to be the ones the station signed (the
manifest's signature, each segment's BLAKE3 as stored against the manifest and the
catalog), so the statement's ``sources`` name exactly what was decoded. The output, its
statement and the station's signature go into the content store through one staging
directory; the original and its renditions are only ever read.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlmodel import Session, col, select

from archive.catalog import Catalog
from archive.catalog.models import Rendition, Segment
from archive.store import ContentStore
from integrity import derivative, keys, redaction
from integrity import manifest as mf
from integrity.digest import Digests, copy_and_hash
from integrity.errors import DigestMismatch, InvalidRequest, ManifestInvalid, NotFound
from integrity.redaction import Plan
from records.package import covering

if TYPE_CHECKING:
    from records.redactionbook import RedactionView

OUTPUT = "redacted.mp4"


@dataclass(frozen=True)
class Sources:
    rendition: Rendition
    signed: mf.SignedManifest
    segments: tuple[Segment, ...]
    paths: list[Path]

    @property
    def first_start_us(self) -> int:
        return self.segments[0].start_us


def _rendition(catalog: Catalog, recording_id: str,
               rendition_id: str | None) -> tuple[Rendition, list[Segment]]:
    _rec, rendition, segs = catalog.rendered(recording_id)
    if rendition_id is not None and (rendition is None or rendition.id != rendition_id):
        with Session(catalog.engine) as s:
            rendition = s.get(Rendition, rendition_id)
            segs = list(s.exec(select(Segment).where(Segment.rendition_id == rendition_id)
                               .order_by(col(Segment.index))))
    if rendition is None or rendition.status != "ok" or not segs:
        raise NotFound(f"recording {recording_id} has no rendition to redact; run "
                       "`evidock process`", recording=recording_id)
    if rendition.kind == "audio":
        raise InvalidRequest(f"recording {recording_id} is audio only: a redaction hides "
                             "regions of video frames", recording=recording_id)
    return rendition, segs


def sources_of(catalog: Catalog, store: ContentStore, *, keyring: keys.Keyring,
               recording_id: str, rendition_id: str | None, start_us: int,
               end_us: int) -> Sources:
    """The segments over [start_us, end_us), each proven to be the signed one."""
    rendition, segs = _rendition(catalog, recording_id, rendition_id)
    whole = segs[-1].end_us
    if not 0 <= start_us < end_us <= whole:
        raise InvalidRequest(f"the range [{start_us / 1e6:.3f} s, {end_us / 1e6:.3f} s) is "
                             f"empty or not inside recording {recording_id} (0 to "
                             f"{whole / 1e6:.3f} s)", start_us=start_us, end_us=end_us)
    chosen = covering(segs, start_us, end_us)
    assert rendition.manifest_blake3 is not None
    raw = store.path_for(rendition.manifest_blake3).read_bytes()
    problems = mf.verify_signed_bytes(raw, keyring.by_id())
    if problems:
        raise ManifestInvalid(f"the signed manifest of rendition {rendition.id} does not "
                              f"verify: {problems[0]}", rendition=rendition.id)
    signed = mf.load_signed(raw)
    entries = {e.index: e for e in signed.manifest.entries()}
    paths = []
    for seg in chosen:
        path = store.path_for(seg.blake3)
        with open(path, "rb") as fh:
            got = copy_and_hash(fh, None).blake3
        entry = entries.get(seg.index)
        if got != seg.blake3 or entry is None or entry.blake3 != seg.blake3:
            raise DigestMismatch(f"stored segment {seg.name} is not the one the station "
                                 "signed; run `evidock fixity`", expected=seg.blake3,
                                 actual=got)
        paths.append(path)
    return Sources(rendition=rendition, signed=signed, segments=tuple(chosen), paths=paths)


@dataclass(frozen=True)
class Made:
    output: Digests
    statement: Digests
    signature: Digests
    details: dict[str, Any]


def render_and_sign(store: ContentStore, vouched: Callable[[str], bool], *, plan: Plan,
                    view: RedactionView, src: Sources, keypair: keys.KeyPair,
                    now: datetime) -> Made:
    """Render ``plan`` into the store, then its statement and the station's signature."""
    from records import redact_render  # numpy and ffmpeg: only when rendering

    manifest = src.signed.manifest
    with store.stage() as stager:
        out = stager.directory / OUTPUT
        made = redact_render.render(plan, src.paths, first_start_us=src.first_start_us,
                                    out=out)
        output = stager.put_file(out, vouched=vouched)
        render = {"tool": made.tool, "decode_argv": list(made.decode_argv),
                  "encode_argv": list(made.encode_argv), "fps": made.fps,
                  "frames": made.frames,
                  "detector": dict(plan.detector) if plan.detector else None}
        doc = redaction.statement(
            plan=plan, redaction_id=view.id,
            sources=derivative.sources_of(manifest, plan.start_us, plan.end_us),
            merkle_root=manifest.merkle_root,
            output={"file": OUTPUT, "size": output.size, "blake3": output.blake3,
                    "sha256": output.sha256},
            render=render, requested_by=view.requested_by, created_at=mf.format_utc(now))
        statement = stager.put(io.BytesIO(doc), vouched=vouched)
        signature = stager.put(io.BytesIO(redaction.sign(doc, keypair)), vouched=vouched)
    details = {"output_blake3": output.blake3, "output_sha256": output.sha256,
               "size": output.size, "statement_blake3": statement.blake3,
               "signature_blake3": signature.blake3, "key_id": keypair.key_id,
               "frames": made.frames, "fps": made.fps, "tool": made.tool,
               "render_ms": round(made.seconds * 1000),
               "sources": [s.name for s in src.segments]}
    return Made(output=output, statement=statement, signature=signature, details=details)


__all__ = ["OUTPUT", "Made", "Sources", "render_and_sign", "sources_of"]
