"""A training process killed with SIGKILL mid-run resumes to completion with --resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_train import RUN_FILES, small_config


@pytest.mark.slow
def test_sigkill_then_resume(tmp_path: Path, demo_dir: Path, tiny_dir: Path) -> None:
    cfg = small_config(tmp_path, demo_dir, n_train=64)
    runs = tmp_path / "runs"
    cmd = [sys.executable, "-m", "finetune", "train", str(cfg), "--runs-dir", str(runs),
           "--quiet", "optim.max_steps=24", "eval.every_steps=2"]
    proc = subprocess.Popen(cmd, env=os.environ.copy(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    partial = runs / ".smoke.partial" / "checkpoints"
    deadline = time.monotonic() + 600
    try:
        while not (partial / "checkpoint-4" / "trainer_state.json").exists():
            assert proc.poll() is None, "training ended before it could be killed"
            assert time.monotonic() < deadline, "no checkpoint within 10 minutes"
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    # Killed mid-run: no run directory, only the partial one with its checkpoints.
    assert not (runs / "smoke").exists()
    assert (runs / ".smoke.partial").is_dir()
    killed_at = max(int(p.name.split("-")[1]) for p in partial.glob("checkpoint-*"))
    assert killed_at < 24

    done = subprocess.run(cmd + ["--resume"], env=os.environ.copy(), capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    run_dir = runs / "smoke"
    assert {p.name for p in run_dir.iterdir()} == RUN_FILES
    assert not (runs / ".smoke.partial").exists()
    run = json.loads((run_dir / "run.json").read_text())
    assert run["global_step"] == 24 and run["resumed_from_step"] >= 4
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    train_steps = [x["step"] for x in lines if x["train_loss"] is not None]
    # Every step logged exactly once across the kill and the resume.
    assert train_steps == list(range(1, 25))
