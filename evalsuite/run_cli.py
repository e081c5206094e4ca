"""``evalsuite run TASK.yaml --base REF [--adapter NAME=DIR ...] [--baselines ...] [--out DIR]``.

Exit 0 when every gate passes, 1 naming each failed gate, 2 for bad usage or input.
"""

from __future__ import annotations

import argparse
import sys

from evalsuite.task import BASELINES, load_task
from finetune.errors import UsageError


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``evalsuite run``."""
    p.add_argument("task", help="task YAML (data, scorers, generation, fairness, gates)")
    p.add_argument("--base", default="tiny",
                   help="base model: tiny, smollm2, a .gguf file, a local model folder or a "
                        "hub id (default: tiny)")
    p.add_argument("--adapter", action="append", default=[], metavar="NAME=DIR",
                   help="an adapter to score: NAME=run directory or adapter folder, or NAME "
                        "for RUNS/NAME; repeatable")
    p.add_argument("--runs", default="runs", help="runs directory for --adapter NAME")
    p.add_argument("--baselines", default="",
                   help="comma-separated prompting baselines of the base: zero-shot,few-shot")
    p.add_argument("--out", default=None,
                   help="output folder (default: eval/<task name>)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1... (default: auto)")
    p.add_argument("--batch-size", type=int, default=32, help="prompts per mixed batch")
    p.add_argument("--backend", action="append", default=[], metavar="URL",
                   help="an OpenAI-compatible server (vLLM) serving --base and the adapters; "
                        "repeatable: the rows are shared; API key from TUNEPROOF_API_KEY "
                        "(docs/serving.md)")
    p.add_argument("--limit", type=int, default=None, help="score only the first N rows")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    """Run the evaluation; print a summary and each failed gate."""
    from evalsuite.runner import parse_adapters, run_eval

    task = load_task(args.task)
    if args.limit is not None:
        if args.limit < 1:
            raise UsageError(f"--limit: must be >= 1, got {args.limit}")
        task.limit = args.limit
    if args.batch_size < 1:
        raise UsageError(f"--batch-size: must be >= 1, got {args.batch_size}")
    baselines = [b.strip() for b in args.baselines.split(",") if b.strip()]
    for b in baselines:
        if b not in BASELINES:
            raise UsageError(f"--baselines: unknown baseline {b!r}; use {', '.join(BASELINES)}")
    adapters = parse_adapters(args.adapter, args.runs)
    out = args.out or f"eval/{task.name}"

    def log(msg: str) -> None:
        if not args.quiet:
            print(f"evalsuite: {msg}", file=sys.stderr)

    result = run_eval(task, base=args.base, adapters=adapters, baselines=baselines, out_dir=out,
                      device=args.device, batch_size=args.batch_size, progress=not args.quiet,
                      log=log, backends=args.backend)
    scorers = [s.name for s in task.scorers]
    for name, m in result.results["models"].items():
        cells = []
        for s in scorers:
            v = m["metrics"][s]
            if v["value"] is None:
                cells.append(f"{s} –")
            else:
                cells.append(f"{s} {v['value']:.3f} [{v['ci_low']:.3f}, {v['ci_high']:.3f}]")
        print(f"{name:>16}: " + "  ".join(cells))
    for c in result.results["comparisons"]:
        if c["a"] == "base" and c["delta"] is not None:
            p, holm = c["p_value"], c.get("p_value_holm")
            print(f"{'base -> ' + c['b']:>16}: {c['metric']} delta {c['delta']:+.3f} "
                  f"[{c['ci_low']:+.3f}, {c['ci_high']:+.3f}] p={p if p is None else f'{p:.3g}'}"
                  f" (Holm {holm if holm is None else f'{holm:.3g}'})")
    from evalsuite.verdict import verdicts

    for v in verdicts(result.results):
        print(f"verdict: {v.line()}")
    for name, m in result.results["models"].items():
        for warning in m.get("warnings", []):
            print(f"warning: {name}: {warning}", file=sys.stderr)
    print(f"report: {result.out_dir / 'report.html'}")
    if result.failed_gates:
        for failure in result.failed_gates:
            print(f"gate failed: {failure}", file=sys.stderr)
        return 1
    return 0
