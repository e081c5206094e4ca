"""What one LoRA training step costs on a base, and what the demo recipe's levers buy.

Each variant builds the model through ``finetune.training.model.build_model`` (THE loader,
PEFT) from the demo's train.yaml with overrides, and times forward + backward + AdamW step on
the same batches of demo rows, with the loss on the answer only (``target_only_loss``, as training
does). All variants run in this one process, alternately for ``--rounds`` rounds, so the
ratios are side by side; tokens are non-padding tokens. Wall and CPU seconds are both
reported (CPU is the fairer one on a machine shared with other jobs).

    python bench/lora_step.py --base smollm2 --write

``--write`` records the figures in bench/RESULTS.md under "## real base: LoRA step levers"
(or "## LoRA step levers" on tiny).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path


def variants(top_layers: int) -> dict[str, list[str]]:
    """The demo's old smollm2 recipe first, then each lever added."""
    return {
        "all layers, dropout 0.1": ["lora.dropout=0.1"],
        "all layers, dropout 0.0": ["lora.dropout=0.0"],
        f"top {top_layers} layers, dropout 0.0": ["lora.dropout=0.0",
                                                  f"lora.top_layers={top_layers}"],
    }


def main(argv: list[str] | None = None) -> int:  # noqa: D103
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base", default="smollm2")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--steps", type=int, default=4, help="timed steps per variant and round")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--top-layers", type=int, default=10)
    p.add_argument("--write", action="store_true")
    args = p.parse_args(argv)

    import torch
    from _common import cpu_name

    from finetune.config import load_config
    from finetune.training.batching import Collator
    from finetune.training.data import encode_file
    from finetune.training.model import build_model
    from finetune.training.trainer import target_only_loss
    from tuneproof_demo.data import DemoConfig, write_demo

    torch.set_num_threads(args.threads)
    VARIANTS = variants(args.top_layers)  # noqa: N806
    tmp = Path(tempfile.mkdtemp())
    paths = write_demo(tmp / "data", DemoConfig(seed=0, n_train=200, n_heldout_pairs=5))
    common = [f"base={args.base}", "lora.target_modules=all-linear", "threads=1"]
    wall: dict[str, list[float]] = {v: [] for v in VARIANTS}
    cpu: dict[str, list[float]] = {v: [] for v in VARIANTS}
    tokens = 0
    for _ in range(args.rounds):
        for name, overrides in VARIANTS.items():
            cfg = load_config(paths["train_yaml"], [*common, *overrides])
            model, tok = build_model(cfg, "cpu")
            model.train()
            rows = encode_file(cfg.train_data, tok, cfg).rows
            collate = Collator(tok.pad_token_id)
            opt = torch.optim.AdamW([q for q in model.parameters() if q.requires_grad], lr=1e-4)
            tokens = 0
            for step in range(args.steps + 1):  # step 0 warms up, untimed
                batch = collate(rows[step * args.batch_size:(step + 1) * args.batch_size])
                t0, c0 = time.perf_counter(), time.process_time()
                loss, _ = target_only_loss(model, batch)
                loss.backward()
                opt.step()
                opt.zero_grad()
                if step:
                    wall[name].append(time.perf_counter() - t0)
                    cpu[name].append(time.process_time() - c0)
                    tokens += int(batch["attention_mask"].sum())
            del model, opt
    first = next(iter(VARIANTS))
    ref_w, ref_c = statistics.median(wall[first]), statistics.median(cpu[first])
    lines = [
        f"Command: `python bench/lora_step.py --base {args.base}"
        f"{'' if args.threads == 2 else f' --threads {args.threads}'}"
        f"{'' if args.top_layers == 10 else f' --top-layers {args.top_layers}'}` "
        f"(batch {args.batch_size} demo rows, {args.steps} timed steps x {args.rounds} "
        f"rounds per variant, {args.threads} threads). Machine: {cpu_name()}, "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end, "
        f"Python {platform.python_version()}, torch {torch.__version__}.",
        "",
        "| variant | s / step (wall, median) | s / step (CPU, median) | vs first (wall) | "
        "vs first (CPU) | tokens / s (wall) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name in VARIANTS:
        w, c = statistics.median(wall[name]), statistics.median(cpu[name])
        lines.append(f"| {name} | {w:.2f} | {c:.2f} | {w / ref_w:.2f}x | {c / ref_c:.2f}x | "
                     f"{tokens / args.steps / w:.0f} |")
    body = "\n".join(lines) + "\n"
    print(body)
    if args.write:
        from train_throughput import write_section

        write_section(body, "## real base: LoRA step levers" if args.base != "tiny"
                      else "## LoRA step levers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
