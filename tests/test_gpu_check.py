"""bench/gpu_check.py runs every check at toy sizes on the CPU (``--device cpu --quick``), so the
script a lent GPU runs (issue 12, goal 6) has run end to end before a GPU is ever lent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_gpu_check_runs_every_check_on_cpu(tmp_path: Path) -> None:
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1",
               TUNEPROOF_HOME=os.environ.get("TUNEPROOF_HOME", str(tmp_path / "home")))
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gpu_check.py"), "--device", "cpu", "--quick",
         "--out", str(tmp_path)], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = {r["check"]: r for r in json.loads((tmp_path / "gpu_check.json").read_text())}
    errors = {k: r["error"] for k, r in results.items() if "error" in r}
    assert errors == {"QLoRA": "needs bitsandbytes and CUDA; skipped"}, errors
    for name in ("finetune train tiny lora cpu", "finetune train tiny lora cpu (4 steps)"):
        assert {"adapter", "run.json"} <= set(results[name]["files"]), name
    assert results["2-layer toy random Llama LoRA bf16"]["trainable"] > 0
    for name in ("engine tiny", "engine 2-layer toy Llama"):
        r = results[name]
        for dtype in ("float32", "bfloat16"):
            d = r[dtype]
            assert d["floor_ms"] > 0 and d["step_ms"] > 0, (name, dtype)
            assert set(d["eval_mixed_vs_separate"]) == {"1", "4", "16"}, (name, dtype)
        assert r["bf16_same_greedy"].endswith("/4")
    # fp32 on tiny: one mixed pass gives the separate passes' tokens (the engine's contract)
    assert all(e["identical"] for e in results["engine tiny"]["float32"]
               ["eval_mixed_vs_separate"].values())
    table = (tmp_path / "gpu_check.md").read_text()
    assert "| engine 2-layer toy Llama bfloat16 |" in table
