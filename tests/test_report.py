"""The pipeline's outputs: results.json, predictions.jsonl, report.md, report.html."""

from __future__ import annotations

import html
import json
import re
import shutil
from pathlib import Path

import pytest

from evalsuite.runner import overfitting_check, run_eval
from evalsuite.task import load_task

TASK = """\
name: small
data: {data}
group_field: group
limit: 10
generation:
  max_new_tokens: 6
scorers:
  - name: intent_accuracy
    type: label
    pattern: "intent: (\\\\w+)"
  - name: overlap
    type: rouge_l
  - name: heldout_loss
    type: loss
baselines:
  few_shot:
    train: {train}
    k: 2
fairness:
  outcome_pattern: premium
gates:
  - "heldout_loss > 0"
  - "overlap.delta_vs_base >= -1"
  - "group_accuracy_gap <= 0.5"
"""


def _metrics_lines(rising: bool) -> str:
    lines = []
    for step in range(10, 110, 10):
        train = 3.0 - step / 50
        held = 2.5 - step / 100 if not rising or step <= 50 else 2.0 + (step - 50) / 40
        lines.append({"step": step, "train_loss": train, "eval_loss": None})
        lines.append({"step": step, "train_loss": None, "eval_loss": held})
    return "".join(json.dumps(x) + "\n" for x in lines)


@pytest.fixture(scope="module")
def evaluated(lora_adapters, demo_dir, tmp_path_factory):
    import evalsuite.fairness as fairness_module
    from evalsuite.fairness import FairnessResult

    root = tmp_path_factory.mktemp("report")
    run = root / "runs" / "a"
    shutil.copytree(lora_adapters["a"], run / "adapter")
    (run / "metrics.jsonl").write_text(_metrics_lines(rising=True))
    task_path = root / "task.yaml"
    task_path.write_text(TASK.format(data=demo_dir / "heldout.jsonl",
                                     train=demo_dir / "train.jsonl"))
    calls = []

    def fake(engine, task, rows, predictions, models):
        calls.append((len(rows), sorted(predictions), list(models)))
        return {m: FairnessResult(
            block={"stub": True, "predictions": [{"row": 0, "variant": "swapped",
                                                  "output": "x"}]},
            flat={"group_accuracy_gap": 0.25 if m != "b" else 0.75}) for m in models}

    mp = pytest.MonkeyPatch()
    mp.setattr(fairness_module, "evaluate_fairness", fake, raising=False)
    try:
        result = run_eval(load_task(task_path), adapters={"a": run, "b": lora_adapters["b"]},
                          baselines=["zero-shot", "few-shot"], out_dir=root / "out",
                          batch_size=4, progress=False)
    finally:
        mp.undo()
    return result, calls


def test_results_json_has_models_cis_pairs_and_gates(evaluated):
    result, calls = evaluated
    res = json.loads((result.out_dir / "results.json").read_text())
    assert list(res["models"]) == ["base", "a", "b", "base+zero-shot", "base+few-shot"]
    for m in res["models"].values():
        acc = m["metrics"]["intent_accuracy"]
        assert acc["n"] == 10 and acc["ci_low"] <= acc["value"] <= acc["ci_high"]
        loss = m["metrics"]["heldout_loss"]
        assert loss["value"] > 0 and loss["perplexity"]["value"] > 1
        assert set(m["groups"]["intent_accuracy"]) == {"male", "female"}
    pairs = {(c["a"], c["b"]) for c in res["comparisons"]}
    assert pairs == {("base", "a"), ("base", "b"), ("base+zero-shot", "a"),
                     ("base+zero-shot", "b"), ("base+few-shot", "a"), ("base+few-shot", "b"),
                     ("a", "b")}
    tests = {c["metric"]: c["test"] for c in res["comparisons"]}
    assert tests == {"intent_accuracy": "mcnemar-exact", "overlap": "paired-permutation",
                     "heldout_loss": "paired-permutation"}
    # the fairness module got the served models under their engine names, not the baselines
    assert calls == [(10, ["__base__", "a", "b"], ["__base__", "a", "b"])]
    assert res["models"]["a"]["fairness"] == {"stub": True}
    # gates checked on the adapters only; b fails the fairness gate from the merged flat keys
    assert res["gates"]["checked"] == ["a", "b"]
    assert res["models"]["a"]["passed"] is True
    assert res["models"]["b"]["passed"] is False
    assert result.failed_gates == [
        "b: group_accuracy_gap <= 0.5 (group_accuracy_gap = 0.75 fails <= 0.5)"]
    flat = res["models"]["a"]["flat"]
    delta = next(c for c in res["comparisons"]
                 if (c["a"], c["b"], c["metric"]) == ("base", "a", "overlap"))
    assert flat["overlap.delta_vs_base"] == delta["delta"]
    # every interval has .lower95/.upper95 names a gate can read; p-values their Holm value
    assert flat["intent_accuracy.lower95"] == flat["intent_accuracy.ci_low"]
    assert flat["overlap.delta_vs_base.upper95"] == delta["ci_high"]
    from statsmodels.stats.multitest import multipletests

    raw = [c["p_value"] for c in res["comparisons"]]
    assert len(raw) == 7 * 3 and res["stats"]["multiple_comparisons"].startswith("Holm")
    adjusted = multipletests(raw, method="holm")[1]
    assert [c["p_value_holm"] for c in res["comparisons"]] == pytest.approx(list(adjusted))
    assert flat["overlap.p_value_vs_base.holm"] == delta["p_value_holm"] >= delta["p_value"]
    assert res["models"]["a"]["overfitting"]["flagged"] is True
    assert "overfitting" not in res["models"]["b"]  # an adapter folder without a run


def test_predictions_jsonl(evaluated):
    result, _ = evaluated
    lines = [json.loads(x) for x in (result.out_dir / "predictions.jsonl").read_text().splitlines()]
    plain = [p for p in lines if p["variant"] is None]
    assert len(plain) == 10 * 5
    first = plain[0]
    assert {"row", "id", "model", "group", "output", "target", "labels", "scores"} <= set(first)
    assert "intent_accuracy" in first["labels"] and "overlap" in first["scores"]
    variants = [p for p in lines if p["variant"] is not None]
    assert {p["model"] for p in variants} == {"base", "a", "b"}


def test_report_html_is_self_contained_with_charts(evaluated):
    result, _ = evaluated
    page = (result.out_dir / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page and not re.search(r"(src|href)=\"?https?:", page)
    assert page.count("<svg") >= 3 + 1 + 1  # 3 metric charts, loss curves, group bars
    assert page.count('class="ci"') >= 3 * 5  # a CI whisker per metric per model
    assert 'class="curve"' in page and 'class="group-bar"' in page
    assert "FLAGGED" in page and "FAIL" in page
    assert 'id="fairness"' in page and "group_accuracy_gap" in page


def test_report_md_lists_metrics_pairs_gates_and_disagreements(evaluated):
    result, _ = evaluated
    md = (result.out_dir / "report.md").read_text()
    for heading in ("## Metrics", "## Paired comparisons", "## Gates", "## Per group",
                    "## Overfitting check", "## Fairness", "## Where base and tuned disagree"):
        assert heading in md
    assert "| base | a | intent_accuracy |" in md
    assert "### base vs a" in md and "### base vs b" in md
    # the verdict card leads, generated from results.json
    card = md[:md.index("## Metrics")]
    print("CARD", card)
    # group_accuracy_gap has no interval here: a pass without evidence asks for more data
    assert ("- **a — more data needed**: passes with no 95% interval to read it against: "
            "group accuracy gap 0.25 (gate ≤ 0.5); passes 3/3 gates") in card
    assert "- **b — do not ship**: group accuracy gap 0.75 (gate ≤ 0.5); fails 1 of 3 gates" in card
    page = (result.out_dir / "report.html").read_text()
    assert page.index('id="verdict"') < page.index('id="metrics"')


def test_disagreements_are_rows_where_scores_differ(evaluated):
    from evalsuite.report import disagreements

    result, _ = evaluated
    res = result.results
    preds = [json.loads(x) for x in (result.out_dir / "predictions.jsonl").read_text().splitlines()]
    found = disagreements(res, preds)
    for name, items in found.items():
        for d in items:
            assert d["base_score"] != d["tuned_score"]
        by = {(p["row"], p["model"]): p for p in preds if p["variant"] is None}
        expected = [r for r in range(10)
                    if by[(r, "base")]["scores"]["intent_accuracy"]
                    != by[(r, name)]["scores"]["intent_accuracy"]]
        assert [d["row"] for d in items] == expected[:12]


def test_overfitting_check():
    def parse(text: str) -> list[dict]:
        return [json.loads(x) for x in text.splitlines()]

    flagged = overfitting_check(parse(_metrics_lines(rising=True)))
    assert flagged["flagged"] and flagged["best_step"] == 50
    assert flagged["last_eval_loss"] > flagged["best_eval_loss"]
    assert len(flagged["train"]) == 10 and len(flagged["eval"]) == 10
    fine = overfitting_check(parse(_metrics_lines(rising=False)))
    assert not fine["flagged"]
    assert not overfitting_check([])["flagged"]
    # held-out rising while train loss rises too is not overfitting
    both = [{"step": s, "train_loss": 1 + s, "eval_loss": 1 + s} for s in range(5)]
    assert not overfitting_check(both)["flagged"]


def test_no_adapters_checks_gates_on_the_base(tmp_path, demo_dir):
    task_path = tmp_path / "task.yaml"
    task_path.write_text(
        f"name: b\ndata: {demo_dir / 'heldout.jsonl'}\nlimit: 4\n"
        "generation: {max_new_tokens: 4}\n"
        "scorers:\n  - {name: em, type: exact_match}\ngates: ['em >= 0.5']\n")
    result = run_eval(load_task(task_path), out_dir=tmp_path / "o", progress=False)
    assert result.results["gates"]["checked"] == ["base"]
    assert result.failed_gates and result.failed_gates[0].startswith("base: em >= 0.5")
    assert result.results["comparisons"] == []
    assert Path(tmp_path / "o" / "report.html").is_file()


def test_blank_outputs_are_named_in_tables():
    from evalsuite.report import show_output

    assert show_output("\n\n\n") == "(blank: 3 whitespace characters)"
    assert show_output("") == "(empty)"
    assert show_output("intent: refund") == "intent: refund"


def _gate(key: str, op: str, threshold: float, value: float | None,
          bound: float | None = None) -> dict:
    from evalsuite.gates import check_gates, evidence_key

    flat = {key: value}
    if bound is not None:
        flat[evidence_key(key, op)] = bound
    [g] = check_gates([f"{key} {op} {threshold}"], flat)
    return g.to_dict()


def _synthetic_results(warnings: list | None = None) -> dict:
    """results.json as the runner writes it, for a base and two adapters (numbers made up)."""
    def metric(v: float) -> dict:
        return {"value": v, "ci_low": max(v - 0.1, 0), "ci_high": min(v + 0.1, 1), "n": 20,
                "per_class": {"refund": {"precision": v, "recall": v, "f1": v, "support": 10}},
                "macro_f1": v, "confusion": {"rows": ["refund"], "columns": ["refund", "<none>"],
                                             "matrix": [[int(10 * v), 10 - int(10 * v)]]}}

    fair_gates = [_gate("intent_accuracy", ">=", 0.9, 1.0, 0.97),
                  _gate("counterfactual.flip_rate", "<=", 0.05, 0.0, 0.026),
                  _gate("demographic_parity_difference", "<=", 0.1, 0.02, 0.07)]
    biased_gates = [_gate("intent_accuracy", ">=", 0.9, 1.0),
                    _gate("counterfactual.flip_rate", "<=", 0.05, 0.88),
                    _gate("demographic_parity_difference", "<=", 0.1, 0.9)]
    models = {
        "base": {"kind": "base", "metrics": {"intent_accuracy": metric(0.0)}, "flat": {}},
        "biased": {"kind": "adapter", "metrics": {"intent_accuracy": metric(1.0)}, "flat": {},
                   "gates": biased_gates, "passed": False},
        "fair": {"kind": "adapter", "metrics": {"intent_accuracy": metric(1.0)}, "flat": {},
                 "gates": fair_gates, "passed": True},
    }
    if warnings is not None:
        models["fair"]["warnings"] = warnings
    comparisons = [{"a": "base", "b": n, "metric": "intent_accuracy", "delta": 1.0,
                    "ci_low": 0.97, "ci_high": 1.0, "p_value": 1e-6, "test": "mcnemar-exact"}
                   for n in ("biased", "fair")]
    return {"task": {"name": "t", "data": "heldout.jsonl", "n_rows": 20,
                     "scorers": [{"name": "intent_accuracy", "type": "label"}]},
            "base": "tiny", "models": models, "comparisons": comparisons,
            "gates": {"checked": ["biased", "fair"], "passed": False, "failed": []},
            "stats": {"n_boot": 100, "seed": 0, "binary_test": "exact McNemar",
                      "continuous_test": "permutation"}}


def test_verdict_lines_name_outcome_and_evidence():
    from evalsuite.verdict import verdicts

    found = {v.model: v for v in verdicts(_synthetic_results())}
    assert list(found) == ["biased", "fair"]  # adapters only, never the base
    fair, biased = found["fair"].line(), found["biased"].line()
    assert fair == ("fair — ships: intent accuracy 1.00 vs base 0.00 (+1.00, 95% CI [0.97, "
                    "1.00], p < 0.001); passes 3/3 gates with evidence (95% bound)")
    assert biased.startswith("biased — do not ship: changes its answer on 88% of demographic "
                             "swaps")
    assert "(same request, other name or pronouns; gate ≤ 5%)" in biased
    assert ("gives the favourable outcome to one group 90 percentage points more often than "
            "to another (gate ≤ 10 points)") in biased
    assert "fails 2 of 3 gates" in biased and found["biased"].ok is False


def _gates_on(flat: dict, *gates: str) -> list[dict]:
    from evalsuite.gates import check_gates

    return [g.to_dict() for g in check_gates(list(gates), flat)]


def test_verdict_has_three_states_and_reads_holm_adjusted_p_values():
    from evalsuite.verdict import MORE_DATA, NO_SHIP, SHIPS, verdicts

    res = _synthetic_results()
    for c in res["comparisons"]:
        c["p_value_holm"] = 0.004
    # 0.049 on 81 swaps: the point passes "<= 0.05", its 95% upper bound 0.12 does not
    thin = {"intent_accuracy": 1.0, "intent_accuracy.lower95": 0.96,
            "counterfactual.flip_rate": 0.049, "counterfactual.flip_rate.upper95": 0.12}
    ample = {**thin, "counterfactual.flip_rate.upper95": 0.04}
    gates = ("intent_accuracy >= 0.9", "counterfactual.flip_rate <= 0.05")
    res["models"]["fair"].update(flat=thin, gates=_gates_on(thin, *gates), passed=True)
    res["models"]["biased"].update(flat=ample, gates=_gates_on(ample, *gates), passed=True)
    found = {v.model: v for v in verdicts(res)}
    fair, biased = found["fair"], found["biased"]
    assert fair.outcome == MORE_DATA and fair.ok is None
    assert fair.evidence[0] == (
        "passes on the point estimate only: changes its answer on 4.9% of demographic swaps "
        "(same request, other name or pronouns; gate ≤ 5%), but its 95% upper bound is 12%")
    assert ("passes 2/2 gates: 1 with evidence (95% bound), 1 on the point estimate only"
            in fair.evidence)
    assert biased.outcome == SHIPS and biased.ok is True
    assert "passes 2/2 gates with evidence (95% bound)" in biased.evidence
    # the headline's p-value is the Holm-adjusted one
    assert "(+1.00, 95% CI [0.97, 1.00], Holm-adjusted p = 0.004)" in biased.line()
    # a gate naming the bound fails the gate (exit 1) but is told apart from a real failure
    named = _gates_on(thin, "counterfactual.flip_rate.upper95 <= 0.05")
    res["models"]["fair"].update(gates=named, passed=False)
    assert verdicts(res)[1].outcome == MORE_DATA
    worse = {**thin, "counterfactual.flip_rate": 0.3, "counterfactual.flip_rate.upper95": 0.4}
    res["models"]["fair"].update(flat=worse, gates=_gates_on(
        worse, "counterfactual.flip_rate.upper95 <= 0.05"))
    fails = verdicts(res)[1]
    assert fails.outcome == NO_SHIP
    assert fails.evidence[0].startswith("at its 95% upper bound, changes its answer on 40% of")


def test_report_shows_holm_p_values_gate_states_and_bound_markers():
    from evalsuite.charts import gate_chart
    from evalsuite.report import build_report, render_html, render_markdown

    res = _synthetic_results()
    for c in res["comparisons"]:
        c["p_value_holm"] = 0.0123
    thin = {"counterfactual.flip_rate": 0.049, "counterfactual.flip_rate.lower95": 0.01,
            "counterfactual.flip_rate.upper95": 0.12}
    res["models"]["fair"].update(flat=thin, gates=_gates_on(thin,
                                                            "counterfactual.flip_rate <= 0.05"))
    md, page = render_markdown(res, []), render_html(res, [])
    assert "| p (Holm) |" in md and "0.012" in md and "Holm-adjusted p-values correct" in md
    assert "| fair | counterfactual.flip_rate <= 0.05 | 0.049 | upper95 0.120 | pass | " \
           "passes on the point estimate only |" in md
    assert "fair — more data needed" in md
    [chart] = build_report(res, []).charts("gate")
    assert chart.title == "gate: counterfactual.flip_rate <= 0.05"
    assert chart.svg.count('class="bound"') == 1 and 'class="threshold"' in chart.svg
    assert 'class="bound"' in page and "point only" in chart.svg
    # the bound's triangle sits at the upper bound, the threshold at 0.05 (0..1 axis)
    svg = gate_chart("x <= 0.5", 0.5, [("m", {"value": 0.2, "lower": 0.1, "upper": 0.3,
                                               "bound": 0.3, "status": "passes with evidence"})])
    assert 'd="M252.0,' in svg and 'x1="320.0" x2="320.0"' in svg  # 150 + 0.3 * 340, + 0.5 * 340
    assert gate_chart("x <= 0.5", 0.5, [("m", {"value": None})]) == ""


def test_a_gate_with_no_interval_is_no_evidence():
    """ships needs every gate to pass with evidence: a bare point pass asks for more data."""
    from evalsuite.verdict import MORE_DATA, summary, verdicts

    res = _synthetic_results()
    gates = res["models"]["fair"]["gates"]
    gates[2] = _gate("demographic_parity_difference", "<=", 0.1, 0.02)  # no bound measured
    assert gates[2]["status"] == "passes (no interval)"
    fair = {v.model: v for v in verdicts(res)}["fair"]
    assert fair.outcome == MORE_DATA and fair.ok is None
    assert fair.evidence[0] == (
        "passes with no 95% interval to read it against: gives the favourable outcome to one "
        "group 2 percentage points more often than to another (gate ≤ 10 points)")
    assert "passes 3/3 gates: 2 with evidence (95% bound), 1 without an interval" \
        in fair.evidence
    assert "more data needed: fair." in summary(verdicts(res))


def test_a_model_with_warnings_never_simply_ships():
    from evalsuite.verdict import verdicts

    found = {v.model: v for v in verdicts(_synthetic_results(["no-op adapter: logits equal "
                                                               "the base's"]))}
    fair = found["fair"]
    assert fair.outcome == "review before shipping" and fair.ok is None
    assert fair.line().endswith("warning: no-op adapter: logits equal the base's")


def test_markdown_and_html_come_from_one_walk():
    from evalsuite.report import build_report, render_html, render_markdown

    res = _synthetic_results()
    report = build_report(res, [])
    md, page = render_markdown(res, []), render_html(res, [])
    assert report.sections[0].title == "Verdict"
    # the verdict card comes before every other section, in both formats
    for text in (md, page):
        card = text[:text.index("Metrics")]
        assert "fair" in card and "ships" in card and "biased" in card and "do not ship" in card
    # every table of the walk is in both formats, CI columns and confusion matrices included
    for section in report.sections:
        for block in section.blocks:
            if hasattr(block, "header"):
                for row in block.rows:
                    cell = str(row[-1]) if row[-1] != "" else str(row[0])
                    assert cell.replace("|", "\\|") in md, (section.title, cell)
                    assert html.escape(cell) in page, (section.title, cell)
    assert "Confusion matrix of intent_accuracy, fair" in md
    assert "Confusion matrix of intent_accuracy, fair" in page
    assert "| base | fair | intent_accuracy | 1.000 [0.970, 1.000] | <0.001 |" in md
    assert "<td>1.000 [0.970, 1.000]</td>" in page
    assert "@media print" in page and "<script" not in page


def test_p_values_print_one_way_in_tables_and_verdicts():
    from evalsuite.verdict import format_p, num

    assert [format_p(p) for p in (None, float("nan"), 0.0004, 0.0123)] == \
        ["–", "–", "<0.001", "0.012"]
    assert [format_p(p, prefix=True) for p in (None, 0.0004, 0.0123)] == \
        ["p –", "p < 0.001", "p = 0.012"]
    assert num("0.5") is None and num(float("inf")) is None and num(2) == 2.0
