"""Evaluation throughput: the in-process engine vs a vLLM server, at 1, 4 and 16 prompts per chunk.

The same held-out prompts (the demo's), the base and one adapter, greedy, both backends in
fp32; a chunk is ``batch_size`` prompts (the engine's mixed batch; one ``/v1/completions``
request for the server, 8 requests in flight). vLLM runs in its own venv on a free port
(tests/vllm_server.py) with the adapter given at start.

    python bench/backend_throughput.py --base smollm2 --adapter fair=RUN_DIR --prompts 32
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evalsuite.engine import BASE, Engine, GenerationConfig  # noqa: E402
from evalsuite.server_backend import ServerBackend  # noqa: E402


def _prompts(n: int) -> list[list[dict[str, str]]]:
    import json
    import tempfile

    from tuneproof_demo.data import write_demo

    folder = Path(tempfile.mkdtemp())
    write_demo(folder)
    rows = [json.loads(line) for line in (folder / "heldout.jsonl").read_text().splitlines()]
    return [[m for m in r["messages"] if m["role"] != "assistant"] for r in rows[:n]]


def _time(backend, prompts, models, config) -> tuple[float, int]:
    t0 = time.perf_counter()
    out = backend.generate(prompts, models, config)
    return time.perf_counter() - t0, sum(g.n_tokens for row in out for g in row)


def main() -> int:
    """Run the comparison and print a markdown table."""
    from tests.vllm_server import ensure_venv, serve

    p = argparse.ArgumentParser()
    p.add_argument("--base", default="smollm2")
    p.add_argument("--adapter", required=True, help="NAME=ADAPTER_DIR (LoRA on linear layers)")
    p.add_argument("--prompts", type=int, default=32)
    p.add_argument("--max-new-tokens", type=int, default=24)
    p.add_argument("--chunks", default="1,4,16")
    args = p.parse_args()
    name, _, folder = args.adapter.partition("=")
    from finetune.models import resolve_base

    prompts = _prompts(args.prompts)
    config = GenerationConfig(max_new_tokens=args.max_new_tokens)
    models = [BASE, name]
    logs = Path(os.environ.get("TMPDIR", "/tmp")) / "backend_bench"
    logs.mkdir(parents=True, exist_ok=True)
    rows = []
    engine = Engine(args.base, {name: folder})
    with serve(ensure_venv(logs / "install.log"), Path(resolve_base(args.base).path),
               {name: Path(folder)}, logs / "server.log", max_lora_rank=64,
               max_model_len=2048) as url:
        for chunk in (int(c) for c in args.chunks.split(",")):
            engine.batch_size = chunk
            server = ServerBackend(url, args.base, {name: folder}, batch_size=chunk)
            server.generate(prompts[:2], models, config)  # warm-up
            e_s, e_tok = _time(engine, prompts, models, config)
            s_s, s_tok = _time(server, prompts, models, config)
            rows.append((chunk, e_s, e_tok, s_s, s_tok))
    n = len(prompts) * len(models)
    print(f"{len(prompts)} prompts x {len(models)} models, {args.max_new_tokens} new tokens, "
          f"load average at end {os.getloadavg()[0]:.1f}")
    print("| prompts per chunk | in-process s | in-process gen/s | vLLM s | vLLM gen/s |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for chunk, e_s, _e_tok, s_s, _s_tok in rows:
        print(f"| {chunk} | {e_s:.1f} | {n / e_s:.2f} | {s_s:.1f} | {n / s_s:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
