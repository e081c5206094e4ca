"""The engine: mixed-adapter batches must match one-model-at-a-time generation exactly."""

from __future__ import annotations

import contextlib
import math

import pytest
import torch

from evalsuite.engine import BASE, Engine, GenerationConfig, resolve_adapter_dir
from finetune.errors import InputError, UsageError


def _prompts(n: int) -> list[list[dict[str, str]]]:
    return [
        [
            {"role": "system", "content": "You are a retail support assistant."},
            {"role": "user",
             "content": f"Hi, I'm Anna. Where is my order {i}?" + " please" * (i % 5)},
        ]
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def engine(lora_adapters) -> Engine:
    return Engine("tiny", lora_adapters, batch_size=3)


def _one_at_a_time(engine: Engine, messages, model: str, max_new_tokens: int) -> list[int]:
    """Reference: a single unpadded prompt, the base under disable_adapter(), an adapter
    through set_adapter()."""
    pm = engine.model
    ids = torch.tensor([engine.encode_prompt(messages)])
    if model == BASE:
        ctx = pm.disable_adapter()
    else:
        pm.set_adapter(model)
        ctx = contextlib.nullcontext()
    with ctx, torch.inference_mode():
        out = pm.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                          max_new_tokens=max_new_tokens, pad_token_id=engine.tokenizer.pad_token_id)
    kept, _ = engine._cut(out[0, ids.shape[1]:].tolist())
    return kept


def test_mixed_batch_is_token_identical_to_separate_calls(engine):
    prompts = _prompts(7)  # 7 prompts, batch_size 3: three chunks of varied lengths
    models = [BASE, "a", "b"]
    mixed = engine.generate(prompts, models, GenerationConfig(max_new_tokens=10))
    assert len(mixed) == 7 and all(len(r) == 3 for r in mixed)
    for i, messages in enumerate(prompts):
        for j, model in enumerate(models):
            expected = _one_at_a_time(engine, messages, model, 10)
            assert list(mixed[i][j].token_ids) == expected, (i, model)
            assert mixed[i][j].model == model
            assert mixed[i][j].text == engine.tokenizer.decode(expected, skip_special_tokens=True)
    # Random non-zero adapters must actually change the answers, or the test proves nothing.
    assert any(mixed[i][0].token_ids != mixed[i][1].token_ids for i in range(7))
    assert any(mixed[i][1].token_ids != mixed[i][2].token_ids for i in range(7))


def test_order_of_models_and_subsets_do_not_change_answers(engine):
    prompts = _prompts(4)
    cfg = GenerationConfig(max_new_tokens=8)
    full = engine.generate(prompts, [BASE, "a", "b"], cfg)
    swapped = engine.generate(prompts, ["b", BASE], cfg)
    for i in range(4):
        assert swapped[i][0].token_ids == full[i][2].token_ids
        assert swapped[i][1].token_ids == full[i][0].token_ids


def test_seeded_sampling_is_reproducible(engine):
    prompts = _prompts(3)
    cfg = GenerationConfig(max_new_tokens=8, temperature=1.5, seed=7)
    first = engine.generate(prompts, [BASE, "a"], cfg)
    second = engine.generate(prompts, [BASE, "a"], cfg)
    assert [[g.token_ids for g in r] for r in first] == [[g.token_ids for g in r] for r in second]
    greedy = engine.generate(prompts, [BASE, "a"], GenerationConfig(max_new_tokens=8))
    assert [[g.token_ids for g in r] for r in first] != [[g.token_ids for g in r] for r in greedy]


def test_stream_ends_with_the_generate_text(engine):
    messages = _prompts(2)[1]
    cfg = GenerationConfig(max_new_tokens=9)
    steps = list(engine.stream(messages, ["a", BASE, "b"], cfg))
    assert len(steps) >= 2
    final = engine.generate([messages], ["a", BASE, "b"], cfg)[0]
    assert steps[-1] == [g.text for g in final]
    for earlier, later in zip(steps, steps[1:], strict=False):  # cumulative text only grows
        assert all(b.startswith(a) for a, b in zip(earlier, later, strict=True))


def test_stream_can_be_closed_early(engine):
    it = engine.stream(_prompts(1)[0], [BASE, "a"], GenerationConfig(max_new_tokens=30))
    first = next(it)
    assert len(first) == 2
    it.close()
    # the lock was released: the engine still serves requests
    assert engine.generate(_prompts(1), [BASE], GenerationConfig(max_new_tokens=2))


def _assert_loglikelihood_matches_a_direct_forward_pass(engine, adapter):
    contexts = ["Hello, my name is", "Where is my order", "Hi"]
    continuations = [" Anna", "? It is late", ", I want a refund for the blender"]
    got = engine.loglikelihood(contexts, continuations, [BASE, adapter])
    pm, tok = engine.model, engine.tokenizer
    for i, (c, k) in enumerate(zip(contexts, continuations, strict=True)):
        ctx = tok(c)["input_ids"]
        ids = tok(c + k)["input_ids"]
        assert ids[: len(ctx)] == ctx
        for j, model in enumerate([BASE, adapter]):
            if model == BASE:
                cm = pm.disable_adapter()
            else:
                pm.set_adapter(model)
                cm = contextlib.nullcontext()
            with cm, torch.inference_mode():
                logits = pm(input_ids=torch.tensor([ids])).logits[0]
            lp = torch.log_softmax(logits.float(), -1)
            expected = sum(float(lp[t - 1, ids[t]]) for t in range(len(ctx), len(ids)))
            assert math.isclose(got[i][j], expected, rel_tol=1e-4, abs_tol=1e-4)
    assert got[0][0] != got[0][1]


def test_loglikelihood_matches_a_direct_forward_pass(engine):
    # The LM head runs on the scored positions alone (logits_to_keep).
    assert engine._keeps_logits()
    _assert_loglikelihood_matches_a_direct_forward_pass(engine, "a")


def test_loglikelihood_with_a_lora_on_the_lm_head(tiny_dir, tmp_path):
    # A LoRA on the LM head maps its rows by batch row, so the scorer keeps every position.
    from peft import LoraConfig, get_peft_model

    from finetune.models import load_base

    model, _ = load_base("tiny")
    model.config.tie_word_embeddings = False
    torch.manual_seed(3)
    config = LoraConfig(r=4, target_modules=["q_proj", "lm_head"], init_lora_weights=False)
    get_peft_model(model, config).save_pretrained(tmp_path / "head")
    eng = Engine("tiny", {"head": tmp_path / "head"}, batch_size=2)
    assert not eng._keeps_logits()
    _assert_loglikelihood_matches_a_direct_forward_pass(eng, "head")


@pytest.mark.parametrize("layout", ["column", "packed"])
def test_cpu_weight_layouts_answer_and_score_as_loaded(engine, lora_adapters, layout):
    # tiny fits in cache, so "auto" keeps its weights as loaded; the layouts the engine picks
    # on CPU for a real base are forced here.
    assert engine.weight_layout == "row"
    eng = Engine("tiny", lora_adapters, batch_size=3, weight_layout=layout)
    assert eng.weight_layout == layout
    # The base's Linear layers; the adapters' small lora_A/lora_B join after the change.
    linears = [m for n, m in eng.model.named_modules()
               if isinstance(m, torch.nn.Linear) and ".lora_" not in n]
    assert len(linears) > 10
    if layout == "column":
        assert all(m.weight.t().is_contiguous() for m in linears)
    else:
        assert all("forward" in m.__dict__ for m in linears)
    # Same parameters, not copies: the tied LM head still is the embedding.
    inner = eng.model.base_model.model
    assert inner.lm_head.weight is inner.model.embed_tokens.weight
    prompts, models = _prompts(5), [BASE, "a", "b"]
    cfg = GenerationConfig(max_new_tokens=10)
    got = [[g.token_ids for g in r] for r in eng.generate(prompts, models, cfg)]
    assert got == [[g.token_ids for g in r] for r in engine.generate(prompts, models, cfg)]
    *_, last = eng.stream(prompts[0], models, cfg)
    assert last == [eng.tokenizer.decode(t, skip_special_tokens=True) for t in got[0]]
    ctx = [engine.render(p) for p in prompts]
    cont = [" intent: shipping"] * len(prompts)
    for a, b in zip(eng.loglikelihood(ctx, cont, models),
                    engine.loglikelihood(ctx, cont, models), strict=True):
        assert a == pytest.approx(b, rel=1e-5, abs=1e-5)
    # With gradients on, a packed layer falls back to F.linear, which has a backward.
    x = torch.randn(2, linears[0].in_features, requires_grad=True)
    linears[0](x).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_auto_layout_packs_a_large_cpu_model_only_with_memory_to_spare(monkeypatch):
    from evalsuite import cpu_linear
    from finetune.models import load_base

    model, _ = load_base("tiny", device="cpu")
    size = cpu_linear.linear_weight_bytes(model)
    assert cpu_linear.choose_layout(model, "auto") == "row"  # fits in cache
    monkeypatch.setattr(cpu_linear, "LARGE_MODEL_BYTES", 1)  # as if it did not
    monkeypatch.setattr(cpu_linear, "available_memory_bytes", lambda: 10 * size)
    assert cpu_linear.choose_layout(model, "auto") == "packed"
    monkeypatch.setattr(cpu_linear, "available_memory_bytes", lambda: 3 * size)
    assert cpu_linear.choose_layout(model, "auto") == "column"
    assert cpu_linear.choose_layout(model.to(torch.bfloat16), "auto") == "column"


def test_weight_layout_is_checked():
    with pytest.raises(UsageError, match="weight_layout"):
        Engine("tiny", weight_layout="diagonal")
    with pytest.raises(UsageError, match="a CPU layout"):
        Engine("tiny", device="meta", weight_layout="packed")


def test_caps_raise_usage_errors(lora_adapters):
    eng = Engine("tiny", lora_adapters, max_prompt_tokens=20, max_new_tokens_cap=16)
    with pytest.raises(UsageError, match="max_prompt_tokens"):
        eng.generate(_prompts(1), [BASE])
    short = [[{"role": "user", "content": "Hi"}]]
    with pytest.raises(UsageError, match="max_new_tokens"):
        eng.generate(short, [BASE], GenerationConfig(max_new_tokens=17))
    with pytest.raises(UsageError, match="not loaded"):
        eng.generate(short, ["nope"])
    with pytest.raises(UsageError):
        GenerationConfig(max_new_tokens=0)
    with pytest.raises(UsageError, match="already in use"):
        eng.add_adapter("a", lora_adapters["a"])


def test_plain_engine_without_adapters_serves_only_the_base(tiny_dir, tmp_path):
    eng = Engine("tiny")
    assert eng.model_names == [BASE]
    assert not eng.is_peft and not hasattr(eng.model, "peft_config")
    out = eng.generate(_prompts(2), [BASE], GenerationConfig(max_new_tokens=4))
    assert out[0][0].model == BASE and out[0][0].n_tokens >= 1
    with pytest.raises(UsageError):
        eng.generate(_prompts(1), ["a"])
    with pytest.raises(InputError, match="no such"):
        eng.add_adapter("x", tmp_path / "missing")


def test_run_dir_resolves_to_its_adapter_folder(lora_adapters, tmp_path):
    run = tmp_path / "run"
    (run / "adapter").mkdir(parents=True)
    for f in lora_adapters["a"].iterdir():
        (run / "adapter" / f.name).write_bytes(f.read_bytes())
    assert resolve_adapter_dir(run) == run / "adapter"
    assert resolve_adapter_dir(lora_adapters["a"]) == lora_adapters["a"]
    with pytest.raises(InputError, match="not an adapter folder"):
        resolve_adapter_dir(tmp_path)


def test_add_adapter_is_undone_when_its_checks_fail(lora_adapters, monkeypatch):
    """A failing check leaves the engine as it was: a retry under the same name loads."""
    from evalsuite import adapter_checks

    eng = Engine("tiny")
    real = adapter_checks.no_op_warnings

    def broken(*args, **kwargs):
        raise RuntimeError("")

    for name in ("a", "b"):  # the first adapter wraps the base; the second joins it
        monkeypatch.setattr(adapter_checks, "no_op_warnings", broken)
        with pytest.raises(InputError, match="cannot check adapter: RuntimeError"):
            eng.add_adapter(name, lora_adapters[name])
        assert name not in eng.model_names
        assert name not in getattr(eng.model, "peft_config", {})
        monkeypatch.setattr(adapter_checks, "no_op_warnings", real)
        eng.add_adapter(name, lora_adapters[name])
        assert eng.model_names[-1] == name
    out = eng.generate(_prompts(1), [BASE, "a", "b"], GenerationConfig(max_new_tokens=2))
    assert [r.model for r in out[0]] == [BASE, "a", "b"]
