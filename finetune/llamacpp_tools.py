"""llama.cpp's converters, fetched once from the ``llama-cpp-python`` sdist.

``convert_hf_to_gguf.py`` and ``convert_lora_to_gguf.py`` (with the ``conversion/`` and
``gguf-py/`` they import) are not in the ``gguf`` wheel; the ``llama-cpp-python`` sdist ships
them under ``vendor/llama.cpp/``. pip downloads it (no build) into ``$TUNEPROOF_HOME/tools``,
where it is unpacked; the scripts run in a subprocess with this Python. Nothing of it is ever
copied into the repository.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import tarfile
from pathlib import Path

from finetune.errors import InputError, first_line
from finetune.paths import tuneproof_home

LLAMA_CPP_PYTHON = "llama-cpp-python==0.3.36"


def tools_dir() -> Path:
    """``$TUNEPROOF_HOME/tools``."""
    return tuneproof_home() / "tools"


def llama_cpp_dir() -> Path:
    """The unpacked sdist's ``vendor/llama.cpp``, fetched on first use.

    Raises:
        InputError: pip could not download the sdist (one line: offline, no index...).
    """
    version = LLAMA_CPP_PYTHON.split("==")[1]
    root = tools_dir() / f"llama_cpp_python-{version}"
    vendor = root / "vendor" / "llama.cpp"
    if (vendor / "convert_hf_to_gguf.py").is_file():
        return vendor
    tools_dir().mkdir(parents=True, exist_ok=True)
    with open(tools_dir() / ".fetch.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (vendor / "convert_hf_to_gguf.py").is_file():
            return vendor
        sdist = tools_dir() / f"llama_cpp_python-{version}.tar.gz"
        if not sdist.is_file():
            _download(sdist.parent)
        try:
            with tarfile.open(sdist) as tar:
                tar.extractall(tools_dir(), filter="data")
        except (OSError, tarfile.TarError) as err:
            raise InputError(f"{sdist}: cannot unpack: {first_line(err)}") from None
    if not (vendor / "convert_hf_to_gguf.py").is_file():
        raise InputError(f"{root}: no vendor/llama.cpp/convert_hf_to_gguf.py in the sdist")
    return vendor


def _download(dest: Path) -> None:
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
               LLAMA_CPP_PYTHON, "-d", str(dest)]
    got = subprocess.run(command, capture_output=True, text=True)
    if got.returncode:
        lines = [line for line in (got.stderr or got.stdout).splitlines() if line.strip()
                 and not line.startswith("WARNING")]
        raise InputError(f"cannot fetch llama.cpp's converters ({LLAMA_CPP_PYTHON} sdist) "
                         f"into {dest}: {lines[-1] if lines else 'pip failed'}")


def run_script(script: str, args: list[str]) -> None:
    """Run one of llama.cpp's Python scripts with this interpreter.

    Its output goes to ``$TUNEPROOF_HOME/tools/logs/<script>.log`` (the last run's).

    Raises:
        InputError: the script failed (its last line, and the log's path).
    """
    vendor = llama_cpp_dir()
    log = tools_dir() / "logs" / f"{Path(script).stem}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    # The scripts put their own gguf-py first (newer than the gguf wheel) unless NO_LOCAL_GGUF.
    env = {k: v for k, v in os.environ.items() if k != "NO_LOCAL_GGUF"}
    env["PYTHONPATH"] = str(vendor / "gguf-py")
    with log.open("w") as out:
        got = subprocess.run([sys.executable, str(vendor / script), *args], cwd=vendor,
                             stdout=out, stderr=subprocess.STDOUT, env=env)
    if got.returncode:
        tail = [line for line in log.read_text().splitlines() if line.strip()]
        if tail and "pre-tokenizer was not recognized" in tail[-1]:
            raise InputError(f"{script}: llama.cpp does not recognize this base's tokenizer "
                             "(its BPE pre-tokenizer; the tiny test base has one of its own); "
                             f"bases llama.cpp supports (smollm2, Llama, Qwen...) convert; {log}")
        raise InputError(f"{script} failed: {tail[-1] if tail else got.returncode} "
                         f"(full output: {log})")
