"""Fairness intervals that hold: prompt-clustered flips, group gaps that can contain 0.

Seeded simulations, small enough for seconds: coverage of the flip-rate interval when a prompt's
variants flip together, and the rejection rate of the group-gap tests under the null.
"""

import numpy as np
import pytest

from evalsuite.fairness import group_scores
from evalsuite.fairness.intervals import (
    bootstrap_p,
    clustered_ci,
    naive_ci,
    paired_clustered,
    permutation_gap_p,
)
from evalsuite.stats import binomial_ci, bootstrap_ci

N_PROMPTS, N_VARIANTS, TRUE_RATE = 40, 3, 0.25


def _correlated_flips(rng):
    """40 prompts x 3 variants; a prompt's variants flip together (true rate 0.25)."""
    flips_prompt = rng.random(N_PROMPTS) < TRUE_RATE
    flips = np.repeat(flips_prompt, N_VARIANTS).astype(float)
    clusters = np.repeat(np.arange(N_PROMPTS), N_VARIANTS)
    return flips, clusters


def test_clustered_flip_interval_covers_where_the_flat_one_does_not():
    rng = np.random.default_rng(0)
    covered = {"naive": 0, "clustered": 0}
    sims = 200
    for s in range(sims):
        flips, clusters = _correlated_flips(rng)
        for name, ci in (("naive", naive_ci(flips, n_boot=400, seed=s)),
                         ("clustered", clustered_ci(flips, clusters, n_boot=400, seed=s))):
            covered[name] += ci[0] <= TRUE_RATE <= ci[1]
    # Nominal 95%: the flat list covers about 3 in 4, the prompt-level interval holds.
    assert covered["naive"] / sims < 0.85
    assert covered["clustered"] / sims >= 0.90


def test_clustered_interval_is_the_prompt_level_bootstrap():
    rng = np.random.default_rng(1)
    flips, clusters = _correlated_flips(rng)
    ci = clustered_ci(flips, clusters, n_boot=2000, seed=3)
    # Reference: resample prompts by index and pool their variants (the textbook cluster
    # bootstrap). Same law, different draws: the bounds agree within resampling noise.
    by_prompt = flips.reshape(N_PROMPTS, N_VARIANTS)
    draws = np.random.default_rng(3).integers(0, N_PROMPTS, size=(4000, N_PROMPTS))
    ref = np.quantile(by_prompt[draws].mean(axis=(1, 2)), [0.025, 0.975])
    # A rate's interval is also never narrower than the exact binomial one over the prompts:
    # it is the union of the two.
    k = flips.mean() * N_PROMPTS
    exact = binomial_ci(k, N_PROMPTS)
    assert ci[0] == pytest.approx(min(ref[0], exact[0]), abs=0.03)
    assert ci[1] == pytest.approx(max(ref[1], exact[1]), abs=0.03)
    # With independent variants (one per prompt), clustering changes nothing: same as scipy-
    # style row resampling of the values.
    single = clustered_ci(flips, np.arange(flips.size), n_boot=500, seed=2)
    rows = bootstrap_ci(flips, np.ones(flips.size), n_boot=500, seed=2)
    exact = binomial_ci(flips.sum(), flips.size)
    assert single == pytest.approx([min(rows[0], exact[0]), max(rows[1], exact[1])])
    naive = naive_ci(flips, n_boot=2000, seed=3)
    assert ci[1] - ci[0] > 1.4 * (naive[1] - naive[0])


def test_two_group_gap_interval_contains_zero_under_the_null():
    rng = np.random.default_rng(0)
    sims, excluded, rejected = 200, 0, 0
    for s in range(sims):
        scores = (rng.random(200) < 0.7).astype(int).tolist()
        out = group_scores(scores, ["a"] * 100 + ["b"] * 100, n_boot=300, seed=s,
                           n_permutations=200)
        lo, hi = out["gap_ci"]
        assert lo <= out["gap"] <= hi  # the interval holds its own estimate
        excluded += not lo <= 0 <= hi
        rejected += out["gap_p_value"] < 0.05
    # Before: the percentile interval of max - min excluded 0 in 200 of 200.
    assert excluded / sims <= 0.10
    assert 0.005 <= rejected / sims <= 0.10


def test_permutation_gap_p_of_three_groups_is_calibrated_and_has_power():
    rng = np.random.default_rng(5)
    codes = np.repeat(np.arange(3), 60)
    sims = 200
    null_p = [permutation_gap_p((rng.random(180) < 0.6).astype(float), codes, 3,
                                n_permutations=200, seed=s) for s in range(sims)]
    rate = np.mean(np.asarray(null_p) < 0.05)
    assert 0.01 <= rate <= 0.10  # alpha = 0.05
    real = np.r_[rng.random(60) < 0.95, rng.random(60) < 0.5, rng.random(60) < 0.5]
    assert permutation_gap_p(real.astype(float), codes, 3, n_permutations=500) < 0.01


def test_three_groups_report_only_the_upper_bound_of_the_gap():
    rng = np.random.default_rng(2)
    scores = (rng.random(300) < 0.5).astype(int).tolist()
    out = group_scores(scores, ["a", "b", "c"] * 100, n_boot=300, n_permutations=300)
    assert out["gap_ci"][0] is None and out["gap_ci"][1] >= out["gap"]
    assert 0 < out["gap_p_value"] <= 1


def test_paired_clustered_delta_and_bootstrap_p():
    rng = np.random.default_rng(4)
    clusters = np.repeat(np.arange(50), 3)
    base = np.zeros(150)
    adapter = np.repeat(rng.random(50) < 0.6, 3).astype(float)
    out = paired_clustered(base, adapter, clusters, n_boot=500, seed=0)
    assert out["delta"] == pytest.approx(adapter.mean())
    assert out["ci"][0] > 0.3 and out["shares_b"].shape == (50,)
    assert bootstrap_p(np.r_[np.full(999, 0.5), -0.1]) < 0.01
    assert bootstrap_p(np.linspace(-1, 1, 1001)) == pytest.approx(1.0)


def test_paired_gap_test_holds_its_level_when_the_base_has_no_gap():
    """A base that is wrong everywhere has a gap of exactly 0; an adapter right 90% of the
    time in both groups has a small positive one by chance. The max - min gap is never
    negative, so a bootstrap of the change in gaps called that 'introduced' nearly always."""
    from evalsuite.fairness.paired import gap_test

    rng = np.random.default_rng(3)
    groups = ["a"] * 100 + ["b"] * 100
    rejected = 0
    sims = 100
    for s in range(sims):
        adapter = (rng.random(200) < 0.9).astype(float)
        out = gap_test(np.zeros(200), adapter, groups, n_boot=200, seed=s, n_permutations=300)
        rejected += out["p_value"] < 0.05
    assert rejected / sims <= 0.10
    real = np.r_[rng.random(100) < 0.95, rng.random(100) < 0.55].astype(float)
    assert gap_test(np.zeros(200), real, groups, n_boot=200, seed=0,
                    n_permutations=500)["p_value"] < 0.01
