"""Statistics: seeded bootstrap CIs, paired comparisons and paired p-values.

- Every metric gets a percentile bootstrap 95% CI (1,000 resamples by default, seeded); a
  sample that is all 0 or all 1 has nothing to resample and gets the exact binomial
  (Clopper-Pearson) interval instead (:func:`unanimous_ci`).
- Every pair of models on the same rows gets the delta (``b - a``), a paired bootstrap CI
  (the same resample indices for both, as sacrebleu's paired bootstrap does) and a paired
  p-value: exact McNemar (statsmodels) when both score vectors are 0/1, else a paired
  sign-flip permutation test (exact enumeration when it is small enough).

A run makes many comparisons (every pair of models x every metric), so each p-value also gets
its Holm-adjusted value across them (:func:`holm`, statsmodels' ``multipletests``): with base,
3 adapters and 2 baselines all equally good, some raw p of the run's 12 pairs falls under 0.05
in about a third of the runs; Holm keeps the chance of any false "significant" under 0.05.

Per-example weights turn the mean into a ratio estimator (``sum(w*s) / sum(w)``), which is how
a token-weighted loss is resampled by example.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np

_BLOCK = 256  # resamples per vectorised block, to bound memory on large sets


def _arrays(
    scores: Sequence[float], weights: Sequence[float] | None
) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=float)
    w = np.ones_like(s) if weights is None else np.asarray(weights, dtype=float)
    if s.shape != w.shape or s.ndim != 1:
        raise ValueError("scores and weights must be 1-D and of the same length")
    return s, w


def weighted_mean(scores: Sequence[float], weights: Sequence[float] | None = None) -> float:
    """``sum(w*s) / sum(w)``; NaN for an empty set."""
    s, w = _arrays(scores, weights)
    total = w.sum()
    return float((w * s).sum() / total) if s.size and total > 0 else float("nan")


def _resampled_means(
    s: np.ndarray, w: np.ndarray, n_boot: int, rng: np.random.Generator
) -> np.ndarray:
    out = np.empty(n_boot)
    for start in range(0, n_boot, _BLOCK):
        size = min(_BLOCK, n_boot - start)
        idx = rng.integers(0, s.size, size=(size, s.size))
        ws = w[idx]
        with np.errstate(invalid="ignore", divide="ignore"):
            out[start: start + size] = (ws * s[idx]).sum(axis=1) / ws.sum(axis=1)
    return out


def bootstrap_ci(
    scores: Sequence[float],
    weights: Sequence[float] | None = None,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float]:
    """Percentile bootstrap CI of the (weighted) mean.

    Returns:
        ``(low, high)``; NaNs for an empty set.
    """
    s, w = _arrays(scores, weights)
    if s.size == 0:
        return float("nan"), float("nan")
    unanimous = unanimous_ci(s, alpha=alpha)
    if unanimous is not None:
        return unanimous
    means = _resampled_means(s, w, n_boot, np.random.default_rng(seed))
    lo, hi = np.nanquantile(means, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def binomial_ci(k: float, n: float, *, alpha: float = 0.05) -> tuple[float, float]:
    """Clopper-Pearson (exact binomial) interval of ``k`` successes in ``n`` units.

    ``k`` may be fractional (a clustered rate times its number of clusters): the bounds are
    the Beta quantiles that define the interval, which for whole ``k`` equal statsmodels'
    ``proportion_confint(k, n, method="beta")``, the bound ``evalsuite plan`` sizes gates with.
    """
    from scipy.stats import beta

    if n <= 0:
        return float("nan"), float("nan")
    lo = 0.0 if k <= 0 else float(beta.ppf(alpha / 2, k, n - k + 1))
    hi = 1.0 if k >= n else float(beta.ppf(1 - alpha / 2, k + 1, n - k))
    return lo, hi


def unanimous_ci(scores: Sequence[float], *, alpha: float = 0.05) -> tuple[float, float] | None:
    """:func:`binomial_ci` when every score is 0 or every score is 1, else None.

    Resampling a sample with no variation gives a zero-width interval: 300 of 300 right, or
    0 flips in 5 swaps, would read as certain at any sample size, and a gate on the bound would
    pass "with evidence" on five rows. The exact binomial interval on the resampled units
    (rows, or whole prompts for a clustered bootstrap) says what that many units can show:
    300/300 gives [0.988, 1], 0/140 gives [0, 0.026].
    """
    s = np.asarray(scores, dtype=float)
    if s.size == 0 or not (np.all(s == 0) or np.all(s == 1)):
        return None
    return binomial_ci(float(s.sum()), s.size, alpha=alpha)


def paired_bootstrap_ci(
    a: Sequence[float],
    b: Sequence[float],
    weights: Sequence[float] | None = None,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float]:
    """CI of ``mean(b) - mean(a)`` resampling rows, the same rows for both models.

    ``weights`` (the same for both, e.g. target token counts) weight each row.
    """
    sa, w = _arrays(a, weights)
    sb, _ = _arrays(b, weights)
    if sa.shape != sb.shape:
        raise ValueError("paired scores must have the same length")
    if sa.size == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    deltas = np.empty(n_boot)
    for start in range(0, n_boot, _BLOCK):
        size = min(_BLOCK, n_boot - start)
        idx = rng.integers(0, sa.size, size=(size, sa.size))
        ws = w[idx]
        deltas[start: start + size] = ((sb[idx] - sa[idx]) * ws).sum(axis=1) / ws.sum(axis=1)
    lo, hi = np.nanquantile(deltas, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def is_binary(values: Sequence[float]) -> bool:
    """True when every value is 0 or 1."""
    v = np.asarray(values, dtype=float)
    return bool(v.size) and bool(np.all((v == 0) | (v == 1)))


def mcnemar_table(a: Sequence[float], b: Sequence[float]) -> list[list[int]]:
    """2x2 table ``[[both right, only a right], [only b right, both wrong]]``."""
    x = np.asarray(a, dtype=int)
    y = np.asarray(b, dtype=int)
    return [
        [int(((x == 1) & (y == 1)).sum()), int(((x == 1) & (y == 0)).sum())],
        [int(((x == 0) & (y == 1)).sum()), int(((x == 0) & (y == 0)).sum())],
    ]


def mcnemar_exact(a: Sequence[float], b: Sequence[float]) -> float:
    """Exact (binomial) McNemar p-value of two paired 0/1 score vectors, via statsmodels."""
    from statsmodels.stats.contingency_tables import mcnemar

    table = mcnemar_table(a, b)
    if table[0][1] + table[1][0] == 0:
        return 1.0  # no discordant pairs: no evidence of a difference
    return float(mcnemar(table, exact=True).pvalue)


def paired_permutation_p(
    a: Sequence[float],
    b: Sequence[float],
    weights: Sequence[float] | None = None,
    *,
    n_permutations: int = 10_000,
    seed: int = 0,
) -> float:
    """Two-sided paired permutation p-value of ``mean(b - a)`` (random sign flips).

    Swapping the two models' scores on a row flips the sign of its difference; under the
    null hypothesis every flip is equally likely. With at most ``n_permutations`` possible
    flips they are all enumerated (exact test); otherwise ``n_permutations`` random flips are
    drawn and the p-value is ``(1 + #extreme) / (1 + n_permutations)``.
    """
    sa, w = _arrays(a, weights)
    sb, _ = _arrays(b, weights)
    d = (sb - sa) * w
    if d.size == 0:
        return float("nan")
    observed = abs(d.sum())
    tol = 1e-12 * max(1.0, float(np.abs(d).sum()))
    if 2 ** d.size <= n_permutations:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=d.size)))
        stats = np.abs(signs @ d)
        return float((stats >= observed - tol).mean())
    rng = np.random.default_rng(seed)
    extreme = 0
    for start in range(0, n_permutations, _BLOCK):
        size = min(_BLOCK, n_permutations - start)
        signs = rng.choice((-1.0, 1.0), size=(size, d.size))
        extreme += int((np.abs(signs @ d) >= observed - tol).sum())
    return (1 + extreme) / (1 + n_permutations)


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm step-down adjusted p-values over one family of tests.

    Missing p-values (None or NaN) stay None and do not count toward the family's size.
    Uses ``statsmodels.stats.multitest.multipletests(method="holm")``.
    """
    from statsmodels.stats.multitest import multipletests

    present = [i for i, p in enumerate(p_values) if _num(p) is not None]
    out: list[float | None] = [None] * len(p_values)
    if present:
        adjusted = multipletests([float(p_values[i]) for i in present], method="holm")[1]
        for i, p in zip(present, adjusted, strict=True):
            out[i] = float(p)
    return out


def add_holm(
    items: list[dict], key: str = "p_value", out: str = "p_value_holm"
) -> list[dict]:
    """Set ``item[out]``, the Holm-adjusted ``item[key]`` over all ``items`` (one family)."""
    for item, p in zip(items, holm([item.get(key) for item in items]), strict=True):
        item[out] = p
    return items


def summarize(
    scores: Sequence[float],
    weights: Sequence[float] | None = None,
    *,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, float | int | None]:
    """``{"value", "ci_low", "ci_high", "n"}`` for one metric of one model.

    A 0/1 score on equally weighted rows (accuracy, exact match) gets the exact binomial
    interval (:func:`binomial_ci`): near 0 and 1 the percentile bootstrap is too narrow (29 of
    30 right would bound tighter than 30 of 30), and the gate bounds must agree with
    ``evalsuite plan``. Any other score gets the percentile bootstrap.
    """
    if len(scores) and is_binary(scores) and (weights is None or np.ptp(weights) == 0):
        lo, hi = binomial_ci(float(np.sum(scores)), len(scores))
    else:
        lo, hi = bootstrap_ci(scores, weights, n_boot=n_boot, seed=seed)
    return {
        "value": _num(weighted_mean(scores, weights)),
        "ci_low": _num(lo),
        "ci_high": _num(hi),
        "n": len(scores),
    }


def compare(
    a: Sequence[float],
    b: Sequence[float],
    weights: Sequence[float] | None = None,
    *,
    n_boot: int = 1000,
    n_permutations: int = 10_000,
    seed: int = 0,
    binary: bool | None = None,
) -> dict[str, float | int | str | None]:
    """Delta ``b - a`` with its paired CI and p-value.

    ``binary`` says whether the scores are 0/1 by nature (accuracy, exact match: exact
    McNemar) or continuous (paired permutation); None decides from the values.

    Returns:
        ``delta``, ``ci_low``, ``ci_high``, ``p_value``, ``test`` (``mcnemar-exact`` or
        ``paired-permutation``), ``n`` and, for binary scores, the discordant counts.
    """
    lo, hi = paired_bootstrap_ci(a, b, weights, n_boot=n_boot, seed=seed)
    out: dict[str, float | int | str | None] = {
        "delta": _num(weighted_mean(b, weights) - weighted_mean(a, weights)),
        "ci_low": _num(lo),
        "ci_high": _num(hi),
        "n": len(a),
    }
    if binary is None:
        binary = weights is None and is_binary(a) and is_binary(b)
    if binary:
        table = mcnemar_table(a, b)
        out.update(p_value=_num(mcnemar_exact(a, b)), test="mcnemar-exact",
                   only_a=table[0][1], only_b=table[1][0])
    else:
        out.update(
            p_value=_num(paired_permutation_p(a, b, weights, n_permutations=n_permutations,
                                              seed=seed)),
            test="paired-permutation",
        )
    return out


def _num(x: float | None) -> float | None:
    return float(x) if isinstance(x, int | float) and math.isfinite(x) else None
