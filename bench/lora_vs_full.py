"""LoRA vs full fine-tuning, side by side: what each costs and what it reaches.

Both run through ``finetune.train.train`` (so through the same data checks, batching and
cost report) on the same demo rows, alternately, on the CPU. The usual claim is that LoRA
halves the cost; this prints what we measure: trainable parameters, the bytes of weights +
gradients + optimiser state, peak RSS, tokens/s (wall and CPU) and the final held-out loss.

``--base`` may be a local model folder; the default ``tiny`` (0.7M parameters) is so small
that fixed per-step costs dominate. ``--write`` records the figures in bench/RESULTS.md under
"## train: LoRA vs full".
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

SECTION = "## train: LoRA vs full"
ROOT = Path(__file__).resolve().parents[1]


def one_run(method: str, args: argparse.Namespace, tmp: Path) -> dict:
    """Train in a fresh process, so peak RSS belongs to that method alone."""
    code = (
        "import json, sys\n"
        "from finetune.config import config_from_dict\n"
        "from finetune.train import train\n"
        "cfg = config_from_dict(json.loads(sys.argv[1]))\n"
        "print(train(cfg, runs_dir=sys.argv[2], progress=False, overwrite=True))\n"
    )
    cfg = {
        "name": method, "base": args.base, "train_data": str(tmp / "data" / "train.jsonl"),
        "heldout_data": str(tmp / "data" / "heldout.jsonl"), "max_seq_len": 128,
        "method": method, "device": "cpu", "seed": 0, "logging_steps": 10**6,
        "lora": {"r": 16, "alpha": 32, "dropout": 0.0},
        "optim": {"lr": args.lr_lora if method == "lora" else args.lr_full,
                  "epochs": args.epochs, "batch_size": args.batch_size},
        "eval": {"every_steps": 10**6},
    }
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    out = subprocess.run([sys.executable, "-c", code, json.dumps(cfg), str(tmp / "runs")],
                         env=env, cwd=ROOT, capture_output=True, text=True, check=True)
    run_dir = Path(out.stdout.strip().splitlines()[-1])
    from finetune.rundir import RunDir

    return RunDir(run_dir).read_info()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", default="tiny")
    p.add_argument("--n-train", type=int, default=512)
    p.add_argument("--epochs", type=float, default=2.0)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr-lora", type=float, default=3e-3)
    p.add_argument("--lr-full", type=float, default=1e-3)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--write", action="store_true")
    args = p.parse_args()
    from tuneproof_demo.data import DemoConfig, write_demo

    load = os.getloadavg()
    runs: dict[str, list[dict]] = {"lora": [], "full": []}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        write_demo(tmp / "data", DemoConfig(seed=0, n_train=args.n_train, n_heldout_pairs=50))
        for _ in range(args.rounds):
            for method in ("lora", "full"):
                runs[method].append(one_run(method, args, tmp))
                r = runs[method][-1]
                print(f"{method}: {r['tokens_per_s']:.0f} tok/s, loss {r['final_eval_loss']:.4f}",
                      flush=True)

    def best(method: str, key: str) -> float:
        return min(r[key] for r in runs[method]) if not key.startswith("tokens_per") else \
            max(r[key] for r in runs[method])

    # Accounting check: a loop cannot use more CPU seconds than wall seconds x cores.
    for m, rs in runs.items():
        for r in rs:
            if r["tokens_per_s"] > r["tokens_per_cpu_s"] * (os.cpu_count() or 1) * 1.05:
                print(f"error: {m}: {r['tokens_per_s']} tokens/s wall but "
                      f"{r['tokens_per_cpu_s']} per CPU-s on {os.cpu_count()} cores",
                      file=sys.stderr)
                return 1

    def mib(n: float) -> str:
        return f"{n / 2**20:.2f}"

    rows = [
        ("trainable params", lambda m: f"{runs[m][0]['trainable_params']:,}"),
        ("total params", lambda m: f"{runs[m][0]['total_params']:,}"),
        ("weights MiB", lambda m: mib(runs[m][0]["train_state_bytes"]["weights"])),
        ("gradients MiB", lambda m: mib(runs[m][0]["train_state_bytes"]["gradients"])),
        ("optimiser state MiB", lambda m: mib(runs[m][0]["train_state_bytes"]["optimizer"])),
        ("weights+grads+optimiser MiB",
         lambda m: mib(sum(runs[m][0]["train_state_bytes"].values()))),
        ("peak RSS MiB (whole process)", lambda m: mib(best(m, "peak_memory_bytes"))),
        ("tokens/s wall (best round)", lambda m: f"{best(m, 'tokens_per_s'):.0f}"),
        ("tokens/CPU-s (best round)", lambda m: f"{best(m, 'tokens_per_cpu_s'):.0f}"),
        ("optimizer steps", lambda m: f"{runs[m][-1]['global_step']}"),
        ("final held-out loss", lambda m: f"{runs[m][-1]['final_eval_loss']:.4f}"),
        ("artefact", lambda m: f"{runs[m][0]['artifact']}/"),
    ]
    table = "| | LoRA | full |\n|---|---:|---:|\n" + "\n".join(
        f"| {name} | {f('lora')} | {f('full')} |" for name, f in rows)
    lo, fu = runs["lora"][0]["train_state_bytes"], runs["full"][0]["train_state_bytes"]
    note = (f"LoRA / full: training state x{sum(lo.values()) / sum(fu.values()):.2f}, "
            f"optimiser state x{lo['optimizer'] / max(fu['optimizer'], 1):.3f}, peak RSS x"
            f"{best('lora', 'peak_memory_bytes') / best('full', 'peak_memory_bytes'):.2f}, "
            f"tokens/s x{best('lora', 'tokens_per_s') / best('full', 'tokens_per_s'):.2f} wall, "
            f"x{best('lora', 'tokens_per_cpu_s') / best('full', 'tokens_per_cpu_s'):.2f} per "
            f"CPU-s, at {runs['lora'][-1]['global_step']} vs {runs['full'][-1]['global_step']} "
            "optimizer steps. tokens/s counts the training loop only (trainer.train() minus "
            "evaluations inside it; the final evaluation is not in it).")
    print(table + "\n\n" + note)
    if args.write:
        import torch

        cmd = "python bench/lora_vs_full.py " + " ".join(a for a in sys.argv[1:])
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from app_latency import cpu_name

        body = (
            f"Command: `{cmd}`\n\nMachine: {cpu_name()}, {os.cpu_count()} cores, "
            f"torch {torch.__version__}; load average at start {load[0]:.1f}, {load[1]:.1f}, "
            f"{load[2]:.1f} (shared machine). Base `{args.base}`, {args.n_train} demo rows, "
            f"batch {args.batch_size}, {args.epochs} epochs, lr LoRA {args.lr_lora} / full "
            f"{args.lr_full}; each run in its own process.\n\n{table}\n\n{note}\n"
        )
        from train_throughput import write_section

        write_section(body, SECTION if args.base == "tiny" else "## real base: LoRA vs full")
    return 0


if __name__ == "__main__":
    sys.exit(main())
