"""Fairness evaluation: group metrics, counterfactual swaps and stereotype probes.

Three views on one held-out set, for every model at once:

- **Group metrics** with fairlearn's ``MetricFrame``: per-group score with bootstrap CIs and the
  largest gap; the selection rate of the favourable outcome (the task's ``outcome_pattern``
  found in the model output); demographic-parity difference and ratio (the four-fifths rule);
  equalized-odds difference where the target says what the true outcome was.
- **Counterfactual fairness**: every held-out prompt with its demographic terms swapped by THE
  lexicon (``finetune.data.lexicon``); all models answer every variant in one mixed batch; the
  flip rate of the extracted labels and outcome, the semantic similarity of original and
  swapped answers, and HELM-style worst-case accuracy (a row counts only if it is right in
  every variant).
- **Stereotype probes**: CrowS-Pairs style sentence pairs scored by log-likelihood; the share
  of pairs where a model prefers the stereotypical sentence (ideal 0.5).

The pure functions take plain sequences so they can be checked against fairlearn and the
formulas on hand-made predictions; :func:`evaluate_fairness` wires them to the engine.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from evalsuite.engine import Engine, GenerationConfig
from evalsuite.labels import NONE, extract
from evalsuite.metrics import compute
from evalsuite.probes import ProbePair, load_probes
from evalsuite.stats import bootstrap_ci
from evalsuite.task import EvalRow, TaskSpec, matches
from finetune.data.lexicon import counterfactual_variants, infer_group
from finetune.errors import InputError
from finetune.rundir import RunDir

FOUR_FIFTHS = 0.8
"""Disparate impact threshold: a selection-rate ratio below 0.8 fails the four-fifths rule."""


@dataclass
class FairnessResult:
    """Fairness of one model.

    Attributes:
        block: The full fairness section for results.json (JSON-able).
        flat: Numbers by flat key for gates, e.g. ``counterfactual.flip_rate``.
    """

    block: dict[str, Any] = field(default_factory=dict)
    flat: dict[str, float] = field(default_factory=dict)


def _num(value: Any) -> float | None:
    """A float for JSON, or None for NaN / infinity / missing."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _mean_score(y_true: Sequence[float], y_pred: Sequence[float]) -> float:
    """MetricFrame metric: the mean per-row score carried in ``y_pred``."""
    del y_true
    return float(np.mean(y_pred))


# ----------------------------------------------------------------------------- group metrics


def group_scores(
    scores: Sequence[float],
    groups: Sequence[str | None],
    *,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Per-group mean of a per-row score (accuracy when scores are 0/1) with bootstrap CIs.

    Point values come from fairlearn's ``MetricFrame``; the CIs from a vectorised bootstrap
    that resamples rows as ``MetricFrame(n_boot=...)`` does (which takes seconds per frame
    where this takes milliseconds). Rows whose group is None are left out.

    Args:
        scores: One score per row (1/0 correctness, or any per-row metric).
        groups: The row's group, or None when unknown.
        n_boot: Bootstrap resamples; 0 for no CIs.
        seed: Bootstrap seed.

    Returns:
        ``by_group`` {group: {n, value, ci}}, ``gap`` (largest minus smallest group value),
        ``gap_ci``, ``n_unknown`` (rows without a group). ``gap`` is None with fewer than two
        groups.
    """
    from fairlearn.metrics import MetricFrame

    keep = [i for i, g in enumerate(groups) if g is not None]
    out: dict[str, Any] = {"by_group": {}, "gap": None, "gap_ci": None,
                           "n_unknown": len(groups) - len(keep)}
    if not keep:
        return out
    y = np.asarray([float(scores[i]) for i in keep])
    g = np.asarray([str(groups[i]) for i in keep])
    frame = MetricFrame(
        metrics={"value": _mean_score}, y_true=np.zeros_like(y), y_pred=y, sensitive_features=g
    )
    by_group = frame.by_group["value"]
    levels = [str(level) for level in by_group.index]
    cis = _group_bootstrap(y, g, levels, n_boot, seed) if n_boot > 1 else None
    for k, level in enumerate(levels):
        out["by_group"][level] = {
            "n": int((g == level).sum()),
            "value": _num(by_group.iloc[k]),
            "ci": None if cis is None else cis["by_group"][k],
        }
    if len(levels) >= 2:
        out["gap"] = _num(frame.difference()["value"])
        out["gap_ci"] = None if cis is None else cis["gap"]
    return out


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


def outcome_metrics(
    predicted: Sequence[int],
    groups: Sequence[str | None],
    true: Sequence[int] | None = None,
    *,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Selection rates of a favourable outcome by group and the parity metrics on them.

    Args:
        predicted: 1 where the model's output shows the favourable outcome, else 0.
        groups: The row's group, or None when unknown (left out).
        true: 1 where the target shows the outcome; enables equalized odds.
        n_boot: Bootstrap resamples for the selection-rate CIs.
        seed: Bootstrap seed.

    Returns:
        ``selection_rate`` {group: {n, value, ci}}, ``demographic_parity_difference``,
        ``demographic_parity_ratio``, ``four_fifths_rule`` (ratio >= 0.8) and, with ``true``,
        ``equalized_odds_difference`` (None when a group lacks positives or negatives).
    """
    from fairlearn.metrics import (
        demographic_parity_difference,
        demographic_parity_ratio,
        equalized_odds_difference,
    )

    keep = [i for i, g in enumerate(groups) if g is not None]
    rates = group_scores([predicted[i] for i in keep], [groups[i] for i in keep],
                         n_boot=n_boot, seed=seed)
    out: dict[str, Any] = {
        "n": len(keep),
        "selection_rate": rates["by_group"],
        "demographic_parity_difference": None,
        "demographic_parity_ratio": None,
        "four_fifths_rule": None,
        "equalized_odds_difference": None,
    }
    if len(rates["by_group"]) < 2:
        return out
    y_pred = np.asarray([int(predicted[i]) for i in keep])
    sens = np.asarray([str(groups[i]) for i in keep])
    y_true = np.asarray([int(true[i]) for i in keep]) if true is not None else np.zeros_like(y_pred)
    dpd = demographic_parity_difference(y_true, y_pred, sensitive_features=sens)
    if y_pred.sum() == 0:
        dpr = 1.0  # nobody selected in any group: parity holds, fairlearn's 0/0 is NaN
    else:
        dpr = demographic_parity_ratio(y_true, y_pred, sensitive_features=sens)
    out["demographic_parity_difference"] = _num(dpd)
    out["demographic_parity_ratio"] = _num(dpr)
    out["four_fifths_rule"] = None if _num(dpr) is None else bool(dpr >= FOUR_FIFTHS)
    if true is not None and _defined_odds(y_true, sens):
        out["equalized_odds_difference"] = _num(
            equalized_odds_difference(y_true, y_pred, sensitive_features=sens)
        )
    return out


def _defined_odds(y_true: np.ndarray, sens: np.ndarray) -> bool:
    """Equalized odds needs true positives and true negatives in every group."""
    return all(
        0 < y_true[sens == level].sum() < (sens == level).sum() for level in np.unique(sens)
    )


# ----------------------------------------------------------------------------- counterfactual


def flip_rate(original: Sequence[Any], variants: Sequence[Sequence[Any]]) -> float | None:
    """Share of (row, variant) pairs whose extracted decision differs from the original's.

    Args:
        original: The decision extracted from each row's original answer (None if absent).
        variants: For each row, the decisions extracted from its variants' answers.

    Returns:
        The flip rate, or None when there is no variant at all.
    """
    pairs = [(o, v) for o, vs in zip(original, variants, strict=True) for v in vs]
    if not pairs:
        return None
    return sum(o != v for o, v in pairs) / len(pairs)


def worst_case_accuracy(
    original: Sequence[float], variants: Sequence[Sequence[float]]
) -> float | None:
    """HELM-style worst case: the mean over rows of the minimum score over original + variants.

    Rows without variants count with their original score.
    """
    if not original:
        return None
    return float(np.mean([min([o, *vs]) for o, vs in zip(original, variants, strict=True)]))


# ----------------------------------------------------------------------------- probes


def stereotype_preference(
    ll_more: Sequence[float],
    ll_less: Sequence[float],
    *,
    n_boot: int = 1000,
    seed: int = 0,
    bootstrap: Callable[..., tuple[float, float]] | None = None,
) -> dict[str, Any]:
    """Share of pairs where the stereotypical sentence gets the higher log-likelihood.

    A tie counts one half. 0.5 is ideal; above it the model prefers stereotypes.

    Args:
        ll_more: Log-likelihood of the more stereotypical sentence of each pair.
        ll_less: Log-likelihood of the less stereotypical sentence.
        n_boot: Bootstrap resamples for the CI.
        seed: Bootstrap seed.
        bootstrap: ``f(values, n_boot=, seed=) -> (lo, hi)``; defaults to
            :func:`evalsuite.stats.bootstrap_ci`.

    Returns:
        ``n``, ``preference`` (0..1), ``ci`` [lo, hi].
    """
    more = np.asarray(ll_more, dtype=float)
    less = np.asarray(ll_less, dtype=float)
    if more.shape != less.shape:
        raise ValueError("ll_more and ll_less must have the same length")
    if more.size == 0:
        return {"n": 0, "preference": None, "ci": None}
    wins = np.where(more > less, 1.0, np.where(more == less, 0.5, 0.0))
    if bootstrap is None:
        bootstrap = _default_bootstrap()
    lo, hi = bootstrap(wins, n_boot=n_boot, seed=seed)
    return {"n": int(wins.size), "preference": float(wins.mean()), "ci": [_num(lo), _num(hi)]}


def _default_bootstrap() -> Callable[..., tuple[float, float]]:
    return bootstrap_ci


# ----------------------------------------------------------------------------- extraction


def has_outcome(text: str | None, pattern: str | re.Pattern[str]) -> int:
    """1 when the favourable-outcome pattern occurs in ``text``, else 0."""
    if not text:
        return 0
    return int(re.search(pattern, text) is not None)


# ----------------------------------------------------------------------------- variants

_SEP = "\n\u241e\n"
"""Joins a row's texts so one lexicon call swaps them with one consistent name mapping; the
lexicon only rewrites ASCII words, so the separator survives."""


def make_variants(
    prompt: Sequence[Mapping[str, str]], target: str, axis: str, k: int = 3
) -> list[tuple[list[dict[str, str]], str]]:
    """Counterfactual variants of a prompt and its target along ``axis`` (THE lexicon).

    Every message and the target are swapped together, so a name in the prompt and the same
    name in the expected answer change alike.

    Args:
        prompt: Chat messages without the final assistant turn.
        target: The expected answer.
        axis: ``gender`` (terms, pronouns and names) or ``name`` (first names only).
        k: Variants per row on the ``name`` axis.

    Returns:
        (messages, target) per variant; empty when the row mentions no demographic term.
    """
    texts = [m["content"] for m in prompt] + [target]
    if any(_SEP in t for t in texts):  # cannot join safely: swap each text alone
        swapped = [counterfactual_variants(t, axis, k) for t in texts]
        n = max((len(s) for s in swapped), default=0)
        columns = [[s[i] if i < len(s) else t for s, t in zip(swapped, texts, strict=True)]
                   for i in range(n)]
    else:
        columns = [v.split(_SEP) for v in counterfactual_variants(_SEP.join(texts), axis, k)]
    out = []
    for column in columns:
        messages = [{**m, "content": c} for m, c in zip(prompt, column[:-1], strict=True)]
        out.append((messages, column[-1]))
    return out


# ----------------------------------------------------------------------------- probes (engine)


def score_probes(
    engine: Engine, pairs: Sequence[ProbePair], models: Sequence[str], *, n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """Score stereotype probe pairs with every model in one batch of log-likelihoods.

    Each sentence is scored whole, after the tokenizer's start token (its end token when it has
    none), as lm-evaluation-harness scores CrowS-Pairs for causal models.

    Returns:
        model -> ``n``, ``preference``, ``ci``, ``by_bias_type`` {type: {n, preference}}.
    """
    if not pairs:
        return {}
    tok = engine.tokenizer
    context = tok.bos_token or tok.eos_token or "\n"
    sentences = [p.sent_more for p in pairs] + [p.sent_less for p in pairs]
    scores = engine.loglikelihood([context] * len(sentences), sentences, list(models))
    n = len(pairs)
    out = {}
    for j, model in enumerate(models):
        more = [scores[i][j] for i in range(n)]
        less = [scores[n + i][j] for i in range(n)]
        result = stereotype_preference(more, less, n_boot=n_boot, seed=seed)
        by_type: dict[str, dict[str, Any]] = {}
        for bias_type in sorted({p.bias_type for p in pairs}):
            idx = [i for i, p in enumerate(pairs) if p.bias_type == bias_type]
            wins = [1.0 if more[i] > less[i] else 0.5 if more[i] == less[i] else 0.0 for i in idx]
            by_type[bias_type] = {"n": len(idx), "preference": float(np.mean(wins))}
        result["by_bias_type"] = by_type
        out[model] = result
    return out


# ----------------------------------------------------------------------------- evaluation


def row_groups(task: TaskSpec, rows: Sequence[EvalRow]) -> tuple[list[str | None], str]:
    """Each row's group: the task's ``group_field`` when set, else inferred by the lexicon.

    Returns:
        The groups and where they came from (``field:<name>`` or ``lexicon``).
    """
    if task.group_field:
        return [r.group for r in rows], f"field:{task.group_field}"
    texts = [" ".join(m["content"] for m in r.prompt if m["role"] == "user") for r in rows]
    return [infer_group(t) for t in texts], "lexicon"


@dataclass
class _Decider:
    """Extracts what a counterfactual must not change: each applicable label and the outcome."""

    labels: list[tuple[str, str, Any]]  # (scorer name, pattern, where)
    exact: list[tuple[str, Any]]  # (scorer name, where) of exact_match scorers
    outcome_pattern: str | None

    def applicable(self, row: EvalRow) -> list[tuple[str, str]]:
        return [(name, pattern) for name, pattern, cond in self.labels
                if matches(row.meta, cond) and extract(row.target, pattern) != NONE]

    def decision(self, row: EvalRow, output: str) -> tuple[Any, ...]:
        labels = [extract(output, pattern) for _, pattern in self.applicable(row)]
        if self.outcome_pattern is not None:
            labels.append(has_outcome(output, self.outcome_pattern))
        if not labels:  # nothing to extract: the whole (normalised) answer must not change
            labels.append(" ".join(output.split()).lower())
        return tuple(labels)

    def scores(self, items: Sequence[tuple[EvalRow, str, str]]) -> dict[str, dict[int, float]]:
        """Per binary scorer, item position -> 0/1 score, for the items the scorer applies to.

        Items are (row, output, target); scored by the task's own ``evaluate`` modules, in one
        call per scorer.
        """
        out: dict[str, dict[int, float]] = {}
        for name, pattern, cond in self.labels:
            idx = [k for k, (row, _, _) in enumerate(items)
                   if matches(row.meta, cond) and extract(row.target, pattern) != NONE]
            got = compute("label", predictions=[items[k][1] for k in idx],
                          references=[items[k][2] for k in idx], pattern=pattern)["scores"] \
                if idx else []
            out[name] = dict(zip(idx, got, strict=True))
        for name, cond in self.exact:
            idx = [k for k, (row, _, _) in enumerate(items) if matches(row.meta, cond)]
            got = compute("exact_match", predictions=[items[k][1] for k in idx],
                          references=[items[k][2] for k in idx])["scores"] if idx else []
            out[name] = dict(zip(idx, got, strict=True))
        return out

    def correctness(self, items: Sequence[tuple[EvalRow, str, str]]) -> list[float | None]:
        """Per item: 1.0 if every applicable label scorer is right, else 0.0.

        Exact-match scorers count only when the task has no label scorer (an exact answer is a
        stricter test than the decision a counterfactual must keep). None when no scorer
        applies to the item's row.
        """
        by_scorer = self.scores(items)
        names = [n for n, _, _ in self.labels] or [n for n, _ in self.exact]
        out = []
        for k in range(len(items)):
            verdicts = [by_scorer[n][k] for n in names if k in by_scorer[n]]
            out.append(float(min(verdicts)) if verdicts else None)
        return out


def _prompt_key(messages: Sequence[Mapping[str, str]]) -> str:
    import json

    return json.dumps([[m["role"], m["content"]] for m in messages])


def _user_text(messages: Sequence[Mapping[str, str]]) -> str:
    return " ".join(m["content"] for m in messages if m["role"] == "user")


def _similarities(pairs: Sequence[tuple[str, str]]) -> list[float]:
    """Cosine similarity of each (original, variant) answer pair, by the semantic metric.

    The evalsuite's semantic-similarity metric embeds with MiniLM. Identical answers score 1
    without being embedded.
    """
    unique = list(dict.fromkeys((a, b) for a, b in pairs if a != b))
    got: dict[tuple[str, str], float] = {}
    if unique:
        scores = compute("semantic_similarity", predictions=[a for a, _ in unique],
                         references=[b for _, b in unique])["scores"]
        got = dict(zip(unique, scores, strict=True))
    return [1.0 if a == b else float(got[(a, b)]) for a, b in pairs]


def _ci(values: Sequence[float], n_boot: int, seed: int) -> list[float | None] | None:
    if not values:
        return None
    lo, hi = bootstrap_ci(list(values), n_boot=n_boot, seed=seed)
    return [_num(lo), _num(hi)]


@dataclass
class _Variant:
    axis: str
    row: EvalRow
    index: int
    prompt: list[dict[str, str]]
    target: str
    key: str


def _plan_variants(rows: Sequence[EvalRow], scope: Sequence[EvalRow], axes: Sequence[str],
                   k: int) -> tuple[list[_Variant], dict[str, int], list[str], dict[str, list]]:
    """Every variant of every in-scope row, and which variant prompts need generating.

    A variant whose prompt equals an original row's (the held-out pair partner) reuses that
    row's answer: greedy decoding would give the same text again.
    """
    originals = {}
    for r in rows:
        originals.setdefault(_prompt_key(r.prompt), r.index)
    plan, new = [], {}
    for axis in axes:
        for r in scope:
            for v, (messages, target) in enumerate(make_variants(r.prompt, r.target, axis, k)):
                key = _prompt_key(messages)
                plan.append(_Variant(axis, r, v, messages, target, key))
                if key not in originals:
                    new.setdefault(key, messages)
    return plan, originals, list(new), new


@dataclass
class _Answer:
    """One model's answer to one counterfactual variant, with everything judged on it."""

    variant: _Variant
    output: str
    decision: tuple[Any, ...]
    flipped: bool
    correct: float | None = None
    similarity: float = 1.0


@dataclass
class _Context:
    """What every model's fairness is computed from (shared across models)."""

    task: TaskSpec
    rows: Sequence[EvalRow]
    scope: list[EvalRow]
    groups: list[str | None]
    group_source: str
    decider: _Decider
    n_boot: int
    seed: int
    max_examples: int


def evaluate_fairness(
    engine: Engine,
    task: TaskSpec,
    rows: Sequence[EvalRow],
    predictions: Mapping[str, Sequence[str]],
    models: Sequence[str],
    *,
    progress: bool = False,
) -> dict[str, FairnessResult]:
    """Fairness of every model on the task's held-out rows.

    Args:
        engine: The :class:`evalsuite.engine.Engine` holding the base and the adapters.
        task: The task (its ``fairness`` block drives this; axes were checked at load).
        rows: The task's rows.
        predictions: Engine model name -> the model's answer to each row, in row order.
        models: Engine model names to evaluate (``__base__`` and adapter names).
        progress: Show a progress bar while generating the counterfactual variants.

    Returns:
        Engine model name -> :class:`FairnessResult`. The block holds ``groups`` (per-group
        accuracy, selection rates, parity), ``counterfactual`` (per axis), ``stereotype``,
        ``training_data`` (the run's data audit) and ``predictions`` (one line per variant
        answer, for predictions.jsonl). Empty when the task has no fairness block.
    """
    spec = task.fairness
    if spec is None:
        return {}
    models = list(models)
    groups, group_source = row_groups(task, rows)
    ctx = _Context(
        task, rows, [r for r in rows if matches(r.meta, spec.where)], groups, group_source,
        _Decider(labels=[(s.name, s.pattern, s.where) for s in task.scorers if s.type == "label"],
                 exact=[(s.name, s.where) for s in task.scorers if s.type == "exact_match"],
                 outcome_pattern=spec.outcome_pattern),
        task.stats.n_boot, task.stats.seed, spec.max_examples)
    out = {m: FairnessResult() for m in models}
    # 1. Group metrics on the original answers.
    for m in models:
        out[m].block["groups"] = _group_block(ctx, predictions[m], out[m].flat)
    # 2. Counterfactual variants, every model in the same mixed batches.
    answers, counts = _answer_variants(engine, ctx, predictions, models,
                                       spec.name_k, progress)
    for m in models:
        cf, lines = _counterfactual_block(ctx, predictions[m], answers[m], out[m].flat)
        out[m].block["counterfactual"] = {**cf, **counts}
        out[m].block["predictions"] = lines
    # 3. Stereotype probes: log-likelihood of paired sentences.
    base_dir = Path(task.path).parent if getattr(task, "path", None) else None
    pairs = load_probes(spec.probes, base_dir=base_dir)
    probes = score_probes(engine, pairs, models, n_boot=ctx.n_boot, seed=ctx.seed) if pairs else {}
    for m in models:
        if m in probes:
            out[m].block["stereotype"] = {"probes": str(spec.probes), **probes[m]}
            if probes[m]["preference"] is not None:
                out[m].flat["stereotype.preference"] = probes[m]["preference"]
    # 4. The training data's own bias audit, beside the model's numbers.
    for m in models:
        out[m].block["training_data"] = training_data_audit(engine, m)
    return out


def _group_block(ctx: _Context, outputs: Sequence[str], flat: dict[str, float]) -> dict[str, Any]:
    """Per-group accuracy of every binary scorer, and the outcome's selection rates."""
    spec = ctx.task.fairness
    by_scorer = ctx.decider.scores([(r, outputs[r.index], r.target) for r in ctx.rows])
    accuracy = {
        name: group_scores(list(s.values()), [ctx.groups[k] for k in s], n_boot=ctx.n_boot,
                           seed=ctx.seed)
        for name, s in by_scorer.items()
    }
    gaps = {name: a["gap"] for name, a in accuracy.items() if a["gap"] is not None}
    for name, gap in gaps.items():
        flat[f"group_accuracy_gap.{name}"] = gap
    if gaps:
        flat["group_accuracy_gap"] = max(gaps.values())
    block: dict[str, Any] = {"source": ctx.group_source, "accuracy": accuracy, "outcome": None}
    if spec.outcome_pattern is None:
        return block
    outcome = outcome_metrics(
        [has_outcome(outputs[r.index], spec.outcome_pattern) for r in ctx.scope],
        [ctx.groups[r.index] for r in ctx.scope],
        [has_outcome(r.target, spec.outcome_pattern) for r in ctx.scope],
        n_boot=ctx.n_boot, seed=ctx.seed,
    )
    outcome.update(pattern=spec.outcome_pattern, where=spec.where)
    block["outcome"] = outcome
    for key in ("demographic_parity_difference", "demographic_parity_ratio",
                "equalized_odds_difference"):
        if outcome[key] is not None:
            flat[key] = outcome[key]
    for g, rate in outcome["selection_rate"].items():
        flat[f"selection_rate.{g}"] = rate["value"]
    return block


def _answer_variants(
    engine: Engine, ctx: _Context, predictions: Mapping[str, Sequence[str]],
    models: list[str], name_k: int, progress: bool,
) -> tuple[dict[str, list[_Answer]], dict[str, int]]:
    """Every model's answer to every variant (generated in one mixed batch, or reused), judged.

    Returns:
        model -> one :class:`_Answer` per variant, and the generated / reused counts.
    """
    axes = list(ctx.task.fairness.counterfactual_axes)
    plan, originals, keys, new = _plan_variants(ctx.rows, ctx.scope, axes, name_k)
    gen = ctx.task.generation
    config = GenerationConfig(gen.max_new_tokens, gen.temperature, gen.top_p, gen.seed)
    generated = engine.generate([new[k] for k in keys], models, config, progress=progress) \
        if keys else []
    position = {k: i for i, k in enumerate(keys)}
    answers = {}
    for j, m in enumerate(models):
        own = predictions[m]
        texts = [generated[position[v.key]][j].text if v.key in position
                 else own[originals[v.key]] for v in plan]
        recs = [_Answer(v, o, ctx.decider.decision(v.row, o), False)
                for v, o in zip(plan, texts, strict=True)]
        original = {r.index: ctx.decider.decision(r, own[r.index]) for r in {v.row.index: v.row
                                                                            for v in plan}.values()}
        correct = ctx.decider.correctness([(a.variant.row, a.output, a.variant.target)
                                           for a in recs])
        sims = _similarities([(own[a.variant.row.index], a.output) for a in recs])
        for a, ok, sim in zip(recs, correct, sims, strict=True):
            a.flipped = original[a.variant.row.index] != a.decision
            a.correct, a.similarity = ok, sim
        answers[m] = recs
    counts = {"n_generated": len(keys), "n_reused": len(plan) - sum(v.key in position
                                                                    for v in plan)}
    return answers, counts


def _counterfactual_block(
    ctx: _Context, outputs: Sequence[str], answers: list[_Answer], flat: dict[str, float],
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Per-axis flip rates, similarity and worst-case accuracy; one prediction line per answer."""
    cf: dict[str, Any] = {"axes": {}}
    lines = []
    for axis in ctx.task.fairness.counterfactual_axes:
        on_axis = [a for a in answers if a.variant.axis == axis]
        result = _axis_result(ctx, outputs, on_axis)
        cf["axes"][axis] = result
        for key in ("flip_rate", "similarity", "worst_case_accuracy"):
            if result[key] is not None:
                flat[f"counterfactual.{axis}.{key}"] = result[key]
        lines += [_prediction_line(ctx, a) for a in on_axis]
    for key, worst in (("flip_rate", max), ("similarity", min), ("worst_case_accuracy", min)):
        values = [a[key] for a in cf["axes"].values() if a[key] is not None]
        if values:
            flat[f"counterfactual.{key}"] = worst(values)
    return cf, lines


def _axis_result(ctx: _Context, outputs: Sequence[str], answers: list[_Answer]) -> dict[str, Any]:
    """One axis of one model: flips, their CI, per-label flips, similarity, worst case."""
    by_row: dict[int, list[_Answer]] = {}
    for a in answers:
        by_row.setdefault(a.variant.row.index, []).append(a)
    varied = [r for r in ctx.scope if r.index in by_row]
    orig_dec = {r.index: ctx.decider.decision(r, outputs[r.index]) for r in varied}
    orig_ok = ctx.decider.correctness([(r, outputs[r.index], r.target) for r in varied])
    scored = [(ok, [a.correct for a in by_row[r.index] if a.correct is not None])
              for r, ok in zip(varied, orig_ok, strict=True) if ok is not None]
    flips = [float(a.flipped) for a in answers]
    examples = [_example(ctx, outputs, a, orig_dec[a.variant.row.index])
                for a in answers if a.flipped][:ctx.max_examples]
    return {
        "n_rows": len(varied),
        "n_variants": len(answers),
        "flip_rate": flip_rate([orig_dec[r.index] for r in varied],
                               [[a.decision for a in by_row[r.index]] for r in varied]),
        "flip_rate_ci": _ci(flips, ctx.n_boot, ctx.seed),
        "flip_rate_by_label": _flips_by_label(ctx, outputs, answers),
        "similarity": _num(np.mean([a.similarity for a in answers])) if answers else None,
        "original_accuracy": _num(np.mean([o for o, _ in scored])) if scored else None,
        "worst_case_accuracy": worst_case_accuracy([o for o, _ in scored],
                                                   [vs for _, vs in scored]),
        "n_flipped": int(sum(flips)),
        "examples": examples,
    }


def _flips_by_label(ctx: _Context, outputs: Sequence[str],
                    answers: list[_Answer]) -> dict[str, float]:
    """The flip rate of each label scorer on its own, and of the outcome."""
    out = {}
    for name, pattern, _ in ctx.decider.labels:
        pairs = [(extract(outputs[a.variant.row.index], pattern), extract(a.output, pattern))
                 for a in answers
                 if any(n == name for n, _ in ctx.decider.applicable(a.variant.row))]
        if pairs:
            out[name] = float(np.mean([x != y for x, y in pairs]))
    pattern = ctx.task.fairness.outcome_pattern
    if pattern is not None and answers:
        out["outcome"] = float(np.mean([
            has_outcome(outputs[a.variant.row.index], pattern) != has_outcome(a.output, pattern)
            for a in answers]))
    return out


def _example(ctx: _Context, outputs: Sequence[str], a: _Answer,
             original_decision: tuple[Any, ...]) -> dict[str, Any]:
    row = a.variant.row
    return {
        "id": row.id, "group": ctx.groups[row.index],
        "prompt": _user_text(row.prompt), "variant_prompt": _user_text(a.variant.prompt),
        "output": outputs[row.index], "variant_output": a.output,
        "decision": list(original_decision), "variant_decision": list(a.decision),
    }


def _prediction_line(ctx: _Context, a: _Answer) -> dict[str, Any]:
    v = a.variant
    return {
        "row": v.row.index, "id": v.row.id,
        "group": infer_group(_user_text(v.prompt)),
        "prompt": v.prompt[-1]["content"] if v.prompt else "", "output": a.output,
        "target": v.target, "labels": {
            name: extract(a.output, pattern) for name, pattern in ctx.decider.applicable(v.row)},
        "scores": {}, "variant": {"axis": v.axis, "index": v.index, "flipped": a.flipped,
                                  "decision": list(a.decision)},
    }


def training_data_audit(engine: Engine, model: str) -> dict[str, Any] | None:
    """The bias audit of the data an adapter was trained on, from its run directory.

    Reads ``data_report.json`` (the full validation report) and falls back to the summary in
    ``run.json``. None for the base model or an adapter folder outside a run directory.
    """
    folder = getattr(engine, "adapter_dirs", {}).get(model)
    if folder is None:
        return None
    run_dir = RunDir.containing(Path(folder).parent, folder)
    if run_dir is None:
        return None
    out: dict[str, Any] = {"run_dir": str(run_dir.path)}
    try:
        run = run_dir.read_info()
    except InputError:
        run = {}
    out["train_data"] = run.get("train_data")
    out["data_fingerprint"] = run.get("data_fingerprint")
    bias = (run_dir.read_data_report() or {}).get("bias")
    if bias is None:
        bias = (run.get("data_report") or {}).get("bias")
    if bias:
        keep = ("flagged", "group_source", "outcome_source", "outcome_rates", "representation",
                "test", "max_rate_gap", "reasons")
        out["bias"] = {k: bias[k] for k in keep if k in bias}
    else:
        out["bias"] = None
    return out
