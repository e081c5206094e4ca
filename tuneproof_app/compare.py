"""Compare: base and up to three adapters answer in one mixed batch, side by side.

The answers stream into chat columns; each column keeps its own conversation.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

from finetune.data.lexicon import swap
from tuneproof_app import examples
from tuneproof_app.context import MAX_ADAPTERS, AppContext

N_COLUMNS = 1 + MAX_ADAPTERS
EMPTY = "*(no visible text)*"
"""Shown for an answer that is empty or whitespace only; read back as an empty answer."""
STREAM_EVERY_S = 0.05
"""Least time between two UI updates while streaming; the first and last are always sent."""


def content_text(content: Any) -> str:
    """Plain text of a chat message's content: a string or Gradio 6's list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        return str(content.get("text", ""))
    if isinstance(content, list | tuple):
        return "".join(content_text(part) for part in content)
    return "" if content is None else str(content)


def history_messages(chat: Sequence[Any] | None) -> list[dict[str, str]]:
    """A chatbot's value as plain ``{"role", "content"}`` messages (user/assistant only)."""
    out = []
    for msg in chat or []:
        role = msg.get("role") if isinstance(msg, dict) else getattr(msg, "role", None)
        content = msg.get("content") if isinstance(msg, dict) else getattr(msg, "content", None)
        if role in ("user", "assistant"):
            text = content_text(content)
            out.append({"role": role, "content": "" if text == EMPTY else text})
    return out


def conversation(system: str, history: list[dict[str, str]], message: str) -> list[dict[str, str]]:
    """The prompt one column's model sees: system prompt, its own history, the new message."""
    head = [{"role": "system", "content": system.strip()}] if system and system.strip() else []
    return [*head, *history, {"role": "user", "content": message}]


def _stats(ttft: float | None, total: float, tokens: int) -> dict[str, float | int | None]:
    rate = tokens / total if total > 0 else None
    return {"ttft_s": None if ttft is None else round(ttft, 4), "total_s": round(total, 4),
            "tokens": tokens, "tokens_per_s": None if rate is None else round(rate, 1)}


def stats_markdown(s: dict[str, Any] | None) -> str:
    """One line of latency figures under a column."""
    if not s:
        return ""
    rate = "–" if s["tokens_per_s"] is None else f"{s['tokens_per_s']:.1f}"
    ttft = "–" if s["ttft_s"] is None else f"{s['ttft_s']:.2f} s"
    return (f"first token {ttft} · total {s['total_s']:.2f} s · {s['tokens']} tokens · "
            f"{rate} tok/s")


def stream_answers(
    ctx: AppContext, conversations: list[list[dict[str, str]]], models: list[str], config: Any
) -> Iterator[tuple[list[str], dict[str, dict[str, Any]], bool]]:
    """Stream every model's answer to its own conversation, all decoded in one batch.

    Yields:
        (texts in ``models`` order, per-model latency stats, finished?)
    """
    names = [ctx.engine_name(m) for m in models]
    if all(c == conversations[0] for c in conversations):
        steps = ctx.engine.stream(conversations[0], names, config)
    else:  # later turns: each column continues its own history, still one mixed batch
        steps = ctx.engine.stream(conversations, names, config)
    t0 = time.perf_counter()
    first: list[float | None] = [None] * len(models)
    last = [0.0] * len(models)
    n_tokens = [0] * len(models)
    texts = [""] * len(models)
    sent = -STREAM_EVERY_S  # the first step goes out at once: it is the time to first token
    for k, step in enumerate(steps, start=1):
        now = time.perf_counter() - t0
        for j, text in enumerate(step):
            if text != texts[j]:
                # one token per decoding step: the last step that changed the text counts them
                texts[j], last[j], n_tokens[j] = text, now, k
                if first[j] is None:
                    first[j] = now
        if now - sent >= STREAM_EVERY_S:
            sent = now
            yield list(texts), {}, False
    stats = {m: _stats(first[j], last[j], n_tokens[j]) for j, m in enumerate(models)}
    yield texts, stats, True


def run_compare(
    ctx: AppContext, message: str, system: str, models: Sequence[str], temperature: float,
    top_p: float, seed: Any, max_new_tokens: Any, chats: Sequence[Any],
) -> Iterator[tuple[Any, ...]]:
    """The Compare event: yields (chat columns..., stats columns..., details) while streaming."""
    message = ctx.check_text(message)
    chosen = ctx.check_models(models, max_adapters=MAX_ADAPTERS)
    config = ctx.generation_config(max_new_tokens, temperature, top_p, seed)
    histories = [history_messages(chats[j] if j < len(chats) else None)
                 for j in range(len(chosen))]
    convs = [conversation(system, h, message) for h in histories]
    blank = [""] * (N_COLUMNS - len(chosen))
    for texts, stats, done in stream_answers(ctx, convs, chosen, config):
        columns = [
            [*histories[j], {"role": "user", "content": message},
             {"role": "assistant", "content": texts[j] if texts[j].strip() else EMPTY}]
            for j in range(len(chosen))
        ]
        columns += [[] for _ in blank]
        grades = _grades(ctx, message, texts) if done else [""] * len(chosen)
        lines = ["\n\n".join(filter(None, [stats_markdown(stats.get(m)), ctx.notice(m), g]))
                 for m, g in zip(chosen, grades, strict=True)] + blank
        details = {"models": chosen, "answers": dict(zip(chosen, texts, strict=True)),
                   "stats": stats, "done": done}
        yield (*columns, *lines, details)


def _grades(ctx: AppContext, message: str, texts: list[str]) -> list[str]:
    """Each answer marked right or wrong when the message is a held-out prompt."""
    item = examples.find(ctx, message)
    if item is None:
        return [""] * len(texts)
    scorers = examples.task_scorers(ctx)
    return [examples.grade(t, item, scorers) for t in texts]


def swap_demographics(message: str) -> str:
    """The message with every gendered term and first name swapped (THE lexicon)."""
    return swap(message or "", "gender")
