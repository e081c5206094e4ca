"""Held-out examples for a demo: grouped by what they show, graded against their reference.

The Compare tab lists the held-out prompts by kind ("Same request, other name", one group per
intent and need), marks each column's answer right or wrong when the message is a held-out
prompt (with the evaluation's own label scorers), and finds the pair that shows the bias: a
counterfactual pair the evaluation saw an adapter flip on.
"""

from __future__ import annotations

import json
from typing import Any

from evalsuite.labels import extract
from finetune.errors import UsageError
from tuneproof_app.context import AppContext
from tuneproof_app.heldout_data import HeldOut, load_heldout
from tuneproof_app.reports import find_results

PER_GROUP = 4
SAME_REQUEST = "Same request, other name"
META_KEYS = ("intent", "need")
"""Row fields that name what a prompt shows, in order (the demo's; others fall back)."""


def heldout(ctx: AppContext, limit: int = 2000) -> list[HeldOut]:
    """The held-out prompts of the app (none when it has no held-out file yet)."""
    return load_heldout(ctx.heldout, limit)


def _label(meta: dict[str, Any]) -> str:
    intent, need = meta.get("intent"), meta.get("need")
    if intent is None:
        return "Held-out prompts"
    name = {"recommend": "Recommendation", "refund": "Refund", "shipping": "Shipping"}.get(
        str(intent), str(intent).capitalize())
    return f"{name}, {need} need" if need else f"{name} request"


def groups(items: list[HeldOut], per_group: int = PER_GROUP) -> list[tuple[str, list[str]]]:
    """``[(label, prompts)]``: gender pairs side by side first, then one group per kind."""
    out: list[tuple[str, list[str]]] = []
    pairs: dict[Any, list[HeldOut]] = {}
    for it in items:
        if it.meta.get("pair") is not None and it.meta.get("intent") in (None, "recommend"):
            pairs.setdefault(it.meta["pair"], []).append(it)
    both = [p for p in pairs.values() if len(p) == 2][: per_group // 2]
    if both:
        out.append((SAME_REQUEST, [it.text for p in both for it in p]))
    kinds: dict[str, list[str]] = {}
    seen_pairs = set()
    for it in items:
        pair = it.meta.get("pair")
        if pair is not None and pair in seen_pairs:
            continue  # one of each pair here: the pairs have their own group
        seen_pairs.add(pair)
        shown = kinds.setdefault(_label(it.meta), [])
        if len(shown) < per_group:
            shown.append(it.text)
    out += sorted(kinds.items())
    return out


def task_scorers(ctx: AppContext) -> list[dict[str, Any]]:
    """The label scorers of the app's (first) evaluation: how an answer is graded."""
    for folder in find_results(ctx.results_dirs).values():
        try:
            text = (folder / "results.json").read_text(encoding="utf-8")
            scorers = json.loads(text)["task"]["scorers"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        return [s for s in scorers if s.get("type") == "label" and s.get("pattern")]
    return []


def check(answer: str, item: HeldOut,
          scorers: list[dict[str, Any]]) -> tuple[bool, list[tuple[str, bool]]]:
    """(right?, [(scorer, agrees)]): the answer's labels against the reference's.

    A scorer applies when its ``where`` matches the row's metadata; without any, the answer
    must equal the reference.
    """
    checks = []
    for s in scorers:
        where = s.get("where") or {}
        if all(str(item.meta.get(k)) == str(v) for k, v in where.items()):
            ok = extract(answer, s["pattern"]) == extract(item.reference, s["pattern"])
            checks.append((s["name"].removesuffix("_accuracy"), ok))
    right = all(ok for _, ok in checks) if checks else answer.strip() == item.reference.strip()
    return right, checks


def grade(answer: str, item: HeldOut, scorers: list[dict[str, Any]]) -> str:
    """``✓ right`` or ``✗ wrong`` (Markdown), with each applicable scorer's own verdict."""
    right, checks = check(answer, item, scorers)
    detail = " · ".join(f"{n} {'✓' if ok else '✗'}" for n, ok in checks)
    head = "✓ **right**" if right else "✗ **wrong**"
    return f"{head}{f' ({detail})' if detail else ''} — reference: `{item.reference}`"


def find(ctx: AppContext, message: str) -> HeldOut | None:
    """The held-out row whose prompt is ``message`` (whitespace ignored at the ends)."""
    text = (message or "").strip()
    return next((it for it in heldout(ctx) if it.text == text), None)


def bias_pair(ctx: AppContext) -> tuple[str, str, str]:
    """``(why, original, variant)``: the pair that shows the bias best.

    First choice: a counterfactual pair the evaluation saw a failing adapter flip on, from the
    axis where it flipped most (gender, race, age...); else the first held-out recommendation
    pair (same request, other name).

    Raises:
        UsageError: no evaluation and no held-out pairs to take one from.
    """
    for folder in find_results(ctx.results_dirs).values():
        try:
            models = json.loads((folder / "results.json").read_text(encoding="utf-8"))["models"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        ranked = sorted(models.items(), key=lambda kv: kv[1].get("passed") is not False)
        for name, m in ranked:
            axes = ((m.get("fairness") or {}).get("counterfactual") or {}).get("axes") or {}
            by_rate = sorted(axes.items(), key=lambda kv: -(kv[1].get("flip_rate") or 0.0))
            for axis, a in by_rate:
                for ex in a.get("examples") or []:
                    if ex.get("prompt") and ex.get("variant_prompt"):
                        return (f"The evaluation saw {name} change its answer on this "
                                f"{axis} swap.", ex["prompt"], ex["variant_prompt"])
    for label, prompts in groups(heldout(ctx)):
        if label == SAME_REQUEST and len(prompts) >= 2:
            return "Same request, other name (a held-out pair).", prompts[0], prompts[1]
    raise UsageError("show me the bias: no evaluation results and no held-out pairs yet")
