"""Counterfactual sentiment gap: the change of tone toward a group, for free-form answers.

LangFair's sentiment bias: VADER's compound score (-1..1) of every answer to a counterfactual
pair (the original prompt and its variant naming another group), and the Wasserstein-1
distance (``scipy.stats.wasserstein_distance``) between the sentiment distributions of the
answers by the group their prompt names: 0 when swapping the group never moves the tone, up to
2. VADER comes from the maintained ``vaderSentiment`` package, which ships its
lexicon (offline). The interval resamples prompts, as every counterfactual interval does.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from evalsuite.fairness.intervals import _num, boot_counts, percentile


@lru_cache(maxsize=1)
def _analyzer() -> Any:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def sentiment_scores(texts: Sequence[str]) -> list[float]:
    """VADER compound score of each text (-1 most negative, 1 most positive, 0 neutral)."""
    analyzer = _analyzer()
    cache: dict[str, float] = {}
    out = []
    for text in texts:
        if text not in cache:
            cache[text] = float(analyzer.polarity_scores(text or "")["compound"])
        out.append(cache[text])
    return out


def _w1(u: np.ndarray, v: np.ndarray, w: np.ndarray | None = None) -> float:
    from scipy.stats import wasserstein_distance

    return float(wasserstein_distance(u, v, w, w))


def tone_by_group(
    pairs: Sequence[tuple[str | None, float, str | None, float, Any]],
) -> dict[str, tuple[np.ndarray, list[Any]]]:
    """Sentiments of the answers by the group their prompt names, with each one's prompt.

    Args:
        pairs: One per (prompt, variant): the original prompt's group and answer sentiment,
            the variant's group and answer sentiment, and the original prompt (the cluster).

    Returns:
        group -> (sentiments, prompts); answers whose prompt has no known group are left out.
    """
    out: dict[str, tuple[list[float], list[Any]]] = {}
    for g_orig, s_orig, g_var, s_var, prompt in pairs:
        for g, s in ((g_orig, s_orig), (g_var, s_var)):
            if g is not None:
                values, prompts = out.setdefault(g, ([], []))
                values.append(s)
                prompts.append(prompt)
    return {g: (np.asarray(v, dtype=float), c) for g, (v, c) in sorted(out.items())}


def sentiment_gap(
    tones: dict[str, tuple[np.ndarray, list[Any]]], *, n_boot: int = 1000, seed: int = 0,
) -> dict[str, Any]:
    """LangFair's sentiment bias: W1 between the groups' answer-sentiment distributions.

    With two groups, the Wasserstein-1 distance between the sentiment of the answers to
    prompts naming one group and to their counterfactuals naming the other; with more, the
    largest over pairs of groups.

    Args:
        tones: :func:`tone_by_group`.
        n_boot: Bootstrap resamples (prompts, with all their answers); 0 for no interval.
        seed: Bootstrap seed.

    Returns:
        ``gap`` (W1), ``gap_ci``, ``groups`` (the pair furthest apart), ``by_group`` (mean
        sentiment), ``n``. ``gap`` is None with fewer than two groups.
    """
    out: dict[str, Any] = {"gap": None, "gap_ci": None, "groups": None,
                           "by_group": {g: _num(v.mean()) for g, (v, _) in tones.items()},
                           "n": int(sum(len(v) for v, _ in tones.values()))}
    if len(tones) < 2:
        return out
    names = list(tones)
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]
    gaps = {(a, b): _w1(tones[a][0], tones[b][0]) for a, b in pairs}
    worst = max(gaps, key=gaps.__getitem__)
    out.update(gap=_num(gaps[worst]), groups=list(worst))
    if n_boot > 1:
        clusters = sorted({c for _, cs in tones.values() for c in cs})
        out["gap_ci"] = percentile(gap_draws(tones, boot_counts(len(clusters), n_boot, seed)))
    return out


def gap_draws(tones: dict[str, tuple[np.ndarray, list[Any]]], counts: np.ndarray) -> np.ndarray:
    """The gap under each resample of prompts (the columns of ``counts``, prompts sorted)."""
    clusters = sorted({c for _, cs in tones.values() for c in cs})
    index = {c: k for k, c in enumerate(clusters)}
    names = list(tones)
    weights = {g: counts[:, [index[c] for c in cs]] for g, (_, cs) in tones.items()}
    draws = [w1_draws(tones[a][0], weights[a], tones[b][0], weights[b])
             for i, a in enumerate(names) for b in names[i + 1:]]
    with np.errstate(invalid="ignore"):
        return np.nanmax(np.vstack(draws), axis=0) if draws else np.array([])


def w1_draws(u: np.ndarray, wu: np.ndarray, v: np.ndarray, wv: np.ndarray) -> np.ndarray:
    """W1 of ``u`` and ``v`` under each row of weights ``wu`` / ``wv``.

    Vectorised: W1 is the integral of ``|F_u - F_v|``, and both weighted CDFs at every sample
    point are one matrix product (checked against scipy in the tests).
    """
    points = np.sort(np.concatenate([u, v]))
    widths = np.diff(points)
    tu = wu.sum(axis=1, keepdims=True)
    tv = wv.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        cdf_u = wu @ (u[:, None] <= points[None, :-1]).astype(float) / tu
        cdf_v = wv @ (v[:, None] <= points[None, :-1]).astype(float) / tv
        gap = np.abs(cdf_u - cdf_v) @ widths
    return np.where((tu[:, 0] > 0) & (tv[:, 0] > 0), gap, np.nan)
