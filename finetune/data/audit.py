r"""Demographic skew: who is in the data, and who gets which outcome.

Each row has a group (a metadata field, or inferred from its prompt with THE lexicon, on every
axis it knows) and an outcome (a regex on the answer, or a label field). The audit reports
per-group representation and outcome rates, and tests group x outcome independence with
Pearson's chi-square test (``scipy.stats.chi2_contingency``, no continuity correction) and
Cramér's V (``scipy.stats.contingency.association``). Where an expected count is under 5 the
chi-square approximation is weak: a 2x2 table then gets Fisher's exact test
(``scipy.stats.fisher_exact``), a larger one keeps chi-square and says it is weak. An
association is flagged when it is both significant (p < ``alpha``, Holm-adjusted across the
axes audited, ``statsmodels.stats.multitest``) and large (V >= ``min_cramers_v``): on a big
file a tiny effect is significant, and on a small file a large effect can be noise.

A captured outcome (``"team: (\w+)"``) has one category per captured value: each group's
rate of each category is reported, and the largest gap over categories is the parity figure
(``max_rate_gap``), never "did the pattern match".
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from finetune.data.lexicon import infer_group
from finetune.errors import UsageError

UNKNOWN = "(unknown)"
NO_MATCH = "(no match)"
MIN_EXPECTED = 5.0
"""Smallest expected cell count for which the chi-square approximation is trusted."""


@dataclass(frozen=True)
class AuditThresholds:
    """When the audit flags a finding."""

    alpha: float = 0.01
    """Significance level of the chi-square test."""
    min_cramers_v: float = 0.2
    """Smallest Cramér's V called large (0.1 small, 0.3 medium, 0.5 large for 2x2, Cohen)."""
    min_group_ratio: float = 0.5
    """Flag representation when the smallest known group has fewer rows than this share of
    the largest."""

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 1.0:
            raise UsageError(f"alpha: must be in (0, 1), got {self.alpha}")
        if not 0.0 <= self.min_cramers_v <= 1.0:
            raise UsageError(f"min_cramers_v: must be in [0, 1], got {self.min_cramers_v}")
        if not 0.0 <= self.min_group_ratio <= 1.0:
            raise UsageError(f"min_group_ratio: must be in [0, 1], got {self.min_group_ratio}")


class OutcomeRule:
    """The outcome of an answer: a regex, or a label field.

    A pattern without a capture group gives a binary outcome (the pattern itself, or
    ``(no match)``); with a group, the captured text (lower-cased) is the outcome and rows
    that do not match have none, so ``"suggest the (budget|premium)"`` audits only the rows
    that recommend a tier.
    """

    def __init__(self, pattern: str | None = None, label_field: str | None = None):
        self.pattern = pattern
        self.label_field = label_field
        self.regex: re.Pattern[str] | None = None
        if pattern is not None:
            try:
                self.regex = re.compile(pattern, re.IGNORECASE)
            except re.error as err:
                raise UsageError(f"--outcome-pattern: invalid regex {pattern!r}: {err}") from None

    @property
    def source(self) -> str | None:
        """``pattern:<regex>``, ``field:<name>`` or None."""
        if self.regex is not None:
            return f"pattern:{self.pattern}"
        if self.label_field is not None:
            return f"field:{self.label_field}"
        return None

    def __call__(self, answer: str, row: dict[str, Any]) -> str | None:
        """The outcome of one row, or None when it has none."""
        if self.regex is not None:
            match = self.regex.search(answer)
            if self.regex.groups:
                return None if match is None or match.group(1) is None else match.group(1).lower()
            return str(self.pattern) if match else NO_MATCH
        if self.label_field is not None:
            value = row.get(self.label_field)
            return None if value is None or value == "" else str(value)
        return None


def row_group(row: dict[str, Any], prompt_text: str, group_field: str | None,
              axis: str = "gender") -> str | None:
    """A row's group: its ``group_field`` value, else the lexicon's guess on ``axis``."""
    if group_field is not None:
        value = row.get(group_field)
        return None if value is None or value == "" else str(value)
    return infer_group(prompt_text, axis)


def association(table: np.ndarray) -> dict[str, float] | None:
    """Chi-square test of independence and Cramér's V of a contingency table.

    All-zero rows and columns are dropped first; returns None when fewer than two remain on
    either side, since then there is nothing to test. ``method`` says which p-value it is:
    ``chi2``, or ``fisher`` (a 2x2 table with an expected count under 5); ``weak`` is True
    when a larger table has such a count (the chi-square p-value is then approximate).
    """
    from scipy.stats import chi2_contingency, fisher_exact
    from scipy.stats.contingency import association as cramers_v

    table = np.asarray(table, dtype=np.int64)
    table = table[table.sum(axis=1) > 0][:, table.sum(axis=0) > 0]
    if table.shape[0] < 2 or table.shape[1] < 2:
        return None
    result = chi2_contingency(table, correction=False)
    min_expected = float(result.expected_freq.min())
    small = min_expected < MIN_EXPECTED
    p_value, method = float(result.pvalue), "chi2"
    if small and table.shape == (2, 2):
        p_value, method = float(fisher_exact(table).pvalue), "fisher"
    return {
        "chi2": float(result.statistic),
        "dof": int(result.dof),
        "p_value": p_value,
        "method": method,
        "weak": bool(small and method == "chi2"),
        "cramers_v": float(cramers_v(table, method="cramer", correction=False)),
        "n": int(table.sum()),
        "min_expected": min_expected,
    }


def audit(
    groups: Sequence[str | None],
    outcomes: Sequence[str | None] | None,
    *,
    thresholds: AuditThresholds | None = None,
    group_source: str = "inferred:gender",
    outcome_source: str | None = None,
    lines: Sequence[int] | None = None,
    p_adjusted: float | None = None,
    axis: str | None = None,
) -> dict[str, Any]:
    """Audit representation and outcomes by group.

    Args:
        groups: One group per row (None when unknown).
        outcomes: One outcome per row (None when the row has none), or None to audit
            representation only.
        thresholds: When to flag.
        group_source: Where the groups came from, for the report.
        outcome_source: Where the outcomes came from, for the report.
        lines: Row line numbers, for examples.
        p_adjusted: The test's p-value adjusted for the other axes audited (Holm); flags
            read it instead of the raw one.
        axis: The axis the groups are on, named in the reasons.

    Returns:
        A JSON-able dict: ``representation``, ``outcome_rates``, ``test``, ``flagged``,
        ``reasons``.
    """
    th = thresholds or AuditThresholds()
    counts = Counter(UNKNOWN if g is None else g for g in groups)
    n = len(groups)
    known = {g: c for g, c in counts.items() if g != UNKNOWN}
    representation = {
        g: {"rows": c, "share": c / n if n else 0.0}
        for g, c in sorted(counts.items(), key=lambda kv: (kv[0] == UNKNOWN, -kv[1], kv[0]))
    }
    reasons = _representation_reasons(known, th)
    representation_flag = bool(reasons)
    result: dict[str, Any] = {
        "group_source": group_source,
        "outcome_source": outcome_source,
        "n_rows": n,
        "n_known_group": sum(known.values()),
        "representation": representation,
        "representation_flagged": representation_flag,
        "outcome_rates": None,
        "test": None,
        "association_flagged": False,
        "thresholds": {
            "alpha": th.alpha,
            "min_cramers_v": th.min_cramers_v,
            "min_group_ratio": th.min_group_ratio,
        },
    }
    if outcomes is not None:
        group_names, outcome_names, table, rates = _outcome_table(groups, outcomes)
        test = association(table)
        result["outcome_rates"] = rates
        result["outcomes"] = outcome_names
        result["table"] = {"groups": group_names, "outcomes": outcome_names,
                           "counts": table.tolist()}
        result["test"] = test
        if test is not None:
            worst, result["max_rate_gap"] = _max_rate_gap(rates, outcome_names)
            result["max_rate_gap_outcome"] = worst
            if p_adjusted is not None:
                test["p_holm"] = p_adjusted
            p = test["p_value"] if p_adjusted is None else p_adjusted
            if p < th.alpha and test["cramers_v"] >= th.min_cramers_v:
                result["association_flagged"] = True
                reasons.append(_association_reason(test, rates, worst, axis))
    result["flagged"] = bool(result["association_flagged"] or representation_flag)
    result["reasons"] = reasons
    return result


def _representation_reasons(known: dict[str, int], th: AuditThresholds) -> list[str]:
    """Why representation is flagged: the smallest group under its share of the largest."""
    reasons: list[str] = []
    if len(known) >= 2:
        small, large = min(known.values()), max(known.values())
        if small < th.min_group_ratio * large:
            low = min(known, key=lambda g: (known[g], g))
            reasons.append(
                f"group {low!r} has {small} rows, under {th.min_group_ratio:.0%} of the "
                f"largest group ({large})"
            )
    return reasons


def _outcome_table(
    groups: Sequence[str | None], outcomes: Sequence[str | None],
) -> tuple[list[str], list[str], np.ndarray, dict[str, dict[str, Any]]]:
    """The group x outcome counts of the rows with both, and each group's outcome rates."""
    pairs = [
        (g, o) for g, o in zip(groups, outcomes, strict=True) if g is not None and o is not None
    ]
    group_names = sorted({g for g, _ in pairs})
    outcome_names = sorted({o for _, o in pairs}, key=lambda o: (o == NO_MATCH, o))
    table = np.zeros((len(group_names), len(outcome_names)), dtype=np.int64)
    gi = {g: i for i, g in enumerate(group_names)}
    oi = {o: j for j, o in enumerate(outcome_names)}
    for g, o in pairs:
        table[gi[g], oi[o]] += 1
    rates: dict[str, dict[str, Any]] = {}
    for g in group_names:
        total = int(table[gi[g]].sum())
        rates[g] = {
            "rows": total,
            "rates": {o: float(table[gi[g], oi[o]] / total) for o in outcome_names},
        }
    return group_names, outcome_names, table, rates


def _max_rate_gap(rates: dict[str, dict[str, Any]], outcome_names: list[str]) -> tuple[str, float]:
    """The outcome whose rate differs most between groups, and that difference."""
    gaps = {
        o: float(max(r["rates"][o] for r in rates.values())
                 - min(r["rates"][o] for r in rates.values()))
        for o in outcome_names
    }
    worst = max(gaps, key=lambda o: gaps[o])
    return worst, gaps[worst]


def _association_reason(test: dict[str, Any], rates: dict[str, dict[str, Any]], worst: str,
                        axis: str | None) -> str:
    """One line: the outcome, its rate per group, the statistic, p-values and effect size."""
    by_group = ", ".join(f"{g} {r['rates'][worst]:.2f}" for g, r in rates.items())
    statistic = ("Fisher's exact test" if test["method"] == "fisher"
                 else f"chi2={test['chi2']:.1f}")
    holm = f", Holm p={test['p_holm']:.2g}" if "p_holm" in test else ""
    weak = (f" (approximate: an expected count is {test['min_expected']:.1f} < 5)"
            if test["weak"] else "")
    return (f"{axis + ': ' if axis else ''}outcome {worst!r} depends on group ({by_group}); "
            f"{statistic}, p={test['p_value']:.2g}{holm}, Cramér's V={test['cramers_v']:.2f}"
            f"{weak}")


def audit_axes(
    groups_by_axis: dict[str, Sequence[str | None]],
    outcomes: Sequence[str | None] | None,
    *,
    thresholds: AuditThresholds | None = None,
    outcome_source: str | None = None,
    min_known: int = 20,
) -> dict[str, dict[str, Any]]:
    """:func:`audit` on each axis, flags read from Holm-adjusted p-values across the axes.

    Args:
        groups_by_axis: Each axis's group per row (None when unknown).
        outcomes: One outcome per row, or None.
        thresholds: When to flag.
        outcome_source: Where the outcomes came from.
        min_known: An axis with fewer rows of a known group is reported but not flagged for
            representation (a handful of stray words is no population).

    Returns:
        Each axis's audit, with ``axis`` and, where tested, ``test.p_holm``.
    """
    from statsmodels.stats.multitest import multipletests

    th = thresholds or AuditThresholds()
    first = {axis: audit(groups, outcomes, thresholds=th, outcome_source=outcome_source,
                         group_source=f"inferred:{axis} (lexicon)", axis=axis)
             for axis, groups in groups_by_axis.items()}
    tested = [a for a, r in first.items() if r["test"] is not None]
    adjusted = dict(zip(tested, multipletests([first[a]["test"]["p_value"] for a in tested],
                                              method="holm")[1], strict=True)) if tested else {}
    out: dict[str, dict[str, Any]] = {}
    for axis, groups in groups_by_axis.items():
        result = audit(groups, outcomes, thresholds=th, outcome_source=outcome_source,
                       group_source=f"inferred:{axis} (lexicon)", axis=axis,
                       p_adjusted=float(adjusted[axis]) if axis in adjusted else None)
        if result["representation_flagged"] and result["n_known_group"] < min_known:
            result["representation_flagged"] = False
            result["reasons"] = result["reasons"][1:]
            result["flagged"] = result["association_flagged"]
        result["axis"] = axis
        if result["reasons"] and result["representation_flagged"]:
            result["reasons"][0] = f"{axis}: {result['reasons'][0]}"
        out[axis] = result
    return out
