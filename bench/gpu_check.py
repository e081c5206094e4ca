"""GPU check for a lent H200 (or any CUDA GPU): meant to fit in ~8 minutes, downloads nothing.

1. ``finetune train`` on the tiny base and the demo data on CUDA (bf16, SDPA): the run
   directory is complete and the cost report filled.
2. A random-init ~1.1B-parameter Llama (TinyLlama shape) with LoRA r=16 on all linear
   layers in bf16: tokens/s, MFU and peak memory, with and without gradient checkpointing.
3. QLoRA (4-bit NF4) of the same model when bitsandbytes is importable, and
   ``finetune train method=qlora`` on the tiny base.
4. ``finetune train`` on the real base (``smollm2``), the same recipe as 1.
5. The engine's checks of issue 12 on the real base and on the random ~1.1B Llama (saved with
   the real base's tokenizer), base + 2 random LoRA adapters, in fp32 and bf16: the batch-1
   decode step against the weight-streaming floor (goal 3, with bf16's greedy agreement with
   fp32), the 3-row mixed decode step and prefill against one row's and against 3 rows of the
   base alone (goal 1), and one mixed evaluation pass against three separate passes at 1, 4
   and 16 prompts per chunk, token-identical, with the same upper bound (goal 2).

The engine checks (5.) have not yet run on a GPU, so the 8 minutes are an estimate for them.
``--device cpu --quick`` runs every check at toy sizes on the CPU (tiny for the real base, a
two-layer Llama for the 1.1B): the smoke test CI runs, so the script works the first time a
GPU is lent.

MFU counts 6 x parameters x tokens (the usual model-FLOPs convention, which over-counts
LoRA's backward a little: frozen weights get no weight gradients) plus attention, against
the dense bf16 peak given by ``--peak-tflops`` (H200 SXM: 989).

Usage: ``python bench/gpu_check.py [--out DIR] [--steps 20] [--device cuda] [--quick]
[--write]``. Prints markdown tables; ``--write`` records them in bench/RESULTS.md under
"## train: GPU check".
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from _common import mixed_forward_ms, random_adapters, sync

SECTION = "## train: GPU check"
LLAMA_1B = dict(vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
                num_attention_heads=32, num_key_value_heads=4, max_position_embeddings=4096,
                rms_norm_eps=1e-5, tie_word_embeddings=False)
# --quick: the same code paths at a size a CPU runs in seconds
LLAMA_TOY = dict(LLAMA_1B, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2)


def check_train(tmp: Path, method: str = "lora", *, base: str = "tiny",
                device: str = "cuda", max_steps: int | None = None) -> dict:
    from finetune.config import load_config
    from finetune.train import train
    from tuneproof_demo.data import write_demo

    data = write_demo(tmp / f"demo-{base}-{method}")
    overrides = [f"name=gpu-{base}-{method}", f"method={method}", "optim.epochs=1",
                 f"device={device}", f"base={base}"]
    if max_steps:
        overrides.append(f"optim.max_steps={max_steps}")
    cfg = load_config(data["train_yaml"], overrides)
    t = time.perf_counter()
    run_dir = train(cfg, runs_dir=tmp / "runs", progress=False, overwrite=True)
    from finetune.rundir import RunDir

    run = RunDir(run_dir).read_info()
    files = sorted(p.name for p in run_dir.iterdir())
    seconds = round(time.perf_counter() - t, 1)
    steps = f" ({max_steps} steps)" if max_steps else ""
    return {"check": f"finetune train {base} {method} {device}{steps}", "seconds": seconds,
            "files": files, "tokens_per_s": run["tokens_per_s"],
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

    cuda = args.cuda
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    if qlora:
        from transformers import BitsAndBytesConfig

        model = AutoModelForCausalLM.from_pretrained(
            model_dir, dtype=torch.bfloat16, device_map={"": args.device},
            quantization_config=BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                bnb_4bit_compute_dtype=torch.bfloat16))
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=checkpointing)
    else:
        torch.manual_seed(0)
        config = LlamaConfig(**args.shape, attn_implementation="sdpa")
        with torch.device(args.device):
            model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.config.use_cache = False
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear",
                                             task_type="CAUSAL_LM"))
    trainable, total = model.get_nb_trainable_parameters()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    gen = torch.Generator(device=args.device).manual_seed(0)
    batch = torch.randint(0, args.shape["vocab_size"], (args.batch, args.seq),
                          device=args.device, generator=gen)
    model.train()

    loss = 0.0
    t = time.perf_counter()
    for i in range(3 + args.steps):
        if i == 3:  # three warm-up steps, then the clock starts
            sync(args.device)
            t = time.perf_counter()
        with torch.autocast(torch.device(args.device).type, dtype=torch.bfloat16):
            out = model(input_ids=batch, labels=batch).loss
        out.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss = float(out.detach())
    sync(args.device)
    seconds = time.perf_counter() - t
    tokens = args.steps * args.batch * args.seq
    tps = tokens / seconds
    mfu = tps * flops_per_token(total, args.shape, args.seq) / (args.peak_tflops * 1e12)
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan")
    out = {"check": f"{args.llama_name} random Llama {'QLoRA' if qlora else 'LoRA'} bf16"
                    f"{' + grad ckpt' if checkpointing else ''}",
           "params": total, "trainable": trainable, "batch": f"{args.batch}x{args.seq}",
           "tokens_per_s": round(tps), "mfu": round(mfu, 3),
           "peak_memory_gib": round(peak, 2), "loss": round(loss, 3)}
    del model, opt
    if cuda:
        torch.cuda.empty_cache()
    return out


def random_llama_dir(out: Path, shape: dict, tokenizer_base: str) -> Path:
    """A random-init Llama of ``shape`` in bf16 safetensors, with ``tokenizer_base``'s
    tokenizer and chat template, loadable as a base (``Engine(str(out))``)."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    from finetune.models import load_tokenizer

    tokenizer = load_tokenizer(tokenizer_base)
    torch.manual_seed(0)
    config = LlamaConfig(**dict(shape, vocab_size=len(tokenizer)),
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out


def check_engine(label: str, base: str, tmp: Path, args: argparse.Namespace) -> dict:
    """Issue 12's engine goals on ``base`` (goals 1-3), base + 2 random LoRA adapters."""
    from decode_floor import read_ms, weight_bytes
    from eval_throughput import measure

    from evalsuite.engine import BASE, Engine, GenerationConfig
    from evalsuite.task import read_rows
    from tuneproof_demo.data import write_demo

    adapters = random_adapters(base, tmp / f"adapters-{label}", ("a", "b"))
    prompts = [r.prompt for r in read_rows(write_demo(tmp / f"demo-engine-{label}")["heldout"],
                                           limit=args.engine_prompts)]
    config = GenerationConfig(max_new_tokens=16)
    result: dict = {"check": f"engine {label}", "base": base}
    greedy: dict[str, list] = {}
    bandwidth = None
    for dtype in ("float32", "bfloat16"):
        engine = Engine(base, adapters, device=args.device, dtype=dtype)
        ids = engine.encode_prompt(prompts[0])
        mixed_forward_ms(engine, ids, [BASE, "a", "b"], 2, wall=True)  # warm-up
        one = mixed_forward_ms(engine, ids, [BASE], args.repeats, wall=True)
        three = mixed_forward_ms(engine, ids, [BASE, "a", "b"], args.repeats, wall=True)
        least = mixed_forward_ms(engine, ids, [BASE, "a", "b"], args.repeats, lora=False,
                                 wall=True)
        if dtype == "float32":  # a bf16 sum converts as it goes: read the fp32 weights
            bandwidth = weight_bytes(engine.model) / read_ms(engine.model, 5)
        floor = weight_bytes(engine.model) / bandwidth
        greedy[dtype] = [r[0].token_ids for r in engine.generate(prompts, [BASE], config)]
        result[dtype] = {
            "weight_layout": engine.weight_layout, "floor_ms": round(floor, 3),
            "bandwidth_gb_s": round(bandwidth / 1e6, 1),
            "step_ms": round(one[1], 3), "step_over_floor": round(one[1] / floor, 2),
            "step3_mixed_over_step1": round(three[1] / one[1], 2),
            "prefill3_mixed_over_prefill1": round(three[0] / one[0], 2),
            "prefill3_base_alone_over_prefill1": round(least[0] / one[0], 2)}
        evals = {}
        for chunk in (1, 4, 16):
            engine.batch_size = chunk
            # bf16 may round a batch differently from a lone row: tokens that then differ
            # are counted and reported rather than hidden
            r = measure(engine, prompts, config, 1, strict=False)
            evals[chunk] = {"identical": r["differ"] == 0, "differ": r["differ"],
                            "speedup": round(r["t_sep"] / r["t_mixed"], 2),
                            "bound": round(r["t_sep"] / r["t_least"], 2)}
        result[dtype]["eval_mixed_vs_separate"] = evals
        del engine
    same = sum(a == b for a, b in zip(greedy["float32"], greedy["bfloat16"], strict=True))
    result["bf16_same_greedy"] = f"{same}/{len(prompts)}"
    return result


def engine_lines(r: dict) -> list[str]:
    """Markdown rows of one engine check: a row per dtype."""
    rows = []
    for dtype in ("float32", "bfloat16"):
        d = r[dtype]
        ev = d.get("eval_mixed_vs_separate", {})
        evals = ", ".join(f"{c}: {e['speedup']}x (bound {e['bound']}x)"
                          + ("" if e["identical"] else f", {e['differ']} generations differ")
                          for c, e in ev.items()) or "-"
        rows.append(f"| {r['check']} {dtype} | {d['step_ms']} ms, x{d['step_over_floor']} of "
                    f"the floor ({d['floor_ms']} ms at {d['bandwidth_gb_s']} GB/s) | "
                    f"x{d['step3_mixed_over_step1']} | x{d['prefill3_mixed_over_prefill1']} "
                    f"(bound x{d['prefill3_base_alone_over_prefill1']}) | {evals} | "
                    f"{r['bf16_same_greedy'] if dtype == 'bfloat16' else '-'} |")
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", ".")))
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=2048)
    p.add_argument("--peak-tflops", type=float, default=989.0)
    p.add_argument("--device", default="cuda", help="cuda, or cpu for a smoke run")
    p.add_argument("--quick", action="store_true",
                   help="toy sizes (tiny as the real base, a 2-layer Llama as the 1.1B)")
    p.add_argument("--repeats", type=int, default=10, help="timed forward passes per figure")
    p.add_argument("--engine-prompts", type=int, default=16,
                   help="demo held-out prompts for the evaluation and bf16 checks")
    p.add_argument("--write", action="store_true")
    args = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import importlib.util

    import torch

    args.cuda = torch.device(args.device).type == "cuda"
    if args.cuda and not torch.cuda.is_available():
        print("gpu_check: no CUDA device (--device cpu --quick for a smoke run)", file=sys.stderr)
        return 2
    if args.quick:
        args.steps, args.batch, args.seq = 2, 2, 64
        args.repeats, args.engine_prompts = 2, 4
    args.shape = LLAMA_TOY if args.quick else LLAMA_1B
    args.llama_name = "2-layer toy" if args.quick else "1.1B"
    real_base = "tiny" if args.quick else "smollm2"
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
        record(check_train, tmp, device=args.device)
        record(check_train, tmp, base=real_base, device=args.device,
               max_steps=4 if args.quick else 20)
        record(bench_1b, args, checkpointing=False)
        record(bench_1b, args, checkpointing=True)
        llama = random_llama_dir(tmp / "llama", args.shape, real_base)
        record(check_engine, real_base, real_base, tmp, args)
        record(check_engine, f"{args.llama_name} Llama", str(llama), tmp, args)
        if has_bnb and args.cuda:
            record(bench_1b, args, checkpointing=True, model_dir=llama, qlora=True)
            record(check_train, tmp, "qlora")
        else:
            results.append({"check": "QLoRA", "error": "needs bitsandbytes and CUDA; skipped"})
    gpu = torch.cuda.get_device_name(0) if args.cuda else f"none ({args.device})"
    lines = [f"GPU: {gpu}; torch {torch.__version__}; bf16 peak {args.peak_tflops} TFLOPS"
             f"{'; --quick: toy sizes' if args.quick else ''}.", "",
             "| check | tokens/s | MFU | peak memory | notes |", "|---|---:|---:|---:|---|"]
    for r in results:
        if r["check"].startswith("engine"):
            continue
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
    lines += ["", "Engine (issue 12), base + 2 random LoRA adapters, wall clock synchronised "
              "with the device:", "",
              "| engine | batch-1 decode step (goal 3: <= 2x floor) | 3-row mixed step / 1-row "
              "(goal 1: <= 1.3x) | 3-row mixed prefill / 1-row (goal 1: <= 1.3x) | eval one "
              "pass vs three, by prompts per chunk (goal 2: >= 2.5x) | bf16 same greedy as "
              "fp32 |", "|---|---|---:|---|---|---:|"]
    for r in results:
        if r["check"].startswith("engine"):
            lines += ([f"| {r['check']} | {r['error']} | | | | |"] if "error" in r
                      else engine_lines(r))
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
