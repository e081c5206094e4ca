"""Counterfactual fairness: variants per axis, every model's answers to them, flip rates.

Every held-out prompt with its demographic terms swapped by THE lexicon
(``finetune.data.lexicon``); all models answer every variant in one mixed batch; the flip rate
of the extracted labels and outcome, the semantic similarity of original and swapped answers,
and HELM-style worst-case accuracy (a row counts only if it is right in every variant).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from evalsuite.engine import Engine, GenerationConfig
from evalsuite.fairness.context import _Context
from evalsuite.fairness.sentiment import sentiment_scores
from evalsuite.labels import extract
from evalsuite.metrics import compute
from evalsuite.task import EvalRow
from finetune.data.lexicon import counterfactual_variants, infer_group

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
        axis: ``gender`` (terms, pronouns and names), ``name`` (first names only), or any
            other axis the lexicon knows (``race``, ``age``, ``religion``, a user's).
        k: Variants per row on the ``name`` axis (names) and on many-group axes (groups).

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
    sentiment: float = 0.0


def _prompt_key(messages: Sequence[Mapping[str, str]]) -> str:
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
        tones = sentiment_scores([a.output for a in recs])
        for a, ok, sim, tone in zip(recs, correct, sims, tones, strict=True):
            a.flipped = original[a.variant.row.index] != a.decision
            a.correct, a.similarity, a.sentiment = ok, sim, tone
        answers[m] = recs
    counts = {"n_generated": len(keys), "n_reused": len(plan) - sum(v.key in position
                                                                    for v in plan)}
    return answers, counts


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
        "group": infer_group(_user_text(v.prompt), "gender" if v.axis == "name" else v.axis),
        "prompt": v.prompt[-1]["content"] if v.prompt else "", "output": a.output,
        "target": v.target, "labels": {
            name: extract(a.output, pattern) for name, pattern in ctx.decider.applicable(v.row)},
        "scores": {}, "variant": {"axis": v.axis, "index": v.index, "flipped": a.flipped,
                                  "decision": list(a.decision)},
    }
