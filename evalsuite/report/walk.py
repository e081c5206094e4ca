"""The results walk: ``results.json`` (and the predictions) once into a format-free report.

:func:`build_report` walks the results into a :class:`~evalsuite.report.blocks.Report`: the
verdict card first, then each part of :data:`SECTIONS` that has something to show, then the
rows where base and tuned disagree.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from evalsuite.report.blocks import Block, ModelWarning, Report, Section, Text, VerdictCard
from evalsuite.report.fairness_section import fairness_section
from evalsuite.report.sections import (
    comparisons_section,
    disagreement_section,
    gates_section,
    label_details_section,
    metrics_section,
    overfitting_section,
    per_group_section,
)
from evalsuite.verdict import summary, verdicts

SECTIONS: tuple[Callable[[dict[str, Any]], Section | None], ...] = (
    metrics_section, comparisons_section, gates_section, label_details_section,
    per_group_section, overfitting_section, fairness_section)
"""The report's sections after the verdict, in order; a new section is a function here."""


def build_report(results: dict[str, Any], predictions: list[dict[str, Any]]) -> Report:
    """Walk the results once into the report's sections (see the module docstring)."""
    task, st = results["task"], results["stats"]
    intro = (f"Base {_short(results['base'])}, {task['n_rows']} held-out rows from "
             f"{_short(task['data'])}. "
             f"Values with bootstrap 95% CIs ({st['n_boot']} resamples, seed {st['seed']}); "
             f"p-values: {st['binary_test']} for 0/1 scores, {st['continuous_test']} otherwise.")
    found = verdicts(results)
    warned: list[Block] = [ModelWarning(n, w) for n, w in model_warnings(results)]
    lead: list[Block] = [Text(summary(found), cls="note"), VerdictCard(found)] if found else []
    sections = [Section("Verdict", lead + warned, id="verdict")] if lead or warned else []
    for part in SECTIONS:
        section = part(results)
        if section is not None:
            sections.append(section)
    sections.append(disagreement_section(results, predictions))
    return Report(f"Evaluation: {task['name']}", intro, sections)


def _short(ref: Any) -> str:
    """A local path as its last part: a report leaves the machine, its folders do not."""
    text = str(ref)
    return text.rstrip("/").rsplit("/", 1)[-1] if text.startswith(("/", ".", "~")) else text


def model_warnings(results: dict[str, Any]) -> list[tuple[str, str]]:
    """(model, warning) for every ``warnings`` entry of results.json (e.g. a no-op adapter)."""
    return [(n, str(w)) for n, m in (results.get("models") or {}).items()
            for w in m.get("warnings") or []]
