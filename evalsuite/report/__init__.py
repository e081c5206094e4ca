"""Reports: ``report.md`` and a self-contained ``report.html`` from one walk of the results.

:func:`build_report` (:mod:`~evalsuite.report.walk`) walks ``results.json`` (and the
predictions) once into a small :class:`Report` (:mod:`~evalsuite.report.blocks`): sections of
text, tables and charts, the verdict card first. The sections live in
:mod:`~evalsuite.report.sections` and :mod:`~evalsuite.report.fairness_section`.
:func:`render_markdown` (:mod:`~evalsuite.report.as_markdown`) and :func:`render_html`
(:mod:`~evalsuite.report.as_html`) only lay that structure out, so the two formats hold the
same tables; Markdown leaves the charts out (it has no pictures). The app reads the same
structure for its verdict card and charts.

The HTML has inline CSS and SVG only (``evalsuite.charts``): no scripts, no external files,
and a print stylesheet, so it can be mailed, archived and printed to PDF as it is.
"""

from evalsuite.report.as_html import VERDICT_CSS, render_html, to_html, verdict_html
from evalsuite.report.as_markdown import render_markdown, to_markdown, verdict_markdown
from evalsuite.report.blocks import (
    Block,
    Chart,
    Heading,
    ModelWarning,
    Report,
    Section,
    Table,
    Text,
    VerdictCard,
    show_output,
)
from evalsuite.report.fairness_section import MAX_FLIPPED_EXAMPLES, fairness_section
from evalsuite.report.sections import MAX_DISAGREEMENTS, disagreements
from evalsuite.report.walk import SECTIONS, build_report, model_warnings

__all__ = [
    "MAX_DISAGREEMENTS", "MAX_FLIPPED_EXAMPLES", "SECTIONS", "VERDICT_CSS", "Block", "Chart",
    "Heading", "ModelWarning", "Report", "Section", "Table", "Text", "VerdictCard",
    "build_report", "disagreements", "fairness_section", "model_warnings", "render_html",
    "render_markdown", "show_output", "to_html", "to_markdown", "verdict_html",
    "verdict_markdown",
]
