"""`accelerate launch` with two processes runs `finetune train` data-parallel on CPU (gloo).

accelerate 1.x starts a single process for `--cpu` unless MPI is set up (`--mpirun_hostfile`);
`--multi_gpu --num_processes 2` on a machine without GPUs starts two torchrun processes,
which use gloo on the CPU.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_train import RUN_FILES, small_config


@pytest.mark.slow
def test_two_process_data_parallel(tmp_path: Path, demo_dir: Path, tiny_dir: Path) -> None:
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent))
    assert accelerate, "accelerate is a dependency; its launcher must be installed"
    cfg = small_config(tmp_path, demo_dir, n_train=32, n_heldout=8)
    runs = tmp_path / "runs"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(
        [accelerate, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
         "--mixed_precision", "no", "--dynamo_backend", "no",
         "-m", "finetune", "train", str(cfg), "--runs-dir", str(runs), "--quiet",
         "optim.max_steps=2", "eval.every_steps=2", "optim.batch_size=4", "device=cpu"],
        env=env, capture_output=True, text=True, timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = runs / "smoke"
    assert {p.name for p in run_dir.iterdir()} == RUN_FILES
    run = json.loads((run_dir / "run.json").read_text())
    assert run["world_size"] == 2 and run["global_step"] == 2
    # Two processes of batch 4 per step: 2 steps see 16 rows' tokens in all.
    rows = [json.loads(x) for x in (tmp_path / "train.jsonl").read_text().splitlines()]
    assert run["train_tokens"] > 0 and run["n_train_rows"] == len(rows)
    # Only one process printed the run directory.
    assert done.stdout.strip().splitlines().count(str(run_dir)) == 1
