"""Scorers as local ``evaluate`` modules (hub metric scripts are unreachable offline).

Each scorer type of a task is a folder here: ``<folder>.py`` is the ``evaluate`` module, loaded
with ``evaluate.load(<absolute path>)``, and ``__init__.py`` declares the type's name and
properties (``TYPE``, ``BINARY``, ``HIGHER_IS_BETTER``). Adding a folder adds a scorer type.

``evaluate`` copies a module into its modules cache before importing it, so that cache is moved
under ``$TUNEPROOF_HOME`` when the default one is not writable.
"""

from __future__ import annotations

import functools
import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Scorer:
    """A scorer type, as its folder's ``__init__.py`` declares it."""

    type: str
    """The name a task's ``scorers[].type`` uses."""
    module: str
    """The folder holding ``<module>.py``, the ``evaluate`` module."""
    binary: bool
    """Per-row scores are 0/1."""
    higher_is_better: bool


def _discover() -> dict[str, Scorer]:
    """Every folder here with a ``<folder>.py`` is a scorer; its ``__init__`` names it."""
    out = {}
    for folder in sorted(p for p in HERE.iterdir() if (p / f"{p.name}.py").is_file()):
        decl = importlib.import_module(f"{__name__}.{folder.name}")
        out[decl.TYPE] = Scorer(decl.TYPE, folder.name, bool(decl.BINARY),
                                bool(decl.HIGHER_IS_BETTER))
    return out


SCORERS: dict[str, Scorer] = _discover()
"""Scorer type -> :class:`Scorer`, for the task's validation, the runner and the report."""


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

    folder = HERE / SCORERS[kind].module
    if not _writable(Path(evaluate.config.HF_MODULES_CACHE)):
        evaluate.config.HF_MODULES_CACHE = tuneproof_home() / "evaluate_modules"
    return evaluate.load(str(folder), keep_in_memory=True)


def compute(kind: str, **kwargs: Any) -> dict[str, Any]:
    """Run scorer ``kind`` on ``predictions``/``references`` (or ``nll``/``n_tokens``)."""
    return load_metric(kind).compute(**kwargs)
