"""Single stream: one batch-1 decode step against the weight-streaming floor, by weight layout.

A decode step of a dense model reads every weight once, so its floor is the time to read the
weights. Both are measured in this one run, with the same threads: the floor is the median
time of one pass of ``torch.sum`` over every parameter (weight bytes / that time = the
bandwidth), the step is the median time of one cached forward pass of one new token after a
chat prompt (what ``generate`` does at every step). Goal: step <= 2x floor. "Linear layers
alone" applies the model's Linear layers to one row back to back, without the rest of the
step: the share of the step that the matrix kernels take.

Four variants, alternating: fp32 weights as loaded (row-major), fp32 stored column-major,
fp32 in oneDNN's packed layout (the engine's default on CPU for a base that does not fit
the cache, ``evalsuite.cpu_linear``) and bf16 column-major. The 3-row step is the app's
compare of base + 2 adapters without the LoRA terms.

A variant is offered only where it answers like fp32 row-major: the same greedy tokens on
>= 95% of the demo's held-out prompts (``--agree-prompts``), checked here through THE engine, whose
``dtype`` option takes ``bfloat16``.

    python bench/decode_floor.py [--base tiny] [--threads N] [--steps 16] [--write]

``--write`` records the figures in bench/RESULTS.md under "## real base: single stream"
(or "## single stream" for ``tiny``).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import sync

PROMPT = [{"role": "system", "content": "You are a retail support assistant."},
          {"role": "user", "content": "Hi, I'm Maria. My blender arrived broken. Can I get a "
                                      "refund?"}]


def weight_bytes(model) -> int:  # noqa: ANN001
    seen, total = set(), 0
    for p in model.parameters():
        if p.data_ptr() not in seen:  # tied weights count once
            seen.add(p.data_ptr())
            total += p.numel() * p.element_size()
    return total


def read_ms(model, repeats: int) -> float:  # noqa: ANN001
    """Median ms of reading every weight once (one torch.sum per parameter).

    Run on the fp32 model: a bf16 sum converts as it goes and is not bound by memory.
    """
    import torch

    params = list({p.data_ptr(): p for p in model.parameters()}.values())
    times = []
    with torch.inference_mode():
        for _ in range(repeats):
            t0 = time.perf_counter()
            for p in params:
                p.sum()
            sync(params[0].device)
            times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def step_ms(engine, steps: int, rows: int = 1) -> float:  # noqa: ANN001
    """Median ms of one cached forward pass of one new token for ``rows`` copies of a prompt."""
    import torch

    ids = torch.tensor([engine.encode_prompt(PROMPT)] * rows, device=engine.device)
    times = []
    with torch.inference_mode():
        out = engine.model(input_ids=ids, use_cache=True)
        cache, nxt = out.cache, out.logits[:, -1:].argmax(-1)
        for _ in range(steps):
            t0 = time.perf_counter()
            out = engine.model(input_ids=nxt, cache=cache, use_cache=True)
            sync(engine.device)
            times.append(time.perf_counter() - t0)
            cache, nxt = out.cache, out.logits[:, -1:].argmax(-1)
    return statistics.median(times) * 1000


def linears_ms(engine, repeats: int) -> float:  # noqa: ANN001
    """Median ms of every Linear layer of the model applied once to one row, back to back.

    The matrix products of a batch-1 step without the rest of the model (norms, rotary,
    attention, the Python around them): the part of a step the weight layout decides.
    """
    import torch

    from evalsuite.cpu_linear import _linears

    layers = [(m, torch.zeros(1, m.in_features, dtype=m.weight.dtype))
              for m in _linears(engine.model)]
    times = []
    with torch.inference_mode():
        for _ in range(repeats + 1):
            t0 = time.perf_counter()
            for m, x in layers:
                m(x)
            times.append(time.perf_counter() - t0)
    return statistics.median(times[1:]) * 1000


# (label, dtype, weight layout): the engine's CPU default on a real base is "packed".
VARIANTS = (("float32, row-major", "float32", "row"),
            ("float32, column-major", "float32", "column"),
            ("float32, oneDNN packed", "float32", "packed"),
            ("bfloat16, column-major", "bfloat16", "column"))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", default="tiny")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--steps", type=int, default=16)
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds of the variants")
    p.add_argument("--agree-prompts", type=int, default=60)
    p.add_argument("--agree-tokens", type=int, default=24)
    p.add_argument("--write", action="store_true")
    args = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from evalsuite.engine import BASE, Engine, GenerationConfig
    from evalsuite.task import read_rows
    from tuneproof_demo.data import DemoConfig, write_demo

    if args.threads:
        torch.set_num_threads(args.threads)
    load = os.getloadavg()
    engines = {label: Engine(args.base, dtype=d, weight_layout=w, batch_size=8)
               for label, d, w in VARIANTS}
    fp32 = engines["float32, row-major"]
    res: dict[str, dict[str, list[float]]] = {
        v: {"floor": [], "step": [], "step3": [], "linears": []} for v in engines}
    for e in engines.values():
        step_ms(e, 2)  # warm-up
    for _ in range(args.rounds):
        for v, e in engines.items():
            res[v]["floor"].append(read_ms(fp32.model, 5))
            res[v]["step"].append(step_ms(e, args.steps))
            res[v]["step3"].append(step_ms(e, args.steps, rows=3))
            res[v]["linears"].append(linears_ms(e, 5))
    tmp = Path(tempfile.mkdtemp(prefix="decode_floor_"))
    paths = write_demo(tmp / "demo", DemoConfig(seed=0))
    prompts = [r.prompt for r in read_rows(paths["heldout"], limit=args.agree_prompts)]
    cfg = GenerationConfig(max_new_tokens=args.agree_tokens)
    outs = {v: [r[0].token_ids for r in e.generate(prompts, [BASE], cfg)]
            for v, e in engines.items()}

    def agreement(v: str) -> tuple[int, float]:
        same = sum(a == b for a, b in zip(outs["float32, row-major"], outs[v], strict=True))
        return same, same / len(prompts)

    med = statistics.median
    lines = ["| weights | MB | floor ms (bytes / bandwidth) | bandwidth GB/s (fp32 read) | "
             "batch-1 decode step ms | step / floor | goal <= 2x | its Linear layers alone ms "
             "| Linear layers / floor | 3-row decode step ms | "
             "same greedy output as fp32 row-major |",
             "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|"]
    fp32_bytes = weight_bytes(fp32.model)
    bandwidth = fp32_bytes / med([f for r in res.values() for f in r["floor"]])  # B/ms
    for v, e in engines.items():
        nbytes = weight_bytes(e.model)
        fl, st = nbytes / bandwidth, med(res[v]["step"])
        same, rate = agreement(v)
        lines.append(f"| {v} | {nbytes / 1e6:.0f} | {fl:.1f} | {bandwidth / 1e6:.1f} | "
                     f"{st:.1f} | {st / fl:.2f}x | {'met' if st / fl <= 2 else 'not met'} | "
                     f"{med(res[v]['linears']):.1f} | {med(res[v]['linears']) / fl:.2f}x | "
                     f"{med(res[v]['step3']):.1f} | {same}/{len(prompts)} ({rate:.0%}) |")
    row, row3 = (med(res["float32, row-major"][k]) for k in ("step", "step3"))
    lines.append("")
    for v in ("float32, column-major", "float32, oneDNN packed"):
        lines.append(f"{v} step = x{med(res[v]['step']) / row:.2f} the row-major step at "
                     f"batch 1, x{med(res[v]['step3']) / row3:.2f} at 3 rows.")
    lines.append("The engine's CPU default for an fp32 base over 64 MiB of Linear weights is "
                 "oneDNN packed (`Engine(weight_layout=\"auto\")`, evalsuite/cpu_linear.py).")
    same, rate = agreement("bfloat16, column-major")
    col = med(res["float32, column-major"]["step"])
    lines += [f"bf16 step = x{med(res['bfloat16, column-major']['step']) / col:.2f} the fp32 "
              f"column-major step; same greedy {args.agree_tokens} tokens on {same}/"
              f"{len(prompts)} demo held-out prompts ({rate:.0%}; offered when >= 95%: "
              f"{'yes' if rate >= 0.95 else 'no, bf16 stays off'})."]
    text = "\n".join(lines)
    print(text)
    if args.write:
        cpu = subprocess.run("lscpu | grep 'Model name'", shell=True, capture_output=True,
                             text=True).stdout.split(":", 1)[-1].strip()
        cmd = "python bench/decode_floor.py " + " ".join(sys.argv[1:])
        body = (f"Command: `{cmd}`\n\nMachine: {cpu}, {os.cpu_count()} cores, Python "
                f"{platform.python_version()}, torch {torch.__version__}, torch threads "
                f"{torch.get_num_threads()}; load average at start {load[0]:.1f}, "
                f"{load[1]:.1f}, {load[2]:.1f} (shared machine). Base `{args.base}`, "
                f"medians of {args.rounds} alternating rounds.\n\n{text}\n")
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from train_throughput import write_section

        real = args.base != "tiny"
        write_section(body, "## real base: single stream" if real else "## single stream")
    return 0


if __name__ == "__main__":
    sys.exit(main())
