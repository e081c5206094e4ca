import math
import random

import pytest

from tuneproof_app.leaderboard import (
    bootstrap_bt,
    bradley_terry,
    elo,
    leaderboard,
    pair_stats,
    walk_verdicts,
)
from tuneproof_app.votes import Vote


def _v(left, right, verdict, i=0):
    return Vote(str(i), float(i), "free", "p", left, right, "", "", verdict)


def test_pair_stats_count_wins_whatever_the_side():
    votes = [_v("b", "a", "left"), _v("a", "b", "left"), _v("a", "b", "right"),
             _v("b", "a", "tie"), _v("a", "b", "both_bad"), _v("a", "c", "left")]
    ab, ac = pair_stats(votes)
    assert (ab.model_a, ab.model_b, ab.n, ab.wins_a, ab.wins_b, ab.ties, ab.both_bad) == (
        "a", "b", 5, 1, 2, 1, 1)
    assert ab.win_rate_a == pytest.approx((1 + 0.5 * 2) / 5)
    assert (ac.wins_a, ac.wins_b) == (1, 0)


def test_elo_matches_hand_computation():
    votes = [_v("a", "b", "left"), _v("b", "a", "left"), _v("a", "b", "tie")]
    ra = rb = 1000.0
    for s_a in (1.0, 0.0, 0.5):  # a's score in each vote
        e_a = 1 / (1 + 10 ** ((rb - ra) / 400))
        ra, rb = ra + 32 * (s_a - e_a), rb - 32 * (s_a - e_a)
    got = elo(votes)
    assert got["a"] == pytest.approx(ra) and got["b"] == pytest.approx(rb)
    assert elo([], models=["x"]) == {"x": 1000.0}


def test_bradley_terry_two_models_matches_closed_form():
    # For two models the MLE satisfies sigma(d) = share of points won: d = logit(w / n).
    votes = [_v("a", "b", "left", i) for i in range(14)] + [
        _v("b", "a", "left", i) for i in range(4)] + [_v("a", "b", "tie", i) for i in range(2)]
    w_a = 14 + 1.0  # ties count half
    n = 20
    expected_gap = 400 * math.log10(w_a / (n - w_a))
    bt = bradley_terry(votes, ridge=0.0)
    assert bt["a"] - bt["b"] == pytest.approx(expected_gap, abs=0.5)
    # the default prior only shrinks the gap towards 0
    assert 0 < bradley_terry(votes)["a"] - bradley_terry(votes)["b"] < expected_gap
    assert (bt["a"] + bt["b"]) / 2 == pytest.approx(1000.0)


def test_bradley_terry_recovers_order_of_simulated_strengths():
    rng = random.Random(0)
    strength = {"weak": -1.0, "mid": 0.0, "strong": 1.0}
    votes = []
    for i in range(600):
        a, b = rng.sample(sorted(strength), 2)
        p = 1 / (1 + math.exp(strength[b] - strength[a]))
        votes.append(_v(a, b, "left" if rng.random() < p else "right", i))
    bt = bradley_terry(votes)
    assert bt["strong"] > bt["mid"] > bt["weak"]
    # Fitted log-odds gap strong-weak should be near the true 2.0.
    assert (bt["strong"] - bt["weak"]) * math.log(10) / 400 == pytest.approx(2.0, abs=0.4)
    ci = bootstrap_bt(votes, n_boot=50)
    for m, (lo, hi) in ci.items():
        assert lo < bt[m] < hi
    assert ci["strong"][0] > ci["weak"][1]


def test_unbeaten_model_stays_finite_and_leaderboard_sorted():
    votes = [_v("a", "b", "left", i) for i in range(5)]
    rows = leaderboard(votes, models=["a", "b", "c"], n_boot=20)
    assert [r["model"] for r in rows][0] == "a"
    assert all(math.isfinite(r["bradley_terry"]) for r in rows)
    one = bradley_terry([_v("a", "b", "left")])
    assert 300 < one["a"] - one["b"] < 450  # one vote moves ratings moderately
    assert {r["model"]: r["votes"] for r in rows} == {"a": 5, "b": 5, "c": 0}


def test_walk_verdicts_sign_test():
    votes = [_v("fair", "biased", "left", i) for i in range(10)] + [
        _v("base", "fair", "tie", 20), _v("base", "fair", "left", 21)]
    rows = {(r["model_a"], r["model_b"]): r for r in walk_verdicts(votes)}
    bf = rows[("biased", "fair")]
    assert bf["wins_b"] == 10 and bf["p_value"] == pytest.approx(2 * 0.5 ** 10, rel=1e-3)
    assert bf["verdict"] == "fair is better"
    assert rows[("base", "fair")]["verdict"] == "no significant difference"
    assert rows[("base", "biased")]["verdict"] == "no votes"
