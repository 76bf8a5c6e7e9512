"""``data/index.html``: the package explained to a person, from a USB stick, offline.

One self-contained page (inline CSS, no script, no link out) listing the recording with
its times in the station's zone, officer, camera, the approved range, the request and
approval, and every file of the package with its role, size and SHA-256, and how to
verify it. It is a file of the package like any other: the bag's manifests cover it,
and the verifier checks that every file it lists carries the digest the bag has for it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape

_CSS = ("body{font-family:sans-serif;margin:2em;max-width:60em}"
        "table{border-collapse:collapse}td,th{border:1px solid #999;padding:.3em .6em;"
        "text-align:left;vertical-align:top}code{font-size:.85em;word-break:break-all}"
        ".warn{background:#fff3cd}")
ROLES = {
    "segment": "signed segment covering the range (may hold footage outside it) / "
               "覆盖所批时段的签名分段（可能含时段外画面）",
    "derivative": "derivative, not the original: the approved range exactly / "
                  "衍生件（剪辑），非原始文件：恰为所批时段",
    "original": "the original camera file / 原始文件",
    "record": "record of the export / 导出记录",
    "document": "case document, as stored / 案件文书（与归档一致）",
}


@dataclass(frozen=True, kw_only=True)
class IndexFile:
    path: str  # relative to the bag root, e.g. data/segments/seg00000.mp4
    role: str  # a key of ROLES
    size: int
    sha256: str


def render(*, title: str, facts: Sequence[tuple[str, str]], files: Sequence[IndexFile],
           request: Mapping[str, object] | None,
           tables: Sequence[tuple[str, Sequence[Sequence[str]]]] = ()) -> bytes:
    """The page's bytes (UTF-8); ``tables``: (heading, rows, the first the header)."""
    rows = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in facts)
    listed = "".join(_file_row(f) for f in files)
    req = "" if not request else "".join(
        f"<tr><th>{escape(str(k))}</th><td>{escape(str(v))}</td></tr>"
        for k, v in sorted(request.items()) if k != "items" and v not in (None, "", []))
    page = (
        f"<!DOCTYPE html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\">"
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{escape(title)}</h1><table>{rows}</table>{_tables(tables)}"
        f"<h2>Request and approval / 申请与审批</h2><table>{req or '<tr><td>-</td></tr>'}"
        "</table><h2>Files / 文件</h2><table><tr><th>file / 文件</th><th>what / 说明</th>"
        f"<th>bytes / 字节</th><th>SHA-256</th></tr>{listed}</table>"
        "<h2>How to verify / 校验方法</h2><p><code>evidock verify THIS_FOLDER --key "
        "station.pem</code></p><p>Use the station's public key obtained from the agency "
        "independently. The bag's manifest-sha256.txt covers every file, this page "
        "included. / 请使用经独立渠道取得的工作站公钥；manifest-sha256.txt 覆盖包括本页在内"
        "的所有文件。</p></body></html>\n")
    return page.encode("utf-8")


def _tables(tables: Sequence[tuple[str, Sequence[Sequence[str]]]]) -> str:
    out = []
    for heading, rows in tables:
        body = "".join("<tr>" + "".join(f"<{'th' if n == 0 else 'td'}>{escape(c)}"
                                         f"</{'th' if n == 0 else 'td'}>" for c in row)
                       + "</tr>" for n, row in enumerate(rows))
        out.append(f"<h2>{escape(heading)}</h2><table>{body}</table>")
    return "".join(out)


def _file_row(f: IndexFile) -> str:
    mark = ' class="warn"' if f.role == "segment" else ""
    return (f"<tr{mark}><td><code>{escape(f.path)}</code></td>"
            f"<td>{escape(ROLES.get(f.role, f.role))}</td><td>{f.size}</td>"
            f"<td><code>{escape(f.sha256)}</code></td></tr>")


__all__ = ["ROLES", "IndexFile", "render"]
