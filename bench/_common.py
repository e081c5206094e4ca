"""Helpers the benchmark scripts share (each script runs as ``python bench/NAME.py``)."""

from __future__ import annotations

import platform
import statistics
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def cpu_name() -> str:
    """``lscpu``'s model name, or the architecture where lscpu is missing."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    except OSError:
        return platform.machine()
    names = [ln.split(":", 1)[1].strip() for ln in out.splitlines() if "Model name" in ln]
    return names[0] if names else platform.machine()


def random_adapters(base: str, out: Path, names: Sequence[str]) -> dict[str, Path]:
    """Save one random non-zero LoRA adapter per name (seeds 1, 2, ...) on ``base`` under ``out``.

    Speed does not depend on what an adapter learned, so no training is needed.
    """
    import torch
    from peft import LoraConfig, get_peft_model

    from finetune.models import load_base

    dirs = {}
    for seed, name in enumerate(names, start=1):
        model, _ = load_base(base)
        torch.manual_seed(seed)
        cfg = LoraConfig(r=16, lora_alpha=32, target_modules="all-linear",
                         init_lora_weights=False)
        get_peft_model(model, cfg).save_pretrained(out / name)
        dirs[name] = out / name
    return dirs


def sync(device: Any) -> None:
    """Wait for queued GPU work, so that a wall clock read next measures it."""
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def mixed_forward_ms(engine: Any, ids: list[int], names: Sequence[str], repeats: int, *,
                     fast: bool = True, lora: bool = True,
                     wall: bool = False) -> tuple[float, float]:
    """Median ms of (one prefill forward pass over ``ids``, one cached decode step) for one
    row per engine model name in ``names``, in one mixed batch.

    ``fast=False``: PEFT's mixed-batch path instead of the batched-LoRA fast path.
    ``lora=False``: the same rows through the base alone, adapters disabled (no LoRA term at
    all: what any mixed batch of that many rows costs at the least). ``wall=False`` counts
    this process's CPU time (on a machine shared with other jobs the wall time of a 100 ms
    step swings several-fold, while the work done does not); ``wall=True`` the wall clock,
    synchronised with the device (GPU).
    """
    import torch

    batch = torch.tensor([ids] * len(names), device=engine.device)
    clock = time.perf_counter if wall else time.process_time
    engine.batched_lora = fast
    if lora:
        mixed, kwargs = engine._mixed(list(names))
    else:
        mixed, kwargs = engine.model.disable_adapter(), {}
    prefill, step = [], []
    try:
        with torch.inference_mode(), mixed:
            for _ in range(repeats):
                sync(engine.device)
                t0 = clock()
                out = engine.model(input_ids=batch, use_cache=True, **kwargs)
                sync(engine.device)
                prefill.append(clock() - t0)
                nxt = out.logits[:, -1:].argmax(-1)
                sync(engine.device)
                t0 = clock()
                engine.model(input_ids=nxt, cache=out.cache, use_cache=True, **kwargs)
                sync(engine.device)
                step.append(clock() - t0)
    finally:
        engine.batched_lora = True
    return statistics.median(prefill) * 1000, statistics.median(step) * 1000
