"""``finetune export RUN_DIR --gguf [--outtype f32|f16|q8_0] [--adapter-only] -o DIR``.

Hands a fine-tune to llama.cpp and Ollama. The default route merges the adapter into its base
(:func:`finetune.merge.merge`) and converts the merged model with llama.cpp's
``convert_hf_to_gguf.py``, next to an Ollama ``Modelfile`` (chat template and stop tokens).
``--adapter-only`` converts the adapter alone with ``convert_lora_to_gguf.py`` (for
``llama-server --lora``). The converters come from :mod:`finetune.llamacpp_tools`.

What llama.cpp cannot load or would mis-scale is refused up front, in one line: a LoRA on the
embeddings of a base with tied embeddings (the server aborts), rsLoRA (llama.cpp scales by
alpha/r), DoRA, ``modules_to_save``; the merged route handles all of them.

Every written GGUF is read back with the ``gguf`` package and each tensor compared with the
weights it came from, within the output type's tolerance; a mismatch is an error.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

from finetune.artifacts import atomic_dir, atomic_write_json
from finetune.errors import DataError, InputError, UsageError, where
from finetune.gguf_check import check_lora_gguf, check_model_gguf
from finetune.llamacpp_tools import run_script
from finetune.modelfile import write_modelfile
from finetune.rundir import read_run

OUTTYPES = ("f32", "f16", "q8_0")


def adapter_refusal(adapter_config: dict[str, Any], tied_embeddings: bool) -> str | None:
    """Why llama.cpp cannot take this adapter as a LoRA GGUF, or None when it can."""
    targets = adapter_config.get("target_modules") or []
    targets = [targets] if isinstance(targets, str) else list(targets)
    if adapter_config.get("use_dora"):
        return "DoRA adapters have no LoRA GGUF form; export the merged model instead"
    if adapter_config.get("use_rslora"):
        return ("rsLoRA: llama.cpp scales every LoRA by alpha/r, not alpha/sqrt(r), so the "
                "adapter would come out mis-scaled; export the merged model instead")
    if adapter_config.get("modules_to_save"):
        return (f"modules_to_save ({', '.join(adapter_config['modules_to_save'])}): whole "
                "trained modules have no LoRA GGUF form; export the merged model instead")
    if tied_embeddings and any("embed" in t or "lm_head" in t for t in targets):
        return ("a LoRA on the embeddings of a base with tied embeddings aborts llama.cpp "
                "(GGML_ASSERT in build_lora_mm); export the merged model instead (drop "
                "--adapter-only)")
    return None


def export(run_dir: str | Path, out_dir: str | Path, *, outtype: str = "f32",
           adapter_only: bool = False, overwrite: bool = False) -> Path:
    """Export ``run_dir`` as GGUF into ``out_dir`` (written atomically); returns the GGUF path.

    Raises:
        UsageError: a bad ``outtype``, ``out_dir`` exists, or an adapter llama.cpp cannot take.
        InputError: not a run directory, or the converters cannot be fetched or fail.
        DataError: the GGUF read back differs from the weights it came from.
    """
    from finetune.models import resolve_base

    if outtype not in OUTTYPES:
        raise UsageError(f"--outtype: {outtype!r}; use one of {', '.join(OUTTYPES)}")
    info = read_run(run_dir)
    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise UsageError(f"{out_dir}: already exists; pass --overwrite to replace it")
    cfg_path = info.adapter_dir / "adapter_config.json"
    full = info.run.get("method") == "full"
    if not full and not cfg_path.is_file():
        raise InputError(where(info.adapter_dir, None, None, "no adapter_config.json"))
    base_dir = Path(resolve_base(info.run["base"]).path)
    if adapter_only:
        if full:
            raise UsageError(where(run_dir, None, "method", "a full fine-tune has no adapter; "
                                   "drop --adapter-only"))
        config = json.loads(cfg_path.read_text(encoding="utf-8"))
        base_config = json.loads((base_dir / "config.json").read_text(encoding="utf-8"))
        tied = bool(base_config.get("tie_word_embeddings",
                                    base_config.get("text_config", {}).get("tie_word_embeddings")))
        refusal = adapter_refusal(config, tied)
        if refusal:
            raise UsageError(where(cfg_path, None, None, refusal))
    name = f"{info.name}-{'lora-' if adapter_only else ''}{outtype}.gguf"
    with atomic_dir(out_dir, overwrite=overwrite) as tmp, \
            tempfile.TemporaryDirectory(prefix="export-") as work:
        gguf = tmp / name
        if adapter_only:
            run_script("convert_lora_to_gguf.py",
                       [str(info.adapter_dir), "--base", str(base_dir), "--outfile", str(gguf),
                        "--outtype", outtype])
            mismatch = check_lora_gguf(gguf, info.adapter_dir, base_dir)
        else:
            model_dir = info.adapter_dir if full else _merged(run_dir, Path(work) / "merged")
            run_script("convert_hf_to_gguf.py",
                       [str(model_dir), "--outfile", str(gguf), "--outtype", outtype])
            mismatch = check_model_gguf(gguf, model_dir, outtype)
            write_modelfile(tmp / "Modelfile", gguf.name, model_dir)
        if mismatch:
            raise DataError(f"{gguf.name}: read back, {mismatch}")
        atomic_write_json(tmp / "tuneproof_export.json", {
            "run": info.name, "base": info.run["base"], "gguf": name, "outtype": outtype,
            "route": "adapter" if adapter_only else "merged",
        })
    return out_dir / name


def _merged(run_dir: str | Path, folder: Path) -> Path:
    from finetune.merge import merge

    return merge(run_dir, folder, dtype="float32")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``finetune export``."""
    parser.add_argument("run_dir", type=Path, help="a finished run directory (runs/<name>)")
    parser.add_argument("--gguf", action="store_true", required=True,
                        help="export as GGUF for llama.cpp and Ollama (the only format)")
    parser.add_argument("--outtype", default="f32", choices=OUTTYPES,
                        help="tensor type of the GGUF (default f32)")
    parser.add_argument("--adapter-only", action="store_true",
                        help="the adapter alone as a LoRA GGUF (llama-server --lora) instead "
                             "of the merged model")
    parser.add_argument("-o", "--out", type=Path, required=True, help="output folder")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")


def run(args: argparse.Namespace) -> int:
    """Export and print the GGUF's path."""
    print(export(args.run_dir, args.out, outtype=args.outtype, adapter_only=args.adapter_only,
                 overwrite=args.overwrite))
    return 0
