"""TrainConfig: YAML + overrides, one-line errors, shipped configs load."""

from __future__ import annotations

from pathlib import Path

import pytest

from finetune.cli import main
from finetune.config import TrainConfig, describe_fields, load_config, parse_override
from finetune.errors import UsageError

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "data.jsonl").write_text('{"prompt": "a", "completion": "b"}\n')
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_demo_config_loads_with_relative_paths(demo_dir: Path) -> None:
    cfg = load_config(demo_dir / "train.yaml")
    assert cfg.name == "biased" and cfg.method == "lora"
    assert Path(cfg.train_data) == (demo_dir / "train.jsonl").resolve()
    assert cfg.heldout_data is None and cfg.heldout_fraction > 0  # validation split
    assert set(cfg.sweep.params) >= {"optim.lr", "lora.r"}
    held = load_config(demo_dir / "train.yaml", [f"heldout_data={demo_dir / 'heldout.jsonl'}"])
    assert Path(held.heldout_data) == (demo_dir / "heldout.jsonl").resolve()
    linear = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert set(cfg.lora.target_modules) == linear | {"embed_tokens"}


def test_every_shipped_train_config_loads(demo_dir: Path) -> None:
    shipped = [p for p in REPO.rglob("*.yaml")
               if ".venv" not in p.parts and "train_data:" in p.read_text(errors="ignore")]
    for path in shipped:
        assert isinstance(load_config(path), TrainConfig), path


def test_overrides_reach_into_sections(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, "train_data: data.jsonl\n"),
                      ["optim.lr=1e-3", "lora.r=8", "name=fair", "lora.use_dora=true",
                       "lora.target_modules=[q_proj,v_proj]", "report_to=none"])
    assert cfg.optim.lr == pytest.approx(1e-3) and cfg.lora.r == 8 and cfg.name == "fair"
    assert cfg.lora.use_dora is True and cfg.lora.target_modules == ["q_proj", "v_proj"]
    assert cfg.report_to == []


def test_yaml_scientific_notation_is_a_number(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, "train_data: data.jsonl\noptim:\n  lr: 1e-3\n"))
    assert cfg.optim.lr == pytest.approx(1e-3)


@pytest.mark.parametrize(
    ("text", "overrides", "expected"),
    [
        ("train_data: data.jsonl\nlr: 0.1\n", [], "c.yaml:2: lr: unknown key"),
        ("train_data: data.jsonl\noptim:\n  lr: fast\n", [], "c.yaml:3: optim.lr: "),
        ("train_data: data.jsonl\nmethod: adapters\n", [], "c.yaml:2: method: "),
        ("train_data: data.jsonl\n", ["optim.epochs=-1"], "command line: optim.epochs: "),
        ("train_data: data.jsonl\n", ["lora.rank=4"], "command line: lora.rank: unknown key"),
        ("name: x\n", [], "c.yaml: train_data: required key is missing"),
        ("train_data: data.jsonl\n", ["novalue"], "novalue: expected key=value"),
    ],
)
def test_bad_configs_are_one_line_errors(tmp_path: Path, text: str, overrides: list[str],
                                         expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(UsageError) as info:
        load_config(path, overrides)
    message = str(info.value)
    assert "\n" not in message
    assert expected in message


def test_unreadable_yaml_is_an_input_error_like_a_task_s(tmp_path: Path) -> None:
    from evalsuite.task import load_task
    from finetune.errors import InputError

    path = write(tmp_path, "train_data: [unclosed\n")
    for load in (load_config, load_task):
        with pytest.raises(InputError, match=r"c.yaml:2: invalid YAML: ") as info:
            load(path)
        assert "\n" not in str(info.value)


def test_cli_prints_one_line_and_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = write(tmp_path, "train_data: data.jsonl\noptim:\n  batch_size: many\n")
    assert main(["train", str(path)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "optim.batch_size" in err and "c.yaml:3" in err
    assert main(["train", str(tmp_path / "missing.yaml")]) == 2


def test_sweep_space_is_validated(tmp_path: Path) -> None:
    ok = write(tmp_path, "train_data: data.jsonl\nsweep:\n  params:\n"
                         "    optim.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}\n")
    assert load_config(ok).sweep.params["optim.lr"].log is True
    bad = write(tmp_path, "train_data: data.jsonl\nsweep:\n  params:\n"
                          "    optim.learning: {type: float, low: 0.1, high: 0.2}\n")
    with pytest.raises(UsageError, match="unknown config key 'optim.learning'"):
        load_config(bad)


def test_parse_override_and_help() -> None:
    assert parse_override("optim.lr=2e-4") == (["optim", "lr"], 2e-4)
    assert parse_override("name=fair") == (["name"], "fair")
    lines = describe_fields()
    assert any(line.strip().startswith("optim.lr (") and "learning rate" in line
               for line in lines)


@pytest.mark.parametrize("name", ["v1.2", "x" * 65, "-lead", "a b", "a/b"])
def test_a_run_name_the_app_cannot_serve_is_refused_at_load(tmp_path: Path, name: str) -> None:
    # Before: config accepted '.' and any length, the engine and the app refused both, so a
    # run named v1.2 trained and was never served.
    path = write(tmp_path, "train_data: data.jsonl\n")
    with pytest.raises(UsageError, match=r"name: run name .*no '\.'"):
        load_config(path, [f"name={name}"])


def test_one_run_name_rule_for_training_engine_and_app(tmp_path: Path) -> None:
    from finetune.rundir import is_run_name
    from tuneproof_app.registry import check_name

    path = write(tmp_path, "train_data: data.jsonl\n")
    for name in ("v1", "fair_2", "x" * 64, "A-b-C"):
        assert load_config(path, [f"name={name}"]).name == name and is_run_name(name)
        assert check_name(name, [name]) == name
    for name in ("v1.2", "x" * 65):
        with pytest.raises(UsageError):
            check_name(name, [name])


def test_hub_ids_and_local_paths_are_told_apart_the_same_way(tmp_path: Path) -> None:
    from finetune.yamlspec import is_hub_id, resolve_path

    assert is_hub_id("HuggingFaceTB/SmolLM2-135M-Instruct") and is_hub_id("Qwen/Qwen2.5-0.5B")
    assert not is_hub_id("data/train.jsonl") and not is_hub_id("./org/name")
    assert not is_hub_id("train.jsonl") and not is_hub_id("a/b/c")
    assert resolve_path("org/data", tmp_path) == "org/data"
    local = str(tmp_path.resolve() / "data/train.jsonl")
    assert resolve_path("data/train.jsonl", tmp_path) == local
