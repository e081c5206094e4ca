"""Task YAML: the demo task loads; every mistake is one line naming file, line and key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evalsuite.task import baseline_prompts, load_task, matches, task_rows
from finetune.errors import InputError, TuneproofError, UsageError
from tuneproof_demo.data import DemoConfig

GOOD = """\
name: t
data: data.jsonl
group_field: group
scorers:
  - name: acc
    type: label
    pattern: "intent: (\\\\w+)"
  - name: em
    type: exact_match
gates:
  - "acc >= 0.5"
"""


def _data(folder: Path, n: int = 4) -> None:
    rows = []
    for i in range(n):
        rows.append({"messages": [
            {"role": "system", "content": "sys"},
            {"role": "user", "content": f"question {i}"},
            {"role": "assistant", "content": f"intent: refund | answer {i}"}],
            "id": f"r{i}", "group": "male" if i % 2 else "female", "intent": "refund"})
    (folder / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def _task(tmp_path: Path, text: str) -> Path:
    _data(tmp_path)
    p = tmp_path / "task.yaml"
    p.write_text(text)
    return p


def test_demo_task_loads(demo_dir):
    task = load_task(demo_dir / "task.yaml")
    assert task.name == "retail-support"
    assert Path(task.data) == (demo_dir / "heldout.jsonl").resolve()
    assert [s.type for s in task.scorers][:2] == ["label", "label"]
    assert task.fairness is not None and task.fairness.outcome_pattern == "premium"
    rows = task_rows(task)
    assert len(rows) == 2 * DemoConfig.n_heldout_pairs and rows[0].group in ("male", "female")
    assert rows[0].prompt[-1]["role"] == "user"
    assert rows[0].target.startswith("intent: ")


def test_good_task_and_relative_paths(tmp_path):
    task = load_task(_task(tmp_path, GOOD))
    rows = task_rows(task)
    assert [r.id for r in rows] == ["r0", "r1", "r2", "r3"]
    assert rows[1].group == "male" and rows[1].meta["intent"] == "refund"
    assert rows[0].target == "intent: refund | answer 0"
    assert task.stats.n_boot == 1000 and task.generation.max_new_tokens == 32


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (("  - name: em\n    type: exact_match\n", "  - name: em\n    type: bleu\n"),
         ":9: scorers[1].type: "),
        (("name: t\n", "name: t\ncolour: red\n"), ":2: colour: unknown key"),
        (('pattern: "intent: (\\\\w+)"', 'pattern: "intent: ("'), ":7: scorers[0].pattern: "),
        (('  - "acc >= 0.5"', '  - "acc is big"'), "gates"),
        (("data: data.jsonl\n", ""), "data: required key is missing"),
        (("    pattern: \"intent: (\\\\w+)\"\n", ""), "needs a pattern"),
        (("name: t\n", "name: t\ngeneration: {max_new_tokens: 0}\n"),
         ":2: generation.max_new_tokens: "),
        (("name: t\n", "name: t\nfairness: {counterfactual_axes: [gender, zodiac]}\n"),
         "fairness.counterfactual_axes: unknown axis 'zodiac'"),
        (("name: t\n", "name: t\nfairness: {max_examples: abc}\n"), ":2: fairness.max_examples: "),
        (("name: t\n", "name: t\nfairness: {name_k: 0}\n"), ":2: fairness.name_k: "),
    ],
)
def test_task_errors_are_one_line_with_file_line_and_key(tmp_path, edit, expected):
    old, new = edit
    assert old in GOOD
    path = _task(tmp_path, GOOD.replace(old, new))
    with pytest.raises(UsageError) as err:
        load_task(path)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(str(path))
    assert expected in message


def test_unreadable_files(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        load_task(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(InputError, match="invalid YAML") as err:
        load_task(bad)
    assert "\n" not in str(err.value)
    bad.write_text("- a list\n")
    with pytest.raises(UsageError, match="mapping"):
        load_task(bad)


def test_bad_data_row_names_file_line_and_field(tmp_path):
    path = _task(tmp_path, GOOD)
    with (tmp_path / "data.jsonl").open("a") as f:
        f.write(json.dumps({"messages": [{"role": "user", "content": "q"}], "group": "x"}) + "\n")
    task = load_task(path)
    with pytest.raises(TuneproofError) as err:
        task_rows(task)
    assert str(err.value) == f"{tmp_path / 'data.jsonl'}:5: messages: no assistant message"


def test_missing_group_field_is_reported(tmp_path):
    path = _task(tmp_path, GOOD.replace("group_field: group", "group_field: gender"))
    with pytest.raises(InputError, match=r"data.jsonl:1: gender: missing"):
        task_rows(load_task(path))


def test_where_matching():
    assert matches({"intent": "recommend"}, {"intent": "recommend"})
    assert not matches({"intent": "refund"}, {"intent": "recommend"})
    assert matches({"intent": "refund"}, {"intent": ["refund", "shipping"]})
    assert matches({}, None)


def test_baseline_prompts(demo_dir):
    task = load_task(demo_dir / "task.yaml")
    rows = task_rows(task)[:3]
    zero = baseline_prompts(task, rows, "zero-shot")
    few = baseline_prompts(task, rows, "few-shot")
    instruction = task.baselines.instruction
    for z, f, r in zip(zero, few, rows, strict=True):
        assert z[0] == {"role": "system", "content": instruction}
        assert z[1:] == [m for m in r.prompt if m["role"] != "system"]
        assert f[0] == z[0] and f[-1] == z[-1]
        assert [m["role"] for m in f[1:-1]] == ["user", "assistant"] * 3
        assert all(m["content"].startswith("intent: ") for m in f[1:-1]
                   if m["role"] == "assistant")
    assert few[0][1:-1] == few[1][1:-1]  # the same k examples for every row
    with pytest.raises(UsageError, match="unknown baseline"):
        baseline_prompts(task, rows, "chain-of-thought")
    task.baselines.few_shot = None
    with pytest.raises(UsageError, match="few_shot"):
        baseline_prompts(task, rows, "few-shot")
