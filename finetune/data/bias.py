"""The bias audit of ``finetune validate`` across axes.

Without ``--group-field`` every axis the lexicon knows (gender, race, age, religion and a
user's ``axes.yaml``; ``--axes`` chooses) gets its own audit (``audit.audit_axes``: statistic,
effect size, Holm across the axes). The report's top-level figures are those of the primary
axis: the flagged axis with the smallest adjusted p-value, else gender when audited, else
the first axis. Without an outcome, ``discover.discover_outcomes`` looks for words of the
answers that depend on any axis's group.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from finetune.data.audit import AuditThresholds, audit, audit_axes
from finetune.data.discover import discover_outcomes
from finetune.data.lexicon import axes as known_axes
from finetune.data.lexicon import infer_group
from finetune.errors import UsageError

DEFAULT_SKIP = ("name",)
"""Axes not audited by default: ``name`` groups rows as gender does."""


def audited_axes(chosen: Sequence[str] | None) -> list[str]:
    """The axes to audit: ``chosen`` (checked), else every known axis but ``name``.

    Raises:
        UsageError: an axis the lexicon does not know.
    """
    if not chosen:
        return [a for a in known_axes() if a not in DEFAULT_SKIP]
    unknown = [a for a in chosen if a not in known_axes()]
    if unknown:
        raise UsageError(f"--axes: unknown axis {unknown[0]!r}; choose from "
                         f"{', '.join(known_axes())}")
    return list(dict.fromkeys(chosen))


def _primary(per_axis: dict[str, dict[str, Any]]) -> str:
    def key(axis: str) -> tuple[int, float, int]:
        r = per_axis[axis]
        test = r.get("test") or {}
        p = test.get("p_holm", test.get("p_value", 1.0))
        return (not r["flagged"], p if r["flagged"] else 1.0, axis != "gender")
    return min(per_axis, key=key)


def audit_rows(
    prompts: Sequence[str],
    answers: Sequence[str],
    outcomes: Sequence[str | None] | None,
    *,
    axes: Sequence[str] | None = None,
    thresholds: AuditThresholds | None = None,
    outcome_source: str | None = None,
    group_field_groups: Sequence[str | None] | None = None,
    group_field: str | None = None,
) -> dict[str, Any]:
    """The whole bias section: the primary axis's audit plus every axis and discoveries.

    Args:
        prompts: Each row's prompt text (what groups are inferred from).
        answers: Each row's answer (what discovery reads).
        outcomes: Each row's outcome, or None when no outcome is audited.
        axes: Axes to audit (default every known axis but ``name``).
        thresholds: When to flag.
        outcome_source: Where the outcomes came from.
        group_field_groups: Groups from a row field (``--group-field``): one audit, no axes.
        group_field: That field's name.

    Returns:
        :func:`audit`'s dict for the primary axis, with ``axis``, ``axes`` (each axis's audit),
        ``correction`` and, without an outcome, ``discovered``.
    """
    th = thresholds or AuditThresholds()
    if group_field_groups is not None:
        bias = audit(group_field_groups, outcomes, thresholds=th, outcome_source=outcome_source,
                     group_source=f"field:{group_field}")
        bias.update(axis=group_field, axes={}, correction=None)
        return bias
    chosen = audited_axes(axes)
    groups = {a: [infer_group(p, a) for p in prompts] for a in chosen}
    per_axis = audit_axes(groups, outcomes, thresholds=th, outcome_source=outcome_source)
    primary = _primary(per_axis)
    bias = dict(per_axis[primary])
    bias["axes"] = per_axis
    bias["correction"] = "holm" if len(per_axis) > 1 else None
    bias["reasons"] = [r for a in chosen for r in per_axis[a]["reasons"]]
    bias["association_flagged"] = any(r["association_flagged"] for r in per_axis.values())
    bias["representation_flagged"] = any(r["representation_flagged"] for r in per_axis.values())
    bias["flagged"] = bias["association_flagged"] or bias["representation_flagged"]
    if outcomes is None:
        bias["discovered"] = discover_outcomes(answers, groups, q=th.alpha,
                                               min_cramers_v=th.min_cramers_v)
    return bias


def discovery_lines(discovered: dict[str, Any], limit: int = 5) -> list[str]:
    """One line per discovered word, strongest first."""
    out = []
    for c in discovered.get("found", [])[:limit]:
        rates = ", ".join(f"{g} {r:.2f}" for g, r in c["rates"].items())
        out.append(f"{c['axis']}: answers saying {c['word']!r} depend on group ({rates}); "
                   f"q={c['q_value']:.2g} (Benjamini-Hochberg over {discovered['tests']} word x "
                   f"axis tests), Cramér's V={c['cramers_v']:.2f}")
    return out
