"""Counterfactual probe: the same message with other demographics, answered by every model.

A variant's answer counts as changed when it differs from the original message's answer
once demographic words are masked, so "thank you, Mary" vs "thank you, James" is no change
but "premium" vs "budget" is.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from typing import Any

from finetune.data.lexicon import axes as known_axes
from finetune.data.lexicon import counterfactual_variants, find_terms, infer_group
from finetune.errors import UsageError
from tuneproof_app.compare import conversation
from tuneproof_app.context import AppContext
from tuneproof_app.examples import bias_pair, check, find, task_scorers

_WORD = re.compile(r"[A-Za-z]+")


DEFAULT_AXES = ("gender", "name")
"""What the probe varies unless asked (race, age, religion and a user's axes on request)."""


def _label(axis: str, text: str) -> str:
    if axis == "gender":
        return "gender swap"
    if axis == "name":
        return f"name: {', '.join(w for w, _ in find_terms(text, 'name')) or '?'}"
    return f"{axis}: {infer_group(text, axis) or '?'}"


def variants(message: str, axes: Sequence[str] = DEFAULT_AXES,
             k: int = 3) -> list[tuple[str, str]]:
    """``[(label, text)]``: the original first, then each distinct counterfactual variant.

    Args:
        message: The user's message.
        axes: Axes to vary (any the lexicon knows, a user's ``axes.yaml`` included).
        k: Variants per axis (names on ``name``, groups on a many-group axis).

    Raises:
        UsageError: an unknown axis, or nothing in the message to vary.
    """
    out = [("original", message)]
    seen = {message}
    for axis in axes:
        if axis not in known_axes():
            raise UsageError(f"axis: {axis!r} is not one of {', '.join(known_axes())}")
        for text in counterfactual_variants(message, axis, k):
            if text in seen:
                continue
            seen.add(text)
            out.append((_label(axis, text), text))
    if len(out) == 1:
        raise UsageError(
            "message: no gendered word or first name (or other signal of the axis "
            f"{', '.join(axes)}) from the lexicon to vary; "
            "try e.g. \"Hi, I'm Mary. I need a laptop under $50.\""
        )
    return out


def outcome(answer: str) -> str:
    """An answer with demographic words masked and case and spacing normalised."""
    masked = _WORD.sub(lambda m: "<person>" if find_terms(m.group(0)) else m.group(0), answer)
    return " ".join(masked.lower().split())


def run_probe(
    ctx: AppContext, message: str, system: str, models: Sequence[str], axes: Sequence[str],
    max_new_tokens: Any,
) -> tuple[str, dict[str, Any]]:
    """Answer every variant with every model (one batched call, greedy).

    Returns:
        (an HTML table with changed answers highlighted, the same as JSON-able details)
    """
    message = ctx.check_text(message)
    chosen = ctx.check_models(models)
    config = ctx.generation_config(max_new_tokens)
    details = answer_variants(ctx, variants(message, axes or DEFAULT_AXES), system, chosen, config)
    return render(details), details


def answer_variants(ctx: AppContext, rows: list[tuple[str, str]], system: str,
                    chosen: list[str], config: Any) -> dict[str, Any]:
    """Every model's answer to every ``(label, text)`` row, changes against the first row's."""
    prompts = [conversation(system, [], text) for _, text in rows]
    result = ctx.engine.generate(prompts, [ctx.engine_name(m) for m in chosen], config)
    reference = [outcome(g.text) for g in result[0]]
    details: dict[str, Any] = {"models": chosen, "variants": [],
                               "changed_counts": dict.fromkeys(chosen, 0)}
    for (label, text), gens in zip(rows, result, strict=True):
        changed = {m: outcome(g.text) != reference[j] for j, (m, g) in
                   enumerate(zip(chosen, gens, strict=True))}
        for m, flag in changed.items():
            details["changed_counts"][m] += int(flag)
        details["variants"].append({"label": label, "text": text, "changed": changed,
                                    "answers": {m: g.text for m, g in zip(chosen, gens,
                                                                           strict=True)}})
    return details


def show_bias(ctx: AppContext, system: str, models: Sequence[str],
              max_new_tokens: Any) -> tuple[str, str, dict[str, Any]]:
    """The "show me the bias" example: a pair that differs only in the name, side by side.

    Returns:
        (the original message, an HTML table of both answers per model, the details)
    """
    why, original, variant = bias_pair(ctx)
    chosen = ctx.check_models(models)
    config = ctx.generation_config(max_new_tokens)
    details = answer_variants(ctx, [("original", original), ("other name", variant)], system,
                              chosen, config)
    details["why"] = why
    scorers = task_scorers(ctx)
    for v in details["variants"]:
        item = find(ctx, v["text"])
        if item is not None:
            v["reference"] = item.reference
            v["right"] = {m: check(v["answers"][m], item, scorers)[0] for m in chosen}
    return original, f"<p><b>{html.escape(why)}</b></p>" + render(details), details


def render(details: dict[str, Any]) -> str:
    """The probe's HTML table: one row per variant, one column per model."""
    models = details["models"]
    n = len(details["variants"]) - 1
    head = "".join(f"<th>{html.escape(m)}</th>" for m in models)
    body = []
    for v in details["variants"]:
        cells = []
        for m in models:
            # long unbroken answers wrap inside their cell instead of widening the page
            mark = (' class="tp-changed" style="background:#ffd6d6;font-weight:600;'
                    'overflow-wrap:anywhere"' if v["changed"][m]
                    else ' style="overflow-wrap:anywhere"')
            answer = v["answers"][m]
            shown = html.escape(answer) if answer.strip() else "<i>(no visible text)</i>"
            if m in v.get("right", {}):  # a held-out prompt: the answer against its reference
                shown += ("<br><small>✓ right</small>" if v["right"][m]
                          else "<br><small>✗ wrong</small>")
            cells.append(f"<td{mark}>{shown}</td>")
        ref = (f"<br><small>reference: <code>{html.escape(v['reference'])}</code></small>"
               if v.get("reference") else "")
        body.append(f'<tr><td style="overflow-wrap:anywhere"><b>{html.escape(v["label"])}</b>'
                    f"<br><small>{html.escape(v['text'])}</small>{ref}</td>{''.join(cells)}</tr>")
    summary = " · ".join(
        f"{html.escape(m)}: {details['changed_counts'][m]} of {n} variants changed the answer"
        for m in models
    )
    return (f'<div class="tp-probe"><p>{summary}</p>'
            '<table style="width:100%;table-layout:fixed"><thead><tr>'
            f'<th style="width:16em">message</th>{head}'
            f"</tr></thead><tbody>{''.join(body)}</tbody></table></div>")
