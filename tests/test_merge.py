"""finetune merge: the merged model is a plain transformers model with the adapter's logits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_train import small_config

from finetune.cli import main
from finetune.config import load_config
from finetune.data.formats import DEFAULT_CHAT_TEMPLATE


# The demo's adapters put LoRA on the (tied) embeddings too: merging must not change lm_head.
# The first also trains with another chat template than the base's: the merged folder keeps it.
@pytest.fixture(scope="module", params=["all-linear", "[q_proj,v_proj,embed_tokens]"])
def trained(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
            demo_dir: Path, tiny_dir: Path) -> Path:
    from finetune.train import train

    tmp = tmp_path_factory.mktemp("merge")
    cfg = load_config(small_config(tmp, demo_dir, n_train=32, n_heldout=8),
                      ["optim.max_steps=2", "eval.every_steps=2", "optim.lr=1e-2",
                       f"lora.target_modules={request.param}",
                       *(["chat_template=default"] if request.param == "all-linear" else [])])
    return train(cfg, runs_dir=tmp / "runs", progress=False)


def test_merged_logits_equal_adapter_logits(trained: Path, tmp_path: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from finetune.models import load_base

    out = tmp_path / "merged"
    assert main(["merge", str(trained), "-o", str(out)]) == 0
    names = {p.name for p in out.iterdir()}
    assert "model.safetensors" in names and "config.json" in names and "tokenizer.json" in names
    assert not any(n.startswith("adapter") for n in names)
    merged = AutoModelForCausalLM.from_pretrained(out).eval()
    base, tok = load_base("tiny")
    adapted = PeftModel.from_pretrained(base, str(trained / "adapter")).eval()
    ids = tok(["Hi, I'm Anna. Where is my blender order?"], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        a = adapted(ids).logits
        m = merged(ids).logits
        plain = adapted.get_base_model()
        with adapted.disable_adapter():
            b = plain(ids).logits
    assert torch.allclose(a, m, atol=1e-4)
    assert not torch.allclose(a, b, atol=1e-4)  # the adapter changed something
    assert json.loads((out / "tuneproof_merge.json").read_text())["run"] == "smoke"
    trained_with = (trained / "adapter" / "chat_template.jinja").read_text()
    assert (out / "chat_template.jinja").read_text() == trained_with
    targets = json.loads((trained / "adapter" / "adapter_config.json").read_text())
    assert (trained_with == DEFAULT_CHAT_TEMPLATE) == ("embed_tokens" not in
                                                       str(targets["target_modules"]))


def test_merge_errors_are_one_line(trained: Path, tmp_path: Path,
                                   capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "exists"
    out.mkdir()
    assert main(["merge", str(trained), "-o", str(out)]) == 2
    assert main(["merge", str(tmp_path), "-o", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "already exists" in err[0] and "run.json" in err[1]
