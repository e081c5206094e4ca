"""Helpers the benchmark scripts share (each script runs as ``python bench/NAME.py``)."""

from __future__ import annotations

import platform
import subprocess
from collections.abc import Sequence
from pathlib import Path


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
