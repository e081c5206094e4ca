"""App latency: time to first token and total time, 3 models side by side vs 1 model.

Runs the app's own streaming path (``tuneproof_app.compare.stream_answers`` over THE
engine's mixed-adapter ``stream``), alternating 1-model and 3-model requests so both see the
same machine load, and reports medians. Goals: 3-model TTFT and decode step <= 1.3x the 1-model
(base) ones.

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

from _common import cpu_name, mixed_forward_ms, random_adapters

os.environ.setdefault("HF_HUB_OFFLINE", "1")

READING = (
    "Reading: the first token of a mixed batch costs about one prefill forward pass and every "
    "later token one decode step, so the step ratios above are the cost of the extra columns. "
    "With the batched-LoRA fast path (evalsuite/lora_batched.py) every LoRA layer applies all "
    "adapters with two matmuls instead of PEFT's index-select/index-add per adapter; the "
    "'PEFT path' rows are the same batch through PEFT's own loop, measured in the same run."
)
CEILING = "3 rows of the base alone (adapters disabled, no LoRA term)"
MESSAGE = "Hi, I'm Mary. Can you recommend a laptop? I want one under $50."
SYSTEM = "You are a retail support assistant. Reply with the intent and the action."


def forward_ms(engine, ctx, models: list[str], repeats: int = 30,  # noqa: ANN001
               fast: bool = True, lora: bool = True) -> tuple[float, float]:
    """Median CPU ms of (one prefill forward pass over the prompt, one cached decode step),
    one row per model in one mixed batch (``_common.mixed_forward_ms``, CPU time).
    """
    from tuneproof_app.compare import conversation

    ids = engine.encode_prompt(conversation(SYSTEM, [], MESSAGE))
    names = [ctx.engine_name(m) for m in models]
    return mixed_forward_ms(engine, ids, names, repeats, fast=fast, lora=lora)


def write_section(body: str, command: str, title: str = "## app") -> None:
    """Replace (or add) the ``title`` section of bench/RESULTS.md."""
    from finetune.artifacts import atomic_write_text

    path = Path(__file__).resolve().parent / "RESULTS.md"
    text = path.read_text(encoding="utf-8") if path.is_file() else "# Benchmarks\n"
    section = f"{title}\n\nCommand: `{command}`\n\n{body}\n"
    pattern = re.compile("^" + re.escape(title) + r"\n.*?(?=^## |\Z)", re.S | re.M)
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
    p.add_argument("--weight-layout", default="auto",
                   choices=("auto", "row", "column", "packed"),
                   help="the engine's weight_layout (auto: packed on CPU for a real base)")
    p.add_argument("--forward-only", action="store_true",
                   help="only the prefill and decode-step CPU times (no streaming rounds)")
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
        adapters = random_adapters(args.base, tmp, ("a1", "a2"))
    if len(adapters) < 2:
        print("error: need two adapters (give --runs with two runs, or none)", file=sys.stderr)
        return 2
    engine = Engine(args.base, adapters, device=args.device, weight_layout=args.weight_layout)
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
        if not args.forward_only:
            run(models)
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in runners}
    for _ in range(0 if args.forward_only else args.repeats):
        for name, (run, models) in runners.items():
            times[name].append(run(models))

    med = {k: (statistics.median(t for t, _ in v), statistics.median(s for _, s in v))
           for k, v in times.items() if v}
    fwd = {k: forward_ms(engine, ctx, models, args.repeats)
           for k, (run, models) in runners.items() if run is once}
    fwd["3 models, one mixed batch (PEFT path)"] = forward_ms(
        engine, ctx, three, args.repeats, fast=False)
    fwd[CEILING] = forward_ms(engine, ctx, three, args.repeats, lora=False)
    mixed = med.get("3 models, one mixed batch")
    ratios = {k: (mixed[0] / med[k][0], mixed[1] / med[k][1])
              for k in ("1 model (base)", "1 model (adapter)")} if mixed else {}
    lines = [
        f"Machine: {cpu_name()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, torch {torch.__version__}; base `{args.base}` on "
        f"{engine.device}, {torch.get_num_threads()} torch thread(s), weight layout "
        f"`{engine.weight_layout}`; load average at start "
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
    if not med:
        lines = lines[:2] + ["(--forward-only: no streaming rounds)"]
    for k, (ttft, total) in med.items():
        q = statistics.quantiles([t for t, _ in times[k]], n=4)
        lines.append(f"| {k} | {ttft * 1000:.1f} | {q[0] * 1000:.1f}-{q[2] * 1000:.1f} | "
                     f"{total * 1000:.1f} |")
    lines.append("")
    n_prompt = len(engine.encode_prompt(conversation(SYSTEM, [], MESSAGE)))
    lines += ["", f"One forward pass, no generation loop ({n_prompt}-token prompt, median of "
              f"{args.repeats}):", "", "| batch | prefill CPU ms | decode step CPU ms |",
              "| --- | ---: | ---: |"]
    lines += [f"| {k} | {pf:.1f} | {st:.1f} |" for k, (pf, st) in fwd.items()]
    lines.append("")
    base_fwd = fwd["1 model (base)"]
    for k, (pf, st) in fwd.items():
        if k.startswith("3 models"):
            r = st / base_fwd[1]
            lines.append(f"- decode step, {k} vs 1 model (base): x{r:.2f} (goal <= 1.3: "
                         f"{'met' if r <= 1.3 else 'not met'}); prefill x{pf / base_fwd[0]:.2f}")
    pf3 = fwd[CEILING][0] / base_fwd[0]
    lines.append(f"- the least any 3-row batch can cost here: 3 rows of the base alone, no LoRA "
                 f"term, prefill x{pf3:.2f} of 1 row, so first-token goal <= 1.3 is "
                 f"{'within reach' if pf3 <= 1.3 else 'out of reach on this machine'} for any "
                 "LoRA implementation")
    for k, (r_ttft, r_total) in ratios.items():
        verdict = "met" if r_ttft <= 1.3 else "not met"
        lines.append(f"- 3 models in one mixed batch vs {k}: TTFT x{r_ttft:.2f} (goal <= 1.3: "
                     f"{verdict}), total x{r_total:.2f}")
    lines += ["", READING]
    report = "\n".join(lines)
    print(report)
    if args.write:
        write_section(report, " ".join(["python bench/app_latency.py", *sys.argv[1:]]),
                      ("## app" if args.base == "tiny" else "## real base: app")
                      + (" (forward passes)" if args.forward_only else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
