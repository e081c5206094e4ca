"""GPU check for a lent H200 (or any CUDA GPU): fits in ~8 minutes, downloads nothing.

1. ``finetune train`` on the tiny base and the demo data on CUDA (bf16, SDPA): the run
   directory is complete and the cost report filled.
2. A random-init ~1.1B-parameter Llama (TinyLlama shape) with LoRA r=16 on all linear
   layers in bf16: tokens/s, MFU and peak memory, with and without gradient checkpointing.
3. QLoRA (4-bit NF4) of the same model when bitsandbytes is importable, and
   ``finetune train method=qlora`` on the tiny base.

MFU counts 6 x parameters x tokens (the usual model-FLOPs convention, which over-counts
LoRA's backward a little: frozen weights get no weight gradients) plus attention, against
the dense bf16 peak given by ``--peak-tflops`` (H200 SXM: 989).

Usage: ``python bench/gpu_check.py [--out DIR] [--steps 20] [--write]``. Prints a markdown
table; ``--write`` records it in bench/RESULTS.md under "## train: GPU check".
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

SECTION = "## train: GPU check"
LLAMA_1B = dict(vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
                num_attention_heads=32, num_key_value_heads=4, max_position_embeddings=4096,
                rms_norm_eps=1e-5, tie_word_embeddings=False)


def check_tiny_train(tmp: Path, method: str = "lora") -> dict:
    from finetune.config import load_config
    from finetune.demo import write_demo
    from finetune.train import train

    data = write_demo(tmp / f"demo-{method}")
    cfg = load_config(data["train_yaml"], [f"name=gpu-{method}", f"method={method}",
                                           "optim.epochs=1", "device=cuda"])
    t = time.perf_counter()
    run_dir = train(cfg, runs_dir=tmp / "runs", progress=False, overwrite=True)
    from finetune.rundir import RunDir

    run = RunDir(run_dir).read_info()
    files = sorted(p.name for p in run_dir.iterdir())
    return {"check": f"finetune train tiny {method} cuda", "seconds": round(time.perf_counter()
            - t, 1), "files": files, "tokens_per_s": run["tokens_per_s"],
            "peak_memory_bytes": run["peak_memory_bytes"], "dtype": run["dtype"],
            "attn": run["attn_implementation"], "best_eval_loss": run["best_eval_loss"]}


def flops_per_token(n_params: int, cfg: dict, seq: int) -> float:
    attn = 12 * cfg["num_hidden_layers"] * cfg["hidden_size"] * seq  # fwd+bwd QK^T and AV
    return 6 * n_params + attn


def bench_1b(args: argparse.Namespace, *, checkpointing: bool, model_dir: Path | None = None,
             qlora: bool = False) -> dict:
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, LlamaConfig

    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    if qlora:
        from transformers import BitsAndBytesConfig

        model = AutoModelForCausalLM.from_pretrained(
            model_dir, dtype=torch.bfloat16, device_map={"": "cuda"},
            quantization_config=BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                bnb_4bit_compute_dtype=torch.bfloat16))
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=checkpointing)
    else:
        torch.manual_seed(0)
        config = LlamaConfig(**LLAMA_1B, attn_implementation="sdpa")
        with torch.device("cuda"):
            model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.config.use_cache = False
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear",
                                             task_type="CAUSAL_LM"))
    trainable, total = model.get_nb_trainable_parameters()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    gen = torch.Generator(device="cuda").manual_seed(0)
    batch = torch.randint(0, LLAMA_1B["vocab_size"], (args.batch, args.seq), device="cuda",
                          generator=gen)
    model.train()

    loss = 0.0
    t = time.perf_counter()
    for i in range(3 + args.steps):
        if i == 3:  # three warm-up steps, then the clock starts
            torch.cuda.synchronize()
            t = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = model(input_ids=batch, labels=batch).loss
        out.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss = float(out.detach())
    torch.cuda.synchronize()
    seconds = time.perf_counter() - t
    tokens = args.steps * args.batch * args.seq
    tps = tokens / seconds
    mfu = tps * flops_per_token(total, LLAMA_1B, args.seq) / (args.peak_tflops * 1e12)
    out = {"check": f"1.1B random Llama {'QLoRA' if qlora else 'LoRA'} bf16"
                    f"{' + grad ckpt' if checkpointing else ''}",
           "params": total, "trainable": trainable, "batch": f"{args.batch}x{args.seq}",
           "tokens_per_s": round(tps), "mfu": round(mfu, 3),
           "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
           "loss": round(loss, 3)}
    del model, opt
    torch.cuda.empty_cache()
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", ".")))
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=2048)
    p.add_argument("--peak-tflops", type=float, default=989.0)
    p.add_argument("--write", action="store_true")
    args = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import importlib.util

    import torch

    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device", file=sys.stderr)
        return 2
    results: list[dict] = []

    def record(fn, *a, **kw) -> None:  # noqa: ANN001
        t = time.perf_counter()
        try:
            r = fn(*a, **kw)
        except Exception as err:  # keep going: one failed check must not hide the others
            r = {"check": getattr(fn, "__name__", "check"), "error": f"{type(err).__name__}: "
                 f"{str(err).splitlines()[0] if str(err) else ''}"}
        r["wall_s"] = round(time.perf_counter() - t, 1)
        results.append(r)
        print(json.dumps(r), flush=True)

    has_bnb = importlib.util.find_spec("bitsandbytes") is not None
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        os.environ.setdefault("TUNEPROOF_HOME", str(tmp / "home"))
        record(check_tiny_train, tmp)
        record(bench_1b, args, checkpointing=False)
        record(bench_1b, args, checkpointing=True)
        if has_bnb:
            from transformers import AutoModelForCausalLM, LlamaConfig

            torch.manual_seed(0)
            model = AutoModelForCausalLM.from_config(LlamaConfig(**LLAMA_1B),
                                                     dtype=torch.bfloat16)
            model.save_pretrained(tmp / "llama1b", safe_serialization=True)
            del model
            record(bench_1b, args, checkpointing=True, model_dir=tmp / "llama1b", qlora=True)
            record(check_tiny_train, tmp, "qlora")
        else:
            results.append({"check": "QLoRA", "error": "bitsandbytes not installed; skipped"})
    gpu = torch.cuda.get_device_name(0)
    lines = [f"GPU: {gpu}; torch {torch.__version__}; bf16 peak {args.peak_tflops} TFLOPS.", "",
             "| check | tokens/s | MFU | peak memory | notes |", "|---|---:|---:|---:|---|"]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['check']} | - | - | - | {r['error']} |")
        elif "mfu" in r:
            lines.append(f"| {r['check']} ({r['batch']}) | {r['tokens_per_s']:,} | "
                         f"{r['mfu']:.1%} | {r['peak_memory_gib']} GiB | "
                         f"{r['trainable']:,}/{r['params']:,} trainable, loss {r['loss']} |")
        else:
            lines.append(f"| {r['check']} | {r['tokens_per_s']:,.0f} | - | "
                         f"{r['peak_memory_bytes'] / 2**20:.0f} MiB | {r['dtype']}, "
                         f"{r['attn']}, {r['seconds']} s, files: {', '.join(r['files'])} |")
    text = "\n".join(lines)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_check.json").write_text(json.dumps(results, indent=2))
    (args.out / "gpu_check.md").write_text(text + "\n")
    if args.write:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from train_throughput import write_section

        write_section(f"Command: `python bench/gpu_check.py --write`\n\n{text}\n", SECTION)
    return 0


if __name__ == "__main__":
    sys.exit(main())
