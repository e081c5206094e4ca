"""Shared fixtures. Every test runs offline: an accidental hub download fails loudly."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session", autouse=True)
def tuneproof_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One TUNEPROOF_HOME per test session, so the tiny base is built once and never
    touches the user's cache."""
    home = tmp_path_factory.mktemp("tuneproof_home")
    os.environ["TUNEPROOF_HOME"] = str(home)
    os.environ["HF_HOME"] = str(home / "hf")
    return home


@pytest.fixture(scope="session")
def tiny_dir(tuneproof_home: Path) -> Path:
    """The embedded tiny base, built once per session."""
    from finetune.tiny import build_tiny

    return build_tiny()


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo data for seed 0 (train.jsonl, heldout.jsonl, train.yaml, task.yaml)."""
    from finetune.demo import write_demo

    out = tmp_path_factory.mktemp("demo")
    write_demo(out)
    return out
