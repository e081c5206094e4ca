"""finetune sweep: two tiny Optuna trials, each a run directory, summary and best config."""

from __future__ import annotations

import json
from pathlib import Path

from test_train import small_config

from finetune.cli import main
from finetune.config import load_config

SPACE = (
    "sweep:\n  params:\n"
    "    optim.lr: {type: float, low: 1.0e-4, high: 5.0e-3, log: true}\n"
    "    lora.r: {type: categorical, choices: [2, 4]}\n"
)


def test_two_trials(tmp_path: Path, demo_dir: Path, tiny_dir: Path) -> None:
    cfg = small_config(tmp_path, demo_dir, n_train=32, n_heldout=8, extra=SPACE)
    runs = tmp_path / "runs"
    assert main(["sweep", str(cfg), "--trials", "2", "--runs-dir", str(runs), "--quiet",
                 "optim.max_steps=2", "eval.every_steps=1"]) == 0
    sweep_dir = runs / "smoke-sweep"
    summary = json.loads((sweep_dir / "summary.json").read_text())
    assert [t["trial"] for t in summary["trials"]] == [0, 1]
    for t in summary["trials"]:
        run = json.loads((Path(t["run_dir"]) / "run.json").read_text())
        assert (Path(t["run_dir"]) / "adapter" / "adapter_model.safetensors").is_file()
        assert run["sweep"]["params"] == t["params"]
        assert run["global_step"] <= 2
    losses = [t["best_eval_loss"] for t in summary["trials"] if t["state"] == "complete"]
    assert summary["best"]["best_eval_loss"] == min(losses)
    best = load_config(sweep_dir / "best.yaml")
    assert best.name == "smoke-best" and best.sweep is None
    assert best.optim.lr == summary["best"]["params"]["optim.lr"]
    table = (sweep_dir / "summary.md").read_text()
    assert "| trial | state | best eval_loss | optim.lr | lora.r |" in table


def test_sweep_without_space_is_a_usage_error(tmp_path: Path, demo_dir: Path) -> None:
    cfg = small_config(tmp_path, demo_dir)
    assert main(["sweep", str(cfg), "--trials", "1", "--runs-dir", str(tmp_path)]) == 2
