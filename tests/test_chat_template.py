"""Bases without a chat template get the documented default, in training and evaluation alike."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from finetune.data.formats import DEFAULT_CHAT_TEMPLATE, encode, set_chat_template
from finetune.errors import InputError

ROOT = Path(__file__).resolve().parents[1]
CONV = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Where is my blender?"},
    {"role": "assistant", "content": "intent: shipping | track the blender order"},
]


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory, tiny_dir):
    """A GPT-2-style base (absolute positions, Conv1D, no chat template), built in-process."""
    import torch
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    tok = AutoTokenizer.from_pretrained(tiny_dir)
    tok.chat_template = None
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_positions=256, n_embd=64,
                                       n_layer=2, n_head=2, bos_token_id=tok.eos_token_id,
                                       eos_token_id=tok.eos_token_id))
    out = tmp_path_factory.mktemp("gpt2") / "gpt2-tiny"
    model.save_pretrained(out)
    tok.save_pretrained(out)
    assert not (out / "chat_template.jinja").exists()
    return out


def test_set_chat_template_choices(tiny_dir, tmp_path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_dir)
    own = tok.chat_template
    assert set_chat_template(tok) is None and tok.chat_template == own  # keeps its own
    assert set_chat_template(tok, "default") is None
    assert tok.chat_template == DEFAULT_CHAT_TEMPLATE
    jinja = tmp_path / "t.jinja"
    jinja.write_text("{% for m in messages %}[{{ m['content'] }}]{% endfor %}")
    set_chat_template(tok, str(jinja))
    assert tok.apply_chat_template(CONV[1:2], tokenize=False) == "[Where is my blender?]"
    set_chat_template(tok, "{{ messages[0]['content'] }}")
    assert tok.apply_chat_template(CONV[1:2], tokenize=False) == "Where is my blender?"
    with pytest.raises(InputError, match="chat_template"):
        set_chat_template(tok, "chatml-please")
    with pytest.raises(InputError, match="absent.jinja"):
        set_chat_template(tok, str(tmp_path / "absent.jinja"))
    tok.chat_template = None
    notice = set_chat_template(tok)
    assert notice and "\n" not in notice and "default" in notice
    assert tok.chat_template == DEFAULT_CHAT_TEMPLATE


def test_default_template_trains_on_the_answer_and_its_end_token(tiny_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_dir)
    set_chat_template(tok, "default")
    text = tok.apply_chat_template(CONV, tokenize=False)
    assert text.startswith("Be brief.\n\n### User:\nWhere is my blender?\n\n### Assistant:\n")
    enc = encode(tok, CONV)
    target = tok.decode([t for t in enc["labels"] if t != -100])
    assert target.startswith(CONV[-1]["content"]) and tok.eos_token in target
    prompt = tok.apply_chat_template(CONV[:2], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("### Assistant:\n") and text.startswith(prompt)


def test_train_and_eval_on_a_base_without_template(gpt2_dir, tmp_path):
    """`finetune train` on a template-less base: a notice, no traceback; evaluation renders
    with the same template."""
    from evalsuite.engine import Engine
    from tuneproof_demo.data import DemoConfig, write_demo

    paths = write_demo(tmp_path / "data", DemoConfig(n_train=60, n_heldout_pairs=5))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "finetune", "train", str(paths["train_yaml"]), f"base={gpt2_dir}",
         "name=g2", "optim.max_steps=3", "eval.every_steps=1", "lora.target_modules=all-linear",
         "--runs-dir", str(tmp_path / "runs")],
        env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    notices = [line for line in proc.stderr.splitlines() if "has no chat template" in line]
    assert len(notices) == 1, proc.stderr[-3000:]
    adapter = tmp_path / "runs/g2/adapter"
    assert (adapter / "chat_template.jinja").read_text() == DEFAULT_CHAT_TEMPLATE
    engine = Engine(str(gpt2_dir), {"g2": tmp_path / "runs/g2"})
    assert engine.tokenizer.chat_template == DEFAULT_CHAT_TEMPLATE
    assert engine.render(CONV[:2]).endswith("### User:\nWhere is my blender?\n\n### Assistant:\n")
    out = engine.generate([CONV[:2]], ["__base__", "g2"])
    assert len(out) == 1 and len(out[0]) == 2
    assert not any("chat template" in w for w in engine.adapter_warnings["g2"])
    custom = Engine(str(gpt2_dir), {"g2": tmp_path / "runs/g2"},
                    chat_template="{{ messages[-1]['content'] }} =>")
    assert custom.render(CONV[:2]) == "Where is my blender? =>"
    # Rendering with another template than the adapter learned is flagged, not silent.
    assert any("another chat template" in w for w in custom.adapter_warnings["g2"])


def test_chat_template_paths_are_relative_to_their_yaml(tmp_path, monkeypatch):
    from evalsuite.task import load_task
    from finetune.config import load_config

    (tmp_path / "t.jinja").write_text("{{ messages[0]['content'] }}")
    (tmp_path / "d.jsonl").write_text('{"prompt": "a", "completion": "b"}\n')
    (tmp_path / "train.yaml").write_text("train_data: d.jsonl\nchat_template: t.jinja\n")
    (tmp_path / "task.yaml").write_text(
        "name: t\ndata: d.jsonl\nchat_template: t.jinja\n"
        "scorers:\n  - name: em\n    type: exact_match\n")
    monkeypatch.chdir(tmp_path.parent)
    assert load_config(tmp_path / "train.yaml").chat_template == str(tmp_path / "t.jinja")
    assert load_task(tmp_path / "task.yaml").chat_template == str(tmp_path / "t.jinja")
    inline = "{{ messages[0]['content'] }}"
    for value in ("default", inline):
        cfg = load_config(tmp_path / "train.yaml", [f"chat_template={value}"])
        assert cfg.chat_template == value


def test_broken_template_is_one_line_error(tiny_dir, tmp_path):
    """A Jinja syntax error is caught when the template is set: exit 2, one line, file and line,
    from both `finetune train` and `evalsuite run` (not a traceback at the first render)."""
    from finetune.errors import first_line
    from tuneproof_demo.data import DemoConfig, write_demo

    broken = tmp_path / "broken.jinja"
    broken.write_text("{% for m in messages %}\n{{ m['content'] }\n{% endfor %}")
    with pytest.raises(InputError, match=r"broken\.jinja:2: chat_template: Jinja syntax error"):
        from transformers import AutoTokenizer

        set_chat_template(AutoTokenizer.from_pretrained(tiny_dir), str(broken))
    assert first_line(ValueError("")) == "ValueError"
    assert first_line(ValueError("\n  two\nthree")) == "two"
    paths = write_demo(tmp_path / "data", DemoConfig(n_train=20, n_heldout_pairs=5))
    task = paths["task_yaml"].with_name("broken_task.yaml")
    task.write_text(paths["task_yaml"].read_text() + "chat_template: '{% if x %}'\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    commands = (
        ["finetune", "train", str(paths["train_yaml"]), f"base={tiny_dir}", "name=bad",
         f"chat_template={broken}", "--runs-dir", str(tmp_path / "runs")],
        ["evalsuite", "run", str(task), "--base", str(tiny_dir), "--out", str(tmp_path / "out")],
    )
    for cmd, place in zip(commands, ("broken.jinja:2:", "chat_template:1:"), strict=True):
        proc = subprocess.run([sys.executable, "-m", *cmd], env=env, capture_output=True,
                              text=True, timeout=600, cwd=tmp_path)
        errors = [line for line in proc.stderr.splitlines() if "error" in line.lower()]
        assert proc.returncode == 2, proc.stderr[-3000:]
        assert "Traceback" not in proc.stderr and len(errors) == 1, proc.stderr[-3000:]
        assert "Jinja syntax error" in errors[0] and place in errors[0]
