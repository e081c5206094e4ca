"""Pure group metrics: per-group scores and selection rates (fairlearn), flips, worst case.

The functions take plain sequences so they can be checked against fairlearn and the formulas on
hand-made predictions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from evalsuite.fairness.intervals import (
    _num,
    boot_counts,
    gap_draws,
    gap_interval,
    group_codes,
    group_mean_draws,
    percentile,
    permutation_gap_p,
    unmoved,
)
from evalsuite.stats import binomial_ci, is_binary

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
    n_permutations: int = 10_000,
) -> dict[str, Any]:
    """Per-group mean of a per-row score (accuracy when scores are 0/1) with bootstrap CIs.

    Point values come from fairlearn's ``MetricFrame``; the CIs from a vectorised bootstrap
    that resamples rows (each row is one prompt) as ``MetricFrame(n_boot=...)`` does, which
    takes seconds per frame where this takes milliseconds. Rows whose group is None are left
    out. See :mod:`evalsuite.fairness.intervals` for why the gap's interval is what it is.

    Args:
        scores: One score per row (1/0 correctness, or any per-row metric).
        groups: The row's group, or None when unknown.
        n_boot: Bootstrap resamples; 0 for no CIs.
        seed: Bootstrap and permutation seed.
        n_permutations: Group-label permutations for the gap's p-value; 0 for none.

    Returns:
        ``by_group`` {group: {n, value, ci}}, ``gap`` (largest minus smallest group value),
        ``gap_ci`` (two groups: of the signed difference, which can contain 0; more: ``[None,
        upper bound]``), ``gap_p_value`` (permutation test of the gap), ``n_unknown`` (rows
        without a group). ``gap`` is None with fewer than two groups.
    """
    from fairlearn.metrics import MetricFrame

    keep = [i for i, g in enumerate(groups) if g is not None]
    out: dict[str, Any] = {"by_group": {}, "gap": None, "gap_ci": None, "gap_p_value": None,
                           "n_unknown": len(groups) - len(keep)}
    if not keep:
        return out
    y = np.asarray([float(scores[i]) for i in keep])
    levels, codes = group_codes([str(groups[i]) for i in keep])
    frame = MetricFrame(metrics={"value": _mean_score}, y_true=np.zeros_like(y), y_pred=y,
                        sensitive_features=np.asarray(levels)[codes])
    by_group = frame.by_group["value"]
    point = np.asarray([float(by_group.loc[level]) for level in levels])
    draws = None
    if n_boot > 1:
        draws = group_mean_draws(y, codes, len(levels), boot_counts(len(y), n_boot, seed))
    for k, level in enumerate(levels):
        out["by_group"][level] = {
            "n": int((codes == k).sum()),
            "value": _num(point[k]),
            "ci": None if draws is None else _rate_ci(y[codes == k], draws[:, k]),
        }
    if len(levels) >= 2:
        out["gap"] = _num(frame.difference()["value"])
        if len(levels) == 2 and is_binary(y):
            out["gap_ci"] = _two_rate_gap_ci(y, codes, point)
        elif draws is not None:
            out["gap_ci"] = gap_interval(gap_draws(draws, point), len(levels))
        if n_permutations > 0:
            out["gap_p_value"] = _num(permutation_gap_p(y, codes, len(levels),
                                                        n_permutations=n_permutations,
                                                        seed=seed))
    return out


def _rate_ci(y: np.ndarray, draws: np.ndarray) -> list[float | None]:
    """A group's interval: exact binomial for a 0/1 score (never zero-width), else percentile."""
    if is_binary(y):
        lo, hi = binomial_ci(float(y.sum()), y.size)
        return [_num(lo), _num(hi)]
    return percentile(draws)


def _two_rate_gap_ci(y: np.ndarray, codes: np.ndarray, point: np.ndarray) -> list[float | None]:
    """Two groups' 0/1 rates: Newcombe's interval of the signed difference (statsmodels).

    Never zero-width (10/10 against 0/10 is [0.61, 1], 0/3 against 0/3 is [-0.56, 0.56]),
    where the bootstrap would say [1, 1] or [0, 0]. The upper end is the larger end, a bound
    on the gap's size whichever group is ahead.
    """
    from statsmodels.stats.proportion import confint_proportions_2indep

    hi = int(np.argmax(point))
    counts = [float(y[codes == k].sum()) for k in (hi, 1 - hi)]
    sizes = [int((codes == k).sum()) for k in (hi, 1 - hi)]
    lo_ci, hi_ci = confint_proportions_2indep(counts[0], sizes[0], counts[1], sizes[1],
                                              method="newcomb")
    return [_num(lo_ci), _num(max(hi_ci, -lo_ci))]


def _ratio_box(by_group: dict[str, dict[str, Any]]) -> list[float | None]:
    """Parity-ratio bounds from the groups' exact intervals, where no resample moved the ratio.

    Every group always (or never) selected gives the bootstrap nothing to resample: the ratio
    ``lowest / highest`` is then bounded by the lowest group's interval over the highest's
    (a conservative box, e.g. 0/10 against 10/10 reads [0, 0.45]); with nobody selected at
    all the ratio is undefined and has no interval.
    """
    cis = [g["ci"] for g in by_group.values()]
    if any(ci is None or None in ci for ci in cis):
        return [None, None]
    low = min(by_group.values(), key=lambda g: g["value"])["ci"]
    high = max(by_group.values(), key=lambda g: g["value"])["ci"]
    if high[1] <= 0:
        return [None, None]
    return [_num(low[0] / high[1]), _num(1.0 if high[0] <= 0 else min(1.0, low[1] / high[0]))]


def outcome_metrics(
    predicted: Sequence[int],
    groups: Sequence[str | None],
    true: Sequence[int] | None = None,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    n_permutations: int = 10_000,
) -> dict[str, Any]:
    """Selection rates of a favourable outcome by group and the parity metrics on them.

    Args:
        predicted: 1 where the model's output shows the favourable outcome, else 0.
        groups: The row's group, or None when unknown (left out).
        true: 1 where the target shows the outcome; enables equalized odds.
        n_boot: Bootstrap resamples for the selection-rate CIs.
        seed: Bootstrap seed.
        n_permutations: Permutations for the parity gap's p-value.

    Returns:
        ``selection_rate`` {group: {n, value, ci}}, ``demographic_parity_difference`` with
        ``demographic_parity_difference_ci`` and ``_p_value``, ``demographic_parity_ratio``,
        ``four_fifths_rule`` (ratio >= 0.8) and, with ``true``, ``equalized_odds_difference``
        (None when a group lacks positives or negatives) and ``error_rates``
        (:func:`error_rates`).
    """
    from fairlearn.metrics import (
        demographic_parity_difference,
        demographic_parity_ratio,
        equalized_odds_difference,
    )

    keep = [i for i, g in enumerate(groups) if g is not None]
    rates = group_scores([predicted[i] for i in keep], [groups[i] for i in keep],
                         n_boot=n_boot, seed=seed, n_permutations=n_permutations)
    out: dict[str, Any] = {
        "n": len(keep),
        "selection_rate": rates["by_group"],
        "demographic_parity_difference": None,
        "demographic_parity_difference_ci": rates["gap_ci"],
        "demographic_parity_difference_p_value": rates["gap_p_value"],
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
    if n_boot > 1:
        # The same resamples as the selection rates' (same rows, same seed).
        levels, codes = group_codes(sens.tolist())
        means = group_mean_draws(y_pred, codes, len(levels), boot_counts(len(codes), n_boot, seed))
        with np.errstate(invalid="ignore", divide="ignore"):
            ratios = np.where(np.nanmax(means, axis=1) > 0,
                              np.nanmin(means, axis=1) / np.nanmax(means, axis=1), 1.0)
        out["demographic_parity_ratio_ci"] = (_ratio_box(rates["by_group"]) if unmoved(ratios)
                                              else percentile(ratios))
    if true is not None:
        out["error_rates"] = errors = error_rates(y_true, y_pred, sens, n_boot=n_boot, seed=seed)
        if _defined_odds(y_true, sens):
            out["equalized_odds_difference"] = _num(
                equalized_odds_difference(y_true, y_pred, sensitive_features=sens))
            out["equalized_odds_difference_ci"] = errors.pop("equalized_odds_difference_ci")
    return out


def error_rates(
    y_true: np.ndarray, y_pred: np.ndarray, groups: np.ndarray, *, n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Who is wrongly denied and who wrongly granted: per-group error rates (fairlearn).

    The false-negative rate is the share of rows whose target has the favourable outcome that
    the model denied it; the false-positive rate the share of rows without it that the model
    granted it. Equal opportunity is the largest gap in true-positive rates (= in
    false-negative rates). A rate is None for a group without rows of its kind.

    Returns:
        ``by_group`` {group: {n_positive, n_negative, false_negative_rate,
        false_positive_rate, *_ci}}, ``false_negative_rate_difference``,
        ``false_positive_rate_difference``, ``equal_opportunity_difference``, each with
        ``_ci`` (two groups: the signed difference; more: the upper bound only).
    """
    from fairlearn.metrics import (
        MetricFrame,
        equal_opportunity_difference,
        false_negative_rate,
        false_positive_rate,
    )

    levels, codes = group_codes([str(g) for g in groups])
    frame = MetricFrame(metrics={"fnr": false_negative_rate, "fpr": false_positive_rate},
                        y_true=y_true, y_pred=y_pred, sensitive_features=groups)
    pos = np.bincount(codes, weights=(y_true == 1), minlength=len(levels))
    neg = np.bincount(codes, weights=(y_true == 0), minlength=len(levels))
    counts = boot_counts(len(y_true), n_boot, seed) if n_boot > 1 else None
    out: dict[str, Any] = {"by_group": {}}
    spreads = []
    for key, name, n_kind, mask, miss in (
        ("fnr", "false_negative_rate", pos, y_true == 1, 1 - y_pred),
        ("fpr", "false_positive_rate", neg, y_true == 0, y_pred),
    ):
        point = np.asarray([float(frame.by_group[key].loc[lv]) if n_kind[k] else np.nan
                            for k, lv in enumerate(levels)])
        draws = None if counts is None else group_mean_draws(miss, codes, len(levels), counts,
                                                              mask)
        for k, level in enumerate(levels):
            entry = out["by_group"].setdefault(level, {"n_positive": int(pos[k]),
                                                        "n_negative": int(neg[k])})
            entry[name] = _num(point[k])
            entry[f"{name}_ci"] = None if draws is None or not n_kind[k] else \
                percentile(draws[:, k])
        defined = bool(np.all(n_kind > 0)) and len(levels) >= 2
        out[f"{name}_difference"] = _num(np.ptp(point)) if defined else None
        out[f"{name}_difference_ci"] = gap_interval(gap_draws(draws, point), len(levels)) \
            if defined and draws is not None else None
        if draws is not None:
            with np.errstate(invalid="ignore"):
                spreads.append(np.nanmax(draws, axis=1) - np.nanmin(draws, axis=1))
    # Equalized odds is the larger of two gaps: its resampled value is biased upward, so only
    # its upper bound is a bound (as for a gap over three or more groups).
    out["equalized_odds_difference_ci"] = \
        [None, percentile(np.maximum(*spreads))[1]] if len(spreads) == 2 else None
    out["equal_opportunity_difference"] = None
    out["equal_opportunity_difference_ci"] = out["false_negative_rate_difference_ci"]
    if out["false_negative_rate_difference"] is not None:
        out["equal_opportunity_difference"] = _num(equal_opportunity_difference(
            y_true, y_pred, sensitive_features=groups))
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
