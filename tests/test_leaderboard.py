import itertools
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
    assert all(math.isfinite(r["bradley_terry"]) for r in rows if r["votes"])
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


def test_a_model_without_votes_is_not_rated_and_outside_the_ranking():
    votes = [_v("a", "b", "left", i) for i in range(3)] + [_v("b", "a", "left", 9)]
    rows = leaderboard(votes, models=["a", "b", "new"], n_boot=20)
    assert [(r["model"], r["rank"]) for r in rows] == [("a", 1), ("b", 2), ("new", None)]
    new = rows[-1]
    assert new["status"] == "not rated yet" and new["votes"] == 0
    assert new["bradley_terry"] is None and new["ci_low"] is None and new["elo"] is None
    # the rated models' fit is the fit without the unrated one (it does not move their mean)
    alone = bradley_terry(votes)
    assert rows[0]["bradley_terry"] == round(alone["a"], 1)
    assert rows[1]["bradley_terry"] == round(alone["b"], 1)
    assert all(r["status"] == "not rated yet" and r["rank"] is None
               for r in leaderboard([], models=["x", "y"], n_boot=5))


def test_walk_verdicts_read_holm_adjusted_p_values():
    from statsmodels.stats.multitest import multipletests

    # a 9-1 record alone is "better" (p = 0.021); beside two other tested pairs it is not
    votes = [_v("a", "b", "left", i) for i in range(9)] + [_v("a", "b", "right", 9)]
    (alone,) = walk_verdicts(votes)
    assert alone["p_value"] == pytest.approx(0.021484375)
    assert alone["p_holm"] == pytest.approx(alone["p_value"]) and alone["verdict"] == "a is better"
    votes += [_v("a", "c", "left", 20), _v("a", "c", "right", 21),
              _v("b", "c", "left", 30), _v("c", "b", "left", 31), _v("b", "c", "tie", 32)]
    rows = {(r["model_a"], r["model_b"]): r for r in walk_verdicts(votes)}
    raw = [rows[k]["p_value"] for k in (("a", "b"), ("a", "c"), ("b", "c"))]
    expected = multipletests(raw, method="holm")[1]
    assert [rows[k]["p_holm"] for k in (("a", "b"), ("a", "c"), ("b", "c"))] == pytest.approx(
        list(expected))
    assert rows[("a", "b")]["p_holm"] == pytest.approx(3 * 0.021484375)
    assert rows[("a", "b")]["verdict"] == "no significant difference"


def test_holm_keeps_equal_models_from_being_called_better(monkeypatch):
    """Five equally good models, every pair voted 20 times: walks with some "X is better"."""
    import gc

    monkeypatch.setattr(gc, "collect", lambda *a, **k: 0)  # statsmodels calls it every time
    rng = random.Random(0)
    names = ["m1", "m2", "m3", "m4", "m5"]
    walks, raw_any, holm_any = 200, 0, 0
    for _ in range(walks):
        votes = [_v(a, b, rng.choices(["left", "right", "tie"], [0.45, 0.45, 0.1])[0])
                 for a, b in itertools.combinations(names, 2) for _ in range(20)]
        rows = walk_verdicts(votes)
        raw_any += any(r["p_value"] is not None and r["p_value"] < 0.05 for r in rows)
        holm_any += any(r["verdict"].endswith("is better") for r in rows)
    assert 0.15 <= raw_any / walks <= 0.45  # measured 0.31
    assert holm_any / walks <= 0.08  # measured 0.035


def test_ratings_chart_draws_rated_models_and_names_the_unrated():
    import pandas as pd

    from tuneproof_app.reports import ratings_chart

    votes = [_v("a", "b", "left", i) for i in range(3)]
    svg = ratings_chart(pd.DataFrame(leaderboard(votes, models=["a", "b", "new"], n_boot=10)))
    assert svg.count("<circle") == 2 and "Not rated yet (no votes): new." in svg
    empty = ratings_chart(pd.DataFrame(leaderboard([], models=["x"], n_boot=5)))
    assert "No votes yet" in empty and "<svg" not in empty
