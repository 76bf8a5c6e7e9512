"""Redaction plans and the signed statement of a redacted derivative (技术处理后公开).

A redaction never touches the original or its renditions: it is a new derivative of a
recording range, made from the signed rendition segments by a *plan* a reviewer can
read and edit before anything is rendered:

* **tracks**: regions that follow a face (found by the detector, ``source: "auto"``) or
  that a person drew with a path (``"hand"``), sampled at frame times; between samples
  the box moves linearly, and it holds for :data:`HOLD_US` past either end so a face the
  detector missed for a few frames is still covered;
* **boxes**: fixed regions over a time range, drawn by hand (plates, screens, papers);
* **audio**: ranges muted or replaced by a tone.

Every region is padded by :data:`PAD` of its size and clipped to the frame; all are
rendered in the plan's one ``style`` (``blur`` or ``solid``). Times are microseconds on
the recording's timeline (as export ranges are); pixels are the source frame's.

The statement (``redaction.json``) names the source segments with their signed digests
and the manifest's Merkle root, the plan, the detector, the tool and argv, and the
output's size and digests; the station signs its exact bytes with a context of its own.
It is labelled a redacted derivative everywhere. Pure: no files, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from integrity import keys, safejson
from integrity.canonical import canonical_bytes
from integrity.codes import Code
from integrity.errors import InvalidRequest
from integrity.findings import Finding
from integrity.safefs import Refused

FORMAT = "evidock-redaction/1"
PLAN_FORMAT = "evidock-redaction-plan/1"
CONTEXT = b"evidock redaction statement v1\n"
LABEL = "redacted derivative, not the original / 技术处理后的衍生件，非原始文件"
DOC, SIG = "redaction.json", "redaction.sig.json"
STYLES = ("blur", "solid")
AUDIO_KINDS = ("mute", "tone")
HOLD_US = 400_000
PAD = 0.2
MAX_TRACKS, MAX_SAMPLES, MAX_BOXES, MAX_AUDIO = 1000, 200_000, 500, 500
MAX_DIM = 16384


def _int(value: Any, what: str, low: int = 0, high: int = 1 << 62) -> int:
    if type(value) is not int or not low <= value <= high:
        raise InvalidRequest(f"{what} must be an integer in [{low}, {high}]",
                             field=what, value=safejson.brief(value))
    return value


@dataclass(frozen=True, order=True)
class Box:
    """A rectangle in source pixels: left, top, width, height."""

    x: int
    y: int
    w: int
    h: int

    def __post_init__(self) -> None:
        for name in ("x", "y"):
            _int(getattr(self, name), name, 0, MAX_DIM)
        for name in ("w", "h"):
            _int(getattr(self, name), name, 1, MAX_DIM)

    def to_list(self) -> list[int]:
        return [self.x, self.y, self.w, self.h]

    @classmethod
    def from_list(cls, value: Any) -> Box:
        if not isinstance(value, list) or len(value) != 4:
            raise InvalidRequest("a box is [x, y, w, h]", value=safejson.brief(value))
        return cls(*value)

    def padded(self, pad: float, width: int, height: int) -> Box | None:
        """Grown by ``pad`` of its size on each side, clipped to the frame (None: off it)."""
        dx, dy = round(self.w * pad), round(self.h * pad)
        left, top = max(0, self.x - dx), max(0, self.y - dy)
        right = min(width, self.x + self.w + dx)
        bottom = min(height, self.y + self.h + dy)
        if right <= left or bottom <= top:
            return None
        return Box(left, top, right - left, bottom - top)


@dataclass(frozen=True)
class Track:
    """A region that moves: samples (time, box) in time order."""

    id: str
    source: str  # "auto" (the face detector) | "hand"
    samples: tuple[tuple[int, Box], ...]

    def at(self, t_us: int) -> Box | None:
        first, last = self.samples[0], self.samples[-1]
        if t_us < first[0]:
            return first[1] if first[0] - t_us <= HOLD_US else None
        if t_us >= last[0]:
            return last[1] if t_us - last[0] <= HOLD_US else None
        lo, hi = 0, len(self.samples) - 1
        while hi - lo > 1:  # the samples around t
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if self.samples[mid][0] <= t_us else (lo, mid)
        (t0, a), (t1, b) = self.samples[lo], self.samples[hi]
        f = (t_us - t0) / (t1 - t0)
        return Box(*(round(p + (q - p) * f) for p, q in
                     zip(a.to_list(), b.to_list(), strict=True)))


@dataclass(frozen=True)
class Fixed:
    """A region drawn by hand over [start, end)."""

    id: str
    box: Box
    start_us: int
    end_us: int


@dataclass(frozen=True)
class AudioRange:
    kind: str  # mute | tone
    start_us: int
    end_us: int


@dataclass(frozen=True)
class Plan:
    """What to hide in [start, end) of one recording's frames (width × height)."""

    recording_id: str
    start_us: int
    end_us: int
    width: int
    height: int
    style: str = "blur"
    tracks: tuple[Track, ...] = ()
    boxes: tuple[Fixed, ...] = ()
    audio: tuple[AudioRange, ...] = ()
    detector: Mapping[str, Any] | None = None  # what found the auto tracks

    def __post_init__(self) -> None:
        _check_plan(self)

    def regions_at(self, t_us: int) -> list[Box]:
        """Every region to hide in the frame shown at ``t_us`` (padded, clipped)."""
        found = [f.box for f in self.boxes if f.start_us <= t_us < f.end_us]
        found += [b for t in self.tracks if (b := t.at(t_us)) is not None]
        return [p for b in found if (p := b.padded(PAD, self.width, self.height))]

    def audio_ranges(self, kind: str) -> list[tuple[int, int]]:
        return sorted((a.start_us, a.end_us) for a in self.audio if a.kind == kind)

    def ids(self) -> set[str]:
        return {t.id for t in self.tracks} | {f.id for f in self.boxes}

    def without(self, ids: Iterable[str]) -> Plan:
        """The plan with these tracks or boxes removed (a reviewer's edit)."""
        gone = set(ids)
        unknown = gone - self.ids()
        if unknown:
            raise InvalidRequest("no such track or box in the plan", ids=sorted(unknown))
        return replace(self, tracks=tuple(t for t in self.tracks if t.id not in gone),
                       boxes=tuple(f for f in self.boxes if f.id not in gone))

    def to_dict(self) -> dict[str, Any]:
        return {"format": PLAN_FORMAT, "recording_id": self.recording_id,
                "range_us": [self.start_us, self.end_us], "frame": [self.width, self.height],
                "style": self.style, "detector": dict(self.detector or {}) or None,
                "tracks": [{"id": t.id, "source": t.source,
                            "samples": [[ts, *b.to_list()] for ts, b in t.samples]}
                           for t in self.tracks],
                "boxes": [{"id": f.id, "box": f.box.to_list(),
                           "range_us": [f.start_us, f.end_us]} for f in self.boxes],
                "audio": [{"kind": a.kind, "range_us": [a.start_us, a.end_us]}
                          for a in self.audio]}

    def to_bytes(self) -> bytes:
        return canonical_bytes(self.to_dict())


def _check_plan(plan: Plan) -> None:
    _int(plan.start_us, "start_us")
    _int(plan.end_us, "end_us", plan.start_us + 1)
    _int(plan.width, "width", 1, MAX_DIM)
    _int(plan.height, "height", 1, MAX_DIM)
    if plan.style not in STYLES:
        raise InvalidRequest(f"style must be one of {', '.join(STYLES)}", style=plan.style)
    if len(plan.tracks) > MAX_TRACKS or len(plan.boxes) > MAX_BOXES \
            or len(plan.audio) > MAX_AUDIO \
            or sum(len(t.samples) for t in plan.tracks) > MAX_SAMPLES:
        raise InvalidRequest("the plan has more regions or samples than a plan may hold")
    ids = [t.id for t in plan.tracks] + [f.id for f in plan.boxes]
    if len(set(ids)) != len(ids) or not all(isinstance(i, str) and 0 < len(i) <= 40
                                            for i in ids):
        raise InvalidRequest("track and box ids must be distinct short strings")
    for t in plan.tracks:
        times = [ts for ts, _ in t.samples]
        if t.source not in ("auto", "hand") or not times \
                or any(b <= a for a, b in zip(times, times[1:], strict=False)):
            raise InvalidRequest("a track needs samples in strictly increasing time",
                                 track=t.id)
    for span in [(f.start_us, f.end_us) for f in plan.boxes] + \
            [(a.start_us, a.end_us) for a in plan.audio]:
        if not plan.start_us <= span[0] < span[1] <= plan.end_us:
            raise InvalidRequest("a box or audio range must lie inside the plan's range",
                                 range_us=list(span))
    if any(a.kind not in AUDIO_KINDS for a in plan.audio):
        raise InvalidRequest(f"audio ranges are one of {', '.join(AUDIO_KINDS)}")


def _span(value: Any, what: str) -> tuple[int, int]:
    if not isinstance(value, list) or len(value) != 2:
        raise InvalidRequest(f"{what} is [start_us, end_us]", value=safejson.brief(value))
    return _int(value[0], what), _int(value[1], what)


def plan_from_dict(doc: Any) -> Plan:
    """A plan from its JSON form, every field checked (hostile input: a request body)."""
    if not isinstance(doc, dict) or doc.get("format") != PLAN_FORMAT:
        raise InvalidRequest(f"not a redaction plan ({PLAN_FORMAT})")
    try:
        start, end = _span(doc["range_us"], "range_us")
        width, height = doc["frame"]
        tracks = tuple(Track(str(t["id"]), t["source"], tuple(
            (_int(s[0], "sample time"), Box.from_list(list(s[1:]))) for s in t["samples"]))
            for t in doc["tracks"])
        boxes = tuple(Fixed(str(f["id"]), Box.from_list(f["box"]),
                            *_span(f["range_us"], "box range_us")) for f in doc["boxes"])
        audio = tuple(AudioRange(a["kind"], *_span(a["range_us"], "audio range_us"))
                      for a in doc["audio"])
        return Plan(str(doc["recording_id"]), start, end, width, height, doc["style"],
                    tracks, boxes, audio, doc.get("detector"))
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
        raise InvalidRequest(f"malformed redaction plan: {exc!r}"[:300]) from None


# --------------------------------------------------------------------------- statement


def statement(*, plan: Plan, redaction_id: str, sources: list[dict[str, Any]],
              merkle_root: str, output: Mapping[str, Any], render: Mapping[str, Any],
              requested_by: str, created_at: str) -> bytes:
    """``redaction.json``: what was hidden, from which signed segments, by what tool."""
    return canonical_bytes({"format": FORMAT, "label": LABEL, "redaction_id": redaction_id,
                            "recording_id": plan.recording_id,
                            "range_us": [plan.start_us, plan.end_us], "sources": sources,
                            "merkle_root": merkle_root, "plan": plan.to_dict(),
                            "output": dict(output), "render": dict(render),
                            "requested_by": requested_by, "created_at": created_at})


def sign(doc_bytes: bytes, keypair: keys.KeyPair) -> bytes:
    signature = keys.sign(keypair, CONTEXT + doc_bytes)
    return canonical_bytes({"alg": keypair.alg, "key_id": keypair.key_id,
                            "sig": signature.hex(), "signs": DOC})


def findings(doc_bytes: bytes, sig_doc: Any, known: Mapping[str, keys.PublicKey], *,
             trusted: bool, measured: Mapping[str, Any] | None) -> list[Finding]:
    """The statement's signature, its form and plan, and the output file against it
    (``measured``: {"file", "size", "blake3", "sha256"} as read; None: absent)."""
    found = _signature(doc_bytes, sig_doc, known, trusted=trusted)
    try:
        doc = safejson.loads(doc_bytes, DOC)
    except Refused as refused:
        return [*found, refused.finding]
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("label") != LABEL:
        return [*found, Finding(Code.E_REDACTION_INVALID, "not an evidock redaction "
                                "statement labelled a redacted derivative", DOC)]
    try:
        plan_from_dict(doc.get("plan"))
    except InvalidRequest as exc:
        found.append(Finding(Code.E_REDACTION_INVALID, f"its plan is malformed: "
                             f"{exc.message}", DOC))
    out = doc.get("output")
    if measured is None:
        return found
    if not isinstance(out, dict) or any(out.get(k) != measured.get(k)
                                        for k in ("file", "size", "blake3", "sha256")):
        found.append(Finding(Code.E_REDACTION_INVALID, "the redacted file is not the one "
                             "redaction.json describes", str(measured.get("file")),
                             {"claimed": safejson.brief(out), "measured": dict(measured)}))
    return found


def _signature(doc_bytes: bytes, sig_doc: Any, known: Mapping[str, keys.PublicKey], *,
               trusted: bool) -> list[Finding]:
    if not isinstance(sig_doc, dict) or set(sig_doc) != {"alg", "key_id", "sig", "signs"} \
            or sig_doc["signs"] != DOC \
            or not keys.signature_alg_ok(sig_doc["alg"], sig_doc["key_id"]) \
            or not isinstance(sig_doc["sig"], str):
        return [Finding(Code.E_REDACTION_UNSIGNED, "redaction.sig.json is not a station "
                        "signature {alg, key_id, sig, signs: redaction.json}", SIG)]
    public = known.get(str(sig_doc["key_id"]))
    if public is None:
        code = Code.E_KEY_MISMATCH if trusted else Code.E_KEY_UNKNOWN
        return [Finding(code, "redaction.json was not signed by a known station key", DOC,
                        {"key_id": safejson.brief(sig_doc["key_id"])})]
    try:
        sig = bytes.fromhex(sig_doc["sig"])
    except ValueError:
        sig = b""
    if not keys.is_valid(public, CONTEXT + doc_bytes, sig):
        return [Finding(Code.E_SIGNATURE_INVALID, "the station's signature on "
                        "redaction.json does not verify: the redaction is not what the "
                        "station made", DOC)]
    return []
