"""Scorers as local ``evaluate`` modules (hub metric scripts are unreachable offline).

Each scorer type of a task maps to a folder here holding ``<folder>.py``; they are loaded
with ``evaluate.load(<absolute path>)``. ``evaluate`` copies a module into its modules cache
before importing it, so that cache is moved under ``$TUNEPROOF_HOME`` when the default one
is not writable.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
MODULES = {
    "exact_match": "exact_match",
    "label": "label_match",
    "rouge_l": "rouge_l",
    "semantic_similarity": "semantic_similarity",
    "loss": "token_loss",
}


def _writable(path: Path) -> bool:
    probe = path
    while not probe.exists():
        probe = probe.parent
    return os.access(probe, os.W_OK)


@functools.cache
def load_metric(kind: str) -> Any:
    """The ``evaluate`` module of scorer type ``kind`` (``label``, ``rouge_l``...).

    Raises:
        KeyError: an unknown scorer type.
    """
    import evaluate

    from finetune.paths import tuneproof_home

    folder = HERE / MODULES[kind]
    if not _writable(Path(evaluate.config.HF_MODULES_CACHE)):
        evaluate.config.HF_MODULES_CACHE = tuneproof_home() / "evaluate_modules"
    return evaluate.load(str(folder), keep_in_memory=True)


def compute(kind: str, **kwargs: Any) -> dict[str, Any]:
    """Run scorer ``kind`` on ``predictions``/``references`` (or ``nll``/``n_tokens``)."""
    return load_metric(kind).compute(**kwargs)
