"""No silently ignored adapter: refused when trained on another base, flagged when a no-op."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from evalsuite.cli import main
from evalsuite.engine import Engine
from finetune.errors import InputError

# The demo's LoRA targets (tuneproof_demo/data.py TRAIN_YAML): every linear layer, embeddings.
DEMO_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj",
                "embed_tokens"]
TASK = """\
name: checks
data: {data}
limit: 4
generation:
  max_new_tokens: 2
scorers:
  - name: intent_accuracy
    type: label
    pattern: "intent: (\\\\w+)"
"""


def _run_dir(out: Path, *, zero_b: bool = False, fingerprint: str | None = None,
             targets: list[str] | str = "all-linear", **config: int) -> Path:
    """A run directory (adapter/ + run.json) with a LoRA on the tiny base, or on a tiny
    variant whose config differs by ``config`` (built in-process)."""
    import torch
    from peft import LoraConfig, get_peft_model

    from finetune.models import load_base
    from finetune.tiny import build_tiny
    from finetune.tiny import fingerprint as tiny_fingerprint

    model, _ = load_base("tiny")
    if config:
        from transformers import LlamaConfig, LlamaForCausalLM

        model = LlamaForCausalLM(LlamaConfig(**{**model.config.to_dict(), **config}))
    torch.manual_seed(0)
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=targets, init_lora_weights=zero_b)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PEFT's notes on tied embeddings
        get_peft_model(model, lora).save_pretrained(out / "adapter")
    run = {"name": out.name, "base": "tiny",
           "base_fingerprint": fingerprint or tiny_fingerprint(build_tiny())}
    (out / "run.json").write_text(json.dumps(run))
    return out


@pytest.fixture(scope="module")
def engine(tiny_dir: Path) -> Engine:
    return Engine("tiny")


def test_demo_like_adapter_loads_silently(engine: Engine, tmp_path: Path) -> None:
    run = _run_dir(tmp_path / "demo", targets=DEMO_TARGETS)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        engine.add_adapter("demo", run)
    assert engine.adapter_warnings["demo"] == []
    assert not [w for w in caught if "adapter_checks" in w.filename]


def test_adapter_from_a_wider_base_is_refused_in_one_line(
    engine: Engine, tmp_path: Path, demo_dir: Path, capsys: pytest.CaptureFixture
) -> None:
    run = _run_dir(tmp_path / "wide", hidden_size=64, intermediate_size=128)
    with pytest.raises(InputError, match="not trained on this base") as err:
        engine.add_adapter("wide", run)
    message = str(err.value)
    assert message.startswith(f"{run}: adapter 'wide': not trained") and "\n" not in message
    assert "LlamaForCausalLM" in message and "the adapter expects" in message
    assert "wide" not in engine.model_names
    task = tmp_path / "task.yaml"
    task.write_text(TASK.format(data=demo_dir / "heldout.jsonl"))
    code = main(["run", str(task), "--adapter", f"wide={run}", "--out", str(tmp_path / "o"),
                 "--quiet"])
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert code == 2 and len(errors) == 1
    assert errors[0].startswith(f"evalsuite run: error: {run}") and "'wide'" in errors[0]


def test_adapter_with_another_base_fingerprint_is_refused(engine: Engine,
                                                          tmp_path: Path) -> None:
    run = _run_dir(tmp_path / "other", fingerprint="f" * 64)
    with pytest.raises(InputError, match=r"trained on another base.*fingerprint ffffffffffff"):
        engine.add_adapter("other", run)


def test_zero_b_adapter_warns_in_results_and_report(tmp_path: Path, demo_dir: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    run = _run_dir(tmp_path / "noop", zero_b=True)
    task = tmp_path / "task.yaml"
    task.write_text(TASK.format(data=demo_dir / "heldout.jsonl"))
    out = tmp_path / "out"
    assert main(["run", str(task), "--adapter", f"noop={run}", "--out", str(out),
                 "--quiet"]) == 0
    assert "warning: noop: adapter 'noop' does not change" in capsys.readouterr().err
    models = json.loads((out / "results.json").read_text())["models"]
    assert models["base"]["warnings"] == []
    [warning] = models["noop"]["warnings"]
    assert "does not change the base's output" in warning
    assert f"`noop`: {warning}" in (out / "report.md").read_text()
    assert "Warning, <code>noop</code>" in (out / "report.html").read_text()


def test_the_app_shows_the_notice_beside_the_model(tmp_path: Path) -> None:
    from tuneproof_app.compare import run_compare
    from tuneproof_app.context import AppContext
    from tuneproof_app.votes import VoteStore

    engine = Engine("tiny", {"noop": _run_dir(tmp_path / "noop", zero_b=True),
                             "real": _run_dir(tmp_path / "real")})
    ctx = AppContext(engine=engine, store=VoteStore(tmp_path / "votes.sqlite"))
    assert ctx.notice("base") == "" and ctx.notice("real") == ""
    assert ctx.notice("noop").startswith("Warning: adapter 'noop' does not change")
    *_, last = run_compare(ctx, "Hi, I'm Mary.", "", ["base", "noop", "real"], 0.0, 1.0, 0, 2,
                           [])
    stats = last[len(last) // 2: -1]
    assert ctx.notice("noop") in stats[1]
    assert "Warning" not in stats[0] and "Warning" not in stats[2]


def test_local_base_folders_are_fingerprinted(tiny_dir: Path, tmp_path: Path) -> None:
    """Every local base has a fingerprint (config + safetensors headers), not only tiny, so an
    adapter recorded on one folder is refused on a different base folder."""
    import shutil

    from finetune.models import base_fingerprint
    from finetune.tiny import build_tiny
    from finetune.tiny import fingerprint as tiny_fingerprint

    assert base_fingerprint("tiny") == tiny_fingerprint(build_tiny())  # stable for old runs
    copy = shutil.copytree(tiny_dir, tmp_path / "copy")
    same = base_fingerprint(str(copy))
    assert same is not None and same == base_fingerprint(str(shutil.copytree(copy, tmp_path / "b")))
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**config, "rope_theta": 1234.0}))
    assert base_fingerprint(str(copy)) != same
    run = _run_dir(tmp_path / "run", fingerprint=same)
    with pytest.raises(InputError, match="trained on another base"):
        Engine(str(copy), {"r": run})
    assert base_fingerprint("org/not-downloaded") is None
