"""One way to print a report as PDF: ReportLab with a Debian CJK font.

Reports are pure values (:class:`ReportDoc`: a title, label/value facts, sections of
lines and tables of text) built by the report modules; :func:`render_pdf` is the only
code that knows ReportLab. Text is in Chinese (labels carry English after a slash), so
the font must hold CJK glyphs: WenQuanYi Zen Hei from Debian's ``fonts-wqy-zenhei``
(installed by scripts/setup.sh), embedded as a subset. The PDF is rendered
``invariant`` (no random document id, no wall-clock creation date): the same report
gives the same bytes, so its detached signature can be re-derived and compared.
"""

from __future__ import annotations

import html
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from integrity.errors import ConfigError

#: Where Debian puts WenQuanYi Zen Hei (TTC; face 0 is the proportional Zen Hei).
FONT_PATHS = (Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"),)
FONT_NAME = "WenQuanYiZenHei"


@dataclass(frozen=True, kw_only=True)
class Table:
    """Rows of text; the first is the header. ``widths``: relative column widths."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    widths: tuple[float, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Section:
    title: str
    lines: tuple[str, ...] = ()
    tables: tuple[Table, ...] = ()
    empty: str = "（无 / none）"  # shown when there are neither lines nor table rows


@dataclass(frozen=True, kw_only=True)
class ReportDoc:
    title: str
    facts: tuple[tuple[str, str], ...]  # label, value: the report's identity block
    sections: tuple[Section, ...]
    footer: str = ""
    meta: dict[str, str] = field(default_factory=dict)  # PDF info: subject, author


def font_path() -> Path:
    for path in FONT_PATHS:
        if path.is_file():
            return path
    raise ConfigError("no CJK font for reports: install Debian's fonts-wqy-zenhei "
                      "(scripts/setup.sh does)", paths=[str(p) for p in FONT_PATHS])


def _register() -> None:
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    if FONT_NAME not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(TTFont(FONT_NAME, str(font_path()), subfontIndex=0))


def _styles() -> dict[str, Any]:
    from reportlab.lib.styles import ParagraphStyle

    # wordWrap "CJK" breaks anywhere: Chinese text and long digests both wrap.
    base = ParagraphStyle("body", fontName=FONT_NAME, fontSize=9, leading=12,
                          wordWrap="CJK")
    return {"body": base,
            "cell": ParagraphStyle("cell", parent=base, fontSize=7.5, leading=9.5),
            "title": ParagraphStyle("title", parent=base, fontSize=15, leading=20,
                                    spaceAfter=8),
            "h2": ParagraphStyle("h2", parent=base, fontSize=11.5, leading=15,
                                 spaceBefore=10, spaceAfter=4)}


def _p(text: str, style: Any) -> Any:
    from reportlab.platypus import Paragraph

    return Paragraph(html.escape(text, quote=False).replace("\n", "<br/>"), style)


def _table(t: Table, styles: dict[str, Any], width: float) -> Any:
    from reportlab.lib import colors
    from reportlab.platypus import Table as RLTable
    from reportlab.platypus import TableStyle

    weights = t.widths or tuple(1.0 for _ in t.header)
    cols = [width * w / sum(weights) for w in weights]
    data = [[_p(c, styles["cell"]) for c in row] for row in (t.header, *t.rows)]
    table = RLTable(data, colWidths=cols, repeatRows=1)
    table.setStyle(TableStyle([
        ("GRID", (0, 0), (-1, -1), 0.4, colors.grey),
        ("BACKGROUND", (0, 0), (-1, 0), colors.Color(0.88, 0.9, 0.94)),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("LEFTPADDING", (0, 0), (-1, -1), 3), ("RIGHTPADDING", (0, 0), (-1, -1), 3)]))
    return table


def _story(doc: ReportDoc, styles: dict[str, Any], width: float) -> list[Any]:
    from reportlab.platypus import Spacer

    story: list[Any] = [_p(doc.title, styles["title"]),
                        _table(Table(header=("项目 / item", "内容 / value"),
                                     rows=tuple(doc.facts), widths=(1, 3)), styles, width)]
    for section in doc.sections:
        story.append(_p(section.title, styles["h2"]))
        story.extend(_p(line, styles["body"]) for line in section.lines)
        for t in section.tables:
            if t.rows:
                story += [Spacer(1, 3), _table(t, styles, width)]
        if not section.lines and not any(t.rows for t in section.tables):
            story.append(_p(section.empty, styles["body"]))
    return story


def render_pdf(doc: ReportDoc) -> bytes:
    """The report as PDF bytes (A4, CJK font embedded, page numbers in the footer)."""
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.units import mm
    from reportlab.platypus import SimpleDocTemplate

    _register()
    styles = _styles()
    out = io.BytesIO()
    pdf = SimpleDocTemplate(out, pagesize=A4, leftMargin=15 * mm, rightMargin=15 * mm,
                            topMargin=15 * mm, bottomMargin=18 * mm, invariant=1,
                            title=doc.title, author=doc.meta.get("author", "evidock"),
                            subject=doc.meta.get("subject", ""), creator="evidock")

    def footer(canvas: Any, template: Any) -> None:
        canvas.saveState()
        canvas.setFont(FONT_NAME, 7)
        canvas.drawString(15 * mm, 9 * mm, f"{doc.footer}  第 {template.page} 页 / page "
                                            f"{template.page}")
        canvas.restoreState()

    pdf.build(_story(doc, styles, A4[0] - 30 * mm), onFirstPage=footer, onLaterPages=footer)
    return out.getvalue()


def rows(items: Sequence[Sequence[object]]) -> tuple[tuple[str, ...], ...]:
    """Table rows as text (None shows as "-")."""
    return tuple(tuple("-" if x is None else str(x) for x in row) for row in items)


__all__ = ["FONT_NAME", "FONT_PATHS", "ReportDoc", "Section", "Table", "font_path",
           "render_pdf", "rows"]
