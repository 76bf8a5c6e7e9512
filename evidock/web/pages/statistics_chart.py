"""Bar charts for the statistics page, drawn on the server as SVG geometry.

No script and no inline style (the desk's CSP): the template draws ``<rect>`` and
``<text>`` from these numbers, colours come from classes in ``statistics.css``. Bars are
horizontal, so long group names (units, police numbers) read without rotation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: Geometry in SVG user units (the SVG scales to the page's width).
WIDTH = 720
LABEL_W = 170  # group names, right-aligned left of the axis
VALUE_W = 70  # room for the value written after the longest bar
BAR_H, GAP, TOP, AXIS_H = 20, 8, 30, 44
#: More groups than this are in the table only (the chart names how many it shows).
MAX_BARS = 40


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    value: float
    shown: str  # the value as written on the bar
    y: float
    width: float


@dataclass(frozen=True, slots=True)
class Tick:
    x: float
    label: str


@dataclass(frozen=True, slots=True)
class Chart:
    key: str  # the measure's id (CSS class, test id)
    title: str
    axis: str  # the x axis title (measure and unit)
    group_axis: str  # the y axis title (the grouping)
    bars: tuple[Bar, ...]
    ticks: tuple[Tick, ...]
    left: int
    plot_w: int
    height: float
    axis_y: float
    omitted: int  # groups left out of the chart (in the table)

    @property
    def width(self) -> int:
        return WIDTH


def _fmt(value: float, decimals: int) -> str:
    return f"{value:,.{decimals}f}" if decimals else f"{round(value):,d}"


def _tick(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 or value == 0 else f"{value:.3g}"


def _nice_max(top: float) -> float:
    """The axis end: 1, 2 or 5 times a power of ten, at or above the largest value."""
    if top <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(top))
    return next(step * power for step in (1, 2, 5, 10) if step * power >= top * (1 - 1e-9))


def bar_chart(key: str, title: str, axis: str, group_axis: str,
              points: list[tuple[str, float]], *, decimals: int = 0) -> Chart:
    """A chart of ``points`` (label, value) in the given order."""
    shown_points = points[:MAX_BARS]
    plot_w = WIDTH - LABEL_W - VALUE_W
    end = _nice_max(max((v for _, v in shown_points), default=0.0))
    if not decimals:  # whole counts: ticks at whole numbers (0 … 4 at least)
        end = max(end, 4.0)
    bars = tuple(Bar(label=label, value=value, shown=_fmt(value, decimals),
                     y=TOP + i * (BAR_H + GAP), width=round(plot_w * value / end, 2))
                 for i, (label, value) in enumerate(shown_points))
    axis_y = TOP + max(len(bars), 1) * (BAR_H + GAP)
    # Whole counts up to 5: a tick at each; else fifths (1, 2, 5 × 10ⁿ divide by 5).
    steps = int(end) if not decimals and end <= 5 else 5
    ticks = tuple(Tick(x=round(LABEL_W + plot_w * i / steps, 2), label=_tick(end * i / steps))
                  for i in range(steps + 1))
    return Chart(key=key, title=title, axis=axis, group_axis=group_axis, bars=bars,
                 ticks=ticks, left=LABEL_W, plot_w=plot_w, height=axis_y + AXIS_H,
                 axis_y=axis_y, omitted=max(len(points) - MAX_BARS, 0))


__all__ = ["MAX_BARS", "Bar", "Chart", "Tick", "bar_chart"]
