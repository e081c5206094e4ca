"""Opt-in (``TUNEPROOF_LLAMA_SERVER=1``, not in CI): llama.cpp answers an export as we do.

Builds ``llama-server`` from the ``llama-cpp-python`` sdist's ``vendor/llama.cpp`` with cmake
(~12 minutes on 2 cores; cached in the session's ``$TUNEPROOF_HOME/tools``), serves the merged
f32 export of a LoRA run on smollm2, and checks through :class:`ServerBackend` (llama.cpp's
OpenAI-compatible ``/v1/completions``) that its greedy answers on the demo's held-out prompts
equal the in-process engine's with the adapter. llama.cpp returns no prompt log-probabilities:
the backend says so in one line when asked to score.

    TUNEPROOF_LLAMA_SERVER=1 pytest -q tests/test_llama_server.py

``TUNEPROOF_LLAMA_SERVER_RUN=RUN_DIR`` exports that run on smollm2 (e.g. the demo's
``runs/fair``) instead of a LoRA with random weights; ``TUNEPROOF_LLAMA_SERVER_BIN=PATH`` uses
a ``llama-server`` built earlier instead of building one.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from test_export import smollm2_run  # noqa: F401 - the fixture
from vllm_server import free_port

from evalsuite.engine import BASE, Engine, GenerationConfig
from evalsuite.http_client import ServerError
from evalsuite.server_backend import ServerBackend
from finetune.cli import main

pytestmark = pytest.mark.skipif(os.environ.get("TUNEPROOF_LLAMA_SERVER") != "1",
                                reason="opt-in: TUNEPROOF_LLAMA_SERVER=1 (builds llama.cpp)")


def _build() -> Path:
    from finetune.llamacpp_tools import llama_cpp_dir, tools_dir

    if os.environ.get("TUNEPROOF_LLAMA_SERVER_BIN"):
        return Path(os.environ["TUNEPROOF_LLAMA_SERVER_BIN"])
    source = llama_cpp_dir()
    build = tools_dir() / "llama-build"
    server = build / "bin" / "llama-server"
    if not server.is_file():
        subprocess.run(["cmake", "-S", str(source), "-B", str(build), "-DLLAMA_CURL=OFF",
                        "-DCMAKE_BUILD_TYPE=Release"], check=True, capture_output=True)
        subprocess.run(["cmake", "--build", str(build), "--target", "llama-server", "-j",
                        str(os.cpu_count() or 2)], check=True, capture_output=True)
    return server


@pytest.fixture
def export_run(request) -> Path:
    """The run to export: ``$TUNEPROOF_LLAMA_SERVER_RUN``, else smollm2_run (random LoRA)."""
    given = os.environ.get("TUNEPROOF_LLAMA_SERVER_RUN")
    return Path(given) if given else request.getfixturevalue("smollm2_run")


def test_llama_server_answers_the_merged_export_as_we_do(export_run, tmp_path, demo_dir):
    out = tmp_path / "gguf"
    assert main(["export", str(export_run), "--gguf", "-o", str(out)]) == 0
    gguf, = out.glob("*-f32.gguf")
    port = free_port()
    log = (tmp_path / "server.log").open("w")
    proc = subprocess.Popen([str(_build()), "-m", str(gguf), "--host",
                             "127.0.0.1", "--port", str(port), "-fa", "off", "-ctk", "f32",
                             "-ctv", "f32", "-c", "2048"], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(url + "/health", timeout=2).read()
                break
            except OSError:
                time.sleep(1)
        rows = [json.loads(line) for line in
                (demo_dir / "heldout.jsonl").read_text().splitlines()[:8]]
        prompts = [[m for m in r["messages"] if m["role"] != "assistant"] for r in rows]
        config = GenerationConfig(max_new_tokens=16)
        theirs = ServerBackend(url, "smollm2", concurrency=1).generate(prompts, [BASE], config)
        engine = Engine("smollm2", {"run": export_run / "adapter"})
        ours = engine.generate(prompts, ["run"], config)
        assert [t[0].text for t in theirs] == [o[0].text for o in ours]
        with pytest.raises(ServerError, match="no prompt log-probabilities"):
            ServerBackend(url, "smollm2").loglikelihood(["Hi"], [" there"], [BASE])
    finally:
        proc.terminate()
        proc.wait(timeout=30)
