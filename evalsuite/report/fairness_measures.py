"""The report's tables for the fairness measures that prove a point (issue 28).

Did fine-tuning cause it (each adapter against the base, in words); the counterfactual
measures per axis with their prompt-clustered intervals (flip rate, similarity, sentiment gap,
worst case); who is wrongly denied or granted (error rates by group); a captured outcome's
rates per category; intersections of axes, with cells too small to show.
"""

from __future__ import annotations

from typing import Any

from evalsuite.report.blocks import Block, Heading, Table, Text, fmt
from evalsuite.verdict import format_p

_NOTE = ("Intervals resample prompts (a prompt's variants flip together). A gap between two "
         "groups has the interval of the signed difference (it can contain 0); with more "
         "groups only the upper bound is shown, and the permutation p-value says whether the "
         "gap is real. Sentiment gap: Wasserstein-1 distance between the VADER sentiment of "
         "the answers by the group the prompt names (LangFair; 0 is no change of tone). "
         "Against the base: exact McNemar on per-prompt flips, paired permutation tests on "
         "similarity, the sentiment gap and group gaps; p is Holm-adjusted over every adapter x "
         "metric test of the run (raw in brackets).")


def _range(value: Any, ci: Any) -> str:
    if isinstance(ci, list | tuple) and len(ci) == 2:
        return f"{fmt(value)} [{fmt(ci[0])}, {fmt(ci[1])}]"
    return fmt(value)


def measure_blocks(models: dict[str, Any]) -> list[Block]:
    """Headings and tables for every measure some model has; empty when none has any."""
    tables = [
        ("Did fine-tuning cause it? Each adapter against the base",
         ["model", "metric", "base", "adapter", "change [95% CI]", "p", "in words"],
         _vs_base_rows(models)),
        ("Counterfactual measures by axis (95% CI over prompts)",
         ["model", "axis", "flip rate", "similarity", "sentiment gap", "worst-case accuracy"],
         _axis_rows(models)),
        ("Group metrics on the other axes the task varies",
         ["model", "axis", "accuracy gap [95% CI]", "gap p", "outcome parity gap [95% CI]",
          "parity p"], _by_axis_rows(models)),
        ("Who is wrongly denied or granted (fairlearn error rates by group)",
         ["model", "group", "false-negative rate (denied)", "false-positive rate (granted)",
          "with / without the outcome in the target"], _error_rows(models)),
        ("Selection rate of each captured category, by group",
         ["model", "category", "group", "rate [95% CI]", "gap", "p"], _category_rows(models)),
        ("Intersections of axes",
         ["model", "scorer", "cell", "n", "value"], _intersection_rows(models)),
    ]
    out: list[Block] = []
    for title, header, rows in tables:
        if rows:
            out += [Heading(title), Table(header, rows)]
    if out:
        out.append(Text(_NOTE, cls="note"))
    return out


def _vs_base_rows(models: dict[str, Any]) -> list[list[Any]]:
    rows = []
    for name, m in models.items():
        for key, t in (m["fairness"].get("vs_base") or {}).items():
            rows.append([name, key, fmt(t.get("base")), fmt(t.get("adapter")),
                         _range(t.get("delta"), t.get("ci")), _p(t),
                         t.get("words")])
    return rows


def _p(test: dict[str, Any]) -> str:
    if test.get("p_value_holm") is None:
        return format_p(test.get("p_value"))
    return f"{format_p(test['p_value_holm'])} ({format_p(test.get('p_value'))})"


def _axis_rows(models: dict[str, Any]) -> list[list[Any]]:
    rows = []
    for name, m in models.items():
        for axis, a in ((m["fairness"].get("counterfactual") or {}).get("axes") or {}).items():
            rows.append([name, axis] + [_range(a.get(k), a.get(f"{k}_ci")) for k in (
                "flip_rate", "similarity", "sentiment_gap", "worst_case_accuracy")])
    return rows


def _by_axis_rows(models: dict[str, Any]) -> list[list[Any]]:
    rows = []
    for name, m in models.items():
        for axis, b in ((m["fairness"].get("groups") or {}).get("by_axis") or {}).items():
            for scorer, a in (b.get("accuracy") or {}).items():
                outcome = b.get("outcome") or {}
                rows.append([name, f"{axis} ({scorer})", _range(a.get("gap"), a.get("gap_ci")),
                             format_p(a.get("gap_p_value")),
                             _range(outcome.get("demographic_parity_difference"),
                                    outcome.get("demographic_parity_difference_ci")),
                             format_p(outcome.get("demographic_parity_difference_p_value"))])
    return rows


def _error_rows(models: dict[str, Any]) -> list[list[Any]]:
    rows = []
    for name, m in models.items():
        outcome = (m["fairness"].get("groups") or {}).get("outcome") or {}
        errors = outcome.get("error_rates") or {}
        for g, e in (errors.get("by_group") or {}).items():
            rows.append([name, g,
                         _range(e.get("false_negative_rate"), e.get("false_negative_rate_ci")),
                         _range(e.get("false_positive_rate"), e.get("false_positive_rate_ci")),
                         f"{e.get('n_positive')} / {e.get('n_negative')}"])
        if errors.get("by_group"):
            rows.append([name, "gap (equal opportunity)",
                         _range(errors.get("false_negative_rate_difference"),
                                errors.get("false_negative_rate_difference_ci")),
                         _range(errors.get("false_positive_rate_difference"),
                                errors.get("false_positive_rate_difference_ci")), ""])
    return rows


def _category_rows(models: dict[str, Any]) -> list[list[Any]]:
    rows = []
    for name, m in models.items():
        outcome = (m["fairness"].get("groups") or {}).get("outcome") or {}
        for cat, c in (outcome.get("categories") or {}).items():
            for g, r in (c.get("selection_rate") or {}).items():
                rows.append([name, cat, g, _range(r.get("value"), r.get("ci")),
                             _range(c.get("demographic_parity_difference"),
                                    c.get("demographic_parity_difference_ci")),
                             format_p(c.get("demographic_parity_difference_p_value"))])
    return rows


def _intersection_rows(models: dict[str, Any]) -> list[list[Any]]:
    rows = []
    for name, m in models.items():
        inter = (m["fairness"].get("groups") or {}).get("intersectional") or {}
        for scorer, res in (inter.get("accuracy") or {}).items():
            for cell in res.get("cells") or []:
                label = " × ".join(f"{a}={g}" for a, g in cell["groups"].items())
                value = f"too small (under {res.get('min_cell_size')})" if cell["too_small"] \
                    else fmt(cell["value"])
                rows.append([name, scorer, label, cell["n"], value])
            rows.append([name, scorer, "gap over cells shown", "",
                         f"{fmt(res.get('gap'))}, p {format_p(res.get('gap_p_value'))}"])
    return rows
