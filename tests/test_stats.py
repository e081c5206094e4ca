"""Statistics checked against statsmodels, scipy and closed-form formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats.contingency_tables import mcnemar

from evalsuite import stats


def _binary(n: int, p: float, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).random(n) < p).astype(float)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mcnemar_matches_statsmodels_and_the_binomial_formula(seed):
    a = _binary(80, 0.5, seed)
    b = np.where(np.random.default_rng(seed + 10).random(80) < 0.3, 1 - a, a)
    table = stats.mcnemar_table(a, b)
    n01, n10 = table[0][1], table[1][0]
    assert sum(map(sum, table)) == 80
    assert n01 == int(((a == 1) & (b == 0)).sum()) and n10 == int(((a == 0) & (b == 1)).sum())
    expected = mcnemar(np.array(table), exact=True).pvalue
    assert stats.mcnemar_exact(a, b) == pytest.approx(expected, rel=1e-12)
    k, n = min(n01, n10), n01 + n10
    by_hand = min(1.0, 2 * sps.binom.cdf(k, n, 0.5))
    assert stats.mcnemar_exact(a, b) == pytest.approx(by_hand, rel=1e-9)


def test_mcnemar_without_discordant_pairs_is_one_and_extreme_is_small():
    a = np.array([1, 0, 1, 1.0])
    assert stats.mcnemar_exact(a, a) == 1.0
    base = np.zeros(30)
    tuned = np.ones(30)
    assert stats.mcnemar_exact(base, tuned) == pytest.approx(2 * 0.5**30)


def test_bootstrap_ci_is_seeded_and_close_to_the_normal_approximation():
    x = _binary(400, 0.3, 5)
    lo, hi = stats.bootstrap_ci(x, n_boot=2000, seed=3)
    assert (lo, hi) == stats.bootstrap_ci(x, n_boot=2000, seed=3)
    assert (lo, hi) != stats.bootstrap_ci(x, n_boot=2000, seed=4)
    p = x.mean()
    assert lo < p < hi
    half = 1.96 * math.sqrt(p * (1 - p) / x.size)
    assert (hi - lo) / 2 == pytest.approx(half, rel=0.15)
    # a constant continuous score has no sampling variation
    assert stats.bootstrap_ci(np.full(50, 0.5)) == (0.5, 0.5)
    lo_small, hi_small = stats.bootstrap_ci(x[:50], n_boot=2000, seed=3)
    assert hi_small - lo_small > hi - lo  # fewer rows, wider interval


def test_weighted_bootstrap_is_a_ratio_estimator():
    s = np.array([2.0, 1.0, 3.0, 0.5])
    w = np.array([1, 3, 2, 4.0])
    assert stats.weighted_mean(s, w) == pytest.approx((s * w).sum() / w.sum())
    lo, hi = stats.bootstrap_ci(s, w, n_boot=500)
    assert lo <= stats.weighted_mean(s, w) <= hi
    summary = stats.summarize(s, w)
    assert summary["value"] == pytest.approx(stats.weighted_mean(s, w)) and summary["n"] == 4


def test_paired_bootstrap_ci_of_the_delta():
    a = _binary(300, 0.4, 1)
    b = np.where(np.random.default_rng(9).random(300) < 0.5, 1.0, a)
    lo, hi = stats.paired_bootstrap_ci(a, b, n_boot=2000, seed=0)
    delta = b.mean() - a.mean()
    assert lo < delta < hi and lo > 0  # b is a clear improvement
    assert stats.paired_bootstrap_ci(a, a) == (0.0, 0.0)
    # pairing removes the shared row-to-row variation: narrower than independent resampling
    lo_a, hi_a = stats.bootstrap_ci(a, n_boot=2000)
    lo_b, hi_b = stats.bootstrap_ci(b, n_boot=2000)
    assert hi - lo < math.hypot(hi_a - lo_a, hi_b - lo_b)


def test_exact_permutation_p_matches_scipy():
    rng = np.random.default_rng(0)
    a = rng.normal(size=10)
    b = a + rng.normal(0.5, 1.0, size=10)
    ours = stats.paired_permutation_p(a, b, n_permutations=10_000)
    ref = sps.permutation_test(
        (b, a), lambda x, y: np.mean(x - y), permutation_type="samples",
        n_resamples=10_000, alternative="two-sided",
    ).pvalue
    assert ours == pytest.approx(ref, rel=1e-9)


def test_random_permutation_p_is_close_to_scipy_and_seeded():
    rng = np.random.default_rng(1)
    a = rng.normal(size=60)
    b = a + rng.normal(0.25, 1.0, size=60)
    ours = stats.paired_permutation_p(a, b, n_permutations=20_000, seed=0)
    assert ours == stats.paired_permutation_p(a, b, n_permutations=20_000, seed=0)
    ref = sps.permutation_test(
        (b, a), lambda x, y, axis=-1: np.mean(x - y, axis=axis), permutation_type="samples",
        n_resamples=20_000, alternative="two-sided", random_state=1, vectorized=True,
    ).pvalue
    assert abs(ours - ref) < 0.02
    assert stats.paired_permutation_p(a, a, n_permutations=1000) == 1.0


def test_compare_picks_the_test_by_score_type():
    a = _binary(40, 0.2, 3)
    b = np.ones(40)
    c = stats.compare(a, b)
    assert c["test"] == "mcnemar-exact"
    assert c["delta"] == pytest.approx(b.mean() - a.mean())
    assert c["p_value"] == pytest.approx(stats.mcnemar_exact(a, b))
    assert c["only_b"] == int((a == 0).sum()) and c["only_a"] == 0
    x = np.linspace(0, 1, 40)
    c2 = stats.compare(x, x + 0.1)
    assert c2["test"] == "paired-permutation"
    assert c2["delta"] == pytest.approx(0.1)
    assert c2["p_value"] < 0.001
    assert c2["ci_low"] == pytest.approx(0.1) and c2["ci_high"] == pytest.approx(0.1)


def test_empty_and_mismatched_inputs():
    assert stats.summarize([])["value"] is None
    with pytest.raises(ValueError):
        stats.paired_bootstrap_ci([1, 0], [1.0])


def test_compare_respects_the_declared_score_type():
    zeros = np.zeros(20)
    assert stats.compare(zeros, zeros, binary=False)["test"] == "paired-permutation"
    assert stats.compare(zeros, zeros)["test"] == "mcnemar-exact"


# ------------------------------------------------------------------------- Holm correction
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_holm_matches_statsmodels_on_the_same_p_values(seed):
    from statsmodels.stats.multitest import multipletests

    p = list(np.random.default_rng(seed).random(12) ** 3)  # some small, some not
    expected = multipletests(p, method="holm")[1]
    assert stats.holm(p) == pytest.approx(list(expected), rel=1e-12)
    # by hand: step-down max of (m - rank) * p over the sorted p-values, capped at 1
    order = np.argsort(p)
    running, by_hand = 0.0, np.empty(12)
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (12 - rank) * p[i]))
        by_hand[i] = running
    assert stats.holm(p) == pytest.approx(list(by_hand), rel=1e-12)


def test_holm_skips_missing_p_values_and_does_not_count_them():
    got = stats.holm([0.01, None, float("nan"), 0.04])
    assert got[1] is None and got[2] is None
    assert got[0] == pytest.approx(0.02) and got[3] == pytest.approx(0.04)
    assert stats.holm([]) == [] and stats.holm([None]) == [None]
    items = stats.add_holm([{"p_value": 0.01}, {"p_value": 0.03}])
    assert [i["p_value_holm"] for i in items] == pytest.approx([0.02, 0.03])


def test_holm_holds_the_family_error_rate_of_a_runs_comparisons(monkeypatch):
    """Base + 3 adapters + 2 baselines, all equally good: the run's 12 pairs (runner._pairs).

    Raw p-values give some "significant" pair in about a third of the runs; Holm in about 5%.
    """
    import gc

    from evalsuite.runner import ModelRow, _pairs

    # statsmodels' multipletests calls gc.collect() on every call: seconds over 400 runs
    monkeypatch.setattr(gc, "collect", lambda *a, **k: 0)
    models = [ModelRow("base", "__base__", "base")]
    models += [ModelRow(f"a{i}", f"a{i}", "adapter") for i in range(3)]
    models += [ModelRow(f"base+{k}", "__base__", "baseline") for k in ("zero-shot", "few-shot")]
    index = {m.name: i for i, m in enumerate(models)}
    pairs = [(index[a.name], index[b.name]) for a, b in _pairs(models)]
    assert len(pairs) == 12
    left, right = np.array([a for a, _ in pairs]), np.array([b for _, b in pairs])
    runs = 400
    scores = np.random.default_rng(0).normal(size=(runs, len(models), 50))
    p = sps.ttest_rel(scores[:, left], scores[:, right], axis=2).pvalue  # runs x 12
    any_raw = float((p.min(axis=1) < 0.05).mean())
    any_holm = float(np.mean([min(stats.holm(list(row))) < 0.05 for row in p]))
    assert 0.25 <= any_raw <= 0.45  # measured 0.35 (seed 0)
    assert any_holm <= 0.08  # measured 0.045
    assert any_raw > 4 * any_holm


@pytest.mark.parametrize(("k", "n"), [(300, 300), (0, 140), (0, 5), (12, 12)])
def test_unanimous_binary_scores_get_the_exact_binomial_interval(k, n):
    """All right (or all wrong) is not certainty: the bootstrap's [1, 1] would let a gate on
    the bound pass "with evidence" on a handful of rows. Cross-checked with statsmodels."""
    from statsmodels.stats.proportion import proportion_confint

    scores = np.full(n, 1.0 if k else 0.0)
    lo, hi = stats.bootstrap_ci(scores)
    ref = proportion_confint(k, n, alpha=0.05, method="beta")
    assert (lo, hi) == pytest.approx(ref)
    assert hi - lo > 0
    # fewer units, wider interval: 5 rows prove less than 140
    if n == 5:
        assert (hi if k == 0 else 1 - lo) > 0.4
    summary = stats.summarize(list(scores))
    assert (summary["ci_low"], summary["ci_high"]) == pytest.approx(ref)


def test_a_clustered_rate_with_no_flips_is_bounded_by_its_prompts():
    """0 flips over 40 prompts x 3 variants: the interval is the binomial one over the 40
    prompts (the independent units), not over the 120 swaps, and not [0, 0]."""
    from statsmodels.stats.proportion import proportion_confint

    from evalsuite.fairness.intervals import clustered_ci

    prompts = [p for p in range(40) for _ in range(3)]
    lo, hi = clustered_ci([0.0] * 120, prompts)
    assert (lo, hi) == pytest.approx(proportion_confint(0, 40, method="beta"))
    assert hi > proportion_confint(0, 120, method="beta")[1]


def test_binary_bounds_move_the_right_way_with_the_evidence():
    """Review finding: with the bootstrap near 0 and 1, 29/30 right bounded tighter than 30/30
    and one flip in 140 prompts tighter than none. Binary rates now read the exact binomial
    interval (the one `evalsuite plan` sizes gates with), so more evidence never hurts."""
    from statsmodels.stats.proportion import proportion_confint

    from evalsuite.fairness.intervals import clustered_ci

    for k, n in ((29, 30), (30, 30), (0, 140), (3, 140)):
        assert stats.binomial_ci(k, n) == pytest.approx(proportion_confint(k, n, method="beta"))
    lower = [stats.summarize([1.0] * k + [0.0] * (30 - k))["ci_low"] for k in (28, 29, 30)]
    assert lower[0] < lower[1] < lower[2]
    prompts = [p for p in range(140) for _ in range(2)]
    none = clustered_ci([0.0] * 280, prompts)
    one = clustered_ci([1.0] + [0.0] * 279, prompts)
    assert none[1] < one[1]


def test_group_intervals_without_spread_say_so():
    """Six rows, nobody selected: each group's rate gets its binomial interval and the gap a
    wide one (not [0, 0], which a gate would read as proof of parity)."""
    from evalsuite.fairness.intervals import gap_interval
    from evalsuite.fairness.metrics import group_scores

    out = group_scores([0, 0, 0, 0, 0, 0], ["a", "a", "a", "b", "b", "b"], n_boot=200,
                       n_permutations=0)
    # Two 0/1 rates: Newcombe's interval of the difference (statsmodels), wide on 3 + 3 rows.
    from statsmodels.stats.proportion import confint_proportions_2indep

    ref = confint_proportions_2indep(0, 3, 0, 3, method="newcomb")
    assert out["gap"] == 0 and out["gap_ci"] == pytest.approx(list(ref)) and ref[1] > 0.5
    # Three groups whose resamples never move: no interval at all.
    three = group_scores([0.0] * 9, list("aaabbbccc"), n_boot=200, n_permutations=0)
    assert three["gap_ci"] == [None, None]
    assert out["by_group"]["a"]["ci"] == pytest.approx(list(stats.binomial_ci(0, 3)))
    # Two groups: the bound on the gap's size is the larger end of the signed interval.
    draws = np.random.default_rng(0).normal(0.0, 0.04, size=2000)
    lo, hi = gap_interval(draws, 2)
    assert hi == pytest.approx(max(abs(lo), np.quantile(draws, 0.975)))
