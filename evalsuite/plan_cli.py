"""``evalsuite plan TASK.yaml [--expect RATE | --expect KEY=RATE ...] [--json]``.

For each gate on a rate, the swaps or rows its 95% bound needs to pass at the expected rate,
and whether the task's held-out set has them (``evalsuite.plan``). Reads the task and its data
only; no model is loaded. Exit 0, or 2 for bad usage or input.
"""

from __future__ import annotations

import argparse
import json

from finetune.errors import UsageError


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``evalsuite plan``."""
    p.add_argument("task", help="task YAML (its data and gates are read; no model is loaded)")
    p.add_argument("--expect", action="append", default=[], metavar="[KEY=]RATE",
                   help="the rate you expect the model to show (0..1), for every gate or for "
                        "the gate on KEY; repeatable (default: a best case and two realistic "
                        "rates per gate)")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")


def parse_expect(specs: list[str]) -> dict[str, float]:
    """``["0.01", "counterfactual.flip_rate=0.02"]`` -> ``{"*": 0.01, "counterfactual...": 0.02}``.

    Raises:
        UsageError: a rate that is not a number in [0, 1].
    """
    out = {}
    for spec in specs:
        key, sep, value = spec.rpartition("=")
        try:
            rate = float(value)
        except ValueError:
            rate = -1.0
        if not 0 <= rate <= 1 or (sep and not key.strip()):
            raise UsageError(f"--expect {spec!r}: expected RATE or KEY=RATE with RATE in [0, 1]")
        out[key.strip() if sep else "*"] = rate
    return out


def run(args: argparse.Namespace) -> int:
    """Print the plan."""
    from evalsuite.plan import METHOD, plan_task, render
    from evalsuite.task import load_task

    expected = parse_expect(args.expect)
    task = load_task(args.task)
    plans = plan_task(task, expected)
    if args.json:
        print(json.dumps({"task": task.name, "confidence": 0.95, "bound": METHOD,
                          "gates": [p.to_dict() for p in plans]}, indent=2))
    else:
        print(render(plans, task))
    return 0
