r"""Group metrics on the original answers: accuracy by group, the outcome, intersections.

- Accuracy of every binary scorer by group (:func:`~evalsuite.fairness.metrics.group_scores`).
- The favourable outcome's selection rates and parity; with a true outcome, who is wrongly
  denied or granted (:func:`~evalsuite.fairness.metrics.error_rates`). An outcome pattern with
  a capture group (``"team: (\w+)"``) names a category: each category gets its selection rate
  per group, and the parity figure is the largest gap over categories.
- Intersections of two or more axes (fairlearn ``MetricFrame`` with several sensitive
  features), a cell below the minimum size reported as too small, not as a number.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from evalsuite.fairness.context import _Context, has_outcome, is_categorical, outcome_value
from evalsuite.fairness.intervals import _num, group_codes, permutation_gap_p, put_flat
from evalsuite.fairness.metrics import _mean_score, group_scores, outcome_metrics


def group_block(ctx: _Context, outputs: Sequence[str], flat: dict[str, float]) -> dict[str, Any]:
    """Per-group accuracy of every binary scorer, the outcome's rates, other axes, intersections.

    The groups are the task's (``group_field``, else the lexicon's gender); every other axis the
    task varies gets the same metrics under ``by_axis`` (flat ``by_axis.<axis>.<metric>``).
    """
    spec = ctx.task.fairness
    by_scorer = ctx.decider.scores([(r, outputs[r.index], r.target) for r in ctx.rows])
    block: dict[str, Any] = {"source": ctx.group_source,
                             **_metrics_by(ctx, outputs, by_scorer, ctx.groups, flat, ""),
                             "by_axis": {}, "intersectional": None}
    features = axis_groups(ctx)
    for axis, groups in features.items():
        if groups != list(ctx.groups) and any(g is not None for g in groups):
            block["by_axis"][axis] = _metrics_by(ctx, outputs, by_scorer, groups, flat,
                                                 f"by_axis.{axis}.")
    if len(features) >= 2:
        block["intersectional"] = {
            "axes": list(features), "min_cell_size": spec.min_cell_size,
            "accuracy": {name: intersectional([s[k] for k in s],
                                              {a: [g[k] for k in s] for a, g in features.items()},
                                              min_cell=spec.min_cell_size, seed=ctx.seed,
                                              n_permutations=ctx.n_permutations)
                         for name, s in by_scorer.items()}}
        for name, cells in block["intersectional"]["accuracy"].items():
            put_flat(flat, f"intersectional.group_accuracy_gap.{name}", cells["gap"], None)
    return block


def _metrics_by(ctx: _Context, outputs: Sequence[str], by_scorer: Mapping[str, Mapping],
                groups: Sequence[str | None], flat: dict[str, float], prefix: str
                ) -> dict[str, Any]:
    """Accuracy by group of every binary scorer and the outcome's metrics, for one grouping."""
    spec = ctx.task.fairness
    stats = {"n_boot": ctx.n_boot, "seed": ctx.seed, "n_permutations": ctx.n_permutations}
    accuracy = {name: group_scores(list(s.values()), [groups[k] for k in s], **stats)
                for name, s in by_scorer.items()}
    measured = {n: a for n, a in accuracy.items() if a["gap"] is not None}
    for name, a in measured.items():
        put_flat(flat, f"{prefix}group_accuracy_gap.{name}", a["gap"], a["gap_ci"])
    if measured:
        worst = max(measured.values(), key=lambda a: a["gap"])
        put_flat(flat, f"{prefix}group_accuracy_gap", worst["gap"], worst["gap_ci"])
    out: dict[str, Any] = {"accuracy": accuracy, "outcome": None}
    if spec.outcome_pattern is None:
        return out
    scope = ctx.scope
    categorical = is_categorical(spec.outcome_pattern)
    extract = outcome_value if categorical else has_outcome
    true = [extract(r.target, spec.outcome_pattern) for r in scope]
    if not any(true):  # no target states the outcome: there is no truth to err against
        true = None
    predicted = [extract(outputs[r.index], spec.outcome_pattern) for r in scope]
    outcome = (category_metrics if categorical else outcome_metrics)(
        predicted, [groups[r.index] for r in scope], true, **stats)
    outcome.update(pattern=spec.outcome_pattern, where=spec.where)
    out["outcome"] = outcome
    _outcome_flat(outcome, flat, prefix)
    return out


def _outcome_flat(outcome: Mapping[str, Any], flat: dict[str, float], prefix: str = "") -> None:
    def put(key: str, value: float | None, ci: Any) -> None:
        put_flat(flat, prefix + key, value, ci)

    put("demographic_parity_difference", outcome["demographic_parity_difference"],
        outcome.get("demographic_parity_difference_ci"))
    for key in ("demographic_parity_ratio", "equalized_odds_difference"):
        put(key, outcome.get(key), outcome.get(f"{key}_ci"))
    if "categories" in outcome:
        for cat, c in outcome["categories"].items():
            for g, rate in c["selection_rate"].items():
                put(f"selection_rate.{cat}.{g}", rate["value"], rate["ci"])
        return
    for g, rate in outcome["selection_rate"].items():
        put(f"selection_rate.{g}", rate["value"], rate["ci"])
    errors = outcome.get("error_rates") or {}
    for name in ("false_negative_rate", "false_positive_rate"):
        put(f"{name}_difference", errors.get(f"{name}_difference"),
            errors.get(f"{name}_difference_ci"))
        for g, e in (errors.get("by_group") or {}).items():
            put(f"{name}.{g}", e.get(name), e.get(f"{name}_ci"))
    put("equal_opportunity_difference", errors.get("equal_opportunity_difference"),
        errors.get("equal_opportunity_difference_ci"))


def category_metrics(
    predicted: Sequence[str | None], groups: Sequence[str | None],
    true: Sequence[str | None] | None = None, *, n_boot: int = 1000, seed: int = 0,
    n_permutations: int = 10_000,
) -> dict[str, Any]:
    """A categorical outcome: each category's selection rate per group, and parity over them.

    Args:
        predicted: The category of each answer (None where the pattern does not match; such a
            row selects no category but counts in every rate's denominator).
        groups: The row's group, or None when unknown (left out).
        true: The target's category; enables each category's error rates (one against the
            rest).
        n_boot: Bootstrap resamples.
        seed: Bootstrap and permutation seed.
        n_permutations: Permutations for each category's gap p-value.

    Returns:
        ``categories`` {category: binary :func:`outcome_metrics` of "answer is this
        category"}, ``demographic_parity_difference`` (the largest over categories, and its
        ``_ci`` / ``_p_value`` / ``_category``), ``demographic_parity_ratio`` (the smallest),
        ``four_fifths_rule``, ``equalized_odds_difference`` (the largest, where defined), ``n``.
    """
    cats = sorted({c for c in [*predicted, *(true or [])] if c is not None})
    per = {c: outcome_metrics([int(p == c) for p in predicted], groups,
                              None if true is None else [int(t == c) for t in true],
                              n_boot=n_boot, seed=seed, n_permutations=n_permutations)
           for c in cats}
    out: dict[str, Any] = {"n": sum(g is not None for g in groups), "categories": per,
                           "selection_rate": {}, "demographic_parity_difference": None,
                           "demographic_parity_ratio": None, "four_fifths_rule": None,
                           "equalized_odds_difference": None}
    gaps = {c: m for c, m in per.items() if m["demographic_parity_difference"] is not None}
    if gaps:
        cat, worst = max(gaps.items(), key=lambda kv: kv[1]["demographic_parity_difference"])
        out.update(demographic_parity_difference=worst["demographic_parity_difference"],
                   demographic_parity_difference_ci=worst["demographic_parity_difference_ci"],
                   demographic_parity_difference_p_value=worst[
                       "demographic_parity_difference_p_value"],
                   demographic_parity_difference_category=cat)
        ratios = [m for m in gaps.values() if m["demographic_parity_ratio"] is not None]
        if ratios:
            low = min(ratios, key=lambda m: m["demographic_parity_ratio"])
            out["demographic_parity_ratio"] = low["demographic_parity_ratio"]
            out["demographic_parity_ratio_ci"] = low.get("demographic_parity_ratio_ci")
            out["four_fifths_rule"] = all(m["four_fifths_rule"] for m in gaps.values()
                                          if m["four_fifths_rule"] is not None)
    odds = [m for m in per.values() if m["equalized_odds_difference"] is not None]
    if odds:
        high = max(odds, key=lambda m: m["equalized_odds_difference"])
        out["equalized_odds_difference"] = high["equalized_odds_difference"]
        out["equalized_odds_difference_ci"] = high.get("equalized_odds_difference_ci")
    return out


def axis_groups(ctx: _Context) -> dict[str, list[str | None]]:
    """Each row's group on every axis the task names for intersections, by the lexicon.

    These axes also get the group metrics of their own (``by_axis``).

    ``fairness.intersect`` names them; by default the task's counterfactual axes that carry
    groups of their own (``name`` varies the gender group's names, so it is left out).
    """
    spec = ctx.task.fairness
    axes = spec.intersect if spec.intersect is not None else \
        [a for a in dict.fromkeys(spec.counterfactual_axes) if a != "name"]
    texts = [" ".join(m["content"] for m in r.prompt if m["role"] == "user") for r in ctx.rows]
    return {axis: [ctx.group_of(t, axis) for t in texts] for axis in axes}


def intersectional(
    scores: Sequence[float], features: Mapping[str, Sequence[str | None]], *,
    min_cell: int = 20, seed: int = 0, n_permutations: int = 10_000,
) -> dict[str, Any]:
    """Mean score in every cell of two or more axes (fairlearn ``MetricFrame``).

    Rows with an unknown group on any axis are left out. A cell with fewer than ``min_cell``
    rows is reported as too small, with its size and no value, and takes no part in the gap.

    Returns:
        ``cells`` [{``groups`` {axis: group}, ``n``, ``value`` or None, ``too_small``}],
        ``gap`` (largest minus smallest value over the cells big enough; None with fewer than
        two), ``gap_p_value`` (cell-label permutation test), ``n_unknown``.
    """
    import pandas as pd
    from fairlearn.metrics import MetricFrame, count

    axes = list(features)
    keep = [i for i in range(len(scores)) if all(features[a][i] is not None for a in axes)]
    out: dict[str, Any] = {"cells": [], "gap": None, "gap_p_value": None,
                           "n_unknown": len(scores) - len(keep), "min_cell_size": min_cell}
    if not keep:
        return out
    y = np.asarray([float(scores[i]) for i in keep])
    frame_in = pd.DataFrame({a: [str(features[a][i]) for i in keep] for a in axes})
    frame = MetricFrame(metrics={"value": _mean_score, "n": count}, y_true=np.zeros_like(y),
                        y_pred=y, sensitive_features=frame_in)
    big = []
    for cell, row in frame.by_group.iterrows():
        cell = cell if isinstance(cell, tuple) else (cell,)
        n = int(row["n"])
        small = n < min_cell
        out["cells"].append({"groups": dict(zip(axes, cell, strict=True)), "n": n,
                             "value": None if small else _num(row["value"]),
                             "too_small": small})
        if not small:
            big.append((tuple(cell), float(row["value"])))
    if len(big) >= 2:
        values = [v for _, v in big]
        out["gap"] = _num(max(values) - min(values))
        labels = ["|".join(frame_in.iloc[k]) for k in range(len(keep))]
        allowed = {"|".join(c) for c, _ in big}
        rows = [k for k, lab in enumerate(labels) if lab in allowed]
        _, codes = group_codes([labels[k] for k in rows])
        out["gap_p_value"] = _num(permutation_gap_p(y[rows], codes, len(big),
                                                    n_permutations=n_permutations, seed=seed))
    return out
