"""``finetune merge RUN_DIR -o OUT_DIR``: fold a run's LoRA adapter into its base weights.

The result is a plain model folder (safetensors + tokenizer) that
``AutoModelForCausalLM.from_pretrained`` loads without peft, with the same logits as base +
adapter. QLoRA adapters are merged into a base loaded in full precision.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from finetune.artifacts import atomic_dir, atomic_write_json
from finetune.errors import InputError, UsageError, where
from finetune.rundir import read_run


def merge(run_dir: str | Path, out_dir: str | Path, *, overwrite: bool = False,
          dtype: str | None = None) -> Path:
    """Merge ``run_dir/adapter`` into its base and save the full model to ``out_dir``.

    Args:
        run_dir: a finished run directory (``runs/<name>``).
        out_dir: where the merged model folder goes (written atomically).
        overwrite: replace an existing ``out_dir``.
        dtype: dtype to merge and save in (default fp32 on CPU, bf16 on CUDA).

    Returns:
        ``out_dir``.

    Raises:
        InputError: not a run directory, or no adapter in it.
        UsageError: ``out_dir`` exists (and no ``overwrite``), or a full fine-tune.
    """
    from peft import PeftModel

    from finetune.models import load_base

    info = read_run(run_dir)
    if info.run.get("method") == "full":
        raise UsageError(where(run_dir, None, "method",
                               f"a full fine-tune has nothing to merge; {info.adapter_dir} "
                               "is already a complete model"))
    if not (info.adapter_dir / "adapter_config.json").is_file():
        raise InputError(where(info.adapter_dir, None, None, "no adapter_config.json"))
    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise UsageError(f"{out_dir}: already exists; pass --overwrite to replace it")
    base, tokenizer = load_base(info.run["base"], dtype=dtype)
    adapter_config = json.loads((info.adapter_dir / "adapter_config.json").read_text())
    if _targets_embeddings(adapter_config) and base.config.get_text_config().tie_word_embeddings:
        _untie_output_embeddings(base)
    model = PeftModel.from_pretrained(base, str(info.adapter_dir))
    merged = model.merge_and_unload()
    if (info.adapter_dir / "tokenizer_config.json").is_file():
        # The adapter saved the tokenizer it was trained with, chat template included (a
        # `chat_template:` key may have replaced the base's); the merged model must render
        # prompts the same way.
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(info.adapter_dir))
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        merged.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        atomic_write_json(tmp / "tuneproof_merge.json", {
            "run": info.name,
            "base": info.run["base"],
            "adapter": str(info.adapter_dir),
            "method": info.run.get("method"),
        })
    return out_dir


def _targets_embeddings(adapter_config: dict) -> bool:
    targets = adapter_config.get("target_modules") or []
    targets = [targets] if isinstance(targets, str) else targets
    return any("embed" in t for t in targets)


def _untie_output_embeddings(model: Any) -> None:
    """Give the output layer its own copy of the tied embedding matrix.

    Merging a LoRA on ``embed_tokens`` writes its delta into the embedding matrix; while it is
    tied, that also changes ``lm_head``, which the adapter never did, so the merged logits
    would differ from the adapter's.
    """
    import torch

    output = model.get_output_embeddings()
    output.weight = torch.nn.Parameter(model.get_input_embeddings().weight.detach().clone())
    model.config.get_text_config().tie_word_embeddings = False
    model.config.tie_word_embeddings = False


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``finetune merge``."""
    parser.add_argument("run_dir", type=Path, help="a finished run directory (runs/<name>)")
    parser.add_argument("-o", "--out", type=Path, required=True, help="merged model folder")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    parser.add_argument("--dtype", default=None, help="float32 or bfloat16 (default by device)")


def run(args: argparse.Namespace) -> int:
    """Merge and print the output folder."""
    print(merge(args.run_dir, args.out, overwrite=args.overwrite, dtype=args.dtype))
    return 0
