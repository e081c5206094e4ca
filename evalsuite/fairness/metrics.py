"""Pure group metrics: per-group scores and selection rates (fairlearn), flips, worst case.

The functions take plain sequences so they can be checked against fairlearn and the formulas on
hand-made predictions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from evalsuite.fairness.intervals import _group_bootstrap, _num

FOUR_FIFTHS = 0.8
"""Disparate impact threshold: a selection-rate ratio below 0.8 fails the four-fifths rule."""


def _mean_score(y_true: Sequence[float], y_pred: Sequence[float]) -> float:
    """MetricFrame metric: the mean per-row score carried in ``y_pred``."""
    del y_true
    return float(np.mean(y_pred))


# ----------------------------------------------------------------------------- group metrics


def group_scores(
    scores: Sequence[float],
    groups: Sequence[str | None],
    *,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Per-group mean of a per-row score (accuracy when scores are 0/1) with bootstrap CIs.

    Point values come from fairlearn's ``MetricFrame``; the CIs from a vectorised bootstrap
    that resamples rows as ``MetricFrame(n_boot=...)`` does (which takes seconds per frame
    where this takes milliseconds). Rows whose group is None are left out.

    Args:
        scores: One score per row (1/0 correctness, or any per-row metric).
        groups: The row's group, or None when unknown.
        n_boot: Bootstrap resamples; 0 for no CIs.
        seed: Bootstrap seed.

    Returns:
        ``by_group`` {group: {n, value, ci}}, ``gap`` (largest minus smallest group value),
        ``gap_ci``, ``n_unknown`` (rows without a group). ``gap`` is None with fewer than two
        groups.
    """
    from fairlearn.metrics import MetricFrame

    keep = [i for i, g in enumerate(groups) if g is not None]
    out: dict[str, Any] = {"by_group": {}, "gap": None, "gap_ci": None,
                           "n_unknown": len(groups) - len(keep)}
    if not keep:
        return out
    y = np.asarray([float(scores[i]) for i in keep])
    g = np.asarray([str(groups[i]) for i in keep])
    frame = MetricFrame(
        metrics={"value": _mean_score}, y_true=np.zeros_like(y), y_pred=y, sensitive_features=g
    )
    by_group = frame.by_group["value"]
    levels = [str(level) for level in by_group.index]
    cis = _group_bootstrap(y, g, levels, n_boot, seed) if n_boot > 1 else None
    for k, level in enumerate(levels):
        out["by_group"][level] = {
            "n": int((g == level).sum()),
            "value": _num(by_group.iloc[k]),
            "ci": None if cis is None else cis["by_group"][k],
        }
    if len(levels) >= 2:
        out["gap"] = _num(frame.difference()["value"])
        out["gap_ci"] = None if cis is None else cis["gap"]
    return out


def outcome_metrics(
    predicted: Sequence[int],
    groups: Sequence[str | None],
    true: Sequence[int] | None = None,
    *,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Selection rates of a favourable outcome by group and the parity metrics on them.

    Args:
        predicted: 1 where the model's output shows the favourable outcome, else 0.
        groups: The row's group, or None when unknown (left out).
        true: 1 where the target shows the outcome; enables equalized odds.
        n_boot: Bootstrap resamples for the selection-rate CIs.
        seed: Bootstrap seed.

    Returns:
        ``selection_rate`` {group: {n, value, ci}}, ``demographic_parity_difference``,
        ``demographic_parity_ratio``, ``four_fifths_rule`` (ratio >= 0.8) and, with ``true``,
        ``equalized_odds_difference`` (None when a group lacks positives or negatives).
    """
    from fairlearn.metrics import (
        demographic_parity_difference,
        demographic_parity_ratio,
        equalized_odds_difference,
    )

    keep = [i for i, g in enumerate(groups) if g is not None]
    rates = group_scores([predicted[i] for i in keep], [groups[i] for i in keep],
                         n_boot=n_boot, seed=seed)
    out: dict[str, Any] = {
        "n": len(keep),
        "selection_rate": rates["by_group"],
        "demographic_parity_difference": None,
        "demographic_parity_ratio": None,
        "four_fifths_rule": None,
        "equalized_odds_difference": None,
    }
    if len(rates["by_group"]) < 2:
        return out
    y_pred = np.asarray([int(predicted[i]) for i in keep])
    sens = np.asarray([str(groups[i]) for i in keep])
    y_true = np.asarray([int(true[i]) for i in keep]) if true is not None else np.zeros_like(y_pred)
    dpd = demographic_parity_difference(y_true, y_pred, sensitive_features=sens)
    if y_pred.sum() == 0:
        dpr = 1.0  # nobody selected in any group: parity holds, fairlearn's 0/0 is NaN
    else:
        dpr = demographic_parity_ratio(y_true, y_pred, sensitive_features=sens)
    out["demographic_parity_difference"] = _num(dpd)
    out["demographic_parity_ratio"] = _num(dpr)
    out["four_fifths_rule"] = None if _num(dpr) is None else bool(dpr >= FOUR_FIFTHS)
    if true is not None and _defined_odds(y_true, sens):
        out["equalized_odds_difference"] = _num(
            equalized_odds_difference(y_true, y_pred, sensitive_features=sens)
        )
    return out


def _defined_odds(y_true: np.ndarray, sens: np.ndarray) -> bool:
    """Equalized odds needs true positives and true negatives in every group."""
    return all(
        0 < y_true[sens == level].sum() < (sens == level).sum() for level in np.unique(sens)
    )


# ----------------------------------------------------------------------------- counterfactual


def flip_rate(original: Sequence[Any], variants: Sequence[Sequence[Any]]) -> float | None:
    """Share of (row, variant) pairs whose extracted decision differs from the original's.

    Args:
        original: The decision extracted from each row's original answer (None if absent).
        variants: For each row, the decisions extracted from its variants' answers.

    Returns:
        The flip rate, or None when there is no variant at all.
    """
    pairs = [(o, v) for o, vs in zip(original, variants, strict=True) for v in vs]
    if not pairs:
        return None
    return sum(o != v for o, v in pairs) / len(pairs)


def worst_case_accuracy(
    original: Sequence[float], variants: Sequence[Sequence[float]]
) -> float | None:
    """HELM-style worst case: the mean over rows of the minimum score over original + variants.

    Rows without variants count with their original score.
    """
    if not original:
        return None
    return float(np.mean([min([o, *vs]) for o, vs in zip(original, variants, strict=True)]))
