"""Checks on an adapter as it loads: trained on this base, and not a silent no-op.

Other tools' users keep reporting scores identical to the base because the adapter never
applied (lm-evaluation-harness #511 and #2432, Oumi #389). Before loading, an adapter must
match the base: every module its LoRA weights name exists in the base with the shapes they
expect (a different architecture, depth or width fails here), and the base fingerprint its
``run.json`` records (``finetune train`` records one for the tiny base) equals this base's.
A mismatch is refused with one line. After loading, one forward pass of a probe input with
the base and the adapter in one mixed batch shows whether the adapter changes the logits at
all; one that does not (LoRA B all zeros, ``lora_alpha`` 0...) is served with a warning that
the evaluation's ``results.json``, its report and the app carry.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from finetune.errors import InputError

PROBE_TEXT = "Hi, I'm Mary. Can you recommend a laptop? I want one under $50."
"""The probe input of the no-op check: ordinary words, a name, a number."""
NO_OP_TOLERANCE = 1e-6
"""Largest logit change, relative to the largest logit, still called no change."""

# Saved LoRA keys: base_model.model.<module>.lora_A.weight (Linear) and
# base_model.model.<module>.lora_embedding_A (Embedding); A holds the input side.
_LORA_KEY = re.compile(
    r"^base_model\.model\.(?P<module>.+)\.(?:lora_(?P<lin>[AB])\.weight|lora_embedding_(?P<emb>[AB]))$"
)


def _run_json(folder: Path) -> dict[str, Any] | None:
    """The ``run.json`` of the run directory holding ``folder``, when there is one."""
    from finetune.rundir import RunDir

    run_dir = RunDir.containing(folder.parent, folder)
    return run_dir.read_info() if run_dir is not None else None


def _architecture(model: Any) -> str:
    config = getattr(model, "config", None)
    names = getattr(config, "architectures", None) or [getattr(config, "model_type", "?")]
    return str(names[0])


def _base_modules(model: Any) -> dict[str, Any]:
    """Module path -> module of the plain base, also once it is a PeftModel."""
    from peft import PeftModel

    root = model.base_model.model if isinstance(model, PeftModel) else model
    return dict(root.named_modules())


def _expected_dims(module: Any, kind: str) -> tuple[int, int] | None:
    """(input side, output side) of a base module as LoRA sees it; None for other layers."""
    import torch

    layer = getattr(module, "base_layer", module)  # a module PEFT already wrapped
    if kind == "lin" and isinstance(layer, torch.nn.Linear):
        return layer.in_features, layer.out_features
    if kind == "emb" and isinstance(layer, torch.nn.Embedding):
        return layer.num_embeddings, layer.embedding_dim
    return None


def check_trained_on_base(model: Any, base_ref: str, folder: Path, label: str) -> None:
    """Refuse an adapter that was not trained on this base.

    Args:
        model: The engine's model (the base, or a PeftModel around it).
        base_ref: The base reference the engine loaded (``tiny``, a folder, a hub id).
        folder: The adapter folder (holding ``adapter_config.json``).
        label: How the error names the adapter (its path and name).

    Raises:
        InputError: one line naming the adapter and the first mismatch.
    """
    from safetensors import safe_open

    run = _run_json(folder) or {}
    trained_on = f" (trained on {run['base']})" if run.get("base") else ""
    recorded = run.get("base_fingerprint")
    if recorded:
        from finetune.models import base_fingerprint  # the same function that recorded it

        current = base_fingerprint(base_ref)
        if current is not None and current != recorded:
            raise InputError(
                f"{label}: trained on another base{trained_on}: run.json records base "
                f"fingerprint {recorded[:12]}, base {base_ref} has {current[:12]}"
            )
    weights = folder / "adapter_model.safetensors"
    if not weights.is_file():
        return  # PEFT's own loader names the missing file
    modules = _base_modules(model)
    arch = _architecture(model)
    try:
        with safe_open(str(weights), framework="pt") as f:
            shapes = {key: tuple(f.get_slice(key).get_shape()) for key in f.keys()}  # noqa: SIM118
    except Exception as err:  # noqa: BLE001 - a corrupt file is bad input, named in one line
        raise InputError(f"{weights}: unreadable safetensors file: {err}") from None
    for key, shape in sorted(shapes.items()):
        match = _LORA_KEY.match(key)
        if match is None or len(shape) != 2:
            continue
        path, kind = match["module"], "lin" if match["lin"] else "emb"
        if path not in modules:
            raise InputError(
                f"{label}: not trained on this base{trained_on}: its module {path} is not in "
                f"{arch} ({base_ref})"
            )
        dims = _expected_dims(modules[path], kind)
        if dims is None:
            continue
        side = match["lin"] or match["emb"]  # A is (r, input side), B is (output side, r)
        got, want = (shape[1], dims[0]) if side == "A" else (shape[0], dims[1])
        if got != want:
            which = "input" if side == "A" else "output"
            raise InputError(
                f"{label}: not trained on this base{trained_on}: {path} has {which} size "
                f"{want} in {arch} ({base_ref}), the adapter expects {got}"
            )


def no_op_warnings(model: Any, tokenizer: Any, name: str, base: str) -> list[str]:
    """Warnings for an adapter that leaves the base's logits unchanged on the probe input.

    One forward pass over the probe input twice, as the base and as adapter ``name`` in one
    PEFT mixed batch, so the adapter state the engine serves from is left as it was.

    Returns:
        One warning line, or none when the adapter changes the logits.
    """
    import torch

    ids = tokenizer(PROBE_TEXT, return_tensors="pt")["input_ids"]
    device = next(model.parameters()).device
    batch = ids.repeat(2, 1).to(device)
    with torch.no_grad():
        logits = model(input_ids=batch, adapter_names=[base, name]).logits.float()
    change = (logits[1] - logits[0]).abs().max().item()
    scale = max(1.0, logits[0].abs().max().item())
    if change > NO_OP_TOLERANCE * scale:
        return []
    return [
        f"adapter {name!r} does not change the base's output (largest logit change {change:.2g} "
        f"on a probe input): a no-op adapter (LoRA B all zeros, or target modules that match "
        f"nothing) scores exactly as the base"
    ]
