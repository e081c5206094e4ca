"""The model a run trains: the base through THE loader, wrapped for LoRA / QLoRA (or not)."""

from __future__ import annotations

import warnings
from typing import Any

from finetune.config import TrainConfig
from finetune.errors import UsageError


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
