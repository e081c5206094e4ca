"""Evaluation throughput: the in-process engine vs a vLLM server, at 1, 4 and 16 prompts per chunk.

The same held-out prompts (the demo's), the base and one adapter, greedy, both backends in
fp32; a chunk is ``batch_size`` prompts (the engine's mixed batch; one ``/v1/completions``
request for the server, 8 requests in flight). vLLM runs in its own venv on a free port
(tests/vllm_server.py) with the adapter given at start. Each chunk size runs the engine, then
the server, on the same prompts, so their ratio is measured side by side; the answers are
compared token by token.

vLLM's CPU build computes on all cores but one by default; to give it both cores of a 2-core
machine: ``VLLM_CPU_OMP_THREADS_BIND=0-1 VLLM_CPU_NUM_OF_RESERVED_CPU=0``.

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


def _time(backend, prompts, models, config) -> tuple[float, int, list[tuple[int, ...]]]:
    """Seconds, generated tokens and every answer's token ids of one ``generate`` call."""
    t0 = time.perf_counter()
    out = backend.generate(prompts, models, config)
    seconds = time.perf_counter() - t0
    return (seconds, sum(g.n_tokens for row in out for g in row),
            [g.token_ids for row in out for g in row])


def main() -> int:
    """Run the comparison and print a markdown table."""
    import torch

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
    load_start = os.getloadavg()[0]
    engine = Engine(args.base, {name: folder})
    engine.generate(prompts[:2], models, config)  # warm-up: first-call costs off the clock
    with serve(ensure_venv(logs / "install.log"), Path(resolve_base(args.base).path),
               {name: Path(folder)}, logs / "server.log", max_lora_rank=16,
               max_model_len=2048) as url:
        for chunk in (int(c) for c in args.chunks.split(",")):
            engine.batch_size = chunk
            server = ServerBackend(url, args.base, {name: folder}, batch_size=chunk)
            server.generate(prompts[:2], models, config)  # warm-up
            e_s, e_tok, e_ids = _time(engine, prompts, models, config)
            s_s, s_tok, s_ids = _time(server, prompts, models, config)
            same = sum(a == b for a, b in zip(e_ids, s_ids, strict=True))
            rows.append((chunk, e_s, e_tok, s_s, s_tok, same))
    n = len(prompts) * len(models)
    print(f"{len(prompts)} prompts x {len(models)} models ({n} answers), at most "
          f"{args.max_new_tokens} new tokens, greedy, fp32; load average (1 min) "
          f"{load_start:.2f} at start, {os.getloadavg()[0]:.2f} at end")
    # vLLM's CPU build binds its compute threads itself ("auto": all cores but one, which it
    # reserves for the API server); the engine runs on torch's threads.
    print(f"in-process: torch threads {torch.get_num_threads()}; vLLM: "
          f"VLLM_CPU_OMP_THREADS_BIND={os.environ.get('VLLM_CPU_OMP_THREADS_BIND', 'auto')}, "
          f"VLLM_CPU_NUM_OF_RESERVED_CPU={os.environ.get('VLLM_CPU_NUM_OF_RESERVED_CPU', '-')}"
          f" (server log: {logs / 'server.log'}, 'OpenMP thread binding info')")
    print("| prompts per chunk | in-process s | in-process tok/s | vLLM s | vLLM tok/s "
          "| vLLM speed-up (in-process s / vLLM s) | answers token-identical |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for chunk, e_s, e_tok, s_s, s_tok, same in rows:
        print(f"| {chunk} | {e_s:.1f} | {e_tok / e_s:.1f} | {s_s:.1f} | {s_tok / s_s:.1f} "
              f"| {e_s / s_s:.2f}x | {same}/{n} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
