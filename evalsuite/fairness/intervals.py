"""Resampling for the fairness metrics: bootstrap intervals of group means and gaps."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from evalsuite.stats import bootstrap_ci


def _num(value: Any) -> float | None:
    """A float for JSON, or None for NaN / infinity / missing."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _group_bootstrap(
    y: np.ndarray, g: np.ndarray, levels: list[str], n_boot: int, seed: int
) -> dict[str, Any]:
    """Percentile CIs (95%) of each group's mean and of the max-min gap, resampling rows."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(y), size=(n_boot, len(y)))
    ys, gs = y[idx], g[idx]
    means = []
    for level in levels:
        mask = gs == level
        counts = mask.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            means.append(np.where(counts > 0, (ys * mask).sum(axis=1) / counts, np.nan))
    means_arr = np.vstack(means)

    def ci(values: np.ndarray) -> list[float | None]:
        values = values[np.isfinite(values)]
        if values.size == 0:
            return [None, None]
        lo, hi = np.quantile(values, [0.025, 0.975])
        return [_num(lo), _num(hi)]

    with np.errstate(invalid="ignore"):
        gaps = (np.nanmax(means_arr, axis=0) - np.nanmin(means_arr, axis=0)
                if len(levels) >= 2 else np.array([]))
    return {"by_group": [ci(m) for m in means_arr], "gap": ci(gaps)}


def _ci(values: Sequence[float], n_boot: int, seed: int) -> list[float | None] | None:
    if not values:
        return None
    lo, hi = bootstrap_ci(list(values), n_boot=n_boot, seed=seed)
    return [_num(lo), _num(hi)]
