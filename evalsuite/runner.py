"""The ``evalsuite run`` pipeline: generate, score, compare, check gates, write reports.

1. Read the task and its held-out rows.
2. One engine: the base once, every adapter by name; all models answer every prompt in one
   mixed batch per chunk. Prompting baselines (zero-shot, few-shot) are the base model on
   rewritten prompts, reported as extra rows.
3. Every scorer (a local ``evaluate`` module) gives a per-row score; each metric gets a seeded
   bootstrap 95% CI and each pair of models a delta, paired CI and paired p-value.
4. Fairness (``evalsuite.fairness``), overfitting (each run's ``metrics.jsonl``,
   ``evalsuite.overfitting``) and the gates.
5. ``results.json``, ``predictions.jsonl``, ``report.md`` and ``report.html`` in ``out``
   (``evalsuite.results``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalsuite import stats
from evalsuite.engine import BASE, Engine, GenerationConfig, resolve_adapter_dir
from evalsuite.gates import HOLM, add_bounds, check_gates
from evalsuite.labels import NONE, extract
from evalsuite.metrics import SCORERS, compute
from evalsuite.overfitting import overfitting_check
from evalsuite.results import ModelRow, prediction_rows, results_json, write_outputs
from evalsuite.task import EvalRow, TaskSpec, baseline_prompts, matches, task_rows
from finetune.errors import UsageError
from finetune.rundir import RunDir

if TYPE_CHECKING:
    from evalsuite.fairness import FairnessResult

BASE_NAME = "base"
"""How the base model is named in results and reports (the engine calls it ``__base__``)."""
"""Scorers whose per-row score is 0/1 by nature: paired with exact McNemar."""


@dataclass
class EvalResult:
    """What a run produced: the results dict (as written) and where the files are."""

    results: dict[str, Any]
    out_dir: Path
    failed_gates: list[str]

    @property
    def passed(self) -> bool:
        """True when every gate of every checked model passed."""
        return not self.failed_gates


def parse_adapters(specs: Sequence[str], runs_dir: str | Path = "runs") -> dict[str, Path]:
    """``NAME=DIR`` (a run directory or adapter folder) or ``NAME`` (``runs_dir/NAME``).

    Raises:
        UsageError: a malformed or duplicate spec, or a reserved name.
    """
    out: dict[str, Path] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        name = name.strip()
        if not name or (sep and not path.strip()):
            raise UsageError(f"--adapter {spec!r}: expected NAME=DIR or NAME")
        if name in (BASE_NAME, BASE) or name.startswith(BASE_NAME + "+"):
            raise UsageError(f"--adapter {spec!r}: the name {name!r} is reserved for the base")
        if name in out:
            raise UsageError(f"--adapter {spec!r}: name {name!r} given twice")
        out[name] = Path(path.strip()) if sep else Path(runs_dir) / name
    return out


def _run_dir_of(path: Path, adapter_dir: Path) -> Path | None:
    found = RunDir.containing(path, adapter_dir.parent, metrics_only=True)
    return found.path if found else None


# ---------------------------------------------------------------------------------- scoring
def _loss_continuations(
    engine: Engine, prompt: list[dict[str, str]], target: str
) -> tuple[str, str]:
    context = engine.render(prompt)
    full = engine.tokenizer.apply_chat_template(
        [*prompt, {"role": "assistant", "content": target}], tokenize=False
    )
    if full.startswith(context) and len(full) > len(context):
        return context, full[len(context):]
    return context, target


def score_model(
    task: TaskSpec,
    rows: list[EvalRow],
    outputs: list[str],
    losses: list[tuple[float, int]] | None,
) -> dict[str, dict[str, Any]]:
    """Every scorer of the task on one model's outputs.

    Returns:
        scorer name -> ``{"rows": [row index], "scores": [...], "weights": [...] | None,
        "labels": [...] | None, "extra": {...}}``.
    """
    out: dict[str, dict[str, Any]] = {}
    for s in task.scorers:
        picked = [r for r in rows if matches(r.meta, s.where)]
        if s.type == "label":
            picked = [r for r in picked if extract(r.target, s.pattern or "") != NONE]
        preds = [outputs[r.index] for r in picked]
        refs = [r.target for r in picked]
        entry: dict[str, Any] = {"rows": [r.index for r in picked], "weights": None,
                                 "labels": None, "extra": {}}
        if s.type == "loss":
            if losses is None:
                raise RuntimeError("loss scorer without log-likelihoods")
            nll = [-losses[r.index][0] for r in picked]
            n_tokens = [losses[r.index][1] for r in picked]
            res = compute("loss", nll=nll, n_tokens=n_tokens)
            entry.update(scores=res["scores"], weights=res["weights"])
        elif s.type == "label":
            res = compute("label", predictions=preds, references=refs, pattern=s.pattern)
            entry.update(scores=res["scores"], labels=res["predicted_labels"])
            entry["extra"] = {"macro_f1": res["macro_f1"], "per_class": res["per_class"],
                              "confusion": res["confusion"]}
        else:
            res = compute(s.type, predictions=preds, references=refs)
            entry.update(scores=res["scores"])
        out[s.name] = entry
    return out


def _metric_summary(task: TaskSpec, s_type: str, entry: dict[str, Any]) -> dict[str, Any]:
    summary = stats.summarize(entry["scores"], entry["weights"], n_boot=task.stats.n_boot,
                              seed=task.stats.seed)
    summary["type"] = s_type
    summary["higher_is_better"] = SCORERS[s_type].higher_is_better
    if s_type == "loss":
        summary["perplexity"] = {
            k: (math.exp(summary[k]) if summary[k] is not None and summary[k] < 700 else None)
            for k in ("value", "ci_low", "ci_high")
        }
    summary.update(entry["extra"])
    return summary


def _group_summary(
    task: TaskSpec, rows: list[EvalRow], entry: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    groups: dict[str, list[int]] = {}
    for k, index in enumerate(entry["rows"]):
        g = rows[index].group
        if g is not None:
            groups.setdefault(g, []).append(k)
    out = {}
    for g, ks in sorted(groups.items()):
        scores = [entry["scores"][k] for k in ks]
        weights = [entry["weights"][k] for k in ks] if entry["weights"] else None
        out[g] = stats.summarize(scores, weights, n_boot=task.stats.n_boot, seed=task.stats.seed)
    return out


def _pairs(models: list[ModelRow]) -> list[tuple[ModelRow, ModelRow]]:
    """Pairs: base -> each adapter, each baseline -> each adapter, adapter <-> adapter."""
    adapters = [m for m in models if m.kind == "adapter"]
    out = []
    for ref in (m for m in models if m.kind in ("base", "baseline")):
        out.extend((ref, a) for a in adapters)
    for i, a in enumerate(adapters):
        out.extend((a, b) for b in adapters[i + 1:])
    return out


def _flat(
    model: str,
    metrics: Mapping[str, dict[str, Any]],
    comparisons: list[dict[str, Any]],
    fairness_flat: Mapping[str, float] | None,
) -> dict[str, float | None]:
    flat: dict[str, float | None] = {}
    for name, m in metrics.items():
        flat[name] = m["value"]
        flat[f"{name}.ci_low"] = m["ci_low"]
        flat[f"{name}.ci_high"] = m["ci_high"]
        if "macro_f1" in m:
            flat[f"{name}.macro_f1"] = m["macro_f1"]
        if "perplexity" in m:
            flat[f"{name}.perplexity"] = m["perplexity"]["value"]
    if model == BASE_NAME:
        for name in metrics:
            flat[f"{name}.delta_vs_base"] = 0.0
    for c in comparisons:
        if c["a"] == BASE_NAME and c["b"] == model:
            key = f"{c['metric']}.delta_vs_base"
            flat[key] = c["delta"]
            flat[f"{key}.ci_low"] = c["ci_low"]
            flat[f"{key}.ci_high"] = c["ci_high"]
            flat[f"{c['metric']}.p_value_vs_base"] = c["p_value"]
            flat[f"{c['metric']}.p_value_vs_base{HOLM}"] = c.get("p_value_holm")
    for key, value in (fairness_flat or {}).items():
        flat[key] = None if value is None else float(value)
    return add_bounds(flat)


def _fairness(
    engine: Engine, task: TaskSpec, rows: list[EvalRow], models: list[ModelRow],
    progress: bool,
) -> dict[str, Any]:
    """Per engine model, the fairness module's result; empty when there is none to run."""
    if task.fairness is None:
        return {}
    try:
        from evalsuite.fairness import evaluate_fairness
    except ImportError:
        return {}
    served = [m for m in models if m.kind != "baseline"]
    predictions = {m.engine_model: m.outputs for m in served}
    return evaluate_fairness(engine, task, rows, predictions, [m.engine_model for m in served])


# ------------------------------------------------------------------------------------- run
def run_eval(
    task: TaskSpec,
    *,
    base: str = "tiny",
    adapters: Mapping[str, str | Path] | None = None,
    baselines: Sequence[str] = (),
    out_dir: str | Path = "eval",
    engine: Engine | None = None,
    device: str | None = None,
    batch_size: int = 32,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    backends: Sequence[str] = (),
) -> EvalResult:
    """Evaluate the base, its adapters and prompting baselines on a task; write the reports.

    Args:
        task: A loaded task (:func:`evalsuite.task.load_task`).
        base: Base model reference, unless ``engine`` is given.
        adapters: name -> run directory or adapter folder.
        baselines: any of ``zero-shot``, ``few-shot``.
        out_dir: Where results.json, predictions.jsonl, report.md and report.html go.
        engine: An engine already holding the base and the adapters (the app passes its own).
        device: Device for a new engine.
        batch_size: Prompts per mixed batch for a new engine.
        progress: tqdm bars.
        log: Receives one line per stage (default: nothing).
        backends: OpenAI-compatible server URLs to answer instead of an in-process engine
            (default: the task's ``backend:``); several share the rows.

    Returns:
        The results and the names of the failed gates.
    """
    say = log or (lambda _msg: None)
    t_start = time.perf_counter()
    rows = task_rows(task)
    baselines = list(dict.fromkeys(baselines))
    b_prompts = {kind: baseline_prompts(task, rows, kind) for kind in baselines}
    if engine is None and (backends or task.backend):
        from evalsuite.backend import open_backend

        engine = open_backend(list(backends) or task.backend, base, batch_size=batch_size,
                              dtype=task.dtype, chat_template=task.chat_template,
                              max_new_tokens_cap=max(256, task.generation.max_new_tokens))
    engine, models = _load_models(task, base, dict(adapters or {}), baselines, engine, device,
                                  batch_size, say)
    _generate(engine, task, rows, models, b_prompts, progress, say)
    losses = _target_losses(engine, task, rows, models, b_prompts, progress, say)
    say("scoring")
    scores = {m.name: score_model(task, rows, m.outputs, losses.get(m.name)) for m in models}
    comparisons = _comparisons(task, models, scores)
    say("fairness")
    fairness = _fairness(engine, task, rows, models, progress)
    by_engine = {m.engine_model: m.name for m in models if m.kind != "baseline"}
    fairness = {by_engine.get(k, k): v for k, v in fairness.items()}
    candidates = [m for m in models if m.kind == "adapter"] or models[:1]
    model_results, failed, extra_predictions = {}, [], []
    for m in models:
        entry, fails, lines = _model_entry(engine, task, rows, m, scores[m.name], comparisons,
                                           fairness.get(m.name), gated=m in candidates)
        model_results[m.name] = entry
        failed += fails
        extra_predictions += lines
    results = results_json(task, rows, engine, model_results, comparisons, candidates, failed,
                            t_start)
    predictions = prediction_rows(task, rows, models, scores) + extra_predictions
    out = Path(out_dir)
    write_outputs(out, results, predictions)
    say(f"wrote {out}/results.json, predictions.jsonl, report.md, report.html")
    return EvalResult(results, out, failed)


def _load_models(
    task: TaskSpec, base: str, adapters: dict[str, str | Path], baselines: list[str],
    engine: Engine | None, device: str | None, batch_size: int, say: Callable[[str], None],
) -> tuple[Engine, list[ModelRow]]:
    """The engine (new, or the given one with the missing adapters added) and the models.

    The models are the rows of the results: the base, every adapter, every baseline.
    """
    # A server may already serve an adapter that has no folder here: it is known by name.
    served = set(getattr(engine, "served_adapters", [])) if engine is not None else set()
    resolved = {name: None if name in served and not Path(path).exists()
                else resolve_adapter_dir(path) for name, path in adapters.items()}
    if engine is None:
        say(f"loading base {base} and {len(adapters)} adapter(s)")
        engine = Engine(base, resolved, device=device, dtype=task.dtype, batch_size=batch_size,
                        max_new_tokens_cap=max(256, task.generation.max_new_tokens),
                        chat_template=task.chat_template)
    else:
        if task.dtype not in (None, engine.dtype_name):
            raise UsageError(f"task dtype {task.dtype}: the loaded engine runs "
                             f"{engine.dtype_name}")
        for name, folder in resolved.items():
            if name not in engine.model_names:
                engine.add_adapter(name, folder)
    models = [ModelRow(BASE_NAME, BASE, "base")]
    models += [ModelRow(name, name, "adapter", folder,
                        folder and _run_dir_of(Path(adapters[name]), folder))
               for name, folder in resolved.items()]
    models += [ModelRow(f"{BASE_NAME}+{kind}", BASE, "baseline") for kind in baselines]
    return engine, models


def _baseline_kind(m: ModelRow) -> str:
    return m.name.split("+", 1)[1]


def _generate(engine: Engine, task: TaskSpec, rows: list[EvalRow], models: list[ModelRow],
              b_prompts: dict[str, list], progress: bool, say: Callable[[str], None]) -> None:
    """Every served model's answers in mixed batches, then each baseline's; kept on the rows."""
    gen = task.generation
    config = GenerationConfig(gen.max_new_tokens, gen.temperature, gen.top_p, gen.seed)
    served = [m for m in models if m.kind != "baseline"]
    say(f"generating {len(rows)} rows x {len(served)} models in mixed batches")
    answers = engine.generate([r.prompt for r in rows], [m.engine_model for m in served], config,
                              progress=progress)
    for j, m in enumerate(served):
        m.outputs = [a[j].text for a in answers]
        m.n_tokens = sum(a[j].n_tokens for a in answers)
    for m in models:
        if m.kind == "baseline":
            say(f"generating the {_baseline_kind(m)} baseline")
            got = engine.generate(b_prompts[_baseline_kind(m)], [BASE], config, progress=progress)
            m.outputs = [g[0].text for g in got]
            m.n_tokens = sum(g[0].n_tokens for g in got)


def _target_losses(
    engine: Engine, task: TaskSpec, rows: list[EvalRow], models: list[ModelRow],
    b_prompts: dict[str, list], progress: bool, say: Callable[[str], None],
) -> dict[str, list[tuple[float, int]]]:
    """Per model, the log-likelihood and token count of each target (for a ``loss`` scorer)."""
    losses: dict[str, list[tuple[float, int]]] = {}
    if not any(s.type == "loss" for s in task.scorers):
        return losses
    say("scoring target log-likelihoods")
    served = [m for m in models if m.kind != "baseline"]
    pairs = [_loss_continuations(engine, r.prompt, r.target) for r in rows]
    scored = engine.score_continuations([c for c, _ in pairs], [k for _, k in pairs],
                                        [m.engine_model for m in served], progress=progress)
    for j, m in enumerate(served):
        losses[m.name] = [s[j] for s in scored]
    for m in models:
        if m.kind == "baseline":
            bp = [_loss_continuations(engine, p, r.target)
                  for p, r in zip(b_prompts[_baseline_kind(m)], rows, strict=True)]
            got = engine.score_continuations([c for c, _ in bp], [k for _, k in bp], [BASE])
            losses[m.name] = [s[0] for s in got]
    return losses


def _comparisons(task: TaskSpec, models: list[ModelRow],
                 scores: Mapping[str, Mapping[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Paired tests of every metric for every compared pair of models."""
    types = {s.name: s.type for s in task.scorers}
    comparisons = []
    for a, b in _pairs(models):
        for name in types:
            ea, eb = scores[a.name][name], scores[b.name][name]
            c = stats.compare(ea["scores"], eb["scores"], ea["weights"], n_boot=task.stats.n_boot,
                              n_permutations=task.stats.n_permutations, seed=task.stats.seed,
                              binary=SCORERS[types[name]].binary)
            comparisons.append({"a": a.name, "b": b.name, "metric": name, **c})
    # one family: every pair x metric the run reports a p-value for
    return stats.add_holm(comparisons)


def _model_entry(
    engine: Engine, task: TaskSpec, rows: list[EvalRow], m: ModelRow,
    scores: Mapping[str, dict[str, Any]], comparisons: list[dict[str, Any]],
    fairness: FairnessResult | None, *, gated: bool,
) -> tuple[dict[str, Any], list[str], list[dict[str, Any]]]:
    """One model's results.json entry, its failed gates, and its fairness prediction lines."""
    types = {s.name: s.type for s in task.scorers}
    metrics = {name: _metric_summary(task, types[name], e) for name, e in scores.items()}
    block = dict(fairness.block) if fairness is not None else None
    lines = []
    if block is not None and isinstance(block.get("predictions"), list):
        lines = [{"model": m.name, **p} for p in block.pop("predictions")]
    entry: dict[str, Any] = {
        "kind": m.kind,
        "adapter": str(m.adapter_dir) if m.adapter_dir else None,
        "run_dir": str(m.run_dir) if m.run_dir else None,
        "metrics": metrics,
        "groups": {name: _group_summary(task, rows, e) for name, e in scores.items()},
        "generated_tokens": m.n_tokens,
        # e.g. a no-op adapter (evalsuite.adapter_checks); the report and verdict show it
        "warnings": list(getattr(engine, "adapter_warnings", {}).get(m.engine_model, []))
        if m.kind == "adapter" else [],
    }
    if block is not None:
        entry["fairness"] = block
    if m.run_dir is not None and RunDir(m.run_dir).metrics.is_file():
        entry["overfitting"] = overfitting_check(RunDir(m.run_dir).read_metrics())
    entry["flat"] = _flat(m.name, metrics, comparisons,
                          fairness.flat if fairness is not None else None)
    failed: list[str] = []
    if gated and task.gates:
        results = check_gates(task.gates, entry["flat"])
        entry["gates"] = [g.to_dict() for g in results]
        entry["passed"] = all(g.passed for g in results)
        failed = [f"{m.name}: {g.gate} ({g.reason})" for g in results if not g.passed]
    return entry, failed, lines
