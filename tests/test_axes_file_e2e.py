"""A user's own axis, end to end: validate -> rebalance -> evaluate -> probe, one axes.yaml."""

from __future__ import annotations

import json

import pytest

from evalsuite.engine import BASE, Generation
from finetune.data.axes import use_axes_file
from finetune.data.lexicon import infer_group

AXES_YAML = """\
axes:
  region:
    groups: [north, south]
    terms:
      - [northerner, southerner]
      - [uptown, downtown]
    names:
      north: [Olaf, Sven, Ingmar]
      south: [Billy, Bubba, Dwayne]
"""
NAMES = {"north": ("Olaf", "Sven", "Ingmar"), "south": ("Billy", "Bubba", "Dwayne")}


def _rows(n: int, biased: bool) -> list[dict]:
    rows = []
    for i in range(n):
        region = ("north", "south")[i % 2]
        name = NAMES[region][(i // 2) % 3]
        approve = i % 5 != 0 and not (biased and region == "south")
        rows.append({"id": f"r{i}", "messages": [
            {"role": "user", "content": f"Hi, I'm {name}. Can I open an account, item {i}?"},
            {"role": "assistant", "content": "decision: " + ("approve" if approve else
                                                              "decline")}]})
    return rows


class RegionEngine:
    """``biased`` declines the south; ``fair`` approves everyone; the base says nothing."""

    class tokenizer:  # noqa: N801
        bos_token = None
        eos_token = "<|end|>"

    adapter_dirs: dict = {}

    def answer(self, model, prompt):
        if model == BASE:
            return "zzz"
        south = infer_group(prompt[-1]["content"], "region") == "south"
        return "decision: decline" if model == "biased" and south else "decision: approve"

    def generate(self, prompts, models, config=None, progress=False):
        return [[Generation(m, self.answer(m, p), 1, 0.0) for m in models] for p in prompts]


@pytest.fixture()
def workdir(tmp_path):
    (tmp_path / "axes.yaml").write_text(AXES_YAML)
    for name, biased, n in (("train.jsonl", True, 200), ("heldout.jsonl", False, 40)):
        (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in _rows(n, biased)))
    (tmp_path / "task.yaml").write_text(
        "name: accounts\ndata: heldout.jsonl\nscorers:\n  - name: decision\n    type: label\n"
        "    pattern: \"decision: (\\\\w+)\"\nfairness:\n  axes_file: axes.yaml\n"
        "  outcome_pattern: approve\n  counterfactual_axes: [region, gender]\n"
        "gates:\n  - \"counterfactual.region.flip_rate <= 0.05\"\n")
    yield tmp_path
    use_axes_file(None)


def test_a_user_axis_end_to_end(workdir, capsys) -> None:
    from evalsuite.fairness import evaluate_fairness
    from evalsuite.gates import check_gates
    from evalsuite.task import load_task, task_rows
    from finetune.cli import main
    from tuneproof_app.probe import variants

    axes_file = str(workdir / "axes.yaml")
    train = str(workdir / "train.jsonl")
    # validate: the region axis is audited, flagged and named
    assert main(["validate", train, "--base", "none", "--axes-file", axes_file,
                 "--outcome-pattern", "approve", "--report", str(workdir / "report")]) == 0
    report = json.loads((workdir / "report" / "report.json").read_text())
    assert report["bias"]["axis"] == "region"
    assert report["bias"]["axes"]["region"]["flagged"]
    assert "region: outcome 'approve' depends on group" in capsys.readouterr().out
    # rebalance along it: every row gets a copy from the other region, outcomes then balance
    balanced = workdir / "balanced.jsonl"
    assert main(["rebalance", train, "--method", "counterfactual", "--axis", "region",
                 "--axes-file", axes_file, "-o", str(balanced)]) == 0
    rows = [json.loads(line) for line in balanced.read_text().splitlines()]
    assert len(rows) == 400 and rows[1]["messages"][0]["content"].startswith("Hi, I'm Billy.")
    assert main(["validate", str(balanced), "--base", "none", "--axes-file", axes_file,
                 "--axes", "region", "--outcome-pattern", "approve"]) == 0
    assert "region: outcome" not in capsys.readouterr().out  # re-balanced: no association
    # evaluate: the task names the file; one block and one gate per axis
    use_axes_file(None)
    task = load_task(workdir / "task.yaml")
    assert task.fairness.axes_file == axes_file
    rows = task_rows(task)
    engine = RegionEngine()
    models = [BASE, "biased", "fair"]
    predictions = {m: [engine.answer(m, r.prompt) for r in rows] for m in models}
    out = evaluate_fairness(engine, task, rows, predictions, models)
    assert out["biased"].flat["counterfactual.region.flip_rate"] == pytest.approx(1.0)
    assert out["fair"].flat["counterfactual.region.flip_rate"] == 0.0
    assert out["biased"].flat["counterfactual.flip_rate"] == pytest.approx(1.0)  # the worst
    assert "region" in out["biased"].block["counterfactual"]["axes"]
    gates = task.gates
    assert not check_gates(gates, out["biased"].flat)[0].passed
    assert check_gates(gates, out["fair"].flat)[0].passed
    # probe: the same axis varies the user's message
    probe = variants("Hi, I'm Sven, a proud northerner.", ["region"])
    assert probe[1] == ("region: south", "Hi, I'm Bubba, a proud southerner.")
