"""Arena: two models drawn at random answer blind, left and right; the vote reveals them.

Rounds are stored when dealt, so a vote names only the round id and the verdict. The walk
mode goes through the held-out prompts in order, for a per-pair verdict on a fixed set.
"""

from __future__ import annotations

import random
import threading
from typing import Any

import pandas as pd

from finetune.errors import UsageError
from tuneproof_app import leaderboard as lb
from tuneproof_app.compare import content_text, conversation
from tuneproof_app.context import AppContext

_rng = random.SystemRandom()
N_BOOT = 100
"""Bootstrap resamples for the leaderboard's CIs (recomputed after every vote)."""


def deal(
    ctx: AppContext, prompt: str, system: str, walk: bool, walk_index: Any, max_new_tokens: Any,
) -> tuple[str, str, str, str, str, int]:
    """Start a round: a random pair of models on random sides answers the prompt (greedy).

    Returns:
        (left answer, right answer, round id, status line, the prompt used, next walk index)
    """
    if len(ctx.models) < 2:
        raise UsageError("arena: needs at least two models (the base and one adapter)")
    config = ctx.generation_config(max_new_tokens)
    index = 0
    if walk:
        if not ctx.examples:
            raise UsageError("walk: no held-out prompts were loaded")
        index = int(walk_index or 0) % len(ctx.examples)
        conv = ctx.examples[index]
        system = next((content_text(m["content"]) for m in conv if m["role"] == "system"), "")
        prompt = content_text(conv[-1]["content"])
    else:
        prompt = ctx.check_text(prompt, "prompt")
        conv = conversation(system, [], prompt)
    left, right = _rng.sample(ctx.models, 2)
    [gens] = ctx.engine.generate([conv], [ctx.engine_name(left), ctx.engine_name(right)], config)
    rnd = ctx.store.new_round(prompt=prompt, system=system or "", model_left=left,
                              model_right=right, output_left=gens[0].text,
                              output_right=gens[1].text, mode="walk" if walk else "free")
    where = f"held-out prompt {index + 1} of {len(ctx.examples)} · " if walk else ""
    status = f"{where}Which answer is better? Vote to reveal the models."
    return (shown(gens[0].text), shown(gens[1].text), rnd.id, status, prompt,
            index + 1 if walk else index)


def shown(text: str) -> str:
    """An answer as the arena shows it: trimmed, a placeholder when nothing is visible."""
    return text.strip() or "(no visible text)"


def vote(ctx: AppContext, round_id: str, verdict: str) -> tuple[str, Any, Any, Any]:
    """Record a vote and reveal the round's models.

    Returns:
        (the reveal line, leaderboard, pair table, walk verdicts)
    """
    if not round_id:
        raise UsageError("vote: start a round first")
    v = ctx.store.vote(str(round_id), verdict)
    said = {"left": f"**{v.model_left}** better", "right": f"**{v.model_right}** better",
            "tie": "a tie", "both_bad": "both bad"}[verdict]
    reveal = f"Left was **{v.model_left}**, right was **{v.model_right}**. You voted: {said}."
    return (reveal, *tables(ctx))


_cache: dict[tuple[str, int], tuple[Any, Any, Any]] = {}
_cache_lock = threading.Lock()


def tables(ctx: AppContext) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Leaderboard (Bradley-Terry with CIs, Elo), pair win rates and walk verdicts."""
    with _cache_lock:
        votes = ctx.store.votes()
        key = (str(ctx.store.path), len(votes))
        if key not in _cache:
            walk = [v for v in votes if v.mode == "walk"]
            board = pd.DataFrame(lb.leaderboard(votes, ctx.models, n_boot=N_BOOT),
                                 columns=["model", "votes", "bradley_terry", "ci_low", "ci_high",
                                          "elo", "rank", "status"])
            pairs = pd.DataFrame(
                [{"model_a": p.model_a, "model_b": p.model_b, "votes": p.n, "wins_a": p.wins_a,
                  "wins_b": p.wins_b, "ties": p.ties, "both_bad": p.both_bad,
                  "win_rate_a": round(p.win_rate_a, 3)} for p in lb.pair_stats(votes)],
                columns=["model_a", "model_b", "votes", "wins_a", "wins_b", "ties", "both_bad",
                         "win_rate_a"])
            verdicts = pd.DataFrame(lb.walk_verdicts(walk, ctx.models))
            _cache.clear()
            _cache[key] = (board, pairs, verdicts)
        return _cache[key]
