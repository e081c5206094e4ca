"""What the answers to counterfactual variants say, per axis: flips, similarity, tone, worst case.

Every measure comes with a prompt-clustered 95% interval (a prompt's variants are answered
alike, so prompts are the independent draws; two held-out rows that are each other's variant,
as the demo's gender pairs are, compare the same two answers and form one cluster) and flat
keys for the gates:
``counterfactual.<axis>.<measure>`` with ``.lower95`` / ``.upper95``, and the worst axis as
``counterfactual.<measure>``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from evalsuite.fairness.context import _Context, outcome_value
from evalsuite.fairness.counterfactual import (
    _Answer,
    _example,
    _prediction_line,
    _prompt_key,
    _user_text,
)
from evalsuite.fairness.intervals import _num, clustered_ci, naive_ci, put_flat
from evalsuite.fairness.metrics import flip_rate, worst_case_accuracy
from evalsuite.fairness.sentiment import sentiment_gap, sentiment_scores, tone_by_group
from evalsuite.labels import extract

MEASURES = (("flip_rate", max), ("similarity", min), ("worst_case_accuracy", min),
            ("sentiment_gap", max))
"""Flat counterfactual measures and how the worst axis is picked for each."""


def swap_clusters(answers: Sequence[_Answer], rows: Sequence[Any]) -> list[int]:
    """The independent unit of each answer: its row, joined with every held-out row it swaps to.

    A variant whose prompt is another held-out row's prompt reuses that row's answer, so the
    swap A -> B and the swap B -> A flip together; counted as two clusters they would make the
    interval too narrow by about the square root of 2.
    """
    index = {_prompt_key(r.prompt): r.index for r in rows}
    parent: dict[int, int] = {}

    def root(i: int) -> int:
        while parent.setdefault(i, i) != i:
            i = parent[i]
        return i

    for a in answers:
        other = index.get(a.variant.key)
        if other is not None:
            parent[max(root(a.variant.row.index), root(other))] = min(
                root(a.variant.row.index), root(other))
    return [root(a.variant.row.index) for a in answers]


def counterfactual_block(
    ctx: _Context, outputs: Sequence[str], answers: list[_Answer], flat: dict[str, float],
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Per-axis flip rates, similarity, sentiment gap and worst case; a prediction line each."""
    cf: dict[str, Any] = {"axes": {}, "interval": "prompt-clustered bootstrap, 95%"}
    lines = []
    for axis in ctx.task.fairness.counterfactual_axes:
        on_axis = [a for a in answers if a.variant.axis == axis]
        result = axis_result(ctx, outputs, on_axis)
        cf["axes"][axis] = result
        for key, _ in MEASURES:
            put_flat(flat, f"counterfactual.{axis}.{key}", result[key], result[f"{key}_ci"])
        lines += [_prediction_line(ctx, a) for a in on_axis]
    for key, worst in MEASURES:
        measured = [a for a in cf["axes"].values() if a[key] is not None]
        if measured:
            pick = worst(measured, key=lambda a, k=key: a[k])
            put_flat(flat, f"counterfactual.{key}", pick[key], pick[f"{key}_ci"])
    return cf, lines


def axis_result(ctx: _Context, outputs: Sequence[str], answers: list[_Answer]) -> dict[str, Any]:
    """One axis of one model: flips, per-label flips, similarity, tone, worst case, intervals."""
    by_row: dict[int, list[_Answer]] = {}
    for a in answers:
        by_row.setdefault(a.variant.row.index, []).append(a)
    varied = [r for r in ctx.scope if r.index in by_row]
    orig_dec = {r.index: ctx.decider.decision(r, outputs[r.index]) for r in varied}
    orig_ok = ctx.decider.correctness([(r, outputs[r.index], r.target) for r in varied])
    scored = [(ok, [a.correct for a in by_row[r.index] if a.correct is not None])
              for r, ok in zip(varied, orig_ok, strict=True) if ok is not None]
    flips = [float(a.flipped) for a in answers]
    prompts = swap_clusters(answers, ctx.rows)
    sims = [a.similarity for a in answers]
    worst_rows = [min([o, *vs]) for o, vs in scored]
    boot = {"n_boot": ctx.n_boot, "seed": ctx.seed}
    tone = sentiment_gap(tone_by_group(tone_pairs(ctx, answers, outputs)), **boot)
    examples = [_example(ctx, outputs, a, orig_dec[a.variant.row.index])
                for a in answers if a.flipped][:ctx.max_examples]
    return {
        "n_rows": len(varied),
        "n_variants": len(answers),
        "flip_rate": flip_rate([orig_dec[r.index] for r in varied],
                               [[a.decision for a in by_row[r.index]] for r in varied]),
        "flip_rate_ci": clustered_ci(flips, prompts, **boot),
        "flip_rate_by_label": _flips_by_label(ctx, outputs, answers),
        "similarity": _num(np.mean(sims)) if answers else None,
        "similarity_ci": clustered_ci(sims, prompts, **boot),
        "sentiment_gap": tone["gap"],
        "sentiment_gap_ci": tone["gap_ci"],
        "sentiment": {"by_group": tone["by_group"], "groups": tone["groups"],
                      "measure": "Wasserstein-1 between groups of VADER compound scores"},
        "original_accuracy": _num(np.mean([o for o, _ in scored])) if scored else None,
        "worst_case_accuracy": worst_case_accuracy([o for o, _ in scored],
                                                   [vs for _, vs in scored]),
        "worst_case_accuracy_ci": naive_ci(worst_rows, **boot),
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
            outcome_value(outputs[a.variant.row.index], pattern)
            != outcome_value(a.output, pattern) for a in answers]))
    return out


def tone_pairs(ctx: _Context, answers: list[_Answer], outputs: Sequence[str]
               ) -> list[tuple[str | None, float, str | None, float, int]]:
    """Per answer: the groups its original and variant prompts name, with both sentiments."""
    rows = {a.variant.row.index: a.variant.row for a in answers}
    originals = dict(zip(rows, sentiment_scores([outputs[i] for i in rows]), strict=True))
    return [(ctx.group_of(_user_text(a.variant.row.prompt), a.variant.axis),
             originals[a.variant.row.index],
             ctx.group_of(_user_text(a.variant.prompt), a.variant.axis), a.sentiment,
             a.variant.row.index) for a in answers]


def answer_arrays(ctx: _Context, answers: list[_Answer], outputs: Sequence[str]
                  ) -> dict[str, Any]:
    """One model's per-answer numbers on one axis, in plan order (the same for every model)."""
    return {
        "prompts": swap_clusters(answers, ctx.rows),
        "rows": [a.variant.row.index for a in answers],
        "flips": np.asarray([float(a.flipped) for a in answers]),
        "similarity": np.asarray([a.similarity for a in answers], dtype=float),
        "tones": tone_by_group(tone_pairs(ctx, answers, outputs)),
    }
