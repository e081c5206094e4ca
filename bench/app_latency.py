"""App latency: time to first token and total time, 3 models side by side vs 1 model.

Runs the app's own streaming path (``tuneproof_app.compare.stream_answers`` over THE
engine's mixed-adapter ``stream``), alternating 1-model and 3-model requests so both see the
same machine load, and reports medians. Goal: 3-model TTFT <= 1.2x the 1-model TTFT.

    python bench/app_latency.py [--runs DIR] [--base tiny] [--repeats 30] [--threads 1] [--write]

``--write`` puts the figures in the ``## app`` section of bench/RESULTS.md (other sections are
left as they are).

Without ``--runs`` it serves two random-init LoRA adapters on the base (no training needed;
latency does not depend on what an adapter learned).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

READING = (
    "Reading: the first token of a mixed batch costs about one prefill forward pass, and "
    "PEFT's mixed-adapter LoRA forward gathers and scatters each adapter's rows in every "
    "LoRA layer, so on this 0.8M-parameter model on CPU the prefill of three rows (base + "
    "two adapters) costs well over one row's: the 1.2x goal is not met here. Against the "
    "alternative of answering one model after another, the mixed batch shows every column's "
    "first token an order of magnitude sooner. The app itself adds little on top of the "
    "prefill (compare TTFT with the prefill times above). A bigger base on a GPU, where a batch "
    "of three costs about what a batch of one does, was not measured (no GPU here)."
)
MESSAGE = "Hi, I'm Mary. Can you recommend a laptop? I want one under $50."
SYSTEM = "You are a retail support assistant. Reply with the intent and the action."


def random_adapters(base: str, out: Path) -> dict[str, Path]:
    import torch
    from peft import LoraConfig, get_peft_model

    from finetune.models import load_base

    dirs = {}
    for seed, name in enumerate(("a1", "a2"), start=1):
        model, _ = load_base(base)
        torch.manual_seed(seed)
        cfg = LoraConfig(r=16, lora_alpha=32, target_modules="all-linear",
                         init_lora_weights=False)
        get_peft_model(model, cfg).save_pretrained(out / name)
        dirs[name] = out / name
    return dirs


def prefill_ms(engine, ctx, models: list[str], repeats: int = 30) -> float:  # noqa: ANN001
    """Median time of one forward pass over the prompt, one row per model (mixed adapters)."""
    import torch

    from tuneproof_app.compare import conversation

    ids = engine.encode_prompt(conversation(SYSTEM, [], MESSAGE))
    batch = torch.tensor([ids] * len(models), device=engine.device)
    names = [ctx.engine_name(m) for m in models]
    kwargs = {"adapter_names": names} if engine.is_peft else {}
    times = []
    with torch.inference_mode():
        for _ in range(repeats):
            t0 = time.perf_counter()
            engine.model(input_ids=batch, attention_mask=torch.ones_like(batch), **kwargs)
            times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def write_section(body: str, command: str) -> None:
    """Replace (or add) the ``## app`` section of bench/RESULTS.md."""
    from finetune.artifacts import atomic_write_text

    path = Path(__file__).resolve().parent / "RESULTS.md"
    text = path.read_text(encoding="utf-8") if path.is_file() else "# Benchmarks\n"
    section = f"## app\n\nCommand: `{command}`\n\n{body}\n"
    pattern = re.compile(r"^## app\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1).rstrip("\n") + "\n"
    else:
        text = text.rstrip("\n") + "\n\n" + section
    atomic_write_text(path, text)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", default="tiny")
    p.add_argument("--runs", default=None, help="runs directory (first two adapters are used)")
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--max-new-tokens", type=int, default=24)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--device", default=None)
    p.add_argument("--write", action="store_true", help="update bench/RESULTS.md (## app)")
    args = p.parse_args()
    load_at_start = os.getloadavg()

    import torch

    from evalsuite.engine import Engine
    from tuneproof_app.compare import conversation, stream_answers
    from tuneproof_app.context import AppContext
    from tuneproof_app.registry import Registry
    from tuneproof_app.votes import VoteStore

    if args.threads:
        torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="app_latency_"))
    if args.runs:
        reg = Registry(args.runs)
        adapters = {n: reg.get(n).adapter_dir for n in reg.names()[:2]}
    else:
        adapters = random_adapters(args.base, tmp)
    if len(adapters) < 2:
        print("error: need two adapters (give --runs with two runs, or none)", file=sys.stderr)
        return 2
    engine = Engine(args.base, adapters, device=args.device)
    ctx = AppContext(engine=engine, store=VoteStore(tmp / "votes.sqlite"),
                     max_new_tokens_cap=args.max_new_tokens)
    config = ctx.generation_config(args.max_new_tokens)
    three = ["base", *list(adapters)[:2]]

    def once(models: list[str]) -> tuple[float, float]:
        convs = [conversation(SYSTEM, [], MESSAGE)] * len(models)
        t0 = time.perf_counter()
        ttft = None
        for _ in stream_answers(ctx, convs, models, config):
            if ttft is None:  # the first update carries every column's first token
                ttft = time.perf_counter() - t0
        return ttft or float("nan"), time.perf_counter() - t0

    def one_by_one(models: list[str]) -> tuple[float, float]:
        # the alternative to one mixed batch: each model streamed after the other; the
        # last column sees its first token only after the others finished
        t0 = time.perf_counter()
        ttft = 0.0
        for m in models:
            start = time.perf_counter() - t0
            first, _ = once([m])
            ttft = start + first
        return ttft, time.perf_counter() - t0

    runners = {"1 model (base)": (once, ["base"]), "1 model (adapter)": (once, three[1:2]),
               "3 models, one mixed batch": (once, three),
               "3 models, one after another": (one_by_one, three)}
    for run, models in runners.values():  # warm-up: first calls pay one-off costs
        run(models)
        run(models)
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in runners}
    for _ in range(args.repeats):
        for name, (run, models) in runners.items():
            times[name].append(run(models))

    med = {k: (statistics.median(t for t, _ in v), statistics.median(s for _, s in v))
           for k, v in times.items()}
    prefill = {k: prefill_ms(engine, ctx, models) for k, (run, models) in runners.items()
               if run is once}
    mixed = med["3 models, one mixed batch"]
    ratios = {k: (mixed[0] / med[k][0], mixed[1] / med[k][1])
              for k in ("1 model (base)", "1 model (adapter)")}
    lines = [
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, torch {torch.__version__}; base `{args.base}` on "
        f"{engine.device}, {torch.get_num_threads()} torch thread(s); load average at start "
        + ", ".join(f"{x:.1f}" for x in load_at_start)
        + " (1, 5, 15 min; the machine is shared with other jobs).",
        "",
        f"{args.repeats} rounds of each setup, interleaved; greedy, {args.max_new_tokens} new "
        "tokens; TTFT is the time until the app's first update, which carries the first token of "
        "every column (of the last column when the models run one after another).",
        "",
        "| setup | median TTFT (ms) | TTFT p25-p75 (ms) | median total (ms) |",
        "| --- | ---: | ---: | ---: |",
    ]
    for k, (ttft, total) in med.items():
        q = statistics.quantiles([t for t, _ in times[k]], n=4)
        lines.append(f"| {k} | {ttft * 1000:.1f} | {q[0] * 1000:.1f}-{q[2] * 1000:.1f} | "
                     f"{total * 1000:.1f} |")
    lines.append("")
    lines.append("Where the first token's time goes: one prefill forward pass of the prompt "
                 f"({len(engine.encode_prompt(conversation(SYSTEM, [], MESSAGE)))} tokens), "
                 "median of 30, no generation loop: "
                 + "; ".join(f"{k} {v:.1f} ms" for k, v in prefill.items()) + ".")
    lines.append("")
    for k, (r_ttft, r_total) in ratios.items():
        verdict = "met" if r_ttft <= 1.2 else "not met"
        lines.append(f"- 3 models in one mixed batch vs {k}: TTFT x{r_ttft:.2f} (goal <= 1.2: "
                     f"{verdict}), total x{r_total:.2f}")
    lines += ["", READING]
    report = "\n".join(lines)
    print(report)
    if args.write:
        write_section(report, " ".join(["python bench/app_latency.py", *sys.argv[1:]]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
