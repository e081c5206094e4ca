"""What ``evalsuite run`` writes: ``results.json``, ``predictions.jsonl`` and the two reports.

The run directory's layout lives here, in one place: each :class:`ModelRow` is a model's row
of the results (its answers, its time), :func:`results_json` is the content of
``results.json``, :func:`prediction_rows` the lines of ``predictions.jsonl``, and
:func:`write_outputs` writes them with ``report.md`` and ``report.html``, each atomically.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalsuite.backend import describe
from finetune.artifacts import atomic_write_json, atomic_write_text

if TYPE_CHECKING:
    from evalsuite.engine import Engine
    from evalsuite.task import EvalRow, TaskSpec


@dataclass
class ModelRow:
    """One row of the report: a model answering a set of prompts.

    Attributes:
        name: Display name (``base``, an adapter name, ``base+few-shot``).
        engine_model: The engine's name for the weights (``__base__`` or the adapter name).
        kind: ``base``, ``adapter`` or ``baseline``.
        adapter_dir: The adapter folder, for adapters.
        run_dir: The run directory, when the adapter came from one.
    """

    name: str
    engine_model: str
    kind: str
    adapter_dir: Path | None = None
    run_dir: Path | None = None
    outputs: list[str] = field(default_factory=list)
    seconds: float = 0.0
    n_tokens: int = 0


def results_json(task: TaskSpec, rows: list[EvalRow], engine: Engine,
                  model_results: dict[str, Any], comparisons: list[dict[str, Any]],
                  candidates: list[ModelRow], failed: list[str],
                  t_start: float) -> dict[str, Any]:
    """The content of ``results.json``."""
    return {
        "task": {"name": task.name, "path": task.path, "data": task.data, "n_rows": len(rows),
                 "scorers": [s.model_dump() for s in task.scorers], "gates": task.gates},
        "base": engine.base_ref,
        "backend": describe(engine),
        "engine": {"device": str(engine.device),
                   "dtype": engine.dtype_name,
                   "weight_layout": engine.weight_layout, "batch_size": engine.batch_size},
        "models": model_results,
        "comparisons": comparisons,
        "gates": {
            "checked": [m.name for m in candidates] if task.gates else [],
            "passed": not failed,
            "failed": failed,
        },
        "stats": {"confidence": 0.95, "n_boot": task.stats.n_boot,
                  "n_permutations": task.stats.n_permutations, "seed": task.stats.seed,
                  "binary_test": "exact McNemar (statsmodels)",
                  "multiple_comparisons": f"Holm over the run's {len(comparisons)} comparisons "
                                          "(p_value_holm)",
                  "continuous_test": "paired sign-flip permutation"},
        "generation": task.generation.model_dump(),
        "wall_time_s": round(time.perf_counter() - t_start, 3),
    }


def prediction_rows(
    task: TaskSpec, rows: list[EvalRow], models: list[ModelRow],
    scores: Mapping[str, Mapping[str, dict[str, Any]]],
) -> list[dict[str, Any]]:
    """The lines of ``predictions.jsonl``: every row x model, its output, labels and scores."""
    lookup: dict[tuple[str, str], dict[int, tuple[float, Any]]] = {}
    for m in models:
        for name, e in scores[m.name].items():
            labels = e["labels"] or [None] * len(e["rows"])
            lookup[(m.name, name)] = {
                idx: (s, lab) for idx, s, lab in zip(e["rows"], e["scores"], labels, strict=True)
            }
    out = []
    for r in rows:
        for m in models:
            row_scores, row_labels = {}, {}
            for s in task.scorers:
                hit = lookup[(m.name, s.name)].get(r.index)
                if hit is not None:
                    row_scores[s.name] = hit[0]
                    if hit[1] is not None:
                        row_labels[s.name] = hit[1]
            out.append({
                "row": r.index, "id": r.id, "model": m.name, "group": r.group,
                "prompt": r.prompt[-1]["content"] if r.prompt else "",
                "output": m.outputs[r.index], "target": r.target,
                "labels": row_labels, "scores": row_scores, "variant": None,
            })
    return out


def write_outputs(out: Path, results: dict[str, Any], predictions: list[dict[str, Any]]) -> None:
    """Write the four artefacts, each atomically."""
    from evalsuite.report import render_html, render_markdown

    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "results.json", results)
    atomic_write_text(
        out / "predictions.jsonl", "".join(json.dumps(p) + "\n" for p in predictions)
    )
    atomic_write_text(out / "report.md", render_markdown(results, predictions))
    atomic_write_text(out / "report.html", render_html(results, predictions))
