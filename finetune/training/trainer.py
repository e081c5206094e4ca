"""The Hugging Face ``Trainer`` of a run: its arguments, our subclass and loss, the fit.

The subclass times evaluation (so tokens/s counts only the training loop), computes logits
only where a label follows (:func:`target_only_loss`), and batches rows of similar length
when asked.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finetune.config import TrainConfig
from finetune.data.formats import IGNORE_INDEX
from finetune.models import accepts_logits_to_keep
from finetune.rundir import RunDir
from finetune.training.batching import Collator, LengthGroupedSampler
from finetune.training.callbacks import callback_classes
from finetune.training.data import Data
from finetune.training.launch import Launch, barrier


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
    metrics_log, quiet_progress = callback_classes()
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
    barrier(launch.world_size)
    return fit


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
