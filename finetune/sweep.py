"""``finetune sweep CONFIG.yaml --trials N``: Optuna over the search space in the YAML.

The config's ``sweep:`` section maps dotted config keys to parameter specs::

    sweep:
      params:
        optim.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
        lora.r: {type: categorical, choices: [8, 16, 32]}
      pruner: median

Every trial is a normal run directory ``<runs>/<name>-sweep/trial-NNN/``; the objective is the
best held-out loss; the median pruner stops trials whose held-out loss lags the others at the
same step (a pruned trial still leaves a complete run directory, marked ``pruned``). The study
lives in ``study.db`` (SQLite) beside the trials, so running the sweep again adds trials. The
sweep writes ``summary.md``, ``summary.json`` and ``best.yaml`` (a config ``finetune train``
accepts).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from finetune.artifacts import atomic_write_json, atomic_write_text
from finetune.config import ParamSpec, TrainConfig, load_config, with_overrides
from finetune.errors import UsageError
from finetune.rundir import RunDir


def suggest(trial: Any, params: dict[str, ParamSpec]) -> dict[str, Any]:
    """Draw one value per search-space key from an Optuna trial."""
    out: dict[str, Any] = {}
    for key, spec in params.items():
        if spec.type == "categorical":
            out[key] = trial.suggest_categorical(key, spec.choices)
        elif spec.type == "int":
            out[key] = trial.suggest_int(key, int(spec.low), int(spec.high), log=spec.log)
        else:
            out[key] = trial.suggest_float(key, float(spec.low), float(spec.high), log=spec.log)
    return out


def _prune_callback(trial: Any) -> Any:
    from transformers import TrainerCallback

    class PruneOnEvalLoss(TrainerCallback):
        """Report each held-out loss to Optuna; stop training when the pruner says so."""

        pruned = False
        last_step = -1

        def on_evaluate(self, args, state, control, metrics=None, **kwargs):  # noqa: ANN001, ANN201, D102
            if not metrics or "eval_loss" not in metrics or self.pruned:
                return
            if state.global_step <= self.last_step:  # the final re-check of the best model
                return
            self.last_step = state.global_step
            trial.report(metrics["eval_loss"], state.global_step)
            if trial.should_prune():
                self.pruned = True
                control.should_training_stop = True

    return PruneOnEvalLoss()


def sweep(
    config: TrainConfig, *, trials: int, runs_dir: Path | str = "runs", progress: bool = True
) -> Path:
    """Run ``trials`` Optuna trials of ``config`` over its ``sweep.params``.

    Returns:
        The sweep folder ``<runs_dir>/<name>-sweep`` holding the trials and summaries.

    Raises:
        UsageError: no ``sweep:`` section, no held-out data, or ``trials < 1``.
    """
    import optuna

    from finetune.train import train

    if config.sweep is None:
        raise UsageError(
            "config has no sweep: section; add e.g. sweep: {params: {optim.lr: "
            "{type: float, low: 1.0e-4, high: 1.0e-2, log: true}}}"
        )
    if not config.heldout_data and config.heldout_fraction <= 0:
        raise UsageError("a sweep needs held-out loss: set heldout_data or heldout_fraction > 0")
    if trials < 1:
        raise UsageError("--trials must be at least 1")
    space = config.sweep
    sweep_dir = Path(runs_dir) / f"{config.name}-sweep"
    sweep_dir.mkdir(parents=True, exist_ok=True)
    if not progress:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    pruner: optuna.pruners.BasePruner = (
        optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)
        if space.pruner == "median" else optuna.pruners.NopPruner()
    )
    study = optuna.create_study(
        study_name=config.name,
        storage=f"sqlite:///{(sweep_dir / 'study.db').resolve()}",
        load_if_exists=True,
        direction=space.direction,
        sampler=optuna.samplers.TPESampler(seed=config.seed),
        pruner=pruner,
    )

    def objective(trial: optuna.Trial) -> float:
        values = suggest(trial, space.params)
        trial_config = with_overrides(config, {**values, "name": f"trial-{trial.number:03d}",
                                               "sweep": None})
        callback = _prune_callback(trial)
        run_dir = train(trial_config, runs_dir=sweep_dir, progress=progress, overwrite=True,
                        callbacks=[callback])
        run = RunDir(run_dir).read_info()
        run["sweep"] = {"trial": trial.number, "params": values, "pruned": callback.pruned}
        RunDir(run_dir).write_info(run)
        trial.set_user_attr("run_dir", str(run_dir))
        trial.set_user_attr("global_step", run.get("global_step"))
        trial.set_user_attr("wall_time_s", run.get("wall_time_s"))
        if callback.pruned:
            raise optuna.TrialPruned()
        loss = run.get("best_eval_loss")
        if loss is None:
            raise UsageError("trial finished without a held-out loss")
        return float(loss)

    study.optimize(objective, n_trials=trials, catch=())
    write_summary(study, config, sweep_dir)
    if progress:
        print((sweep_dir / "summary.md").read_text(encoding="utf-8"))
    return sweep_dir


def write_summary(study: Any, config: TrainConfig, sweep_dir: Path) -> None:
    """``summary.md`` (a table of trials), ``summary.json`` and ``best.yaml``."""
    import optuna

    keys = list(config.sweep.params) if config.sweep else []
    rows = []
    for t in study.trials:
        rows.append({
            "trial": t.number,
            "state": t.state.name.lower(),
            "best_eval_loss": t.value,
            "params": t.params,
            "steps": t.user_attrs.get("global_step"),
            "wall_time_s": t.user_attrs.get("wall_time_s"),
            "run_dir": t.user_attrs.get("run_dir"),
        })
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    best = min(done, key=lambda t: t.value) if done else None
    header = ["trial", "state", "best eval_loss", *keys, "steps", "wall s"]
    lines = [f"# sweep {config.name}", "", "| " + " | ".join(header) + " |",
             "|" + "---|" * len(header)]
    for r in rows:
        loss = f"{r['best_eval_loss']:.4f}" if r["best_eval_loss"] is not None else "-"
        cells = [str(r["trial"]), r["state"], loss,
                 *[_fmt(r["params"].get(k)) for k in keys],
                 str(r["steps"] or "-"), str(r["wall_time_s"] or "-")]
        lines.append("| " + " | ".join(cells) + " |")
    summary: dict[str, Any] = {"name": config.name, "trials": rows, "best": None}
    if best is not None:
        best_config = with_overrides(config, {**best.params, "name": f"{config.name}-best",
                                              "sweep": None})
        atomic_write_text(sweep_dir / "best.yaml",
                          f"# best of {len(study.trials)} trials: trial {best.number}, "
                          f"held-out loss {best.value:.4f}\n" + best_config.to_yaml())
        summary["best"] = {"trial": best.number, "best_eval_loss": best.value,
                           "params": best.params, "config": str(sweep_dir / "best.yaml")}
        lines += ["", f"Best: trial {best.number} (held-out loss {best.value:.4f}); "
                      f"config in `{sweep_dir / 'best.yaml'}`."]
    atomic_write_json(sweep_dir / "summary.json", summary)
    atomic_write_text(sweep_dir / "summary.md", "\n".join(lines) + "\n")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``finetune sweep``."""
    parser.add_argument("config", type=Path, help="training config YAML with a sweep: section")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="override config keys for every trial")
    parser.add_argument("--trials", type=int, required=True, help="number of trials to run")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"),
                        help="parent folder (default ./runs); trials go to <name>-sweep/")
    parser.add_argument("--quiet", action="store_true", help="no progress output")


def run(args: argparse.Namespace) -> int:
    """Run the sweep and print the summary."""
    config = load_config(args.config, args.overrides)
    out = sweep(config, trials=args.trials, runs_dir=args.runs_dir, progress=not args.quiet)
    if args.quiet:
        print(out)
    return 0
