"""What a run shows and logs while it trains: ``metrics.jsonl``, eval lines, the progress bar."""

from __future__ import annotations

import sys
import time

from finetune.rundir import RunDir


def callback_classes() -> tuple[type, type]:
    """``(MetricsLog, QuietProgress)``: built on call, so transformers is imported lazily."""
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
                echo(
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


def echo(text: str) -> None:
    """Print a line to stderr above the progress bar, not through it."""
    try:
        from tqdm.auto import tqdm

        tqdm.write(text, file=sys.stderr)
    except ImportError:  # pragma: no cover
        print(text, file=sys.stderr, flush=True)
