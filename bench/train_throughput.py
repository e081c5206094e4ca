"""Training throughput: `finetune train` vs TRL's SFTTrainer, same model, data and LoRA.

Both train the tiny base on the same demo rows (prompt + completion, loss on the answer
only) with LoRA r=16 on all linear layers, AdamW, the same learning rate, schedule, batch
size and epochs, on the CPU, and run alternately in this one process. Throughput is
non-padding tokens per second of the training loop (the Trainer's non-padding token count
over the time of ``trainer.train()``; no evaluation inside), reported per wall second and
per CPU second of this process (the fairer measure on a machine shared with other jobs).
The final held-out loss of both must agree within 2%.

TRL runs with its defaults for this data (padded batches; its packing needs FlashAttention
to keep packed rows apart), except two that change the arithmetic: SFTConfig turns on bf16
autocast (on CPU too) and gradient checkpointing by default; ``trl`` runs without them, as
ours does, and ``trl-defaults`` with them. Ours runs with its defaults: length-grouped
batches and logits computed only where a label follows. ``--variants ours-padded`` adds
ours with plain padded random batches, to show what each lever buys.

``--write`` records the figures in bench/RESULTS.md under "## train: throughput vs TRL".
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

SECTION = "## train: throughput vs TRL"


def demo_files(tmp: Path, n_train: int, n_heldout_pairs: int) -> tuple[Path, Path]:
    from tuneproof_demo.data import DemoConfig, write_demo

    paths = write_demo(tmp / "data", DemoConfig(seed=0, n_train=n_train,
                                                n_heldout_pairs=n_heldout_pairs))
    return paths["train"], paths["heldout"]


def run_ours(train_path: Path, heldout_path: Path, args: argparse.Namespace, tmp: Path,
             batching: str, tag: str) -> dict:
    from finetune.config import config_from_dict
    from finetune.train import train

    cfg = config_from_dict({
        "name": tag, "base": args.base, "train_data": str(train_path),
        "heldout_data": str(heldout_path), "max_seq_len": 128, "device": "cpu",
        "lora": {"r": 16, "alpha": 32, "dropout": 0.0, "target_modules": "all-linear"},
        "optim": {"lr": args.lr, "epochs": args.epochs, "batch_size": args.batch_size,
                  "warmup_ratio": 0.05, "scheduler": "cosine"},
        # No evaluation inside the loop (as for TRL); the final held-out loss comes after.
        "eval": {"every_steps": 10**6}, "batching": batching, "seed": 0,
        "logging_steps": 10**6,
    })
    run_dir = train(cfg, runs_dir=tmp / "runs", progress=False, overwrite=True)
    from finetune.rundir import RunDir

    run = RunDir(run_dir).read_info()
    # The training loop only, as for TRL below: trainer.train() minus the evaluations that
    # run inside it (TRL's runs none; ours runs one at the last step, eval_strategy "steps").
    return {"tokens": run["train_tokens"], "wall": run["train_tokens"] / run["tokens_per_s"],
            "cpu": run["train_tokens"] / run["tokens_per_cpu_s"],
            "loss": run["final_eval_loss"], "steps": run["global_step"]}


def run_trl(train_path: Path, heldout_path: Path, args: argparse.Namespace, tmp: Path,
            trl_defaults: bool = False) -> dict:
    from datasets import Dataset
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    from finetune.models import load_base

    def rows(path: Path) -> Dataset:
        items = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
        return Dataset.from_list([{"prompt": r["messages"][:-1], "completion": r["messages"][-1:]}
                                  for r in items])

    model, tok = load_base(args.base, device="cpu")
    cfg = SFTConfig(
        output_dir=str(tmp / "trl"), per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=args.batch_size, num_train_epochs=args.epochs,
        learning_rate=args.lr, lr_scheduler_type="cosine", warmup_steps=0.05,
        max_length=128, seed=0, report_to="none", use_cpu=True, save_strategy="no",
        eval_strategy="no", logging_steps=10**6, disable_tqdm=True,
        include_num_input_tokens_seen="non_padding", dataloader_num_workers=0,
        # TRL's own defaults differ from plain Trainer's in two ways that change the work done:
        # bf16 autocast (on by default, also on CPU, where AMX makes it faster) and gradient
        # checkpointing. "trl" runs with ours (fp32, no checkpointing); "trl-defaults" with
        # TRL's.
        **({} if trl_defaults else {"bf16": False, "gradient_checkpointing": False}),
    )
    lora = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear",
                      task_type="CAUSAL_LM")
    trainer = SFTTrainer(model=model, args=cfg, train_dataset=rows(train_path),
                         eval_dataset=rows(heldout_path), processing_class=tok,
                         peft_config=lora)
    cpu0, t0 = time.process_time(), time.perf_counter()
    trainer.train()
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    loss = trainer.evaluate()["eval_loss"]
    return {"tokens": trainer.state.num_input_tokens_seen, "wall": wall, "cpu": cpu,
            "loss": loss, "steps": trainer.state.global_step}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", default="tiny")
    p.add_argument("--n-train", type=int, default=512)
    p.add_argument("--n-heldout-pairs", type=int, default=50)
    p.add_argument("--epochs", type=float, default=2.0)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--rounds", type=int, default=2, help="alternating rounds of each variant")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default torch's)")
    p.add_argument("--variants", default="ours,trl",
                   help="comma list: ours, trl, trl-defaults (bf16 autocast + gradient "
                        "checkpointing, TRL's defaults), ours-padded")
    p.add_argument("--write", action="store_true", help="record in bench/RESULTS.md")
    args = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    if args.threads:
        torch.set_num_threads(args.threads)
    load = os.getloadavg()
    variants = args.variants.split(",")
    results: dict[str, list[dict]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        train_path, heldout_path = demo_files(tmp, args.n_train, args.n_heldout_pairs)
        for r in range(args.rounds):
            for v in variants:
                if v in ("trl", "trl-defaults"):
                    res = run_trl(train_path, heldout_path, args, tmp, v == "trl-defaults")
                else:
                    batching = "padded" if v == "ours-padded" else "length_grouped"
                    res = run_ours(train_path, heldout_path, args, tmp, batching, v)
                results[v].append(res)
                print(f"round {r} {v:12s} {res['tokens'] / res['wall']:8.0f} tok/s wall "
                      f"{res['tokens'] / res['cpu']:8.0f} tok/CPU-s  loss {res['loss']:.4f} "
                      f"steps {res['steps']}", flush=True)

    def med(v: str, key: str) -> float:
        return statistics.median(x["tokens"] / x[key] for x in results[v])

    header = ("| variant | tokens/s (wall, median) | tokens/CPU-s (median) | final held-out loss "
              "| steps |\n|---|---:|---:|---:|---:|")
    table = [header] + [
        f"| {v} | {med(v, 'wall'):.0f} | {med(v, 'cpu'):.0f} | "
        f"{statistics.mean(x['loss'] for x in results[v]):.4f} | {results[v][0]['steps']} |"
        for v in variants
    ]
    lines = ["\n".join(table)]
    if "ours" in results and "trl" in results:
        ratio_wall, ratio_cpu = med("ours", "wall") / med("trl", "wall"), \
            med("ours", "cpu") / med("trl", "cpu")
        l_ours = statistics.mean(x["loss"] for x in results["ours"])
        l_trl = statistics.mean(x["loss"] for x in results["trl"])
        gap = abs(l_ours - l_trl) / l_trl
        lines.append(
            f"ours / TRL: x{ratio_wall:.2f} wall, x{ratio_cpu:.2f} CPU (goal >= 1.3: "
            f"{'met' if min(ratio_wall, ratio_cpu) >= 1.3 else 'not met'}); final held-out loss "
            f"{l_ours:.4f} vs {l_trl:.4f}, gap {gap:.1%} (must be <= 2%: "
            f"{'ok' if gap <= 0.02 else 'NOT ok'})"
        )
    text = "\n\n".join(lines)
    print(text)
    if args.write:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from app_latency import cpu_name

        cmd = "python bench/train_throughput.py " + " ".join(sys.argv[1:])
        body = (
            f"Command: `{cmd.replace(' --write', '')} --write`\n\n"
            f"Machine: {cpu_name()}, {os.cpu_count()} cores, Python "
            f"{platform.python_version()}, torch {torch.__version__}, torch threads "
            f"{torch.get_num_threads()}; load average at start {load[0]:.1f}, {load[1]:.1f}, "
            f"{load[2]:.1f} (the machine is shared with other jobs).\n\n"
            f"Base `{args.base}`, demo data seed 0: {args.n_train} train rows, "
            f"{2 * args.n_heldout_pairs} held-out rows; LoRA r=16 alpha=32 all-linear, lr "
            f"{args.lr}, cosine, batch {args.batch_size}, {args.epochs} epochs; {args.rounds} "
            "alternating rounds. Tokens are non-padding input tokens of the training loop.\n\n"
            + text + "\n"
        )
        write_section(body, SECTION if args.base == "tiny" else "## real base: training vs TRL")
    return 0


def write_section(body: str, section: str = SECTION) -> None:
    """Replace (or add) one section of bench/RESULTS.md; other sections stay."""
    SECTION_ = section
    path = Path(__file__).resolve().parent / "RESULTS.md"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    start = text.find(SECTION_ + "\n")
    if start < 0:
        text = text.rstrip("\n") + f"\n\n{SECTION_}\n\n{body}"
    else:
        end = text.find("\n## ", start + len(SECTION_))
        tail = text[end:] if end >= 0 else "\n"
        text = text[:start] + f"{SECTION_}\n\n{body}" + tail
    path.write_text(text)


if __name__ == "__main__":
    sys.exit(main())
