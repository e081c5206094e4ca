"""The tuneproof Gradio app: compare, arena, counterfactual probe and reports.

``create_app(engine, runs_dir, votes_db)`` builds the Blocks app from a loaded engine;
``app.py`` parses options, loads the engine with the registry's adapters and launches it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

from tuneproof_app.heldout_data import load_examples

QUEUE_SIZE = 64
CONCURRENCY = 4
"""Default concurrency of cheap events (votes, reports); model events run one at a time."""


def create_app(
    engine: Any,
    runs_dir: str | Path | None,
    votes_db: str | Path,
    *,
    results_dirs: list[str | Path] | None = None,
    heldout: str | Path | None = None,
    system_prompt: str | None = None,
    max_new_tokens_cap: int = 64,
    max_prompt_chars: int = 2000,
    queue_size: int = QUEUE_SIZE,
    builder: Any = None,
) -> gr.Blocks:
    """Build the queued Blocks app around a loaded engine.

    Args:
        engine: ``evalsuite.engine.Engine`` holding the adapters of ``runs_dir``'s registry.
        runs_dir: The runs directory (reports and training curves); None for none.
        votes_db: SQLite file of the arena's votes.
        results_dirs: Folders searched for evaluation outputs (``results.json``).
        heldout: Held-out data file: example prompts and the arena's walk.
        system_prompt: Default system prompt; default the examples' own.
        max_new_tokens_cap: Largest ``max_new_tokens`` a request may ask for.
        max_prompt_chars: Longest message accepted.
        queue_size: Requests that may wait in the queue before new ones are refused.
        builder: A not yet started ``tuneproof_app.background.DemoBuilder`` writing into
            ``runs_dir``: the page shows its progress, and the adapters it trains join the
            engine and the model lists as they are ready. The caller starts it.
    """
    from tuneproof_app.context import AppContext
    from tuneproof_app.registry import Registry
    from tuneproof_app.ui import build_ui
    from tuneproof_app.votes import VoteStore

    examples = load_examples(heldout)
    if system_prompt is None:
        system_prompt = next((m["content"] for c in examples[:1] for m in c
                              if m["role"] == "system"), "")
    ctx = AppContext(
        engine=engine, store=VoteStore(votes_db),
        runs_dir=Path(runs_dir) if runs_dir else None,
        results_dirs=[Path(d) for d in results_dirs or []], examples=examples,
        system_prompt=system_prompt, max_prompt_chars=max_prompt_chars,
        max_new_tokens_cap=max_new_tokens_cap,
        registry=Registry(runs_dir) if runs_dir else None,
        heldout=Path(heldout) if heldout else None, builder=builder,
    )
    if builder is not None:
        builder.on_step = ctx.join_new_adapters
    demo = build_ui(ctx)
    demo.queue(default_concurrency_limit=CONCURRENCY, max_size=queue_size)
    demo.tuneproof = ctx  # type: ignore[attr-defined]
    return demo
