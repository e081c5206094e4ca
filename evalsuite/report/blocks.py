"""The report's structure, format-free: blocks of text, tables and charts in titled sections.

The results walk (:mod:`evalsuite.report.walk`) builds it; the renderers
(:mod:`evalsuite.report.as_markdown`, :mod:`evalsuite.report.as_html`) and the app lay it out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from evalsuite.verdict import Verdict


def fmt(x: Any, digits: int = 3) -> str:
    """A number as a table shows it: ``digits`` decimals, a dash for missing or NaN."""
    if x is None:
        return "–"
    if isinstance(x, float):
        if math.isnan(x):
            return "–"
        return f"{x:.{digits}f}"
    return str(x)


def fmt_ci(m: dict[str, Any]) -> str:
    """A metric's value with its 95% CI: ``value [low, high]``."""
    return f"{fmt(m.get('value'))} [{fmt(m.get('ci_low'))}, {fmt(m.get('ci_high'))}]"


def show_output(text: str) -> str:
    """A model output as a table shows it: whitespace-only answers are named, not blank."""
    if not text.strip():
        return f"(blank: {len(text)} whitespace characters)" if text else "(empty)"
    return text


@dataclass
class Text:
    """A paragraph; ``cls`` ("pass", "fail", "note") styles it in HTML."""

    text: str
    cls: str = ""


@dataclass
class Heading:
    """A sub-heading inside a section."""

    text: str


@dataclass
class Table:
    """A table; cells are shown as ``str(cell)``."""

    header: list[str]
    rows: list[list[Any]]
    cls: str = ""


@dataclass
class Chart:
    """An SVG chart (HTML and the app only).

    ``kind`` lets the app pick its pictures: ``metric``, ``group``, ``flip``, ``stereotype``,
    ``gate`` (each gate with the bound it read) or ``curves``.
    """

    kind: str
    title: str
    svg: str


@dataclass
class ModelWarning:
    """A warning results.json records for a model (e.g. a no-op adapter)."""

    model: str
    text: str


@dataclass
class VerdictCard:
    """The verdict lines, before everything else."""

    verdicts: list[Verdict]


Block = Text | Heading | Table | Chart | ModelWarning | VerdictCard


@dataclass
class Section:
    """A titled part of the report."""

    title: str
    blocks: list[Block] = field(default_factory=list)
    id: str = ""


@dataclass
class Report:
    """The whole report, format-free."""

    title: str
    intro: str
    sections: list[Section]

    def charts(self, kind: str | None = None) -> list[Chart]:
        """Every chart (of ``kind``), in report order."""
        return [b for s in self.sections for b in s.blocks
                if isinstance(b, Chart) and b.svg and kind in (None, b.kind)]


def intro_at(report: Report) -> int:
    """The intro (base, rows, statistics) follows the verdict card, else the title."""
    return 1 if report.sections and report.sections[0].id == "verdict" else 0
