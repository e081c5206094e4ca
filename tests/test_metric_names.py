"""Fail early: unknown keys in every section and gates on unknown metrics stop at load (exit 2),
every problem named, and the accepted names match what the runner and fairness produce."""

from __future__ import annotations

import copy
import json
import typing
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from evalsuite.metric_names import FAIRNESS_FAMILIES, gate_name_problem, gate_names
from evalsuite.task import TaskSpec, load_task
from finetune.config import TrainConfig, load_config
from finetune.errors import UsageError

FULL_TASK: dict = {
    "name": "route",
    "data": "d.jsonl",
    "group_field": "group",
    "generation": {"max_new_tokens": 8},
    "scorers": [{"name": "team_accuracy", "type": "label", "pattern": "team: (\\w+)"},
                {"name": "heldout_loss", "type": "loss"}],
    "baselines": {"instruction": "Route it.", "few_shot": {"train": "d.jsonl", "k": 1}},
    "fairness": {"outcome_pattern": "billing", "counterfactual_axes": ["gender"],
                 "probes": "builtin"},
    "stats": {"n_boot": 200},
    "gates": ["team_accuracy >= 0.5"],
}
FULL_CONFIG: dict = {
    "train_data": "d.jsonl",
    "lora": {"r": 4}, "optim": {"lr": 1e-3}, "eval": {"patience": 1},
    "data_checks": {"group_field": "group"},
    "sweep": {"params": {"optim.lr": {"type": "float", "low": 1e-4, "high": 1e-2}}},
}


def _write(folder: Path, data: dict, name: str = "t.yaml") -> Path:
    (folder / "d.jsonl").write_text(json.dumps({"prompt": "q", "completion": "team: a"}) + "\n")
    path = folder / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _models(annotation: object) -> list[tuple[tuple, type[BaseModel]]]:
    """The models inside a field's type, each with the key path step(s) that reach it."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [((), annotation)]
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is list:
        return [((0, *loc), m) for loc, m in _models(args[0])]
    if origin is dict:
        key = next(iter(FULL_CONFIG["sweep"]["params"]))
        return [((key, *loc), m) for loc, m in _models(args[1])]
    return [item for arg in args for item in _models(arg)]


def _sections(model: type[BaseModel], prefix: tuple = ()) -> list[tuple]:
    """Every nested model's key path (a list's models at index 0), walked from the fields."""
    out = []
    for name, info in model.model_fields.items():
        for loc, sub in _models(info.annotation):
            out += [(*prefix, name, *loc), *_sections(sub, (*prefix, name, *loc))]
    return out


def _node(data: dict, loc: tuple) -> dict:
    for part in loc:
        data = data[part]
    return data


@pytest.mark.parametrize(("model", "full", "load"), [
    (TaskSpec, FULL_TASK, load_task), (TrainConfig, FULL_CONFIG, load_config)])
def test_an_unknown_key_in_every_section_is_a_usage_error(tmp_path, model, full, load):
    sections = _sections(model)
    assert len(sections) >= 5
    for loc in sections:
        data = copy.deepcopy(full)
        node = _node(data, loc)  # KeyError: a new section missing from FULL_* above
        node["colour"] = "red"
        with pytest.raises(UsageError) as err:
            load(_write(tmp_path, data))
        dotted = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
        assert f"{dotted}.colour: unknown key" in str(err.value), loc


@pytest.mark.parametrize(("gate", "problem"), [
    ("team_accuracy >= 0.8", None),
    ("team_accuracy.upper95 >= 0.8", None),
    ("team_accuracy.delta_vs_base.ci_low > 0", None),
    ("team_accuracy.p_value_vs_base < 0.05", None),
    ("heldout_loss.perplexity < 9", None),
    ("counterfactual.flip_rate <= 0.05", None),
    ("counterfactual.gender.flip_rate.upper95 <= 0.05", None),
    ("selection_rate.female >= 0.1", None),
    ("demographic_parity_difference.lower95 <= 0.1", None),
    ("stereotype.preference <= 0.6", None),
    ("team_acc >= 0.8", "unknown metric 'team_acc'; this task measures: team_accuracy"),
    ("flip_rate <= 0.05", "unknown metric 'flip_rate'"),
    ("counterfactual.name.flip_rate <= 0.05", "axis 'name' is not in fairness.counterfactual_axes"),
])
def test_gate_names(gate, problem):
    task = TaskSpec.model_validate(FULL_TASK)
    key = gate.split()[0]
    found = gate_name_problem(task, key)
    assert found == problem if problem is None else problem in found


def test_fairness_gates_need_their_setting():
    data = copy.deepcopy(FULL_TASK)
    data["fairness"] = {"counterfactual_axes": ["gender"]}
    task = TaskSpec.model_validate(data)
    assert "needs fairness.outcome_pattern" in gate_name_problem(task, "selection_rate.male")
    assert gate_name_problem(task, "group_accuracy_gap") is None
    del data["fairness"]
    task = TaskSpec.model_validate(data)
    assert "needs a fairness section" in gate_name_problem(task, "group_accuracy_gap")
    assert gate_names(task) == ["team_accuracy", "heldout_loss"]


def test_two_mistakes_are_both_named_on_their_lines(tmp_path, capsys):
    from evalsuite.cli import main

    data = copy.deepcopy(FULL_TASK)
    data["fairness"]["counterfactual_axis"] = data["fairness"].pop("counterfactual_axes")
    data["gates"] = ["team_acc >= 0.8", "counterfactual.flip_rate <= 0.05"]
    path = _write(tmp_path, data)
    text = path.read_text().splitlines()
    assert main(["run", str(path), "--quiet"]) == 2  # no model is loaded before this
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 3 and "more)" not in "".join(lines)
    expected = [("counterfactual_axis:", "fairness.counterfactual_axis: unknown key"),
                ("- team_acc", "gates[0]: unknown metric 'team_acc'"),
                ("- counterfactual.flip_rate", "gates[1]: 'counterfactual.flip_rate' is not "
                                               "measured by this task: it needs "
                                               "fairness.counterfactual_axes")]
    for line, (needle, message) in zip(lines, expected, strict=True):
        number = next(i for i, t in enumerate(text, 1) if needle in t)
        assert line == f"evalsuite run: error: {path}:{number}: {message}" or (
            line.startswith(f"evalsuite run: error: {path}:{number}: {message}"))


def test_a_train_config_with_two_mistakes_names_both(tmp_path):
    path = _write(tmp_path, {"train_data": "d.jsonl", "optim": {"lr": "fast"}, "epochs": 3},
                  "c.yaml")
    with pytest.raises(UsageError) as err:
        load_config(path)
    lines = str(err.value).splitlines()
    assert lines == [f"{path}:3: optim.lr: Input should be a valid number, unable to parse "
                     "string as a number (got 'fast')", f"{path}:4: epochs: unknown key"]


def test_every_flat_name_the_runner_and_fairness_write_is_a_gate_name(demo_dir):
    """Cross-check against the producers: a new fairness measure whose name this module does
    not accept fails here, not in a user's task."""
    from evalsuite.engine import BASE, Generation
    from evalsuite.fairness import evaluate_fairness
    from evalsuite.runner import _flat
    from evalsuite.task import task_rows

    task = load_task(demo_dir / "task.yaml")
    task = task.model_copy(deep=True)
    task.fairness.counterfactual_axes = ["gender", "name"]
    task.limit = 40
    rows = task_rows(task)

    class Engine:
        class tokenizer:  # noqa: N801
            bos_token, eos_token = None, "<|end|>"

        adapter_dirs: dict = {}

        def generate(self, prompts, models, config=None, progress=False):
            return [[Generation(m, f"intent: recommend | suggest the premium {len(p)}", 1, 0.0)
                     for m in models] for p in prompts]

        def loglikelihood(self, contexts, continuations, models):
            return [[float(len(c) % 3) for _ in models] for c in continuations]

    models = [BASE, "a"]
    predictions = {m: [r.target if m == "a" else "x" for r in rows] for m in models}
    fairness = evaluate_fairness(Engine(), task, rows, predictions, models)
    stat = {"value": 0.5, "ci_low": 0.4, "ci_high": 0.6, "macro_f1": 0.5,
            "perplexity": {"value": 2.0}}
    comparisons = [{"a": BASE, "b": "a", "metric": s.name, "delta": 0.1, "ci_low": 0.0,
                    "ci_high": 0.2, "p_value": 0.3} for s in task.scorers]
    flat = _flat("a", {s.name: stat for s in task.scorers}, comparisons, fairness["a"].flat)
    assert any(k.startswith("counterfactual.name.") for k in flat)
    assert any(k.startswith("stereotype.") for k in flat)
    assert {k: gate_name_problem(task, k) for k in flat} == dict.fromkeys(flat)
    heads = {k.partition(".")[0] for k in fairness["a"].flat}
    assert heads <= {f.head for f in FAIRNESS_FAMILIES}
