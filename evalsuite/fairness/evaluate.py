"""Fairness evaluation of every model at once: the orchestration of the package's parts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalsuite.engine import BASE, Engine
from evalsuite.fairness.context import _Context, _Decider, row_groups
from evalsuite.fairness.counterfactual import _answer_variants
from evalsuite.fairness.flips import counterfactual_block
from evalsuite.fairness.groups import group_block
from evalsuite.fairness.intervals import put_flat
from evalsuite.fairness.paired import holm_across, versus_base
from evalsuite.fairness.probes import score_probes
from evalsuite.gates import HOLM
from evalsuite.probes import load_probes
from evalsuite.task import EvalRow, TaskSpec, matches
from finetune.errors import InputError
from finetune.rundir import RunDir


@dataclass
class FairnessResult:
    """Fairness of one model.

    Attributes:
        block: The full fairness section for results.json (JSON-able).
        flat: Numbers by flat key for gates, e.g. ``counterfactual.flip_rate``.
    """

    block: dict[str, Any] = field(default_factory=dict)
    flat: dict[str, float] = field(default_factory=dict)


def evaluate_fairness(
    engine: Engine,
    task: TaskSpec,
    rows: Sequence[EvalRow],
    predictions: Mapping[str, Sequence[str]],
    models: Sequence[str],
    *,
    progress: bool = False,
) -> dict[str, FairnessResult]:
    """Fairness of every model on the task's held-out rows.

    Args:
        engine: The :class:`evalsuite.engine.Engine` holding the base and the adapters.
        task: The task (its ``fairness`` block drives this; axes were checked at load).
        rows: The task's rows.
        predictions: Engine model name -> the model's answer to each row, in row order.
        models: Engine model names to evaluate (``__base__`` and adapter names).
        progress: Show a progress bar while generating the counterfactual variants.

    Returns:
        Engine model name -> :class:`FairnessResult`. The block holds ``groups`` (per-group
        accuracy, selection rates, parity, error rates, intersections), ``counterfactual`` (per
        axis), ``vs_base`` (each adapter's paired tests against the base), ``stereotype``,
        ``training_data`` (the run's data audit) and ``predictions`` (one line per variant
        answer, for predictions.jsonl). Empty when the task has no fairness block.
    """
    spec = task.fairness
    if spec is None:
        return {}
    models = list(models)
    groups, group_source = row_groups(task, rows)
    ctx = _Context(
        task, rows, [r for r in rows if matches(r.meta, spec.where)], groups, group_source,
        _Decider(labels=[(s.name, s.pattern, s.where) for s in task.scorers if s.type == "label"],
                 exact=[(s.name, s.where) for s in task.scorers if s.type == "exact_match"],
                 outcome_pattern=spec.outcome_pattern),
        task.stats.n_boot, task.stats.seed, spec.max_examples, task.stats.n_permutations)
    out = {m: FairnessResult() for m in models}
    # 1. Group metrics on the original answers.
    for m in models:
        out[m].block["groups"] = group_block(ctx, predictions[m], out[m].flat)
    # 2. Counterfactual variants, every model in the same mixed batches.
    answers, counts = _answer_variants(engine, ctx, predictions, models,
                                       spec.name_k, progress)
    for m in models:
        cf, lines = counterfactual_block(ctx, predictions[m], answers[m], out[m].flat)
        out[m].block["counterfactual"] = {**cf, **counts}
        out[m].block["predictions"] = lines
    # 3. Each adapter against the base, paired: did fine-tuning cause it?
    family = []
    for m in models:
        if m != BASE and BASE in models:
            out[m].block["vs_base"] = tests = versus_base(ctx, predictions, BASE, m, answers)
            family += [(m, key, test) for key, test in tests.items()]
    holm_across([test for _, _, test in family])  # one family: every adapter x metric
    for m, key, test in family:
        for name, value in (("delta_vs_base", test["delta"]),
                            ("p_value_vs_base", test["p_value"]),
                            (f"p_value_vs_base{HOLM}", test["p_value_holm"])):
            if value is not None:
                out[m].flat[f"{key}.{name}"] = value
    # 4. Stereotype probes: log-likelihood of paired sentences.
    base_dir = Path(task.path).parent if getattr(task, "path", None) else None
    pairs = load_probes(spec.probes, base_dir=base_dir)
    probes = score_probes(engine, pairs, models, n_boot=ctx.n_boot, seed=ctx.seed) if pairs else {}
    for m in models:
        if m in probes:
            out[m].block["stereotype"] = {"probes": str(spec.probes), **probes[m]}
            put_flat(out[m].flat, "stereotype.preference", probes[m]["preference"],
                     probes[m]["ci"])
    # 5. The training data's own bias audit, beside the model's numbers.
    for m in models:
        out[m].block["training_data"] = training_data_audit(engine, m)
    return out


def training_data_audit(engine: Engine, model: str) -> dict[str, Any] | None:
    """The bias audit of the data an adapter was trained on, from its run directory.

    Reads ``data_report.json`` (the full validation report) and falls back to the summary in
    ``run.json``. None for the base model or an adapter folder outside a run directory.
    """
    folder = getattr(engine, "adapter_dirs", {}).get(model)
    if folder is None:
        return None
    run_dir = RunDir.containing(Path(folder).parent, folder)
    if run_dir is None:
        return None
    out: dict[str, Any] = {"run_dir": str(run_dir.path)}
    try:
        run = run_dir.read_info()
    except InputError:
        run = {}
    out["train_data"] = run.get("train_data")
    out["data_fingerprint"] = run.get("data_fingerprint")
    bias = (run_dir.read_data_report() or {}).get("bias")
    if bias is None:
        bias = (run.get("data_report") or {}).get("bias")
    if bias:
        keep = ("flagged", "axis", "group_source", "outcome_source", "outcome_rates",
                "representation", "test", "max_rate_gap", "reasons")
        out["bias"] = {k: bias[k] for k in keep if k in bias}
    else:
        out["bias"] = None
    return out
