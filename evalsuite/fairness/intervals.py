"""Resampling for the fairness metrics: intervals that hold, and the tests beside them.

- **Prompt-clustered bootstrap.** A prompt's counterfactual variants are answered by one model
  and tend to flip together, so the (prompt, variant) pairs are not independent draws.
  Resampling prompts (a weighted bootstrap of each prompt's share, weighted by its number of
  variants) gives the interval of the pooled rate; resampling the flat pair list gives one too
  narrow by up to the square root of the variants per prompt.
- **Group gaps.** The percentile interval of ``max - min`` never contains 0 (a maximum of noisy
  differences is positive). For two groups the interval is the one of the signed difference
  (the higher group's mean minus the lower's, as the point estimate orders them), which can
  contain 0; for any number of groups, a group-label permutation p-value of the gap.
- **Paired tests** of one model against another resample the same prompts for both.

Every bootstrap here draws multinomial counts per cluster (the same law as drawing cluster
indices with replacement), so one count matrix serves every model of a paired comparison.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from evalsuite.stats import binomial_ci, bootstrap_ci, is_binary, paired_bootstrap_ci

_BLOCK = 256  # resamples per vectorised block, to bound memory on large sets


def _num(value: Any) -> float | None:
    """A float for JSON, or None for NaN / infinity / missing."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def percentile(draws: np.ndarray, alpha: float = 0.05) -> list[float | None]:
    """``[lo, hi]`` percentile interval of the finite draws; ``[None, None]`` when none are."""
    draws = np.asarray(draws, dtype=float)
    draws = draws[np.isfinite(draws)]
    if draws.size == 0:
        return [None, None]
    lo, hi = np.quantile(draws, [alpha / 2, 1 - alpha / 2])
    return [_num(lo), _num(hi)]


def unmoved(draws: np.ndarray) -> bool:
    """Whether no resample moved a statistic (no finite draw, or every finite draw equal).

    The percentile interval is then zero-width, which says nothing: every row of every group
    was alike, and [0, 0] would pass a gate "with evidence" on six rows.
    """
    finite = np.asarray(draws, dtype=float)
    finite = finite[np.isfinite(finite)]
    return finite.size == 0 or bool(np.ptp(finite) == 0)


def boot_counts(n: int, n_boot: int, seed: int) -> np.ndarray:
    """``(n_boot, n)`` multinomial counts: how often each of ``n`` clusters is drawn."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n, size=(n_boot, n)) + (np.arange(n_boot) * n)[:, None]
    return np.bincount(draws.ravel(), minlength=n_boot * n).reshape(n_boot, n).astype(float)


def cluster_shares(
    values: Sequence[float], clusters: Sequence[Any]
) -> tuple[list[Any], np.ndarray, np.ndarray]:
    """Each cluster's mean of ``values`` and its size, clusters in first-seen order."""
    order: dict[Any, int] = {}
    for c in clusters:
        order.setdefault(c, len(order))
    sums = np.zeros(len(order))
    sizes = np.zeros(len(order))
    for v, c in zip(values, clusters, strict=True):
        sums[order[c]] += float(v)
        sizes[order[c]] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        return list(order), sums / sizes, sizes


def clustered_ci(
    values: Sequence[float], clusters: Sequence[Any], *, n_boot: int = 1000, seed: int = 0
) -> list[float | None] | None:
    """95% CI of the pooled mean of ``values``, resampling whole clusters (prompts).

    The weighted bootstrap of each cluster's share (weight: its size) is the cluster bootstrap
    of the pooled mean, ``sum of values / number of values`` over the drawn clusters.

    Returns:
        ``[lo, hi]``, or None for no values.
    """
    if len(values) == 0:
        return None
    _, shares, sizes = cluster_shares(values, clusters)
    lo, hi = bootstrap_ci(shares, sizes, n_boot=n_boot, seed=seed)
    if is_binary(values):
        # A rate: never narrower than the exact binomial interval over the clusters (the
        # independent units), which the percentile bootstrap undercuts near 0 and 1 -- with
        # no flip at all it would be [0, 0]. Fractional successes: rate x clusters.
        k = float(np.sum(values)) / len(values) * len(shares)
        b_lo, b_hi = binomial_ci(k, len(shares))
        lo, hi = min(lo, b_lo), max(hi, b_hi)
    return [_num(lo), _num(hi)]


def naive_ci(values: Sequence[float], *, n_boot: int = 1000, seed: int = 0
             ) -> list[float | None] | None:
    """95% CI resampling the values themselves, as if independent (rows of one prompt each)."""
    if len(values) == 0:
        return None
    lo, hi = bootstrap_ci(list(values), n_boot=n_boot, seed=seed)
    return [_num(lo), _num(hi)]


def paired_clustered(
    a: Sequence[float], b: Sequence[float], clusters: Sequence[Any], *, n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Delta ``mean(b) - mean(a)`` of two models on the same (cluster, item) list.

    Returns:
        ``delta``, ``ci`` (clusters resampled, the same for both models), the per-cluster
        shares of each model (for a paired test on them) and the cluster sizes.
    """
    _, sa, sizes = cluster_shares(a, clusters)
    _, sb, _ = cluster_shares(b, clusters)
    lo, hi = paired_bootstrap_ci(sa, sb, sizes, n_boot=n_boot, seed=seed)
    delta = float(np.mean(b) - np.mean(a)) if len(a) else float("nan")
    return {"delta": _num(delta), "ci": [_num(lo), _num(hi)], "shares_a": sa, "shares_b": sb,
            "sizes": sizes}


# ----------------------------------------------------------------------------- group draws


def group_codes(groups: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """Sorted levels and each row's level index."""
    levels = sorted(set(groups))
    index = {level: k for k, level in enumerate(levels)}
    return levels, np.asarray([index[g] for g in groups], dtype=int)


def group_mean_draws(
    y: np.ndarray, codes: np.ndarray, n_levels: int, counts: np.ndarray,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """``(n_boot, n_levels)`` group means of ``y`` under each row of bootstrap ``counts``.

    ``mask`` keeps only some rows (e.g. the true positives for a false-negative rate). A group
    absent from a resample gets NaN.
    """
    onehot = np.zeros((len(y), n_levels))
    onehot[np.arange(len(y)), codes] = 1.0
    if mask is not None:
        onehot = onehot * np.asarray(mask, dtype=float)[:, None]
    totals = counts @ onehot
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, (counts @ (onehot * np.asarray(y, float)[:, None])) / totals,
                        np.nan)


def gap_draws(means: np.ndarray, point: np.ndarray) -> np.ndarray:
    """The gap under each resample.

    Two groups: the signed difference, higher-by-the-point-estimate group minus the other,
    which is below 0 in resamples where the order turns. More groups: ``max - min``.
    """
    if means.shape[1] == 2:
        hi = int(np.nanargmax(point))
        return means[:, hi] - means[:, 1 - hi]
    with np.errstate(invalid="ignore"):
        return np.nanmax(means, axis=1) - np.nanmin(means, axis=1)


def gap_interval(draws: np.ndarray, n_levels: int) -> list[float | None]:
    """95% interval of a group gap from :func:`gap_draws`.

    With three or more groups only the upper bound is given: the resampled ``max - min`` is
    biased upward, so its upper percentile is a conservative bound while its lower one is not
    a bound at all (it excludes 0 even when every group is equal); the permutation p-value says
    whether the gap is real.
    """
    if unmoved(draws):
        return [None, None]
    lo, hi = percentile(draws)
    if n_levels == 2 and lo is not None and hi is not None:
        # The gate reads the size of the gap whichever group is ahead: its upper bound is
        # the larger end of the signed difference's interval (0.000 [-0.086, 0.080] is at
        # most 0.086 apart, not 0.080).
        return [lo, max(hi, -lo)]
    return [lo if n_levels == 2 else None, hi]


def permutation_gap_p(
    y: np.ndarray, codes: np.ndarray, n_levels: int, *, n_permutations: int = 10_000,
    seed: int = 0,
) -> float | None:
    """Group-label permutation p-value of the ``max - min`` gap of group means.

    Under the null hypothesis (the score does not depend on the group) every assignment of the
    labels to rows is equally likely; ``p = (1 + #(gap_perm >= gap_obs)) / (1 + n)``.
    """
    if n_levels < 2:
        return None
    y = np.asarray(y, dtype=float)
    sizes = np.bincount(codes, minlength=n_levels)
    observed = _maxmin(np.bincount(codes, weights=y, minlength=n_levels) / sizes)
    tol = 1e-12 * max(1.0, abs(observed))
    if observed <= tol:
        return 1.0  # every permutation's gap is at least 0
    rng = np.random.default_rng(seed)
    extreme = 0
    for start in range(0, n_permutations, _BLOCK):
        size = min(_BLOCK, n_permutations - start)
        perm = rng.permuted(np.tile(codes, (size, 1)), axis=1)
        means = np.stack([(perm == k) @ y for k in range(n_levels)], axis=1) / sizes
        extreme += int((means.max(axis=1) - means.min(axis=1) >= observed - tol).sum())
    return (1 + extreme) / (1 + n_permutations)


def _maxmin(values: np.ndarray) -> float:
    return float(np.max(values) - np.min(values))


def bootstrap_p(deltas: np.ndarray) -> float | None:
    """Two-sided p-value of ``delta = 0`` by inverting the percentile interval.

    The smallest alpha whose percentile interval excludes 0: twice the smaller tail share of
    the draws on either side of 0, with the +1 of a resampling p-value.
    """
    d = np.asarray(deltas, dtype=float)
    d = d[np.isfinite(d)]
    if d.size == 0:
        return None
    tail = min(int((d <= 0).sum()), int((d >= 0).sum()))
    return min(1.0, 2 * (1 + tail) / (1 + d.size))


def put_flat(flat: dict[str, float], key: str, value: float | None,
             ci: Sequence[float | None] | None) -> None:
    """``flat[key]`` and, where the interval has them, ``key.lower95`` / ``key.upper95``."""
    if value is None:
        return
    flat[key] = value
    for suffix, bound in zip((".lower95", ".upper95"), ci or (None, None), strict=True):
        if bound is not None:
            flat[key + suffix] = bound


def swap_permutation_gap_p(
    y_a: np.ndarray, y_b: np.ndarray, codes: np.ndarray, n_levels: int, *,
    n_permutations: int = 10_000, seed: int = 0,
) -> float | None:
    """Paired test of ``gap(b) - gap(a)`` (``max - min`` of group means) on the same rows.

    Under the null hypothesis the two models are exchangeable on every row, so each row's pair
    of scores is swapped at random; ``p = (1 + #(|delta_perm| >= |delta_obs|)) / (1 + n)``.
    A bootstrap of the change is no test here: a gap is never negative, so the resampled gap
    of a model with no real gap sits above an exact 0 and the change looks significant.
    """
    if n_levels < 2:
        return None
    y_a, y_b = np.asarray(y_a, dtype=float), np.asarray(y_b, dtype=float)
    onehot = np.zeros((len(codes), n_levels))
    onehot[np.arange(len(codes)), codes] = 1.0
    sizes = onehot.sum(axis=0)

    def gaps(values: np.ndarray) -> np.ndarray:
        means = values @ onehot / sizes
        return means.max(axis=-1) - means.min(axis=-1)

    observed = abs(float(gaps(y_b) - gaps(y_a)))
    tol = 1e-12 * max(1.0, observed)
    rng = np.random.default_rng(seed)
    extreme = 0
    for start in range(0, n_permutations, _BLOCK):
        swap = rng.random((min(_BLOCK, n_permutations - start), len(codes))) < 0.5
        a, b = np.where(swap, y_b, y_a), np.where(swap, y_a, y_b)
        extreme += int((np.abs(gaps(b) - gaps(a)) >= observed - tol).sum())
    return (1 + extreme) / (1 + n_permutations)
