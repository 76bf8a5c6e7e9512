"""A case's coverage report drawn as a timeline per stage, as server-side SVG.

One row per stage of the finding: the declared stage time (from the written record),
the linked footage placed in time (footage of a kind the stage does not count is grey),
the gaps the report found (red) and footage offloaded late (an orange mark). The axis
is in the station's zone. No script and no style attributes (the desk's CSP): SVG
presentation attributes only, and a ``<title>`` on each mark for a tooltip.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta, tzinfo

from markupsafe import Markup, escape

from records.coverage import CaseFinding, StageFinding

WIDTH, LEFT, RIGHT, ROW, TOP = 1000, 150, 150, 34, 34
PLOT = WIDTH - LEFT - RIGHT
COLOURS = {"window": ("#dbe7f5", "#7a9cc6"), "footage": ("#2e7d32", "#1b5e20"),
           "other": ("#9e9e9e", "#757575"), "gap": ("#f3b4b0", "#b3261e"),
           "late": ("#ef8f00", "#8a5a00")}

Say = Callable[..., str]


def _times(finding: CaseFinding) -> list[datetime]:
    out: list[datetime] = []
    for st in finding.stages:
        out += [t for w in st.windows for t in w]
        out += [t for f in st.footage for t in (f.start, f.end) if t is not None]
        out += [t for g in st.gaps for t in (g.start, g.end)]
    return out


class _Axis:
    def __init__(self, start: datetime, end: datetime) -> None:
        pad = max((end - start) * 0.03, timedelta(seconds=1))
        self.start, self.end = start - pad, end + pad
        self.span = (self.end - self.start).total_seconds()

    def x(self, when: datetime) -> float:
        return LEFT + PLOT * (when - self.start).total_seconds() / self.span

    def ticks(self, n: int = 5) -> Iterable[datetime]:
        step = (self.end - self.start) / (n - 1)
        return (self.start + step * i for i in range(n))


def _rect(cls: str, box: tuple[float, float, float, float], tip: str) -> str:
    """A mark of ``cls`` over ``box`` = (x0, x1, y, height), with a tooltip."""
    x0, x1, y, h = box
    fill, stroke = COLOURS[cls]
    return (f'<rect class="cov-{cls}" x="{x0:.1f}" y="{y:.1f}" width="{max(x1 - x0, 2):.1f}"'
            f' height="{h}" fill="{fill}" stroke="{stroke}"><title>{escape(tip)}</title>'
            "</rect>")


def _row(st: StageFinding, i: int, axis: _Axis, *, say: Say,
         show: Callable[[datetime], str], late: frozenset[str]) -> list[str]:
    y = TOP + i * ROW
    out = [f'<g class="cov-row" data-stage="{escape(st.stage)}" data-status="{st.status}">',
           f'<rect x="0" y="{y}" width="{WIDTH}" height="{ROW}" fill="'
           f'{"#ffffff" if i % 2 else "#f6f7f9"}"/>',
           f'<text x="8" y="{y + 21}" font-size="13" fill="#1b1f24">{escape(st.stage)}</text>',
           f'<text x="{WIDTH - RIGHT + 10}" y="{y + 21}" font-size="12" fill="'
           f'{"#b3261e" if st.status in ("gaps", "missing") else "#1b1f24"}">'
           f"{escape(say(STATUS_WORDS[st.status]))}</text>"]
    for a, b in st.windows:
        out.append(_rect("window", (axis.x(a), axis.x(b), y + 5, ROW - 10),
                         say("Declared stage time") + f": {show(a)} – {show(b)}"))
    counted = {f.recording_id for f in st.counted}
    placed = 0
    for f in st.footage:
        if f.start is None or f.end is None:
            continue
        placed += 1
        kind = "footage" if f.recording_id in counted else "other"
        out.append(_rect(kind, (axis.x(f.start), axis.x(f.end), y + 11, ROW - 22),
                         f"{f.recording_id}: {show(f.start)} – {show(f.end)}"))
        if f.recording_id in late:
            x = axis.x(f.start)
            out.append(f'<polygon class="cov-late" points="{x - 6:.1f},{y + 2} {x + 6:.1f},'
                       f'{y + 2} {x:.1f},{y + 11}" fill="{COLOURS["late"][0]}" stroke="'
                       f'{COLOURS["late"][1]}"><title>{escape(say("Late offload"))}: '
                       f"{escape(f.recording_id)}</title></polygon>")
    for g in st.gaps:
        out.append(_rect("gap", (axis.x(g.start), axis.x(g.end), y + 3, ROW - 6),
                         say("Gap of %(s)s s", s=f"{g.seconds:.0f}")
                         + f": {show(g.start)} – {show(g.end)}"))
    if not placed and not st.windows:
        out.append(f'<text x="{LEFT + 8}" y="{y + 21}" font-size="12" fill="#5b6570">'
                   f'{escape(say("nothing placed in time"))}</text>')
    out.append("</g>")
    return out


def _legend(y: float, say: Say) -> list[str]:
    items = [("window", "Declared stage time"), ("footage", "Recorded footage"),
             ("other", "Footage of a kind the stage does not count"), ("gap", "Gap"),
             ("late", "Late offload")]
    out, x = ['<g class="cov-legend">'], 8.0
    for cls, text in items:
        fill, stroke = COLOURS[cls]
        out.append(f'<rect x="{x:.0f}" y="{y}" width="16" height="12" fill="{fill}" '
                   f'stroke="{stroke}"/><text x="{x + 22:.0f}" y="{y + 11}" font-size="12"'
                   f' fill="#1b1f24">{escape(say(text))}</text>')
        x += 34 + 13 * len(say(text)) * (0.55 if say(text).isascii() else 1)
    out.append("</g>")
    return out


def timeline(finding: CaseFinding, *, say: Say, zone: tzinfo) -> Markup | None:
    """The SVG, or None when nothing of the case is placed in time."""
    times = _times(finding)
    if not times:
        return None
    axis = _Axis(min(times), max(times))
    long = axis.span > 86400

    def show(when: datetime) -> str:
        return when.astimezone(zone).strftime("%m-%d %H:%M" if long else "%H:%M:%S")

    late = frozenset(x.recording_id for x in finding.late)
    title = say("Coverage of case %(n)s by stage", n=finding.number)
    height = TOP + ROW * len(finding.stages) + 44
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="coverage" role="img" '
           f'viewBox="0 0 {WIDTH} {height}" width="100%" aria-labelledby="cov-title">',
           f'<title id="cov-title">{escape(title)}</title>']
    for t in axis.ticks():
        x = axis.x(t)
        out.append(f'<line x1="{x:.1f}" y1="{TOP - 6}" x2="{x:.1f}" y2="'
                   f'{TOP + ROW * len(finding.stages)}" stroke="#d5dae0"/>'
                   f'<text x="{x:.1f}" y="{TOP - 10}" font-size="11" text-anchor="middle" '
                   f'fill="#5b6570">{escape(show(t))}</text>')
    for i, st in enumerate(finding.stages):
        out += _row(st, i, axis, say=say, show=show, late=late)
    out += _legend(TOP + ROW * len(finding.stages) + 16, say)
    out.append("</svg>")
    return Markup("".join(out))


#: English words for the report's stage statuses (translated in cases.po).
STATUS_WORDS = {"covered": "covered", "missing": "no footage", "gaps": "gaps",
                "not_applicable": "not applicable"}

__all__ = ["STATUS_WORDS", "timeline"]
