"""``report.md``: a :class:`~evalsuite.report.blocks.Report` laid out as Markdown.

Markdown leaves the charts out (it has no pictures); report.html has them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from evalsuite.report.blocks import (
    Block,
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


def _md_cell(x: Any) -> str:
    return str(x).replace("|", "\\|").replace("\n", " ")


def _md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(_md_cell(h) for h in header) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_md_cell(x) for x in r) + " |" for r in rows]
    return "\n".join(lines)


def verdict_markdown(found: list[Verdict]) -> str:
    """The verdict card as a Markdown list: the outcome in bold, then the evidence."""
    lines = []
    for v in found:
        clauses = [*v.evidence, *(f"warning: {w}" for w in v.warnings)]
        lines.append(f"- **{v.model} — {v.outcome}**" + (f": {'; '.join(clauses)}"
                                                         if clauses else ""))
    return "\n".join(lines)


def _md_block(b: Block) -> str:
    if isinstance(b, Text):
        return f"**{b.text}**" if b.cls in ("pass", "fail") else b.text
    if isinstance(b, Heading):
        return f"### {b.text}"
    if isinstance(b, Table):
        return _md_table(b.header, b.rows)
    if isinstance(b, VerdictCard):
        return verdict_markdown(b.verdicts)
    if isinstance(b, ModelWarning):
        return f"> **Warning**, `{b.model}`: {b.text}"
    return ""  # a chart: Markdown has no pictures, report.html has them


def to_markdown(report: Report) -> str:
    """Lay a :class:`Report` out as Markdown."""
    parts = [f"# {report.title}", ""]
    for i, s in enumerate([*report.sections, None]):
        if i == intro_at(report):
            parts += [report.intro, ""]
        if s is not None:
            parts += [f"## {s.title}", ""]
            parts += [t + "\n" for b in s.blocks if (t := _md_block(b))]
    return "\n".join(parts).rstrip() + "\n"


def render_markdown(results: dict[str, Any], predictions: list[dict[str, Any]]) -> str:
    """The whole report as Markdown."""
    return to_markdown(build_report(results, predictions))
