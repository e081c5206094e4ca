"""Did fine-tuning cause it? Each adapter against the base, paired, for every fairness metric.

The base and the adapter answer the same prompts and the same variants, so every test is
paired: exact McNemar (statsmodels, through :mod:`evalsuite.stats`) on per-prompt flip
indicators (a prompt flips when any of its variants does); a paired permutation test on
per-prompt similarity; for the sentiment gap and group gaps, a paired permutation test that
swaps each prompt's answers (or each row's scores) between the two models at random (a gap is
never negative, so a bootstrap of the change in gaps is no test). Each result says it in
words: "fine-tuning introduced this: base 0.00, adapter 0.81, p < 0.001".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from evalsuite import stats
from evalsuite.fairness.context import _Context, has_outcome, is_categorical, outcome_value
from evalsuite.fairness.flips import answer_arrays
from evalsuite.fairness.intervals import (
    _num,
    boot_counts,
    cluster_shares,
    group_codes,
    group_mean_draws,
    paired_clustered,
    percentile,
    swap_permutation_gap_p,
)
from evalsuite.fairness.sentiment import sentiment_gap
from evalsuite.verdict import format_p

ALPHA = 0.05


def in_words(base: float | None, model: float | None, p: float | None,
             higher_is_worse: bool = True) -> str:
    """``fine-tuning introduced this: base 0.00, adapter 0.81, p < 0.001`` and its kin."""
    if base is None or model is None:
        return "not measured for both models"
    figures = f"base {base:.2f}, adapter {model:.2f}, {format_p(p, prefix=True)}"
    if p is None or p >= ALPHA or model == base:
        return f"no evidence that fine-tuning changed this: {figures}"
    worse = (model > base) == higher_is_worse
    return f"fine-tuning {'introduced' if worse else 'reduced'} this: {figures}"


def _result(base: float | None, model: float | None, ci: Any, p: float | None, test: str,
            higher_is_worse: bool = True) -> dict[str, Any]:
    delta = None if base is None or model is None else _num(model - base)
    return {"base": _num(base), "adapter": _num(model), "delta": delta, "ci": ci,
            "p_value": _num(p), "test": test, "higher_is_worse": higher_is_worse,
            "words": in_words(_num(base), _num(model), _num(p), higher_is_worse)}


def holm_across(tests: Sequence[dict[str, Any]]) -> None:
    """Holm-adjust the p-values of one family of tests (every adapter x metric of a run).

    Each test gets ``p_value_holm``, and its words are told from the adjusted p-value: a
    run that tests many metrics on many adapters would otherwise call some change "introduced"
    by chance alone.
    """
    stats.add_holm(list(tests))
    for t in tests:
        t["words"] = in_words(t["base"], t["adapter"], t["p_value_holm"],
                              t.get("higher_is_worse", True))
        if t["p_value_holm"] is not None:
            t["words"] += f" (Holm-adjusted over {len(tests)} tests; raw " \
                          f"{format_p(t['p_value'], prefix=True)})"


def flip_test(base: Mapping[str, Any], model: Mapping[str, Any], *, n_boot: int,
              seed: int) -> dict[str, Any]:
    """Flip rate: McNemar on per-prompt flips, and the prompt-clustered CI of the delta."""
    _, any_a, _ = cluster_shares(base["flips"], base["prompts"])
    _, any_b, _ = cluster_shares(model["flips"], model["prompts"])
    p = stats.mcnemar_exact((any_a > 0).astype(float), (any_b > 0).astype(float))
    d = paired_clustered(base["flips"], model["flips"], base["prompts"], n_boot=n_boot,
                         seed=seed)
    return _result(float(np.mean(base["flips"])), float(np.mean(model["flips"])), d["ci"], p,
                   "mcnemar-exact on per-prompt flips")


def similarity_test(base: Mapping[str, Any], model: Mapping[str, Any], *, n_boot: int,
                    seed: int, n_permutations: int) -> dict[str, Any]:
    """Similarity: paired permutation test on per-prompt mean similarity (prompt-weighted)."""
    _, sa, sizes = cluster_shares(base["similarity"], base["prompts"])
    _, sb, _ = cluster_shares(model["similarity"], model["prompts"])
    c = stats.compare(sa, sb, sizes, n_boot=n_boot, n_permutations=n_permutations, seed=seed,
                      binary=False)
    return _result(float(np.mean(base["similarity"])), float(np.mean(model["similarity"])),
                   [c["ci_low"], c["ci_high"]], c["p_value"], "paired permutation per prompt",
                   higher_is_worse=False)


def sentiment_test(base: Mapping[str, Any], model: Mapping[str, Any], *, seed: int,
                   n_permutations: int) -> dict[str, Any]:
    """Sentiment gap (W1): each prompt's answers swapped between the models at random.

    Up to 2,000 permutations (each recomputes W1 with scipy); ``p`` as in
    :func:`~evalsuite.fairness.intervals.swap_permutation_gap_p`, for the same reason.
    """
    gaps = [sentiment_gap(m["tones"], n_boot=0)["gap"] for m in (base, model)]
    if None in gaps:
        return _result(gaps[0], gaps[1], None, None, "fewer than two groups")
    observed = abs(gaps[1] - gaps[0])
    # the tones are keyed by row (sentiment.tone_by_group), not by swap cluster
    prompts = sorted(set(base["rows"]))
    index = {c: k for k, c in enumerate(prompts)}
    rng = np.random.default_rng(seed)
    n = min(n_permutations, 2000)
    extreme = 0
    for _ in range(n):
        swap = rng.random(len(prompts)) < 0.5
        pair = [{}, {}]
        for g, (vb, cs) in base["tones"].items():
            vm = model["tones"][g][0]
            mask = swap[[index[c] for c in cs]]
            pair[0][g] = (np.where(mask, vm, vb), cs)
            pair[1][g] = (np.where(mask, vb, vm), cs)
        d = sentiment_gap(pair[1], n_boot=0)["gap"] - sentiment_gap(pair[0], n_boot=0)["gap"]
        extreme += abs(d) >= observed - 1e-12
    return _result(gaps[0], gaps[1], None, (1 + extreme) / (1 + n),
                   "paired permutation over prompts (answers swapped between the models)")


def gap_test(y_base: Sequence[float], y_model: Sequence[float], groups: Sequence[str], *,
             n_boot: int, seed: int, n_permutations: int = 10_000) -> dict[str, Any]:
    """Group gap (max - min): paired swap-permutation test on the same rows.

    With two groups, ``ci`` is the paired bootstrap interval of the change in the signed
    difference (both models' groups in the adapter's order), which can contain 0; with more,
    None.
    """
    levels, codes = group_codes(list(groups))
    y_a, y_b = np.asarray(y_base, float), np.asarray(y_model, float)
    points = []
    for y in (y_a, y_b):
        point = np.bincount(codes, weights=y, minlength=len(levels)) / np.bincount(codes)
        points.append(point)
    ci = None
    if len(levels) == 2 and n_boot > 1:
        counts = boot_counts(len(codes), n_boot, seed)
        hi = int(np.argmax(points[1]))
        draws = [group_mean_draws(y, codes, 2, counts) for y in (y_a, y_b)]
        ci = percentile((draws[1][:, hi] - draws[1][:, 1 - hi])
                        - (draws[0][:, hi] - draws[0][:, 1 - hi]))
    p = swap_permutation_gap_p(y_a, y_b, codes, len(levels), n_permutations=n_permutations,
                               seed=seed)
    return _result(float(np.ptp(points[0])), float(np.ptp(points[1])), ci, p,
                   "paired permutation over rows (scores swapped between the models)")


def versus_base(ctx: _Context, outputs: Mapping[str, Sequence[str]], base: str, model: str,
                answers: Mapping[str, list[Any]]) -> dict[str, dict[str, Any]]:
    """Every fairness metric of ``model`` against ``base``, keyed by its flat name."""
    boot = {"n_boot": ctx.n_boot, "seed": ctx.seed}
    perm = {**boot, "n_permutations": ctx.n_permutations}
    out: dict[str, dict[str, Any]] = {}
    for axis in ctx.task.fairness.counterfactual_axes:
        arrays = [answer_arrays(ctx, [a for a in answers[m] if a.variant.axis == axis],
                                outputs[m])
                  for m in (base, model)]
        if not arrays[0]["prompts"]:
            continue
        key = f"counterfactual.{axis}"
        out[f"{key}.flip_rate"] = flip_test(*arrays, **boot)
        out[f"{key}.similarity"] = similarity_test(*arrays, **boot,
                                                   n_permutations=ctx.n_permutations)
        out[f"{key}.sentiment_gap"] = sentiment_test(*arrays, seed=ctx.seed,
                                                     n_permutations=ctx.n_permutations)
    items = {m: [(r, outputs[m][r.index], r.target) for r in ctx.rows] for m in (base, model)}
    scores = {m: ctx.decider.scores(items[m]) for m in (base, model)}
    for name, s in scores[base].items():
        rows = [k for k in s if ctx.groups[k] is not None]
        if len({ctx.groups[k] for k in rows}) >= 2:
            out[f"group_accuracy_gap.{name}"] = gap_test(
                [s[k] for k in rows], [scores[model][name][k] for k in rows],
                [ctx.groups[k] for k in rows], **perm)
    pattern = ctx.task.fairness.outcome_pattern
    scope = [r for r in ctx.scope if ctx.groups[r.index] is not None]
    if pattern is not None and len({ctx.groups[r.index] for r in scope}) >= 2:
        out["demographic_parity_difference"] = _parity_test(ctx, outputs, base, model, scope,
                                                            pattern)
    return out


def _parity_test(ctx: _Context, outputs: Mapping[str, Sequence[str]], base: str, model: str,
                 scope: list[Any], pattern: str) -> dict[str, Any]:
    """Parity gap of the outcome; for categories, where the adapter's gap is largest."""
    groups = [ctx.groups[r.index] for r in scope]
    boot = {"n_boot": ctx.n_boot, "seed": ctx.seed, "n_permutations": ctx.n_permutations}
    if not is_categorical(pattern):
        ys = [[has_outcome(outputs[m][r.index], pattern) for r in scope] for m in (base, model)]
        return gap_test(*ys, groups, **boot)
    values = {m: [outcome_value(outputs[m][r.index], pattern) for r in scope]
              for m in (base, model)}
    tests = {c: gap_test([float(v == c) for v in values[base]],
                         [float(v == c) for v in values[model]], groups, **boot)
             for c in sorted({v for vs in values.values() for v in vs if v is not None})}
    if not tests:
        return _result(0.0, 0.0, None, None, "no category matched")
    cat = max(tests, key=lambda c: tests[c]["adapter"])
    return {**tests[cat], "category": cat}
