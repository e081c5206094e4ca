"""``report.html``: a :class:`~evalsuite.report.blocks.Report` as one self-contained page.

Inline CSS and SVG only (``evalsuite.charts``): no scripts, no external files, and a print
stylesheet, so it can be mailed, archived and printed to PDF as it is.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from evalsuite.report.blocks import (
    Block,
    Chart,
    Heading,
    ModelWarning,
    Report,
    Table,
    Text,
    VerdictCard,
    intro_at,
)
from evalsuite.report.walk import build_report
from evalsuite.verdict import Verdict

VERDICT_CSS = """
.verdict{border:2px solid #333;border-radius:8px;padding:.5em 1.2em;margin:.6em 0}
.verdict p{margin:.3em 0}.verdict ul{list-style:none;padding:0;margin:.3em 0}
.verdict li{margin:.45em 0;line-height:1.45}
.verdict .outcome{font-weight:bold;padding:1px 6px;border-radius:4px;color:#fff}
.verdict .ok .outcome{background:#2a7a2a}.verdict .no .outcome{background:#b00}
.verdict .look .outcome{background:#a66300}.verdict .warn{color:#a66300;font-weight:bold}
"""
"""The verdict card's style: in report.html and, inline, in the app."""
_CSS = VERDICT_CSS + """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1000px;color:#222;padding:0 1em}
table{border-collapse:collapse;margin:1em 0;font-size:13px}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f3f3f3}.pass{color:#2a7a2a;font-weight:bold}.fail{color:#b00;font-weight:bold}
.note{color:#555;font-size:13px}
.charts{display:flex;flex-wrap:wrap;gap:8px}.charts svg{border:1px solid #eee;max-width:100%;
height:auto}
@page{size:A4;margin:14mm}
@media print{
body{max-width:none;margin:0;padding:0;font-size:11px}
h2{break-after:avoid;page-break-after:avoid}h3{break-after:avoid;page-break-after:avoid}
table{font-size:9px;width:100%;table-layout:auto;word-break:break-word}
tr,svg,.verdict{break-inside:avoid;page-break-inside:avoid}
thead{display:table-header-group}.charts svg{border:none;max-width:48%}
a{color:inherit;text-decoration:none}
}
"""


def _html_cell(c: Any) -> str:
    text = str(c)
    cls = {"pass": ' class="pass"', "FAIL": ' class="fail"'}.get(text, "")
    return f"<td{cls}>{html.escape(text)}</td>"


def _html_table(header: Sequence[str], rows: Sequence[Sequence[Any]], cls: str = "") -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(_html_cell(c) for c in r) + "</tr>" for r in rows)
    attr = f' class="{cls}"' if cls else ""
    return f"<table{attr}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def verdict_html(found: list[Verdict], lead: str = "") -> str:
    """The verdict card as an HTML ``<div class="verdict">`` (the report and the app)."""
    items = []
    for v in found:
        cls = {True: "ok", False: "no"}.get(v.ok, "look")
        evidence = "; ".join(html.escape(e) for e in v.evidence)
        warns = "".join(f'; <span class="warn">warning: {html.escape(w)}</span>'
                        for w in v.warnings)
        items.append(f'<li class="{cls}"><b>{html.escape(v.model)}</b> — '
                     f'<span class="outcome">{html.escape(v.outcome)}</span>'
                     f"{': ' if evidence or warns else ''}{evidence}{warns}</li>")
    head = f"<p><b>{html.escape(lead)}</b></p>" if lead else ""
    # inline list style: host pages (the app) style lists with more specific rules
    return (f'<div class="verdict">{head}<ul style="list-style:none;padding-left:0">'
            f'{"".join(items)}</ul></div>')


def _html_blocks(blocks: list[Block]) -> str:
    out, pending = [], []
    for b in [*blocks, None]:
        if isinstance(b, Chart):
            if b.svg:
                pending.append(b.svg)
            continue
        if pending:  # consecutive charts share one flowing row
            out.append('<div class="charts">' + "".join(pending) + "</div>")
            pending = []
        if isinstance(b, Text):
            attr = f' class="{b.cls}"' if b.cls else ""
            out.append(f"<p{attr}>{html.escape(b.text)}</p>")
        elif isinstance(b, Heading):
            out.append(f"<h3>{html.escape(b.text)}</h3>")
        elif isinstance(b, Table):
            out.append(_html_table(b.header, b.rows, b.cls))
        elif isinstance(b, VerdictCard):
            out.append(verdict_html(b.verdicts))
        elif isinstance(b, ModelWarning):
            out.append(f'<p class="fail">Warning, <code>{html.escape(b.model)}</code>: '
                       f"{html.escape(b.text)}</p>")
    return "".join(out)


def to_html(report: Report) -> str:
    """Lay a :class:`Report` out as one self-contained HTML page."""
    esc = html.escape
    body = [f"<h1>{esc(report.title)}</h1>"]
    for i, s in enumerate([*report.sections, None]):
        if i == intro_at(report):
            body.append(f'<p class="note">{esc(report.intro)}</p>')
        if s is not None:
            attr = f' id="{s.id}"' if s.id else ""
            body.append(f"<section{attr}><h2>{esc(s.title)}</h2>{_html_blocks(s.blocks)}"
                        "</section>")
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{esc(report.title)}</title><style>{_CSS}</style></head><body>"
            + "\n".join(body) + "</body></html>\n")


def render_html(results: dict[str, Any], predictions: list[dict[str, Any]]) -> str:
    """The whole report as one self-contained HTML page (inline CSS and SVG only)."""
    return to_html(build_report(results, predictions))
