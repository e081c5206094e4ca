"""Single stream: one batch-1 decode step against the weight-streaming floor, fp32 and bf16.

A decode step of a dense model reads every weight once, so its floor is the time to read the
weights. Both are measured in this one run, with the same threads: the floor is the median
time of one pass of ``torch.sum`` over every parameter (weight bytes / that time = the
bandwidth), the step is the median time of one cached forward pass of one new token after a
chat prompt (what ``generate`` does at every step). Goal: step <= 2x floor.

bf16 is offered only where it answers like fp32: the same greedy tokens on >= 95% of the
demo's held-out prompts (``--agree-prompts``), checked here through THE engine, whose
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
            times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def step_ms(engine, steps: int) -> float:  # noqa: ANN001
    """Median ms of one cached batch-1 forward pass of one new token."""
    import torch

    ids = torch.tensor([engine.encode_prompt(PROMPT)], device=engine.device)
    times = []
    with torch.inference_mode():
        out = engine.model(input_ids=ids, use_cache=True)
        cache, nxt = out.cache, out.logits[:, -1:].argmax(-1)
        for _ in range(steps):
            t0 = time.perf_counter()
            out = engine.model(input_ids=nxt, cache=cache, use_cache=True)
            times.append(time.perf_counter() - t0)
            cache, nxt = out.cache, out.logits[:, -1:].argmax(-1)
    return statistics.median(times) * 1000


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", default="tiny")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--steps", type=int, default=16)
    p.add_argument("--rounds", type=int, default=3, help="alternating fp32/bf16 rounds")
    p.add_argument("--agree-prompts", type=int, default=60)
    p.add_argument("--agree-tokens", type=int, default=24)
    p.add_argument("--write", action="store_true")
    args = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from evalsuite.engine import BASE, Engine, GenerationConfig
    from evalsuite.task import read_rows
    from finetune.demo import DemoConfig, write_demo

    if args.threads:
        torch.set_num_threads(args.threads)
    load = os.getloadavg()
    engines = {d: Engine(args.base, dtype=d, batch_size=8) for d in ("float32", "bfloat16")}
    res: dict[str, dict[str, list[float]]] = {d: {"floor": [], "step": []} for d in engines}
    for e in engines.values():
        step_ms(e, 2)  # warm-up
    for _ in range(args.rounds):
        for d, e in engines.items():
            res[d]["floor"].append(read_ms(engines["float32"].model, 5))
            res[d]["step"].append(step_ms(e, args.steps))
    tmp = Path(tempfile.mkdtemp(prefix="decode_floor_"))
    paths = write_demo(tmp / "demo", DemoConfig(seed=0))
    prompts = [r.prompt for r in read_rows(paths["heldout"], limit=args.agree_prompts)]
    cfg = GenerationConfig(max_new_tokens=args.agree_tokens)
    outs = {d: [r[0].token_ids for r in e.generate(prompts, [BASE], cfg)]
            for d, e in engines.items()}
    agree = sum(a == b for a, b in zip(outs["float32"], outs["bfloat16"], strict=True))
    rate = agree / len(prompts)

    med = statistics.median
    lines = ["| dtype | weight MB | floor ms (bytes / bandwidth) | bandwidth GB/s (fp32 read) | "
             "batch-1 decode step ms | step / floor | goal <= 2x |",
             "|---|---:|---:|---:|---:|---:|---|"]
    fp32_bytes = weight_bytes(engines["float32"].model)
    bandwidth = fp32_bytes / med(res["float32"]["floor"] + res["bfloat16"]["floor"])  # B/ms
    for d, e in engines.items():
        nbytes = weight_bytes(e.model)
        fl, st = nbytes / bandwidth, med(res[d]["step"])
        lines.append(f"| {d} | {nbytes / 1e6:.0f} | {fl:.1f} | {bandwidth / 1e6:.1f} | "
                     f"{st:.1f} | {st / fl:.2f}x | {'met' if st / fl <= 2 else 'not met'} |")
    slow = med(res["bfloat16"]["step"]) / med(res["float32"]["step"])
    lines += ["", f"bf16 step = x{slow:.2f} the fp32 step; same greedy {args.agree_tokens} "
              f"tokens on {agree}/{len(prompts)} demo held-out prompts ({rate:.0%}; offered "
              f"when >= 95%: {'yes' if rate >= 0.95 else 'no, bf16 stays off'})."]
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
