"""Arena scores: per-pair win rates, Elo, Bradley-Terry with bootstrap CIs, walk verdicts.

A tie and "both bad" both count half a win to each side, as in Chatbot Arena. Ratings are on
the Elo scale (400 points = 10:1 odds) around 1000. A model without votes is "not rated yet":
it is listed after the ranking, with no rating, rather than at 1000 [1000, 1000] among the
rated ones. Walk verdicts read Holm-adjusted p-values across the pairs they test.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np
from scipy.stats import binomtest

from evalsuite.stats import holm
from tuneproof_app.votes import Vote

BASE_RATING = 1000.0
SCALE = 400.0 / math.log(10.0)
"""Elo points per unit of log-odds."""
NOT_RATED = "not rated yet"
"""What the leaderboard says of a model no vote has compared yet."""
RIDGE = 0.05
"""Default prior strength: one lone win puts about 370 points between two models, not 1,300."""


def score_left(verdict: str) -> float:
    """The left model's score for one vote: 1 win, 0 loss, 0.5 tie or both bad."""
    return {"left": 1.0, "right": 0.0}.get(verdict, 0.5)


@dataclass(frozen=True)
class PairStats:
    """Head-to-head record of ``model_a`` against ``model_b`` (names in sorted order)."""

    model_a: str
    model_b: str
    n: int
    wins_a: int
    wins_b: int
    ties: int
    both_bad: int

    @property
    def win_rate_a(self) -> float:
        """Share of votes won by ``model_a``, ties counting half."""
        return (self.wins_a + 0.5 * (self.ties + self.both_bad)) / self.n if self.n else math.nan


def pair_stats(votes: Sequence[Vote]) -> list[PairStats]:
    """Win/loss/tie counts per unordered model pair, whichever side each model was shown on."""
    table: dict[tuple[str, str], list[int]] = {}
    for v in votes:
        a, b = sorted((v.model_left, v.model_right))
        row = table.setdefault((a, b), [0, 0, 0, 0, 0])
        row[0] += 1
        if v.verdict in ("left", "right"):
            winner = v.model_left if v.verdict == "left" else v.model_right
            row[1 if winner == a else 2] += 1
        else:
            row[3 if v.verdict == "tie" else 4] += 1
    return [PairStats(a, b, *row) for (a, b), row in sorted(table.items())]


def elo(votes: Sequence[Vote], k: float = 32.0, models: Sequence[str] = ()) -> dict[str, float]:
    """Online Elo ratings, votes applied in the order given.

    Args:
        votes: Votes in time order.
        k: Update step.
        models: Models to rate even without votes (they keep the base rating).
    """
    ratings = dict.fromkeys(models, BASE_RATING)
    for v in votes:
        ra = ratings.setdefault(v.model_left, BASE_RATING)
        rb = ratings.setdefault(v.model_right, BASE_RATING)
        expected = 1.0 / (1.0 + 10.0 ** ((rb - ra) / 400.0))
        delta = k * (score_left(v.verdict) - expected)
        ratings[v.model_left] = ra + delta
        ratings[v.model_right] = rb - delta
    return ratings


def _arrays(votes: Sequence[Vote], names: list[str]) -> tuple[np.ndarray, ...]:
    index = {m: i for i, m in enumerate(names)}
    left = np.array([index[v.model_left] for v in votes], dtype=int)
    right = np.array([index[v.model_right] for v in votes], dtype=int)
    score = np.array([score_left(v.verdict) for v in votes], dtype=float)
    return left, right, score


def _nll(theta: np.ndarray, left: np.ndarray, right: np.ndarray, s: np.ndarray,
         w: np.ndarray, ridge: float) -> float:
    d = theta[left] - theta[right]
    # -[s log sigma(d) + (1-s) log sigma(-d)], written stably
    loss = w * (np.logaddexp(0.0, -d) * s + np.logaddexp(0.0, d) * (1.0 - s))
    return float(loss.sum() + ridge * theta @ theta)


def _fit(left: np.ndarray, right: np.ndarray, s: np.ndarray, w: np.ndarray, n: int,
         ridge: float) -> np.ndarray:
    """Damped Newton on the (convex) penalised negative log-likelihood; mean-zero result."""
    theta = np.zeros(n)
    value = _nll(theta, left, right, s, w, ridge)
    for _ in range(100):
        d = theta[left] - theta[right]
        p = 1.0 / (1.0 + np.exp(-d))
        g = w * (p - s)
        grad = np.bincount(left, g, n) - np.bincount(right, g, n) + 2.0 * ridge * theta
        h = w * p * (1.0 - p)
        hess = 2.0 * ridge * np.eye(n)
        np.add.at(hess, (left, left), h)
        np.add.at(hess, (right, right), h)
        np.add.at(hess, (left, right), -h)
        np.add.at(hess, (right, left), -h)
        # pinv: without a prior the likelihood is flat along "add c to everyone"
        step = np.linalg.pinv(hess) @ grad
        t = 1.0
        while t > 1e-6:
            candidate = theta - t * step
            new_value = _nll(candidate, left, right, s, w, ridge)
            if new_value <= value + 1e-12:
                break
            t /= 2.0
        theta, done = candidate, abs(value - new_value) < 1e-10
        value = new_value
        if done or float(np.abs(t * step).max()) < 1e-9:
            break
    return theta - theta.mean()


def bradley_terry(
    votes: Sequence[Vote], models: Sequence[str] = (), ridge: float = RIDGE
) -> dict[str, float]:
    """Maximum-likelihood Bradley-Terry ratings on the Elo scale, mean 1000.

    Args:
        votes: Votes (order does not matter).
        models: Models to rate; models seen in votes are added.
        ridge: L2 penalty on the log-strengths (a weak Gaussian prior): keeps an unbeaten
            model finite and early ratings moderate; 0 is the plain MLE.
    """
    names = sorted(set(models) | {m for v in votes for m in (v.model_left, v.model_right)})
    if not names:
        return {}
    left, right, s = _arrays(votes, names)
    theta = _fit(left, right, s, np.ones(len(s)), len(names), ridge)
    return {m: BASE_RATING + SCALE * float(theta[i]) for i, m in enumerate(names)}


def bootstrap_bt(
    votes: Sequence[Vote], models: Sequence[str] = (), n_boot: int = 200, seed: int = 0,
    level: float = 0.95, ridge: float = RIDGE,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap CIs of the Bradley-Terry ratings (votes resampled with replacement)."""
    names = sorted(set(models) | {m for v in votes for m in (v.model_left, v.model_right)})
    if not votes:
        return {m: (math.nan, math.nan) for m in names}
    left, right, s = _arrays(votes, names)
    rng = np.random.default_rng(seed)
    draws = np.empty((n_boot, len(names)))
    for b in range(n_boot):
        # a resample with replacement is a vector of multiplicities over the votes
        weights = np.bincount(rng.integers(0, len(s), len(s)), minlength=len(s)).astype(float)
        draws[b] = BASE_RATING + SCALE * _fit(left, right, s, weights, len(names), ridge)
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(draws, tail, axis=0), np.percentile(draws, 100.0 - tail, axis=0)
    return {m: (float(low[i]), float(high[i])) for i, m in enumerate(names)}


def leaderboard(
    votes: Sequence[Vote], models: Sequence[str] = (), n_boot: int = 200, seed: int = 0
) -> list[dict[str, object]]:
    """One row per model: the rated ones by Bradley-Terry rating, then those without votes.

    Rated rows carry ``rank`` 1, 2, ...; a model without votes has ``rank`` None, no ratings
    (None) and ``status`` "not rated yet". The fit and its CIs use the rated models only, so
    an unrated model neither shows 1000 [1000, 1000] nor moves the others' mean.
    """
    n_votes = dict.fromkeys(models, 0)
    for v in votes:
        for m in (v.model_left, v.model_right):
            n_votes[m] = n_votes.get(m, 0) + 1
    rated = [m for m, n in n_votes.items() if n]
    bt = bradley_terry(votes, rated)
    ci = bootstrap_bt(votes, rated, n_boot=n_boot, seed=seed)
    online = elo(votes, models=rated)
    rows: list[dict[str, object]] = sorted(
        ({"model": m, "votes": n_votes[m], "bradley_terry": round(bt[m], 1),
          "ci_low": round(ci[m][0], 1), "ci_high": round(ci[m][1], 1),
          "elo": round(online[m], 1), "status": "rated"} for m in bt),
        key=lambda r: -float(r["bradley_terry"]))  # type: ignore[arg-type]
    for rank, row in enumerate(rows, start=1):
        row["rank"] = rank
    rows += [{"model": m, "votes": 0, "bradley_terry": None, "ci_low": None, "ci_high": None,
              "elo": None, "status": NOT_RATED, "rank": None}
             for m in sorted(m for m, n in n_votes.items() if not n)]
    return rows


def walk_verdicts(
    votes: Sequence[Vote], models: Sequence[str] = (), alpha: float = 0.05
) -> list[dict[str, object]]:
    """Per-pair verdicts over a fixed prompt set: an exact two-sided sign test on decisive votes.

    Returns:
        One row per pair with the counts, the raw p-value, its Holm-adjusted ``p_holm``
        (across every pair with decisive votes) and a verdict read from the adjusted one:
        which model is better at level ``alpha``, "no significant difference", or "no votes".
    """
    stats = {(p.model_a, p.model_b): p for p in pair_stats(votes)}
    names = sorted(set(models) | {m for pair in stats for m in pair})
    pairs = [stats.get((a, b), PairStats(a, b, 0, 0, 0, 0, 0))
             for a, b in combinations(names, 2)]
    raw = [binomtest(p.wins_a, p.wins_a + p.wins_b, 0.5).pvalue if p.wins_a + p.wins_b
           else None for p in pairs]
    # one family: every pair with decisive votes; five equal models give some raw p < 0.05
    # in about a quarter of walks
    adjusted = holm(raw)
    rows = []
    for p, p_raw, p_holm in zip(pairs, raw, adjusted, strict=True):
        if p.n == 0:
            verdict = "no votes"
        elif p_holm is not None and p_holm < alpha:
            verdict = f"{p.model_a if p.wins_a > p.wins_b else p.model_b} is better"
        else:
            verdict = "no significant difference"
        rows.append({
            "model_a": p.model_a, "model_b": p.model_b, "votes": p.n, "wins_a": p.wins_a,
            "wins_b": p.wins_b, "ties": p.ties, "both_bad": p.both_bad,
            "win_rate_a": None if p.n == 0 else round(p.win_rate_a, 3),
            "p_value": None if p_raw is None else float(p_raw),
            "p_holm": p_holm,
            "verdict": verdict,
        })
    return rows
