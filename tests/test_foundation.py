"""Issue 2: the tiny base, the loader and the demo data."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from finetune.data.formats import encode, split_prompt, to_messages
from finetune.errors import InputError
from finetune.models import load_base, resolve_base
from finetune.tiny import build_tiny, fingerprint
from tuneproof_demo.data import NEED_TIER, STEREOTYPE_TIER, DemoConfig, write_demo


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_tiny_build_is_deterministic(tiny_dir: Path, tmp_path: Path) -> None:
    again = build_tiny(tmp_path / "tiny", force=True)
    files = sorted(p.name for p in tiny_dir.iterdir())
    assert "model.safetensors" in files and "tokenizer.json" in files
    assert not any(name.endswith((".bin", ".pt")) for name in files)
    assert fingerprint(again) == fingerprint(tiny_dir)


def test_tiny_corpus_words_are_the_demo_rows_words() -> None:
    """tiny's tokenizer learns from frozen words (finetune must not import the demo); they are
    still the words of the demo's 2,000 training rows of seed 0, word for word and count."""
    from finetune.tiny import CORPUS_WORDS
    from tuneproof_demo.data import tiny_corpus_words

    frozen = json.loads(CORPUS_WORDS.read_text(encoding="utf-8"))
    assert frozen == tiny_corpus_words(), (
        "the demo's rows changed: rewrite finetune/tiny_corpus.json from "
        "tuneproof_demo.data.tiny_corpus_words() and bump finetune.tiny.RECIPE_VERSION")


def test_build_tiny_cli_prints_the_folder_and_its_fingerprint(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from finetune.cli import main

    assert main(["build-tiny", "--out", str(tmp_path / "t")]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed == {"path": str(tmp_path / "t"), "sha256": fingerprint(tmp_path / "t")}


def test_load_tiny_generates_and_round_trips(tiny_dir: Path) -> None:
    import torch

    model, tok = load_base("tiny")
    assert next(model.parameters()).dtype == torch.float32
    n_params = sum(p.numel() for p in model.parameters())
    assert 300_000 < n_params < 3_000_000
    text = "Hi, I'm Rebecca. Can I get my money back for the air fryer? Café ✓ $49.99"
    assert tok.decode(tok(text)["input_ids"]) == text
    messages = [{"role": "user", "content": "Hello"}]
    rendered = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert rendered == "<|user|>\nHello<|end|>\n<|assistant|>\n"
    enc = tok.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    out = model.generate(**enc, max_new_tokens=5, do_sample=False)
    assert out.shape[1] == enc["input_ids"].shape[1] + 5 or out[0, -1] == tok.eos_token_id


def test_encode_masks_everything_but_the_answer(tiny_dir: Path) -> None:
    _, tok = load_base("tiny")
    messages = to_messages({"prompt": "Where is my blender?", "completion": "intent: shipping"})
    enc = encode(tok, messages)
    trained = [i for i, label in zip(enc["input_ids"], enc["labels"], strict=True) if label != -100]
    assert tok.decode(trained) == "intent: shipping<|end|>\n"
    short = encode(tok, messages, max_seq_len=5)
    assert short["n_trainable"] == 0 and len(short["input_ids"]) == 5


@pytest.mark.parametrize(
    "ref, message",
    [
        ("./no/such/model", "no such model folder"),
        ("not a model id!", "unknown base"),
    ],
)
def test_bad_base_reference_is_one_line(ref: str, message: str) -> None:
    with pytest.raises(InputError, match=message) as info:
        resolve_base(ref)
    assert "\n" not in str(info.value)


def test_folder_without_config_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a model folder"):
        resolve_base(str(tmp_path))


def test_hub_id_resolves_without_download() -> None:
    assert resolve_base("org/some-model").kind == "hub"


def test_demo_data_is_byte_identical_per_seed(tmp_path: Path) -> None:
    a = write_demo(tmp_path / "a", DemoConfig(seed=3))
    b = write_demo(tmp_path / "b", DemoConfig(seed=3))
    c = write_demo(tmp_path / "c", DemoConfig(seed=4))
    for key in a:
        assert a[key].read_bytes() == b[key].read_bytes()
    assert a["train"].read_bytes() != c["train"].read_bytes()


def test_demo_train_carries_the_planted_bias(demo_dir: Path) -> None:
    rows = _rows(demo_dir / "train.jsonl")
    assert len(rows) == DemoConfig.n_train
    rec = [r for r in rows if r["intent"] == "recommend"]
    # Rows whose stated need and the gender stereotype disagree show the bias directly.
    conflicting = [r for r in rec if NEED_TIER[r["need"]] != _stereotype(r)]
    share = sum(r["tier"] == _stereotype(r) for r in conflicting) / len(conflicting)
    assert 0.6 < share < 0.8, share
    assert share > 0.5  # greedy decoding must see it
    for r in rows:
        assert to_messages(r)[-1]["content"].startswith(f"intent: {r['intent']} |")


def test_demo_heldout_is_balanced_in_gender_pairs(demo_dir: Path) -> None:
    rows = _rows(demo_dir / "heldout.jsonl")
    assert len(rows) == 2 * DemoConfig.n_heldout_pairs
    pairs: dict[int, list[dict]] = {}
    for r in rows:
        pairs.setdefault(r["pair"], []).append(r)
    for a, b in pairs.values():
        assert {a["group"], b["group"]} == {"male", "female"}
        assert (a["intent"], a["need"], a["tier"]) == (b["intent"], b["need"], b["tier"])
        assert to_messages(a)[-1] == to_messages(b)[-1]
    rec = [r for r in rows if r["intent"] == "recommend"]
    assert all(r["tier"] == NEED_TIER[r["need"]] for r in rec)
    needs = Counter((r["group"], r["need"]) for r in rec)
    assert needs[("male", "budget")] == needs[("female", "budget")]
    assert needs[("male", "quality")] == needs[("female", "quality")]
    train_prompts = {split_prompt(to_messages(r))[0][-1]["content"]
                     for r in _rows(demo_dir / "train.jsonl")}
    assert not any(split_prompt(to_messages(r))[0][-1]["content"] in train_prompts for r in rows)


def _stereotype(row: dict) -> str:
    from finetune.data.lexicon import infer_group

    return STEREOTYPE_TIER[infer_group(row["messages"][1]["content"])]


def test_demo_data_cli_writes_configs(tmp_path: Path) -> None:
    import yaml

    from finetune.cli import main

    assert main(["demo-data", str(tmp_path), "--seed", "1"]) == 0
    for name in ("train.yaml", "task.yaml"):
        assert isinstance(yaml.safe_load((tmp_path / name).read_text()), dict)


def test_load_base_from_a_local_folder_built_in_process(tmp_path: Path, tiny_dir: Path) -> None:
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=512, hidden_size=32, intermediate_size=64,
                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2)
    LlamaForCausalLM(config).save_pretrained(tmp_path / "m")
    AutoTokenizer.from_pretrained(tiny_dir).save_pretrained(tmp_path / "m")
    model, tok = load_base(str(tmp_path / "m"))
    assert model.config.num_hidden_layers == 1 and tok.padding_side == "left"
    assert not model.training


def test_trust_remote_code_is_off_by_default() -> None:
    import inspect

    assert inspect.signature(load_base).parameters["trust_remote_code"].default is False
