"""Read an exported GGUF back and compare every tensor with the weights it came from.

Names go through the ``gguf`` package's own Hugging Face -> GGUF tensor map; Llama-family Q
and K projections are compared after the same row permutation llama.cpp's converter applies.
Tolerances follow each tensor's stored type: F32 exact to float rounding, F16 to half
precision, Q8_0 to half a quantization step of the tensor's largest weight.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

_PERMUTED = {"attn_q": "n_head", "attn_k": "n_head_kv"}


def _permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's ``LlamaModel.permute`` (rotary halves interleaved), on rows."""
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def _field(reader: Any, key: str) -> Any:
    f = reader.fields.get(key)
    if f is None:
        return None
    value = f.parts[f.data[0]]
    return bytes(value).decode() if value.dtype == np.uint8 else value.tolist()[0]


def _open(path: Path, n_blocks: int | None = None) -> tuple[Any, str, dict[str, Any], Any]:
    import gguf

    reader = gguf.GGUFReader(str(path))
    arch = _field(reader, "general.architecture")
    by_name = {v: k for k, v in gguf.MODEL_ARCH_NAMES.items()}
    if arch not in by_name:
        raise ValueError(f"unknown architecture {arch!r}")
    # A LoRA GGUF has no block count of its own: the caller gives the base's.
    n_blocks = n_blocks or _field(reader, f"{arch}.block_count") or 0
    tmap = gguf.get_tensor_name_map(by_name[arch], int(n_blocks))
    return reader, arch, {t.name: t for t in reader.tensors}, tmap


def _values(tensor: Any) -> np.ndarray:
    import gguf

    data = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
    return np.asarray(data, dtype=np.float32)


def _close(got: np.ndarray, want: np.ndarray, type_name: str) -> bool:
    if type_name == "F32":
        return bool(np.allclose(got, want, rtol=1e-6, atol=1e-7))
    if type_name in ("F16", "BF16"):
        return bool(np.allclose(got, want, rtol=1e-2 if type_name == "BF16" else 1e-3,
                                atol=1e-4))
    step = float(np.abs(want).max()) / 127 if want.size else 0.0
    return bool(np.abs(got - want).max(initial=0) <= step * 0.51 + 1e-6)


def _load_safetensors(folder: Path, pattern: str) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    out: dict[str, np.ndarray] = {}
    for f in sorted(folder.glob(pattern)):
        out.update({k: v.astype(np.float32) for k, v in load_file(str(f)).items()})
    return out


def _compare(name: str, tensor: Any, want: np.ndarray, heads: dict[str, int], part: str,
             permute_rows: bool) -> str | None:
    got = _values(tensor)
    if got.size != want.size:
        return f"{name}: {got.size} values, expected {want.size}"
    got = got.reshape(want.shape)
    if permute_rows:
        for key, head_key in _PERMUTED.items():
            if f".{key}." in f".{part}.":
                want = _permute(want, heads[head_key])
    if not _close(got, want, tensor.tensor_type.name):
        diff = float(np.abs(got - want).max())
        return f"{name}: differs from the source by up to {diff:.3g} ({tensor.tensor_type.name})"
    return None


def check_model_gguf(path: Path, model_dir: Path, outtype: str) -> str | None:
    """None when every weight of ``model_dir`` is in ``path`` within tolerance, else why not."""
    import json

    reader, arch, tensors, tmap = _open(path)
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    n_head = config.get("num_attention_heads", 1)
    heads = {"n_head": n_head, "n_head_kv": config.get("num_key_value_heads") or n_head}
    llama = arch == "llama"
    weights = _load_safetensors(model_dir, "*.safetensors")
    checked = 0
    for hf_name, want in weights.items():
        gguf_name = tmap.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None or gguf_name not in tensors:
            if hf_name.startswith("lm_head") and config.get("tie_word_embeddings"):
                continue
            return f"{hf_name}: no tensor for it in the GGUF"
        problem = _compare(gguf_name, tensors[gguf_name], want, heads, gguf_name, llama)
        if problem:
            return problem
        checked += 1
    if not checked:
        return "no tensor could be compared"
    if outtype == "q8_0" and not any(t.tensor_type.name == "Q8_0" for t in tensors.values()):
        return "no Q8_0 tensor although q8_0 was asked"
    return None


def check_lora_gguf(path: Path, adapter_dir: Path, base_dir: Path) -> str | None:
    """None when every LoRA matrix of ``adapter_dir`` is in ``path`` within tolerance."""
    import json

    base_config = json.loads((base_dir / "config.json").read_text(encoding="utf-8"))
    reader, arch, tensors, tmap = _open(path, base_config.get("num_hidden_layers"))
    config = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
    alpha = _field(reader, "adapter.lora.alpha")
    if alpha is None or abs(float(alpha) - float(config.get("lora_alpha", 0))) > 1e-6:
        return f"adapter.lora.alpha is {alpha}, the adapter's lora_alpha {config.get('lora_alpha')}"
    n_head = base_config.get("num_attention_heads", 1)
    heads = {"n_head": n_head, "n_head_kv": base_config.get("num_key_value_heads") or n_head}
    weights = _load_safetensors(adapter_dir, "adapter_model.safetensors")
    for key, want in weights.items():
        for marker, suffix in ((".lora_A.weight", "lora_a"), (".lora_B.weight", "lora_b")):
            if not key.endswith(marker):
                continue
            hf_name = key.removeprefix("base_model.model.").replace(marker, ".weight")
            gguf_base = tmap.get_name(hf_name, try_suffixes=(".weight",))
            name = f"{gguf_base}.{suffix}"
            if gguf_base is None or name not in tensors:
                return f"{key}: no tensor for it in the GGUF"
            problem = _compare(name, tensors[name], want, heads, name,
                               arch == "llama" and suffix == "lora_b")
            if problem:
                return problem
    return None

