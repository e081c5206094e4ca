"""``finetune train CONFIG.yaml [key=value ...]``: the training recipe, top to bottom.

``train()`` reads as its steps, each a function in ``finetune/training/``:

1. ``Launch.from_env`` (``launch``): device, rank, trackers (``torchrun`` sets the
   environment); the whole recipe runs with ``config.threads`` CPU threads.
2. ``prepare_work_dir`` (``workdir``): the partial run folder, kept for ``--resume``
   (``finetune.rundir``).
3. ``prepare_data`` (``data``): validate (``finetune.data.validate``; errors stop the run unless
   ``--force``), tokenise with the chat template (loss on assistant tokens only), split.
4. ``build_model`` (``model``): the base through ``finetune.models``, wrapped with LoRA / QLoRA
   (or not, for ``method: full``).
5. ``build_trainer`` + ``training_arguments`` (``trainer``): Hugging Face ``Trainer`` with
   held-out loss every N steps, early stopping, the best checkpoint restored at the end; the
   collator and sampler in ``batching``, the metrics log and progress in ``callbacks``.
6. ``run_training`` (``trainer``): train, then the held-out loss of the restored best model.
7. ``save_run`` (``record``): ``adapter/`` (or ``model/``), ``config.yaml``, ``metrics.jsonl``,
   ``run.json`` (the cost report), ``data_report.json``, ``README.md``.

Everything is built in ``<runs>/.<name>.partial/`` and renamed to ``<runs>/<name>/`` at the
end (``publish``), so a run directory is complete or absent; the partial folder keeps the
checkpoints a killed run resumes from.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from finetune.config import TrainConfig, describe_fields, load_config
from finetune.rundir import RunDir
from finetune.training.data import prepare_data
from finetune.training.launch import Launch, leave_process_group, pinned_threads, pinned_to_config
from finetune.training.model import build_model
from finetune.training.record import echo_summary, save_run
from finetune.training.trainer import build_trainer, run_training
from finetune.training.workdir import needs_training, prepare_work_dir, publish

__all__ = ["add_arguments", "pinned_threads", "run", "train"]  # pinned_threads: its old home


@pinned_to_config
def train(
    config: TrainConfig,
    *,
    runs_dir: Path | str = "runs",
    resume: bool = False,
    force: bool = False,
    progress: bool = True,
    overwrite: bool = False,
    callbacks: Sequence[Any] = (),
) -> Path:
    """Train ``config`` and write ``<runs_dir>/<config.name>/``.

    Args:
        config: the validated training config.
        runs_dir: parent folder of run directories.
        resume: continue from the last checkpoint of an interrupted run of the same name.
        force: train even when data validation reports errors (invalid rows are skipped).
        progress: show a progress bar and one line per evaluation.
        overwrite: replace an existing finished run of the same name.
        callbacks: extra ``transformers.TrainerCallback`` objects (the sweep's pruner).

    Returns:
        The finished run directory.

    Raises:
        UsageError: the run exists, a bad method/device combination, a missing tracker.
        DataError: the data has errors (and ``force`` is off), or no trainable row is left.
        InputError: unreadable data or base model.
    """
    started = time.perf_counter()
    launch = Launch.from_env(config)
    run_dir = RunDir.of(runs_dir, config.name)
    work = RunDir.partial(runs_dir, config.name)
    if not needs_training(run_dir, work, resume=resume, overwrite=overwrite, progress=progress):
        return run_dir.path
    resume_from = prepare_work_dir(work, launch, resume=resume, progress=progress)
    data = prepare_data(config, force=force, progress=progress)
    model, tokenizer = build_model(config, launch.device)
    trainer = build_trainer(config, model, tokenizer, data, work, launch,
                            progress=progress, callbacks=callbacks)
    fit = run_training(trainer, resume_from, launch)
    if launch.is_main:
        info = save_run(config, trainer, tokenizer, data, work, launch, fit, resume_from, started)
        publish(work.path, run_dir.path, overwrite)
        if progress:
            echo_summary(run_dir.path, config, info)
    leave_process_group()
    return run_dir.path


# --------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``finetune train``."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = "config keys (set in the YAML or as key=value):\n" + "\n".join(
        line.replace("``", "") for line in describe_fields()
    )
    parser.add_argument("config", type=Path, help="training config YAML")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="override config keys, e.g. optim.lr=1e-3 name=fair")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"),
                        help="parent folder of run directories (default ./runs)")
    parser.add_argument("--resume", action="store_true",
                        help="continue an interrupted run from its last checkpoint")
    parser.add_argument("--force", action="store_true",
                        help="train even if data validation finds errors (bad rows skipped)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing run")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or eval lines")


def run(args: argparse.Namespace) -> int:
    """Load the config, train, print the run directory."""
    config = load_config(args.config, args.overrides)
    run_dir = train(config, runs_dir=args.runs_dir, resume=args.resume, force=args.force,
                    progress=not args.quiet, overwrite=args.overwrite)
    if int(os.environ.get("RANK", "0")) == 0:
        print(run_dir)
    return 0
