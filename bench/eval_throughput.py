"""Base + 2 adapters scored in ONE mixed-adapter pass vs three separate passes.

Both ways use the same engine, prompts, chunking (``--batch-size`` prompts per chunk, sorted
by length, left padding) and greedy decoding; the separate passes run the base under
``disable_adapter()`` and each adapter after ``set_adapter()``, without ``adapter_names``.
The outputs must be token-identical; the script fails otherwise. The two adapters are
random non-zero LoRA weights (no training needed to measure speed).

    .venv/bin/python bench/eval_throughput.py [--base tiny] [--rows 96] [--batch-sizes 4,16,32]
        [--max-new-tokens 24] [--repeats 3] [--threads N] [--write]

``--write`` records the figures in bench/RESULTS.md under "## eval" (only that section).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import cpu_name, random_adapters


def separate_pass(engine, prompts, model, config):
    """One model alone, the classic way: no adapter_names, the PEFT model switched."""
    from evalsuite.engine import BASE

    pm = engine.model
    original = engine._mixed
    engine._mixed = lambda rows: (contextlib.nullcontext(), {})
    try:
        if model == BASE:
            ctx = pm.disable_adapter()
        else:
            pm.set_adapter(model)
            ctx = contextlib.nullcontext()
        with ctx:
            return engine.generate(prompts, [model], config)
    finally:
        engine._mixed = original


def write_section(cmd: str, rows: list[dict], load: tuple[float, ...], setup: str,
                  title: str = "## eval", fast: bool = True) -> None:
    """Replace (or add) the ``title`` section of bench/RESULTS.md; other sections stay."""
    path = Path(__file__).resolve().parent / "RESULTS.md"
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    table = [
        "| prompts/chunk | rows/chunk mixed | mixed s (wall) | separate s (wall) | speed-up wall "
        "| mixed s (CPU) | separate s (CPU) | speed-up CPU | tokens/s mixed | identical "
        "| base alone on the mixed rows s (CPU) | best any mixed pass can do (CPU) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    if rows and rows[0]["t_peft"]:
        table[0] += (" PEFT mixed s (wall) | PEFT mixed s (CPU) | fast vs PEFT mixed (CPU) "
                     "| goal >= 2.5x (CPU) |")
        table[1] += "---:|---:|---:|---|"
    for r in rows:
        table.append(
            f"| {r['batch']} | {3 * r['batch']} | {r['t_mixed']:.2f} | {r['t_sep']:.2f} "
            f"| {r['t_sep'] / r['t_mixed']:.2f}x | {r['c_mixed']:.2f} | {r['c_sep']:.2f} "
            f"| {r['c_sep'] / r['c_mixed']:.2f}x | {r['tokens'] / r['t_mixed']:.1f} "
            f"| yes ({r['n']} generations) | {r['c_least']:.2f} "
            f"| {r['c_sep'] / r['c_least']:.2f}x |"
            + (f" {r['t_peft']:.2f} | {r['c_peft']:.2f} | {r['c_peft'] / r['c_mixed']:.2f}x | "
               f"{'met' if r['c_sep'] / r['c_mixed'] >= 2.5 else 'not met'} |"
               if r["t_peft"] else "")
        )
    path_used = ("the batched-LoRA fast path (evalsuite/lora_batched.py)" if fast
                 else "PEFT's loop over adapters")
    section = "\n".join([
        title,
        "",
        f"Command: `.venv/bin/python {cmd}` — base + 2 adapters scored in ONE mixed-adapter "
        f"pass ({path_used}; `__base__` rows get no LoRA) vs three separate passes (base under "
        "`disable_adapter()`, each adapter after `set_adapter()`), same prompts, chunks and "
        "greedy decoding; the script fails unless every output is token-identical (also to "
        "PEFT's own mixed batch when that column is shown). 'Base alone on the mixed rows' "
        "runs the same rows per chunk (each prompt three times) through the base with adapters "
        "disabled: no LoRA term at all, so separate / that time is the most any mixed pass "
        "could gain on this machine, however cheap its LoRA terms.",
        "",
        f"Setup: {setup}.",
        "",
        f"Machine: {cpu_name()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; load average at start {load[0]:.1f}, {load[1]:.1f}, "
        f"{load[2]:.1f} (shared with other jobs). Medians of the repeats.",
        "",
        *table,
        "",
    ])
    pattern = re.compile("^" + re.escape(title) + r"\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _m: section, text)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text, encoding="utf-8")


def measure(engine, prompts, config, repeats: int,  # noqa: ANN001
            peft_reference: bool = False, strict: bool = True) -> dict | None:
    """Median wall and CPU seconds of the mixed pass and of the three separate passes.

    ``strict``: None at the first generation whose tokens differ between the ways; else the
    figures, with ``differ`` counting such generations (bf16 rounds batches differently).
    """
    from evalsuite.engine import BASE

    models = [BASE, "a", "b"]
    t_mixed, t_sep, c_mixed, c_sep, t_peft, c_peft = [], [], [], [], [], []
    t_least, c_least = [], []
    tripled = [p for p in prompts for _ in models]  # copies stay side by side when sorted
    differ = 0
    for _ in range(repeats):
        # The least a mixed pass can cost: the same rows per chunk through the base alone,
        # adapters disabled, so no LoRA term at all. separate/this bounds any mixed pass.
        chunk = engine.batch_size
        engine.batch_size = chunk * len(models)
        t0, c0 = time.perf_counter(), time.process_time()
        least = separate_pass(engine, tripled, BASE, config)
        t_least.append(time.perf_counter() - t0)
        c_least.append(time.process_time() - c0)
        engine.batch_size = chunk
        t0, c0 = time.perf_counter(), time.process_time()
        mixed = engine.generate(prompts, models, config)
        t_mixed.append(time.perf_counter() - t0)
        c_mixed.append(time.process_time() - c0)
        if peft_reference:  # the same mixed batch through PEFT's own loop over adapters
            engine.batched_lora = False
            t0, c0 = time.perf_counter(), time.process_time()
            ref = engine.generate(prompts, models, config)
            t_peft.append(time.perf_counter() - t0)
            c_peft.append(time.process_time() - c0)
            engine.batched_lora = True
            if [[g.token_ids for g in r] for r in ref] != [[g.token_ids for g in r]
                                                           for r in mixed]:
                print("MISMATCH: fast path vs PEFT's mixed batch", file=sys.stderr)
                return None
        t0, c0 = time.perf_counter(), time.process_time()
        alone = [separate_pass(engine, prompts, m, config) for m in models]
        t_sep.append(time.perf_counter() - t0)
        c_sep.append(time.process_time() - c0)
        once = [r[0].token_ids for r in alone[0] for _ in models]
        wrong = sum(a[0].token_ids != b for a, b in zip(least, once, strict=True))
        if wrong and strict:
            print("MISMATCH: the base alone on the tripled rows", file=sys.stderr)
            return None
        differ += wrong
        for j, name in enumerate(models):
            for i in range(len(prompts)):
                if mixed[i][j].token_ids != alone[j][i][0].token_ids:
                    if strict:
                        print(f"MISMATCH: prompt {i}, model {name}", file=sys.stderr)
                        return None
                    differ += 1
    med = statistics.median
    return {"batch": engine.batch_size, "t_mixed": med(t_mixed), "t_sep": med(t_sep),
            "c_mixed": med(c_mixed), "c_sep": med(c_sep), "n": len(prompts) * 3,
            "t_peft": med(t_peft) if t_peft else None, "c_peft": med(c_peft) if c_peft else None,
            "t_least": med(t_least), "c_least": med(c_least), "differ": differ,
            "tokens": sum(g.n_tokens for row in mixed for g in row)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", default="tiny")
    p.add_argument("--rows", type=int, default=96)
    p.add_argument("--batch-sizes", default="4,16,32", help="prompts per chunk, comma-separated")
    p.add_argument("--max-new-tokens", type=int, default=24)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=None,
                   help="torch intra-op threads (default: torch's choice)")
    p.add_argument("--peft-reference", action="store_true",
                   help="also time PEFT's mixed batch and check the fast path's tokens match it")
    p.add_argument("--weight-layout", default="auto", choices=("auto", "row", "column", "packed"),
                   help="the engine's weight_layout (auto: packed on CPU for a real base)")
    p.add_argument("--write", action="store_true", help="record in bench/RESULTS.md")
    args = p.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    from evalsuite.engine import BASE, Engine, GenerationConfig
    from evalsuite.task import read_rows
    from tuneproof_demo.data import DemoConfig, write_demo

    tmp = Path(tempfile.mkdtemp(prefix="eval_bench_"))
    paths = write_demo(tmp / "demo", DemoConfig(seed=0))
    prompts = [r.prompt for r in read_rows(paths["heldout"], limit=args.rows)]
    engine = Engine(args.base, random_adapters(args.base, tmp / "adapters", ("a", "b")),
                    weight_layout=args.weight_layout)
    config = GenerationConfig(max_new_tokens=args.max_new_tokens)
    engine.generate(prompts[:4], [BASE, "a", "b"], config)  # warm-up
    setup = (f"base {args.base}, {len(prompts)} demo held-out prompts x 3 models (base + 2 "
             f"random LoRA r=16 adapters on all linear layers), {args.max_new_tokens} new tokens "
             f"greedy, torch threads {torch.get_num_threads()}, {args.repeats} repeats, weight "
             f"layout `{engine.weight_layout}` (evalsuite/cpu_linear.py)")
    print(setup)
    load = os.getloadavg()
    rows = []
    for b in (int(x) for x in args.batch_sizes.split(",")):
        engine.batch_size = b
        r = measure(engine, prompts, config, args.repeats, args.peft_reference)
        if r is None:
            return 1
        rows.append(r)
        print(f"{b:3d} prompts/chunk: mixed {r['t_mixed']:6.2f} s wall {r['c_mixed']:6.2f} s CPU"
              f" | separate {r['t_sep']:6.2f} s wall {r['c_sep']:6.2f} s CPU"
              f" | speed-up {r['t_sep'] / r['t_mixed']:.2f}x wall {r['c_sep'] / r['c_mixed']:.2f}x"
              f" CPU | outputs token-identical ({r['n']} generations)"
              f" | at best {r['c_sep'] / r['c_least']:.2f}x CPU (base alone on the mixed rows"
              f" {r['c_least']:6.2f} s CPU)"
              + (f" | PEFT mixed {r['t_peft']:6.2f} s wall {r['c_peft']:6.2f} s CPU, same tokens"
                 if r["t_peft"] else ""), flush=True)
    if args.write:
        cmd = "bench/eval_throughput.py " + " ".join(argv if argv is not None else sys.argv[1:])
        title = "## eval" if args.base == "tiny" else "## real base: eval"
        write_section(cmd.strip(), rows, load, setup, title, engine.uses_batched_lora)
    return 0


if __name__ == "__main__":
    sys.exit(main())
