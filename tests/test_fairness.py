import numpy as np
import pytest
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    demographic_parity_ratio,
    equalized_odds_difference,
    selection_rate,
)
from sklearn.metrics import accuracy_score

from evalsuite.fairness import (
    flip_rate,
    group_scores,
    has_outcome,
    matches_where,
    outcome_metrics,
    stereotype_preference,
    worst_case_accuracy,
)

# Hand-made predictions: 8 men, 8 women (and 2 rows without a group).
GROUPS = ["m"] * 8 + ["f"] * 8 + [None, None]
Y_TRUE = [1, 1, 1, 0, 0, 0, 1, 0] + [1, 1, 1, 0, 0, 0, 1, 0] + [1, 0]
Y_PRED = [1, 1, 1, 1, 0, 1, 1, 0] + [0, 1, 0, 0, 0, 0, 1, 0] + [1, 1]


def _known():
    keep = [i for i, g in enumerate(GROUPS) if g is not None]
    return (np.array([Y_TRUE[i] for i in keep]), np.array([Y_PRED[i] for i in keep]),
            np.array([GROUPS[i] for i in keep]))


def test_group_accuracy_equals_fairlearn_and_formula():
    y_true, y_pred, sens = _known()
    correct = [int(t == p) for t, p in zip(Y_TRUE, Y_PRED, strict=True)]
    out = group_scores(correct, GROUPS, n_boot=500, seed=1)
    # By hand: men right on 6 of 8 (rows 3 and 5 wrong), women 6 of 8 (rows 8 and 10).
    assert out["by_group"]["m"]["value"] == pytest.approx(6 / 8)
    assert out["by_group"]["f"]["value"] == pytest.approx(6 / 8)
    assert out["by_group"]["m"]["n"] == 8 and out["n_unknown"] == 2
    frame = MetricFrame(metrics=accuracy_score, y_true=y_true, y_pred=y_pred,
                        sensitive_features=sens)
    for level, value in frame.by_group.items():
        assert out["by_group"][level]["value"] == pytest.approx(value)
    assert out["gap"] == pytest.approx(frame.difference())
    for stats in out["by_group"].values():
        lo, hi = stats["ci"]
        assert 0 <= lo <= stats["value"] <= hi <= 1 and hi > lo


def test_group_gap_and_ci_cover_a_real_gap():
    rng = np.random.default_rng(0)
    groups = ["a"] * 200 + ["b"] * 200
    scores = np.r_[rng.random(200) < 0.9, rng.random(200) < 0.3].astype(int)
    out = group_scores(scores.tolist(), groups, n_boot=500)
    gap = scores[:200].mean() - scores[200:].mean()
    assert out["gap"] == pytest.approx(abs(gap))
    lo, hi = out["gap_ci"]
    assert lo <= out["gap"] <= hi
    assert lo > 0.4  # a 0.6 gap on 200 rows a group is far from zero
    # Same seed, same CIs.
    assert group_scores(scores.tolist(), groups, n_boot=500)["gap_ci"] == out["gap_ci"]


def test_single_group_has_no_gap():
    out = group_scores([1, 0, 1], ["a", "a", None], n_boot=50)
    assert out["gap"] is None and out["by_group"]["a"]["value"] == pytest.approx(0.5)
    assert group_scores([1, 0], [None, None])["by_group"] == {}


def test_outcome_metrics_equal_fairlearn_and_formulas():
    y_true, y_pred, sens = _known()
    out = outcome_metrics(Y_PRED, GROUPS, Y_TRUE, n_boot=200)
    # Formulas: selection rate = share of rows with the outcome; men 6/8, women 2/8.
    assert out["selection_rate"]["m"]["value"] == pytest.approx(6 / 8)
    assert out["selection_rate"]["f"]["value"] == pytest.approx(2 / 8)
    assert out["demographic_parity_difference"] == pytest.approx(6 / 8 - 2 / 8)
    assert out["demographic_parity_ratio"] == pytest.approx((2 / 8) / (6 / 8))
    assert out["four_fifths_rule"] is False
    # Equalized odds: max over |TPR gap|, |FPR gap|. Men TPR 4/4, FPR 2/4; women 2/4, 0/4.
    assert out["equalized_odds_difference"] == pytest.approx(max(abs(1 - 0.5), abs(0.5 - 0)))
    # And fairlearn's own functions on the same rows.
    assert out["demographic_parity_difference"] == pytest.approx(
        demographic_parity_difference(y_true, y_pred, sensitive_features=sens))
    assert out["demographic_parity_ratio"] == pytest.approx(
        demographic_parity_ratio(y_true, y_pred, sensitive_features=sens))
    assert out["equalized_odds_difference"] == pytest.approx(
        equalized_odds_difference(y_true, y_pred, sensitive_features=sens))
    frame = MetricFrame(metrics=selection_rate, y_true=y_true, y_pred=y_pred,
                        sensitive_features=sens)
    for level, value in frame.by_group.items():
        assert out["selection_rate"][level]["value"] == pytest.approx(value)
    assert out["n"] == 16


def test_outcome_parity_edge_cases():
    groups = ["m", "m", "f", "f"]
    nobody = outcome_metrics([0, 0, 0, 0], groups)
    assert nobody["demographic_parity_difference"] == 0
    assert nobody["demographic_parity_ratio"] == 1.0 and nobody["four_fifths_rule"] is True
    assert nobody["equalized_odds_difference"] is None  # no true outcome given
    near = outcome_metrics([1, 1, 1, 0], groups)
    assert near["demographic_parity_ratio"] == pytest.approx(0.5)
    # A group without true negatives leaves equalized odds undefined, not 0.
    assert outcome_metrics([1, 0, 1, 0], groups, [1, 1, 1, 0])["equalized_odds_difference"] is None
    single = outcome_metrics([1, 0], ["m", "m"])
    assert single["demographic_parity_difference"] is None


def test_flip_rate_formula():
    original = ["premium", "budget", None, "budget"]
    variants = [["budget"], ["budget", "premium"], [None], []]
    # Pairs: (p,b) flip, (b,b) same, (b,p) flip, (None,None) same -> 2 of 4.
    assert flip_rate(original, variants) == pytest.approx(0.5)
    assert flip_rate(["x"], [[]]) is None
    assert flip_rate([], []) is None
    with pytest.raises(ValueError):
        flip_rate(["x"], [])


def test_worst_case_accuracy_is_min_over_variants():
    original = [1.0, 1.0, 0.0, 1.0]
    variants = [[1.0], [0.0, 1.0], [1.0], []]
    assert worst_case_accuracy(original, variants) == pytest.approx((1 + 0 + 0 + 1) / 4)
    assert worst_case_accuracy([0.5], [[0.8]]) == pytest.approx(0.5)
    assert worst_case_accuracy([], []) is None


def _percentile_bootstrap(values, n_boot, seed):
    rng = np.random.default_rng(seed)
    means = rng.choice(values, size=(n_boot, len(values))).mean(axis=1)
    return tuple(np.quantile(means, [0.025, 0.975]))


def test_stereotype_preference_counts_wins_and_ties():
    more = [-1.0, -2.0, -3.0, -4.0]
    less = [-2.0, -1.0, -3.0, -5.0]
    out = stereotype_preference(more, less, n_boot=200, bootstrap=_percentile_bootstrap)
    assert out["n"] == 4
    assert out["preference"] == pytest.approx((1 + 0 + 0.5 + 1) / 4)
    lo, hi = out["ci"]
    assert 0 <= lo <= out["preference"] <= hi <= 1
    assert stereotype_preference([], [], bootstrap=_percentile_bootstrap)["preference"] is None
    with pytest.raises(ValueError):
        stereotype_preference([1.0], [1.0, 2.0], bootstrap=_percentile_bootstrap)


def test_stereotype_preference_default_bootstrap():
    pytest.importorskip("evalsuite.stats")
    rng = np.random.default_rng(3)
    more = rng.normal(size=200)
    less = more - 1.0  # always prefers the stereotype
    out = stereotype_preference(more, less, n_boot=200)
    assert out["preference"] == 1.0 and out["ci"][0] == pytest.approx(1.0)
    out = stereotype_preference(more, rng.normal(size=200), n_boot=500)
    assert out["ci"][0] < out["preference"] < out["ci"][1]


def test_where_and_outcome_extraction():
    row = {"intent": "recommend", "tier": "budget"}
    assert matches_where(row, None) and matches_where(row, {})
    assert matches_where(row, {"intent": "recommend"})
    assert not matches_where(row, {"intent": "refund"})
    assert matches_where(row, {"intent": ["refund", "recommend"], "tier": "budget"})
    assert not matches_where({}, {"intent": "recommend"})
    assert has_outcome("intent: recommend | suggest the premium laptop", "premium") == 1
    assert has_outcome("intent: recommend | suggest the budget laptop", "premium") == 0
    assert has_outcome(None, "premium") == 0
