"""Training smoke tests on the tiny base: run layout, loadable adapter, masking, CLI errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from finetune.config import load_config
from finetune.data.formats import IGNORE_INDEX
from finetune.errors import UsageError

RUN_FILES = {"adapter", "config.yaml", "metrics.jsonl", "run.json", "data_report.json",
             "README.md"}


def small_config(tmp_path: Path, demo_dir: Path, n_train: int = 48, n_heldout: int = 16,
                 extra: str = "") -> Path:
    """A YAML config over the first rows of the demo data (a few seconds of training)."""
    lines = (demo_dir / "train.jsonl").read_text().splitlines()
    (tmp_path / "train.jsonl").write_text("\n".join(lines[:n_train]) + "\n")
    held = (demo_dir / "heldout.jsonl").read_text().splitlines()
    (tmp_path / "heldout.jsonl").write_text("\n".join(held[:n_heldout]) + "\n")
    cfg = tmp_path / "train.yaml"
    cfg.write_text(
        "name: smoke\nbase: tiny\ntrain_data: train.jsonl\nheldout_data: heldout.jsonl\n"
        "max_seq_len: 96\nlora: {r: 4, alpha: 8, dropout: 0.0}\n"
        "optim: {lr: 3.0e-3, epochs: 1, max_steps: 4, batch_size: 8, warmup_ratio: 0.0}\n"
        "eval: {every_steps: 2}\nlogging_steps: 1\n" + extra
    )
    return cfg


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory, demo_dir: Path, tiny_dir: Path) -> Path:
    from finetune.train import train

    tmp = tmp_path_factory.mktemp("smoke")
    cfg = load_config(small_config(tmp, demo_dir))
    return train(cfg, runs_dir=tmp / "runs", progress=False)


def test_run_dir_layout(smoke_run: Path) -> None:
    assert smoke_run.name == "smoke"
    assert {p.name for p in smoke_run.iterdir()} == RUN_FILES
    adapter = {p.name for p in (smoke_run / "adapter").iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json",
            "tokenizer_config.json"} <= adapter
    assert not any(name.endswith((".bin", ".pt", ".pth")) for name in adapter)
    # No partial folder is left behind.
    assert [p.name for p in smoke_run.parent.iterdir()] == ["smoke"]


def test_run_json_cost_report(smoke_run: Path) -> None:
    run = json.loads((smoke_run / "run.json").read_text())
    for key in ("name", "base", "method", "data_fingerprint", "trainable_params", "total_params",
                "peak_memory_bytes", "wall_time_s", "tokens_per_s", "best_step",
                "stopped_early", "data_report"):
        assert key in run, key
    assert 0 < run["trainable_params"] < run["total_params"]
    assert run["peak_memory_bytes"] > 0 and run["tokens_per_s"] > 0
    # Accounting, not speed: the loop's wall time (evaluations inside it excluded, the final
    # one never counted) is at least its CPU time spread over every core.
    loop_wall = run["train_tokens"] / run["tokens_per_s"]
    loop_cpu = run["train_tokens"] / run["tokens_per_cpu_s"]
    assert loop_wall <= run["train_time_s"] + 1e-3
    assert loop_cpu <= loop_wall * (os.cpu_count() or 1) * 1.05 + 0.05
    assert run["global_step"] == 4 and run["best_step"] in (2, 4)
    assert run["best_eval_loss"] == pytest.approx(run["final_eval_loss"], rel=1e-4)
    assert len(run["data_fingerprint"]) == 64
    assert run["data_report"]["rows"] == 48


def test_metrics_and_card(smoke_run: Path) -> None:
    lines = [json.loads(x) for x in (smoke_run / "metrics.jsonl").read_text().splitlines()]
    assert {"step", "epoch", "train_loss", "eval_loss", "lr", "tokens_per_s"} <= set(lines[0])
    assert [x["step"] for x in lines if x["eval_loss"] is not None] == [2, 4]
    assert sum(x["train_loss"] is not None for x in lines) == 4
    card = (smoke_run / "README.md").read_text()
    front = card.split("---\n")[1]
    import yaml

    meta = yaml.safe_load(front)
    assert meta["base_model"] == "tiny" and meta["library_name"] == "peft"
    assert "tuneproof" in meta["tags"] and meta["metrics"]
    config = load_config(smoke_run / "config.yaml")
    assert config.name == "smoke" and config.lora.r == 4


def test_adapter_loads_with_plain_peft(smoke_run: Path) -> None:
    import torch
    from peft import PeftModel

    from finetune.models import load_base

    base, tok = load_base("tiny")
    ids = tok("hello there", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        before = base(ids).logits.clone()
    model = PeftModel.from_pretrained(base, str(smoke_run / "adapter"))
    with torch.no_grad():
        after = model(ids).logits
    # The adapter was trained (lr 3e-3, B no longer zero), so the logits moved.
    assert not torch.allclose(before, after)


def test_labels_masked_on_prompt(demo_dir: Path, tmp_path: Path) -> None:
    from finetune.models import load_tokenizer
    from finetune.training.data import encode_file

    cfg = load_config(small_config(tmp_path, demo_dir, n_train=8))
    tok = load_tokenizer("tiny")
    enc = encode_file(cfg.train_data, tok, cfg)
    row = enc.rows[0]
    first = next(i for i, x in enumerate(row["labels"]) if x != IGNORE_INDEX)
    prompt = tok.decode(row["input_ids"][:first])
    target = tok.decode([t for t in row["labels"] if t != IGNORE_INDEX])
    assert prompt.endswith("<|assistant|>\n") and "<|user|>" in prompt
    assert target.startswith("intent: ") and "<|user|>" not in target
    assert all(x == IGNORE_INDEX for x in row["labels"][:first])


def test_rows_without_target_are_dropped_and_reported(demo_dir: Path, tmp_path: Path) -> None:
    from finetune.models import load_tokenizer
    from finetune.training.data import encode_file

    cfg = load_config(small_config(tmp_path, demo_dir, n_train=8), ["max_seq_len=20"])
    enc = encode_file(cfg.train_data, load_tokenizer("tiny"), cfg)
    # A 20-token window ends inside the prompt of every demo row.
    assert enc.rows == [] and enc.dropped_no_target == list(range(1, 9))


def test_collators(demo_dir: Path, tmp_path: Path) -> None:
    from finetune.models import load_tokenizer
    from finetune.training.batching import Collator, LengthGroupedSampler
    from finetune.training.data import encode_file

    tok = load_tokenizer("tiny")
    cfg = load_config(small_config(tmp_path, demo_dir, n_train=8))
    rows = encode_file(cfg.train_data, tok, cfg).rows[:3]
    padded = Collator(tok.pad_token_id)(rows)
    assert padded["input_ids"].shape == (3, max(len(r["input_ids"]) for r in rows))
    assert int(padded["attention_mask"].sum()) == sum(len(r["input_ids"]) for r in rows)
    flat = Collator(tok.pad_token_id, padding_free=True)(rows)
    assert flat["input_ids"].shape == (1, sum(len(r["input_ids"]) for r in rows))
    assert int((flat["position_ids"] == 0).sum()) == 3
    sampler = LengthGroupedSampler([5, 1, 4, 2, 3, 6, 8, 7], batch_size=2, seed=0)
    order = list(sampler)
    assert sorted(order) == list(range(8))


def test_existing_run_is_a_usage_error(smoke_run: Path) -> None:
    from finetune.errors import UsageError
    from finetune.train import train

    cfg = load_config(smoke_run / "config.yaml")
    with pytest.raises(UsageError, match="run exists"):
        train(cfg, runs_dir=smoke_run.parent, progress=False)


def test_qlora_on_cpu_is_a_clear_error(demo_dir: Path, tmp_path: Path) -> None:
    from finetune.cli import main

    cfg = small_config(tmp_path, demo_dir)
    assert main(["train", str(cfg), "method=qlora", "device=cpu", "--quiet"]) == 2


def test_data_errors_stop_training_unless_forced(demo_dir: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    from finetune.cli import main

    cfg = small_config(tmp_path, demo_dir, n_train=24)
    with (tmp_path / "train.jsonl").open("a") as f:
        f.write('{"messages": [{"role": "user", "content": "no answer"}]}\n')
    runs = tmp_path / "runs"
    assert main(["train", str(cfg), "--runs-dir", str(runs), "--quiet"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "train.jsonl" in err and "--force" in err
    assert not (runs / "smoke").exists()
    assert main(["train", str(cfg), "--runs-dir", str(runs), "--quiet", "--force",
                 "optim.max_steps=1", "eval.every_steps=1"]) == 0
    run = json.loads((runs / "smoke" / "run.json").read_text())
    assert run["dropped_rows"]["invalid"] == [25] and run["n_train_rows"] == 24


@pytest.mark.parametrize("padding_free", [False, True])
def test_target_only_loss_equals_full_loss(demo_dir: Path, tmp_path: Path,
                                           padding_free: bool) -> None:
    import torch

    from finetune.training.batching import Collator
    from finetune.training.data import encode_file
    from finetune.training.model import build_model
    from finetune.training.trainer import target_only_loss

    cfg = load_config(small_config(tmp_path, demo_dir, n_train=6), ["device=cpu"])
    model, tok = build_model(cfg, "cpu")
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.normal_(0, 0.05)  # LoRA B starts at zero; make the adapter matter
    rows = encode_file(cfg.train_data, tok, cfg).rows
    batch = Collator(tok.pad_token_id, padding_free=padding_free)(rows)
    with torch.no_grad():
        full = model(**batch).loss
        sparse, out = target_only_loss(model, batch)
        n = int((batch["labels"] != IGNORE_INDEX).sum())
        summed, _ = target_only_loss(model, batch, num_items_in_batch=torch.tensor(2 * n))
    assert out.logits.shape[1] < batch["input_ids"].shape[1]
    assert torch.allclose(full, sparse, atol=1e-5)
    assert torch.allclose(summed * 2, sparse, atol=1e-5)


def test_list_runs_registry(smoke_run: Path, tmp_path: Path) -> None:
    import shutil

    from finetune.rundir import list_runs

    runs = tmp_path / "runs"
    shutil.copytree(smoke_run, runs / "smoke")
    (runs / ".other.partial").mkdir()
    (runs / "not-a-run").mkdir()
    found = list_runs(runs)
    assert [r.name for r in found] == ["smoke"]
    info = found[0]
    assert info.adapter_dir == runs / "smoke" / "adapter" and info.adapter_dir.is_dir()
    assert info.run["method"] == "lora" and info.metrics and "step" in info.metrics[0]
    assert list_runs(tmp_path / "missing") == []


def test_threads_pinned_while_training_then_restored(tmp_path: Path, demo_dir: Path,
                                                      tiny_dir: Path) -> None:
    import torch
    from transformers import TrainerCallback

    from finetune.train import train

    seen: list[int] = []

    class Record(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            seen.append(torch.get_num_threads())

    before = torch.get_num_threads()
    want = 1 if before != 1 else 2
    cfg = load_config(small_config(tmp_path, demo_dir), ["optim.max_steps=2", f"threads={want}"])
    train(cfg, runs_dir=tmp_path / "runs", progress=False, callbacks=[Record()])
    assert seen and set(seen) == {want}
    assert torch.get_num_threads() == before


@pytest.mark.parametrize(("targets", "top", "want_layers"), [
    ("all-linear", None, {0, 1, 2, 3}),
    ("all-linear", 1, {3}),
    ("[q_proj,v_proj,embed_tokens]", 2, {2, 3}),  # embed_tokens is outside the layers
    ("all-linear", 4, {0, 1, 2, 3}),
])
def test_lora_top_layers_adapts_only_the_last_layers(tmp_path: Path, demo_dir: Path,
                                                    targets: str, top: int | None,
                                                    want_layers: set[int]) -> None:
    import re

    from finetune.training.model import build_model

    overrides = [f"lora.target_modules={targets}"]
    if top is not None:
        overrides.append(f"lora.top_layers={top}")
    cfg = load_config(small_config(tmp_path, demo_dir), overrides)
    model, _ = build_model(cfg, "cpu")
    adapted = [name for name, p in model.named_parameters() if p.requires_grad]
    layers = {int(m.group(1)) for name in adapted if (m := re.search(r"\.layers\.(\d+)\.", name))}
    assert layers == want_layers
    outside = [name for name in adapted if ".layers." not in name]
    assert bool(outside) == (top is None and "embed_tokens" in targets)
    if targets == "all-linear":  # every linear module of a kept layer, none skipped
        kinds = {re.search(r"\.(\w+_proj)\.", name).group(1) for name in adapted}
        assert kinds == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                         "down_proj"}


def test_lora_top_layers_beyond_the_base_is_a_one_line_error(tmp_path: Path,
                                                              demo_dir: Path) -> None:
    from finetune.training.model import build_model

    cfg = load_config(small_config(tmp_path, demo_dir), ["lora.top_layers=5"])
    with pytest.raises(UsageError, match=r"^lora.top_layers: 5 is more than the 4 layers of tiny$"):
        build_model(cfg, "cpu")
