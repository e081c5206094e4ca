"""``evalsuite run``: exit 0 when gates pass, 1 naming each failed gate, 2 for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evalsuite.cli import main

TASK = """\
name: cli
data: {data}
limit: 6
generation:
  max_new_tokens: 4
scorers:
  - name: intent_accuracy
    type: label
    pattern: "intent: (\\\\w+)"
gates:
{gates}
"""


def _task(tmp_path: Path, demo_dir: Path, gates: list[str]) -> Path:
    p = tmp_path / "task.yaml"
    p.write_text(TASK.format(data=demo_dir / "heldout.jsonl",
                             gates="\n".join(f'  - "{g}"' for g in gates) or "  []"))
    return p


def test_failing_gates_exit_1_and_are_named(tmp_path, demo_dir, lora_adapters, capsys):
    task = _task(tmp_path, demo_dir, ["intent_accuracy >= 0.9", "intent_accuracy >= 0"])
    code = main(["run", str(task), "--adapter", f"a={lora_adapters['a']}",
                 "--out", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 1
    assert "gate failed: a: intent_accuracy >= 0.9" in err
    assert "gate failed: a: intent_accuracy >= 0 " not in err
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert res["gates"]["failed"] == [line.removeprefix("gate failed: ")
                                      for line in err.splitlines()
                                      if line.startswith("gate failed: ")]


def test_passing_gates_exit_0(tmp_path, demo_dir, lora_adapters, capsys):
    task = _task(tmp_path, demo_dir, ["intent_accuracy >= 0", "intent_accuracy.delta_vs_base > -1",
                                      "intent_accuracy.lower95 >= 0"])
    code = main(["run", str(task), "--adapter", f"a={lora_adapters['a']}",
                 "--out", str(tmp_path / "out"), "--quiet"])
    out = capsys.readouterr().out
    assert code == 0
    assert "base -> a" in out and "report:" in out and "(Holm " in out
    # every gate's bound passes as well: the verdict says so
    assert "verdict: a — ships: " in out and "passes 3/3 gates with evidence" in out
    gates = json.loads((tmp_path / "out" / "results.json").read_text())["models"]["a"]["gates"]
    assert [g["evidence_key"] for g in gates] == [
        "intent_accuracy.lower95", "intent_accuracy.delta_vs_base.lower95",
        "intent_accuracy.lower95"]
    assert (tmp_path / "out" / "report.html").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--adapter", "x={missing}"], "no such adapter or run folder"),
        (["--adapter", "base={adapter}"], "reserved for the base"),
        (["--adapter", "a={adapter}", "--adapter", "a={adapter}"], "given twice"),
        (["--baselines", "zero-shot,magic"], "unknown baseline 'magic'"),
        (["--baselines", "few-shot"], "baselines.few_shot: missing"),
        (["--base", "{missing}"], "no such model folder"),
        (["--limit", "0"], "--limit"),
    ],
)
def test_usage_errors_exit_2_with_one_line(tmp_path, demo_dir, lora_adapters, capsys, args,
                                           message):
    task = _task(tmp_path, demo_dir, [])
    filled = [a.format(missing=tmp_path / "nope", adapter=lora_adapters["a"]) for a in args]
    code = main(["run", str(task), "--out", str(tmp_path / "o"), "--quiet", *filled])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    errors = [line for line in err if line.startswith("evalsuite run: error: ")]
    assert len(errors) == 1 and message in errors[0]
    assert not any("Traceback" in line for line in err)


def test_bad_task_yaml_exits_2(tmp_path, capsys):
    bad = tmp_path / "task.yaml"
    bad.write_text("name: x\ndata: d.jsonl\nscorers:\n  - {name: s, type: nope}\n")
    assert main(["run", str(bad), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"evalsuite run: error: {bad}:4: scorers[0].type: Input should be "
                   "'exact_match', 'label', 'rouge_l', 'semantic_similarity' or 'loss' "
                   "(got 'nope')")


def test_adapter_specs():
    from evalsuite.runner import parse_adapters
    from finetune.errors import UsageError

    got = parse_adapters(["fair=runs/x", "biased"], runs_dir="myruns")
    assert got == {"fair": Path("runs/x"), "biased": Path("myruns/biased")}
    for bad in (["=dir"], ["a="], ["base+few-shot=d"], ["__base__=d"]):
        with pytest.raises(UsageError):
            parse_adapters(bad)


@pytest.mark.parametrize("dtype", [None, "bfloat16"])
def test_task_dtype_picks_the_evaluation_arithmetic_and_results_record_it(
        tmp_path, demo_dir, lora_adapters, dtype):
    task = _task(tmp_path, demo_dir, [])
    if dtype:
        task.write_text(task.read_text().replace("limit: 6\n", f"limit: 6\ndtype: {dtype}\n"))
    code = main(["run", str(task), "--adapter", f"a={lora_adapters['a']}",
                 "--out", str(tmp_path / "out"), "--quiet", "--device", "cpu"])
    assert code == 0
    engine = json.loads((tmp_path / "out" / "results.json").read_text())["engine"]
    assert engine["dtype"] == (dtype or "float32")  # the loader's default on CPU: fp32
    assert engine["device"] == "cpu" and engine["batch_size"] >= 1


def test_task_dtype_other_than_a_given_engines_is_a_usage_error(tmp_path, demo_dir):
    from evalsuite.engine import Engine
    from evalsuite.runner import run_eval
    from evalsuite.task import load_task
    from finetune.errors import UsageError

    task = _task(tmp_path, demo_dir, [])
    task.write_text(task.read_text().replace("limit: 6\n", "limit: 6\ndtype: bfloat16\n"))
    with pytest.raises(UsageError, match="task dtype bfloat16: the loaded engine runs float32"):
        run_eval(load_task(task), engine=Engine("tiny", device="cpu"), out_dir=tmp_path / "o",
                 progress=False)
    assert not (tmp_path / "o").exists()
