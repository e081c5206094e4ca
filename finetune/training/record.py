"""What a finished run records: its files, and ``run.json``.

``run.json`` holds the run's provenance, data facts, cost (parameters, memory, time,
throughput), progress and environment.
"""

from __future__ import annotations

import resource
import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from finetune.card import model_card
from finetune.config import TrainConfig
from finetune.models import trainable_and_total
from finetune.rundir import RunDir, checkpoint_step
from finetune.training.callbacks import echo
from finetune.training.data import Data, fingerprint_data
from finetune.training.launch import Launch
from finetune.training.trainer import Fit


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


def echo_summary(run_dir: Path, config: TrainConfig, info: dict[str, Any]) -> None:
    """One line: what was trained, the best held-out loss, the speed."""
    best = info["best_eval_loss"]
    echo(f"{run_dir}: {config.method} {info['trainable_params']:,}/{info['total_params']:,} "
          f"params trained, best eval_loss {best if best is not None else '-'} "
          f"at step {info['best_step']}, {info['tokens_per_s']:.0f} tokens/s, "
          f"{info['wall_time_s']:.0f}s")


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
