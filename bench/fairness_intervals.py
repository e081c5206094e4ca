"""Do the fairness intervals hold? Seeded simulations of issue 28's items 1 and 2.

1. Flip rate: 40 prompts x 3 variants that flip together, true rate 0.25. Coverage and width
   of the interval over the flat (prompt, variant) list and of the prompt-clustered one.
2. Group gap under the null: two groups of 100 with equal accuracy 0.7; how often the old
   percentile interval of max - min, the new signed-difference interval and the permutation
   test call the gap real. Three groups of 60: the permutation test's rejection rate.

    .venv/bin/python bench/fairness_intervals.py [--sims 200]
"""

from __future__ import annotations

import argparse

import numpy as np

from evalsuite.fairness import group_scores
from evalsuite.fairness.intervals import (
    boot_counts,
    clustered_ci,
    group_mean_draws,
    naive_ci,
    percentile,
    permutation_gap_p,
)


def flip_coverage(sims: int) -> dict[str, tuple[int, float]]:
    """Per interval: (simulations covering 0.25, mean width)."""
    rng = np.random.default_rng(0)
    out: dict[str, list] = {"flat (prompt, variant) list": [], "prompt-clustered": []}
    for s in range(sims):
        flips = np.repeat(rng.random(40) < 0.25, 3).astype(float)
        prompts = np.repeat(np.arange(40), 3)
        for name, ci in zip(out, (naive_ci(flips, seed=s), clustered_ci(flips, prompts, seed=s)),
                            strict=True):
            out[name].append((ci[0] <= 0.25 <= ci[1], ci[1] - ci[0]))
    return {k: (sum(c for c, _ in v), float(np.mean([w for _, w in v]))) for k, v in out.items()}


def null_gaps(sims: int) -> dict[str, int]:
    """Simulations (of ``sims``) in which each method calls a null gap real."""
    rng = np.random.default_rng(1)
    counts = {"old max-min interval excludes 0": 0, "signed interval excludes 0": 0,
              "permutation p < 0.05 (2 groups)": 0, "permutation p < 0.05 (3 groups)": 0}
    codes2, codes3 = np.repeat([0, 1], 100), np.repeat(np.arange(3), 60)
    for s in range(sims):
        y = (rng.random(200) < 0.7).astype(float)
        out = group_scores(y.tolist(), ["a"] * 100 + ["b"] * 100, seed=s, n_permutations=1000)
        means = group_mean_draws(y, codes2, 2, boot_counts(200, 1000, s))
        old = percentile(means.max(axis=1) - means.min(axis=1))
        counts["old max-min interval excludes 0"] += not old[0] <= 0 <= old[1]
        counts["signed interval excludes 0"] += not out["gap_ci"][0] <= 0 <= out["gap_ci"][1]
        counts["permutation p < 0.05 (2 groups)"] += out["gap_p_value"] < 0.05
        y3 = (rng.random(180) < 0.6).astype(float)
        counts["permutation p < 0.05 (3 groups)"] += permutation_gap_p(
            y3, codes3, 3, n_permutations=1000, seed=s) < 0.05
    return counts


def main() -> None:
    """Print both tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=200)
    sims = parser.parse_args().sims
    print(f"| flip-rate interval ({sims} simulations) | covers 0.25 | mean width |")
    print("|---|---|---|")
    for name, (covered, width) in flip_coverage(sims).items():
        print(f"| {name} | {covered}/{sims} ({covered / sims:.1%}) | {width:.3f} |")
    print(f"\n| null gap ({sims} simulations) | called real |")
    print("|---|---|")
    for name, n in null_gaps(sims).items():
        print(f"| {name} | {n}/{sims} ({n / sims:.1%}) |")


if __name__ == "__main__":
    main()
