"""``finetune train CONFIG.yaml [key=value ...]``: the training recipe, top to bottom.

``train()`` reads as its steps, each a function below it:

1. ``Launch.from_env``: device, rank, trackers (``torchrun`` sets the environment).
2. ``_prepare_work_dir``: the partial run folder, kept for ``--resume`` (``finetune.rundir``).
3. ``prepare_data``: validate (``finetune.data.validate``; errors stop the run unless
   ``--force``), tokenise with the chat template (loss on assistant tokens only), split.
4. ``build_model``: the base through ``finetune.models``, wrapped with LoRA / QLoRA (or not,
   for ``method: full``).
5. ``build_trainer`` + ``training_arguments``: Hugging Face ``Trainer`` with held-out loss
   every N steps, early stopping, the best checkpoint restored at the end.
6. ``run_training``: train, then the held-out loss of the restored best model.
7. ``save_run``: ``adapter/`` (or ``model/``), ``config.yaml``, ``metrics.jsonl``, ``run.json``
   (the cost report), ``data_report.json``, ``README.md``.

Everything is built in ``<runs>/.<name>.partial/`` and renamed to ``<runs>/<name>/`` at the
end, so a run directory is complete or absent; the partial folder keeps the checkpoints a
killed run resumes from.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import json
import os
import random
import resource
import shutil
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from finetune.artifacts import replace_dir
from finetune.card import model_card
from finetune.config import TrainConfig, describe_fields, load_config
from finetune.data.formats import IGNORE_INDEX, RowError, encode, iter_rows, to_messages
from finetune.errors import DataError, UsageError, where
from finetune.rundir import RunDir, checkpoint_step

# --------------------------------------------------------------------------- data


@dataclass
class Encoded:
    """Tokenised rows ready for the Trainer, and what was left out and why."""

    rows: list[dict[str, Any]]
    groups: list[str] = field(default_factory=list)
    """Per row, the key of the rows it must share a split with (see :func:`split_key`)."""
    dropped_invalid: list[int] = field(default_factory=list)
    dropped_no_target: list[int] = field(default_factory=list)
    truncated: int = 0


def encode_file(path: str, tokenizer: Any, config: TrainConfig) -> Encoded:
    """Read and tokenise every row of ``path``.

    Invalid rows and rows without a single trainable token (e.g. a prompt longer than
    ``max_seq_len``) are listed, not trained on.
    """
    fmt = None if config.format == "auto" else config.format
    out = Encoded(rows=[])
    for row in iter_rows(path):
        if row.data is None:
            out.dropped_invalid.append(row.line)
            continue
        try:
            messages = to_messages(row.data, fmt)
        except RowError:
            out.dropped_invalid.append(row.line)
            continue
        enc = encode(tokenizer, messages, config.max_seq_len)
        if enc["n_trainable"] == 0:
            out.dropped_no_target.append(row.line)
            continue
        out.truncated += enc["length"] > config.max_seq_len
        out.rows.append({"input_ids": enc["input_ids"], "labels": enc["labels"]})
        out.groups.append(split_key(row.data, row.line))
    return out


def split_key(row: dict[str, Any], line: int) -> str:
    """The rows a row must stay with when a validation split is cut from the training data.

    ``finetune rebalance`` gives every copy it makes (a counterfactual twin, an up-sampled
    duplicate) the ``source_id`` of its original. A twin on the other side of the split
    differs from its original by a name only, so the validation loss would reward
    memorising that row, and the best checkpoint would be the one that memorised most.
    """
    source = row.get("source_id", row.get("id"))
    return f"id:{source}" if isinstance(source, str | int) else f"line:{line}"


def split_heldout(
    rows: list[dict], fraction: float, seed: int, groups: list[str] | None = None
) -> tuple[list[dict], list[dict]]:
    """A seeded random split of ``rows`` into (train, held-out).

    Args:
        rows: The rows to split.
        fraction: Share of rows to hold out (at least one row when positive).
        seed: Seed of the shuffle.
        groups: Per row, a key; rows with the same key land on the same side.
    """
    keys = groups if groups is not None else [str(i) for i in range(len(rows))]
    members: dict[str, list[int]] = {}
    for i, key in enumerate(keys):
        members.setdefault(key, []).append(i)
    order = list(members)
    random.Random(seed).shuffle(order)
    n_heldout = max(1, round(len(rows) * fraction)) if fraction > 0 else 0
    held: set[int] = set()
    for key in order:
        if len(held) >= n_heldout:
            break
        held.update(members[key])
    return [r for i, r in enumerate(rows) if i not in held], [rows[i] for i in sorted(held)]


def fingerprint_data(*refs: str | None) -> str:
    """sha256 over the bytes of the data files (a hub id is hashed by name)."""
    h = hashlib.sha256()
    for ref in refs:
        if ref is None:
            continue
        p = Path(ref)
        if p.is_file():
            with p.open("rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
        else:
            h.update(ref.encode())
        h.update(b"\0")
    return h.hexdigest()


class Collator:
    """Pads a batch on the right, or concatenates it into one row (``padding_free``).

    Padding-free rows carry position ids that restart per row; transformers turns those into
    a block-diagonal mask, so attention stays within each row.
    """

    def __init__(self, pad_id: int, padding_free: bool = False):
        self.pad_id = pad_id
        self.padding_free = padding_free

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        """Collate tokenised rows into tensors."""
        import torch

        if self.padding_free:
            ids, labels, pos = [], [], []
            for f in features:
                ids += f["input_ids"]
                # The first label of each row must not be predicted from the previous row.
                labels += [IGNORE_INDEX] + f["labels"][1:]
                pos += range(len(f["input_ids"]))
            return {
                "input_ids": torch.tensor([ids]),
                "labels": torch.tensor([labels]),
                "position_ids": torch.tensor([pos]),
            }
        width = max(len(f["input_ids"]) for f in features)
        ids = torch.full((len(features), width), self.pad_id)
        labels = torch.full((len(features), width), IGNORE_INDEX)
        mask = torch.zeros((len(features), width), dtype=torch.long)
        for i, f in enumerate(features):
            n = len(f["input_ids"])
            ids[i, :n] = torch.tensor(f["input_ids"])
            labels[i, :n] = torch.tensor(f["labels"])
            mask[i, :n] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}


class LengthGroupedSampler:
    """Random batches of similar length.

    Shuffle, sort by length within mega-batches of ``16 * batch_size`` rows, cut into
    batches, shuffle the batches: little padding, without ordering an epoch long to short
    (as transformers' own length-grouped sampler does).
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int):
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Called by the Trainer (via accelerate) so each epoch, and a resumed one, is seeded."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self) -> Iterator[int]:
        rng = random.Random(self.seed * 1000003 + self.epoch)
        order = list(range(len(self.lengths)))
        rng.shuffle(order)
        mega = 16 * self.batch_size
        batches = []
        for start in range(0, len(order), mega):
            chunk = sorted(order[start : start + mega], key=lambda i: self.lengths[i])
            step = self.batch_size
            batches += [chunk[i : i + step] for i in range(0, len(chunk), step)]
        rng.shuffle(batches)
        return iter([i for b in batches for i in b])


# --------------------------------------------------------------------------- model


def trainable_and_total(model: Any) -> tuple[int, int]:
    """(trainable, total) parameter counts; 4-bit weights count as their unpacked size."""
    if hasattr(model, "get_nb_trainable_parameters"):
        return model.get_nb_trainable_parameters()
    total = sum(p.numel() for p in model.parameters())
    return sum(p.numel() for p in model.parameters() if p.requires_grad), total


def build_model(config: TrainConfig, device: str) -> tuple[Any, Any]:
    """Load the base via THE loader and wrap it for ``config.method``."""
    import transformers

    from finetune.models import load_base

    # Full fine-tuning keeps fp32 master weights; bf16 happens through autocast.
    dtype = config.dtype or ("float32" if config.method == "full" else None)
    model, tokenizer = load_base(
        config.base,
        device=device,
        dtype=dtype,
        trust_remote_code=config.trust_remote_code,
        quantize_4bit=config.method == "qlora",
        chat_template=config.chat_template,
    )
    model.config.use_cache = False
    if config.method == "full":
        return model, tokenizer
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if config.method == "qlora":
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=config.gradient_checkpointing
        )
    transformers.set_seed(config.seed)  # LoRA A matrices are drawn here
    targets, layers = _lora_targets(model, config)
    lora = LoraConfig(
        r=config.lora.r,
        lora_alpha=config.lora.alpha,
        lora_dropout=config.lora.dropout,
        target_modules=targets,
        layers_to_transform=layers,
        use_dora=config.lora.use_dora,
        use_rslora=config.lora.use_rslora,
        modules_to_save=config.lora.modules_to_save,
        bias="none",
        task_type="CAUSAL_LM",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # peft calls a deprecated alias
        model = get_peft_model(model, lora)
    return model, tokenizer


def _lora_targets(model: Any, config: TrainConfig) -> tuple[Any, list[int] | None]:
    """``target_modules`` and ``layers_to_transform`` for PEFT.

    PEFT takes a layer subset only with a list of module names, so ``all-linear`` becomes
    the names of the base's linear layers (its output head excepted) when ``top_layers`` is
    set.
    """
    import torch

    targets, top = config.lora.target_modules, config.lora.top_layers
    if top is None:
        return targets, None
    n_layers = getattr(model.config.get_text_config(), "num_hidden_layers", None)
    if not n_layers:
        raise UsageError(f"lora.top_layers: {config.base} does not say how many layers it has")
    if top > n_layers:
        raise UsageError(f"lora.top_layers: {top} is more than the {n_layers} layers of "
                         f"{config.base}")
    if targets == "all-linear":
        head = model.get_output_embeddings()
        targets = sorted({name.rsplit(".", 1)[-1] for name, module in model.named_modules()
                          if isinstance(module, torch.nn.Linear) and module is not head})
    return targets, list(range(n_layers - top, n_layers))


# --------------------------------------------------------------------------- callbacks


def _callback_classes() -> tuple[type, type]:
    from transformers import ProgressCallback, TrainerCallback

    class MetricsLog(TrainerCallback):
        """One metrics.jsonl line per log event and one readable line per evaluation."""

        def __init__(self, run: RunDir, echo: bool):
            self.run = run
            self.echo = echo
            self.last = (time.perf_counter(), 0)
            self.best: float | None = None

        def on_train_begin(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201, D102
            self.last = (time.perf_counter(), state.num_input_tokens_seen)

        def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001, ANN201, D102
            if not state.is_world_process_zero or not logs:
                return
            now, tokens = time.perf_counter(), state.num_input_tokens_seen
            rate = None
            if "loss" in logs and now > self.last[0]:
                rate = round((tokens - self.last[1]) / (now - self.last[0]), 1)
                self.last = (now, tokens)
            line = {
                "step": state.global_step,
                "epoch": round(state.epoch or 0.0, 4),
                "train_loss": logs.get("loss"),
                "eval_loss": logs.get("eval_loss"),
                "lr": logs.get("learning_rate"),
                "tokens_per_s": rate,
            }
            self.run.append_metrics(line)

        def on_evaluate(self, args, state, control, metrics=None, **kwargs):  # noqa: ANN001, ANN201, D102
            if not state.is_world_process_zero or not metrics or "eval_loss" not in metrics:
                return
            loss = metrics["eval_loss"]
            self.best = loss if self.best is None else min(self.best, loss)
            if self.echo:
                train_loss = next(
                    (h["loss"] for h in reversed(state.log_history) if "loss" in h), None
                )
                shown = f"{train_loss:.4f}" if train_loss is not None else "-"
                _echo(
                    f"step {state.global_step}/{state.max_steps}  epoch {state.epoch:.2f}  "
                    f"train_loss {shown}  eval_loss {loss:.4f}  best {self.best:.4f}"
                )

    class QuietProgress(ProgressCallback):
        """The Trainer's progress bar without its raw dict print-outs (MetricsLog prints)."""

        def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001, ANN201, D102
            return

        def on_prediction_step(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201, D102
            return

    return MetricsLog, QuietProgress


def _echo(text: str) -> None:
    try:
        from tqdm.auto import tqdm

        tqdm.write(text, file=sys.stderr)
    except ImportError:  # pragma: no cover
        print(text, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- the recipe


@contextlib.contextmanager
def pinned_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` CPU threads (``None``: as they are), then restore the count.

    The count is process-wide: two processes each running torch's default (one thread per
    core) on a shared machine spin-wait for each other: a tiny demo's evaluation took 177-446 s
    in CI beside a second build, and ~50 s pinned to one thread.
    """
    import torch

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _pinned_threads(fn: Callable[..., Path]) -> Callable[..., Path]:
    """Run ``fn(config, ...)`` with ``config.threads`` CPU threads, then restore the count.

    The app trains in a background thread of the serving process, which keeps its own count.
    """

    @functools.wraps(fn)
    def wrapper(config: TrainConfig, *args: Any, **kwargs: Any) -> Path:
        with pinned_threads(config.threads):
            return fn(config, *args, **kwargs)

    return wrapper


@_pinned_threads
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
    if not _needs_training(run_dir, work, resume=resume, overwrite=overwrite, progress=progress):
        return run_dir.path
    resume_from = _prepare_work_dir(work, launch, resume=resume, progress=progress)
    data = prepare_data(config, force=force, progress=progress)
    model, tokenizer = build_model(config, launch.device)
    trainer = build_trainer(config, model, tokenizer, data, work, launch,
                            progress=progress, callbacks=callbacks)
    fit = run_training(trainer, resume_from, launch)
    if launch.is_main:
        info = save_run(config, trainer, tokenizer, data, work, launch, fit, resume_from, started)
        _publish(work.path, run_dir.path, overwrite)
        if progress:
            _echo_summary(run_dir.path, config, info)
    _leave_process_group()
    return run_dir.path


@dataclass(frozen=True)
class Launch:
    """Where this process runs: its device, its rank, and the trackers it reports to."""

    device: str
    world_size: int
    is_main: bool
    report_to: list[str]

    @classmethod
    def from_env(cls, config: TrainConfig) -> Launch:
        """Read ``torchrun``'s environment; refuse QLoRA off CUDA and missing trackers."""
        device = _resolve_device(config)
        if config.method == "qlora" and not device.startswith("cuda"):
            raise UsageError("method: qlora needs a CUDA GPU (4-bit bitsandbytes); use method=lora")
        return cls(device, int(os.environ.get("WORLD_SIZE", "1")),
                   int(os.environ.get("RANK", "0")) == 0, _report_to(config))


def _needs_training(run_dir: RunDir, work: RunDir, *, resume: bool, overwrite: bool,
                    progress: bool) -> bool:
    """False when resuming a run that already finished; an existing run otherwise refuses."""
    if run_dir.path.exists() and not overwrite:
        if resume and not work.path.exists():
            if progress:
                _echo(f"{run_dir.path} is already complete; nothing to resume")
            return False
        raise UsageError(f"{run_dir.path}: run exists; pick another name=, or pass --overwrite")
    return True


def _prepare_work_dir(work: RunDir, launch: Launch, *, resume: bool,
                      progress: bool) -> Path | None:
    """Start the partial folder afresh, or keep it for ``--resume``; the checkpoint to resume."""
    resume_from = work.last_checkpoint() if resume else None
    if launch.is_main:
        if resume and resume_from is None and progress:
            _echo(f"no checkpoint in {work.path}; starting from scratch")
        if resume_from is None and work.path.exists():
            shutil.rmtree(work.path)
        work.checkpoints.mkdir(parents=True, exist_ok=True)
        if resume_from is not None:
            work.keep_metrics_until(checkpoint_step(resume_from) or 0)
    _barrier(launch.world_size)
    return resume_from


@dataclass
class Data:
    """The validated, tokenised and split data of a run."""

    report: Any
    train_set: Encoded
    heldout_set: Encoded | None
    train_rows: list[dict[str, Any]]
    heldout_rows: list[dict[str, Any]]


def prepare_data(config: TrainConfig, *, force: bool, progress: bool) -> Data:
    """Validate the data, tokenise it with the chat template, split off the held-out rows.

    Raises:
        DataError: validation errors (without ``force``), or no row left to train on.
    """
    import transformers

    from finetune.models import load_tokenizer

    if not progress:
        transformers.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
    tokenizer = load_tokenizer(config.base, trust_remote_code=config.trust_remote_code,
                               chat_template=config.chat_template)
    report = _validate(config, tokenizer, force=force, progress=progress)
    train_set = encode_file(config.train_data, tokenizer, config)
    heldout_set = None
    if config.heldout_data:
        heldout_set = encode_file(config.heldout_data, tokenizer, config)
        train_rows, heldout_rows = train_set.rows, heldout_set.rows
    else:
        train_rows, heldout_rows = split_heldout(
            train_set.rows, config.heldout_fraction, config.seed, train_set.groups
        )
    dropped = train_set.dropped_no_target
    if dropped and progress:
        lines = ", ".join(map(str, dropped[:10]))
        _echo(f"{config.train_data}: {len(dropped)} rows have no trainable "
              f"token after truncation to max_seq_len={config.max_seq_len} and are dropped "
              f"(lines {lines}{', ...' if len(dropped) > 10 else ''})")
    if not train_rows:
        raise DataError(where(config.train_data, None, None, "no row left to train on"))
    return Data(report, train_set, heldout_set, train_rows, heldout_rows)


def _validate(config: TrainConfig, tokenizer: Any, *, force: bool, progress: bool) -> Any:
    """Run the data checks; errors stop the run unless ``force``."""
    from finetune.data.validate import validate

    report = validate(
        config.train_data,
        heldout=config.heldout_data,
        base=config.base,
        tokenizer=tokenizer,
        max_seq_len=config.max_seq_len,
        group_field=config.data_checks.group_field,
        outcome_pattern=config.data_checks.outcome_pattern,
        progress=False,
    )
    if report.n_errors and not force:
        first = report.row_errors[0]["message"] if report.row_errors else config.train_data
        raise DataError(
            f"{first} ({report.n_errors} data errors in all; see `finetune validate "
            f"{config.train_data}`; fix them, or pass --force to train on the valid rows)"
        )
    if progress and (report.n_errors or report.n_warnings):
        _echo(f"{config.train_data}: data validation: {report.n_errors} errors, "
              f"{report.n_warnings} warnings (details in data_report.json)")
    return report


def training_arguments(config: TrainConfig, work: RunDir, launch: Launch, *, do_eval: bool,
                       progress: bool) -> Any:
    """The config mapped onto ``transformers.TrainingArguments``."""
    from transformers import TrainingArguments

    eval_steps = config.eval.every_steps
    return TrainingArguments(
        output_dir=str(work.checkpoints),
        per_device_train_batch_size=config.optim.batch_size,
        per_device_eval_batch_size=config.eval.batch_size or config.optim.batch_size,
        gradient_accumulation_steps=config.optim.grad_accum,
        learning_rate=config.optim.lr,
        num_train_epochs=config.optim.epochs,
        max_steps=config.optim.max_steps,
        lr_scheduler_type=config.optim.scheduler,
        warmup_steps=config.optim.warmup_ratio,
        weight_decay=config.optim.weight_decay,
        max_grad_norm=config.optim.max_grad_norm,
        eval_strategy="steps" if do_eval else "no",
        eval_steps=eval_steps,
        save_strategy="steps",
        save_steps=eval_steps,
        save_total_limit=2,
        load_best_model_at_end=do_eval,
        metric_for_best_model="eval_loss",
        greater_is_better=False,
        logging_steps=config.logging_steps,
        include_num_input_tokens_seen="non_padding",
        report_to=launch.report_to or "none",
        seed=config.seed,
        data_seed=config.seed,
        bf16=launch.device.startswith("cuda"),
        use_cpu=launch.device == "cpu",
        activation_checkpointing=config.gradient_checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False},
        dataloader_num_workers=0,
        remove_unused_columns=False,
        disable_tqdm=not progress,
        ddp_find_unused_parameters=False,
        prediction_loss_only=True,
    )


def build_trainer(config: TrainConfig, model: Any, tokenizer: Any, data: Data, work: RunDir,
                  launch: Launch, *, progress: bool, callbacks: Sequence[Any]) -> Any:
    """The ``Trainer`` with our collator, sampler, metrics log, early stopping and progress bar."""
    from transformers import EarlyStoppingCallback, PrinterCallback, ProgressCallback

    do_eval = bool(data.heldout_rows)
    metrics_log, quiet_progress = _callback_classes()
    cbs: list[Any] = [metrics_log(work, echo=progress), *callbacks]
    if do_eval and config.eval.patience > 0:
        cbs.append(EarlyStoppingCallback(config.eval.patience, config.eval.threshold))
    trainer = _Trainer(
        model=model,
        args=training_arguments(config, work, launch, do_eval=do_eval, progress=progress),
        train_dataset=data.train_rows,
        eval_dataset=data.heldout_rows or None,
        data_collator=Collator(tokenizer.pad_token_id, config.batching == "padding_free"),
        processing_class=tokenizer,
        callbacks=cbs,
        grouped=config.batching == "length_grouped",
    )
    trainer.metrics_log = cbs[0]
    trainer.remove_callback(PrinterCallback)
    if trainer.pop_callback(ProgressCallback) is not None:
        trainer.add_callback(quiet_progress)
    return trainer


@dataclass
class Fit:
    """What the training loop took, and the held-out loss of the restored best model."""

    train_seconds: float
    train_cpu_seconds: float
    final_eval: dict[str, Any]
    # Evaluation inside the loop (wall, CPU); the final evaluation after it is not counted.
    loop_eval_seconds: float = 0.0
    loop_eval_cpu_seconds: float = 0.0


def run_training(trainer: Any, resume_from: Path | None, launch: Launch) -> Fit:
    """Train (resuming from a checkpoint if given), then evaluate the restored best model."""
    import torch

    if launch.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    train_started, cpu_started = time.perf_counter(), time.process_time()
    trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    fit = Fit(time.perf_counter() - train_started, time.process_time() - cpu_started, {},
              trainer.eval_seconds, trainer.eval_cpu_seconds)
    # Checks that what is saved is the best; every process takes part, as evaluation gathers
    # across them. The metrics log is removed first: this evaluation is not a training step.
    trainer.pop_callback(trainer.metrics_log)
    if trainer.eval_dataset is not None:
        fit.final_eval = trainer.evaluate()
    _barrier(launch.world_size)
    return fit


def save_run(config: TrainConfig, trainer: Any, tokenizer: Any, data: Data, work: RunDir,
             launch: Launch, fit: Fit, resume_from: Path | None, started: float) -> dict:
    """Write the run's files into the partial folder and drop the checkpoints.

    Returns:
        The ``run.json`` content.
    """
    model = trainer.accelerator.unwrap_model(trainer.model)
    artefact = work.artefact(config.method)
    model.save_pretrained(str(artefact), safe_serialization=True)
    tokenizer.save_pretrained(str(artefact))
    info = {
        **_provenance(config, artefact),
        **_data_facts(config, data),
        **_cost(model, trainer, launch, fit, started),
        **_progress(trainer.state, fit, resume_from),
        **_environment(model, config, launch),
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "data_report": data.report.summary() if data.report is not None else None,
    }
    if data.report is not None:
        work.write_data_report(data.report.to_dict())
    work.write_config(config.to_yaml())
    work.write_info(info)
    work.ensure_metrics()
    work.write_card(model_card(config, info))
    tb = work.checkpoints / "runs"
    if tb.is_dir():
        shutil.move(str(tb), str(work.tensorboard))
    shutil.rmtree(work.checkpoints)
    return info


def _echo_summary(run_dir: Path, config: TrainConfig, info: dict[str, Any]) -> None:
    best = info["best_eval_loss"]
    _echo(f"{run_dir}: {config.method} {info['trainable_params']:,}/{info['total_params']:,} "
          f"params trained, best eval_loss {best if best is not None else '-'} "
          f"at step {info['best_step']}, {info['tokens_per_s']:.0f} tokens/s, "
          f"{info['wall_time_s']:.0f}s")


# --------------------------------------------------------------------------- run.json


def _provenance(config: TrainConfig, artefact: Path) -> dict[str, Any]:
    from finetune.models import base_fingerprint

    return {
        "name": config.name,
        "base": config.base,
        "base_fingerprint": base_fingerprint(config.base),
        "method": config.method,
        "artifact": artefact.name,
    }


def _data_facts(config: TrainConfig, data: Data) -> dict[str, Any]:
    train_set, heldout_set = data.train_set, data.heldout_set
    return {
        "data_fingerprint": fingerprint_data(config.train_data, config.heldout_data),
        "train_data": config.train_data,
        "heldout_data": config.heldout_data,
        "n_train_rows": len(data.train_rows),
        "n_heldout_rows": len(data.heldout_rows),
        "dropped_rows": {
            "invalid": train_set.dropped_invalid,
            "no_trainable_tokens": train_set.dropped_no_target,
            "heldout_invalid": heldout_set.dropped_invalid if heldout_set else [],
            "heldout_no_trainable_tokens": heldout_set.dropped_no_target if heldout_set else [],
        },
        "truncated_rows": train_set.truncated,
    }


def _cost(model: Any, trainer: Any, launch: Launch, fit: Fit, started: float) -> dict[str, Any]:
    """Parameters, memory, time and throughput: the numbers LoRA is chosen for."""
    trainable, total = trainable_and_total(model)
    peak, peak_kind = _peak_memory(launch.device)
    tokens = trainer.state.num_input_tokens_seen - trainer.initial_tokens
    # Only the evaluations inside trainer.train() come off its time: the final evaluation
    # runs after the clock stopped (subtracting it too inflated tokens/s up to 10x).
    loop_seconds = max(fit.train_seconds - fit.loop_eval_seconds, 1e-9)
    loop_cpu = max(fit.train_cpu_seconds - fit.loop_eval_cpu_seconds, 1e-9)
    return {
        "trainable_params": int(trainable),
        "total_params": int(total),
        "trainable_share": round(trainable / total, 6) if total else None,
        "peak_memory_bytes": peak,
        "peak_memory_kind": peak_kind,
        "train_state_bytes": _state_bytes(model, trainer.optimizer),
        "wall_time_s": round(time.perf_counter() - started, 3),
        "train_time_s": round(fit.train_seconds, 3),
        "train_cpu_time_s": round(fit.train_cpu_seconds, 3),
        "eval_time_s": round(trainer.eval_seconds, 3),
        "train_tokens": int(tokens),
        "tokens_per_s": round(tokens / loop_seconds, 1),
        "tokens_per_cpu_s": round(tokens / loop_cpu, 1),
    }


def _progress(state: Any, fit: Fit, resume_from: Path | None) -> dict[str, Any]:
    return {
        "global_step": state.global_step,
        "max_steps": state.max_steps,
        "epochs_completed": round(state.epoch or 0.0, 4),
        "best_step": checkpoint_step(state.best_model_checkpoint or ""),
        "best_eval_loss": state.best_metric,
        "final_eval_loss": fit.final_eval.get("eval_loss"),
        "stopped_early": state.global_step < state.max_steps,
        "resumed_from_step": checkpoint_step(resume_from) if resume_from else None,
    }


def _environment(model: Any, config: TrainConfig, launch: Launch) -> dict[str, Any]:
    return {
        "device": launch.device,
        "world_size": launch.world_size,
        "dtype": str(next(model.parameters()).dtype).replace("torch.", ""),
        "attn_implementation": getattr(model.config, "_attn_implementation", None),
        "batching": config.batching,
        "versions": _versions(),
    }


def _peak_memory(device: str) -> tuple[int, str]:
    import torch

    if device.startswith("cuda"):
        return int(torch.cuda.max_memory_allocated()), "cuda_max_allocated"
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak_kb * (1 if sys.platform == "darwin" else 1024)), "rss"


def _state_bytes(model: Any, optimizer: Any) -> dict[str, int]:
    """Bytes held by weights, gradients and optimiser state: the part LoRA shrinks."""
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    grads = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    opt = 0
    if optimizer is not None:
        for state in optimizer.state.values():
            opt += sum(v.numel() * v.element_size() for v in state.values() if hasattr(v, "numel"))
    return {"weights": weights, "gradients": grads, "optimizer": opt}


def _versions() -> dict[str, str]:
    import peft
    import torch
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__,
            "peft": peft.__version__}


# --------------------------------------------------------------------------- launch helpers


def _resolve_device(config: TrainConfig) -> str:
    from finetune.models import pick_device

    device = pick_device(config.device)
    if device == "cuda" and "LOCAL_RANK" in os.environ:
        device = f"cuda:{os.environ['LOCAL_RANK']}"
    return device


def _report_to(config: TrainConfig) -> list[str]:
    import importlib.util

    for name in config.report_to:
        if importlib.util.find_spec(name) is None:
            raise UsageError(
                f"report_to: {name} is not installed; pip install 'tuneproof[track]' or drop it"
            )
    return list(config.report_to)


def _leave_process_group() -> None:
    # A rank that exits with its gloo group still up can abort in the C++ teardown
    # ("terminate called without an active exception"), failing the launch at random.
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _barrier(world_size: int) -> None:
    if world_size > 1:
        from accelerate import PartialState

        PartialState().wait_for_everyone()


def _publish(work: Path, run_dir: Path, overwrite: bool) -> None:
    """Rename the finished partial folder into place (replacing an old run if asked)."""
    if run_dir.exists() and not overwrite:
        raise UsageError(f"{run_dir}: run exists; pick another name=, or pass --overwrite")
    replace_dir(work, run_dir)


# --------------------------------------------------------------------------- the Trainer


def accepts_logits_to_keep(model: Any) -> bool:
    """Whether the (possibly peft-wrapped) model's forward takes ``logits_to_keep``."""
    import inspect

    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "logits_to_keep" in inspect.signature(inner.forward).parameters


def target_only_loss(model: Any, inputs: dict[str, Any],
                     num_items_in_batch: Any = None) -> tuple[Any, Any]:
    """The causal-LM loss, computing logits only where a label follows.

    Loss is on assistant tokens only, so most positions' logits (the vocabulary projection
    and its softmax) are never used; ``logits_to_keep`` skips them. Same value as the model's
    own loss: summed cross-entropy over labelled tokens, divided by ``num_items_in_batch``
    (the Trainer's count across gradient accumulation) or by this batch's count.
    """
    import torch.nn.functional as F

    labels = inputs["labels"]
    keep = (labels[:, 1:] != IGNORE_INDEX).any(0).nonzero().squeeze(1)
    rest = {k: v for k, v in inputs.items() if k != "labels"}
    outputs = model(**rest, logits_to_keep=keep)
    logits = outputs.logits.float()
    targets = labels[:, keep + 1]
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                           ignore_index=IGNORE_INDEX, reduction="sum")
    if num_items_in_batch is None:
        num_items_in_batch = (targets != IGNORE_INDEX).sum()
    if hasattr(num_items_in_batch, "to"):
        num_items_in_batch = num_items_in_batch.to(loss.device)
    return loss / num_items_in_batch, outputs


class _Trainer:
    """Builds a ``Trainer`` subclass (transformers is imported lazily).

    The subclass times evaluation, so tokens/s counts only the training loop, and uses
    :class:`LengthGroupedSampler` when asked.
    """

    def __new__(cls, *, grouped: bool, **kwargs: Any):  # noqa: D102
        from transformers import Trainer

        class TimedTrainer(Trainer):
            def __init__(self, **kw: Any):
                super().__init__(**kw)
                self.eval_seconds = 0.0
                self.eval_cpu_seconds = 0.0
                self.initial_tokens = 0
                self.sparse_logits = accepts_logits_to_keep(self.model)

            def compute_loss(self, model, inputs, return_outputs=False,  # noqa: ANN001, ANN202
                             num_items_in_batch=None):  # noqa: ANN001
                if not self.sparse_logits:
                    return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
                loss, outputs = target_only_loss(model, inputs, num_items_in_batch)
                if self.args.average_tokens_across_devices and num_items_in_batch is not None:
                    loss = loss * self.accelerator.num_processes
                return (loss, outputs) if return_outputs else loss

            def _get_train_sampler(self, train_dataset=None):  # noqa: ANN001, ANN202
                if not grouped:
                    return super()._get_train_sampler(train_dataset)
                data = train_dataset if train_dataset is not None else self.train_dataset
                return LengthGroupedSampler(
                    [len(r["input_ids"]) for r in data],
                    self.args.per_device_train_batch_size * self.args.world_size,
                    self.args.seed,
                )

            def train(self, *args: Any, **kw: Any):  # noqa: ANN202
                self.initial_tokens = 0
                ckpt = kw.get("resume_from_checkpoint")
                if ckpt:
                    state = json.loads((Path(ckpt) / "trainer_state.json").read_text())
                    self.initial_tokens = state.get("num_input_tokens_seen", 0)
                return super().train(*args, **kw)

            def evaluate(self, *args: Any, **kw: Any):  # noqa: ANN202
                t, c = time.perf_counter(), time.process_time()
                try:
                    return super().evaluate(*args, **kw)
                finally:
                    self.eval_seconds += time.perf_counter() - t
                    self.eval_cpu_seconds += time.process_time() - c

        return TimedTrainer(**kwargs)


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


