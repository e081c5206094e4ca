"""The audit on every axis: Holm across axes, Fisher for small 2x2 tables, multi-class
outcomes, outcome discovery; the loan case flags race and names it."""

from __future__ import annotations

import json

import numpy as np
import pytest
from loan_data import write_loan
from scipy.stats import chi2_contingency, fisher_exact

from finetune.data.audit import association, audit, audit_axes
from finetune.data.discover import discover_outcomes
from finetune.data.validate import validate


def test_a_small_two_by_two_table_gets_fishers_exact_test() -> None:
    table = np.array([[8, 2], [1, 5]])  # expected counts 4.9 and under
    result = association(table)
    assert result is not None and result["min_expected"] < 5
    assert result["method"] == "fisher" and not result["weak"]
    assert result["p_value"] == pytest.approx(fisher_exact(table).pvalue)
    assert result["p_value"] != pytest.approx(chi2_contingency(table, correction=False).pvalue)
    big = association(np.array([[80, 20], [10, 50]]))
    assert big is not None and big["method"] == "chi2" and not big["weak"]
    assert big["p_value"] == pytest.approx(
        chi2_contingency(np.array([[80, 20], [10, 50]]), correction=False).pvalue)
    weak = association(np.array([[8, 2, 1], [1, 5, 3]]))
    assert weak is not None and weak["method"] == "chi2" and weak["weak"]
    groups = ["a"] * 10 + ["b"] * 6
    outcomes = ["yes"] * 8 + ["no"] * 2 + ["yes"] * 1 + ["no"] * 5
    flagged = audit(groups, outcomes)
    assert flagged["test"]["method"] == "fisher"


def test_a_captured_outcome_gives_rates_per_category_and_the_largest_gap() -> None:
    # Routing e-mails to three teams: "did the pattern match" is 1.0 for both groups, but
    # women are sent to billing and men to tech.
    groups = ["female"] * 60 + ["male"] * 60
    teams = (["billing"] * 40 + ["tech"] * 10 + ["shipping"] * 10
             + ["billing"] * 10 + ["tech"] * 40 + ["shipping"] * 10)
    result = audit(groups, teams)
    assert result["outcomes"] == ["billing", "shipping", "tech"]
    rates = result["outcome_rates"]
    assert rates["female"]["rates"]["billing"] == pytest.approx(40 / 60)
    assert rates["male"]["rates"]["tech"] == pytest.approx(40 / 60)
    assert result["max_rate_gap"] == pytest.approx(0.5)
    assert result["max_rate_gap_outcome"] in ("billing", "tech")
    assert result["association_flagged"]
    expected = chi2_contingency(np.array(result["table"]["counts"]), correction=False)
    assert result["test"]["p_value"] == pytest.approx(expected.pvalue)


def test_holm_adjusts_across_axes_and_flags_read_the_adjusted_p() -> None:
    from statsmodels.stats.multitest import multipletests

    rng = np.random.default_rng(0)
    n = 300
    outcomes = ["yes" if x else "no" for x in rng.random(n) < 0.5]
    axes = {
        "gender": [("male", "female")[i % 2] for i in range(n)],
        "race": [("white", "black")[(i // 2) % 2] for i in range(n)],
        "age": [("young", "older")[int(o == "yes" and rng.random() < 0.5)]
                for o in outcomes],
    }
    result = audit_axes(axes, outcomes)
    raw = [result[a]["test"]["p_value"] for a in axes]
    holm = multipletests(raw, method="holm")[1]
    assert [result[a]["test"]["p_holm"] for a in axes] == pytest.approx(list(holm))
    assert result["age"]["association_flagged"] and "age: outcome" in result["age"]["reasons"][-1]
    assert not result["gender"]["association_flagged"]


def test_discovery_finds_the_words_that_depend_on_a_group_and_skips_the_axis_own() -> None:
    n = 200
    groups = [("male", "female")[i % 2] for i in range(n)]
    answers = [f"Thanks {'James' if g == 'male' else 'Mary'}, I suggest the "
               f"{'premium' if (g == 'male') == (i % 10 < 8) else 'budget'} model."
               for i, g in enumerate(groups)]
    found = discover_outcomes(answers, {"gender": groups})
    words = [c["word"] for c in found["found"]]
    assert set(words[:2]) == {"premium", "budget"}
    assert "james" not in words and "mary" not in words  # the axis's own signals
    premium = next(c for c in found["found"] if c["word"] == "premium")
    table = np.array([[80, 20], [20, 80]])  # male, female x (has premium, has not)
    assert premium["p_value"] == pytest.approx(chi2_contingency(table, correction=False).pvalue)
    none = discover_outcomes([f"The {w} model." for w in ("red", "red", "blue", "blue") * 50],
                             {"gender": groups})  # colours independent of the group
    assert none["found"] == []


@pytest.fixture(scope="module")
def loan(tmp_path_factory):
    return write_loan(tmp_path_factory.mktemp("loan"))


def test_the_loan_audit_flags_race_and_names_it(loan) -> None:
    report = validate(loan["train"], base=None, outcome_pattern="approve")
    bias = report.bias
    assert bias["axis"] == "race" and bias["association_flagged"]
    assert bias["axes"]["race"]["flagged"] and not bias["axes"]["gender"]["flagged"]
    assert bias["axes"]["race"]["test"]["p_holm"] < 0.01
    assert set(bias["representation"]) == {"white", "black"}  # no row is unknown
    assert any(f.check == "bias_association" and f.message.startswith("race: ")
               for f in report.findings)
    summary = report.summary()["bias"]
    assert summary["axis"] == "race" and summary["axes"]["race"]["flagged"]
    # without a pattern the audit finds the outcome itself, on the race axis
    found = validate(loan["train"], base=None).bias["discovered"]["found"]
    assert {"approve", "decline"} <= {c["word"] for c in found if c["axis"] == "race"}
    assert all(c["axis"] == "race" for c in found)


def test_the_demo_audit_without_a_pattern_finds_premium_and_budget(tmp_path) -> None:
    from tuneproof_demo.data import write_demo

    paths = write_demo(tmp_path)
    report = validate(paths["train"], base=None)
    found = report.bias["discovered"]["found"]
    assert {c["word"] for c in found[:2]} == {"premium", "budget"}
    assert all(c["axis"] == "gender" for c in found[:2])
    assert report.exit_code(strict=True) == 1


def test_validate_cli_axes_choose_and_unknown_axis_is_a_usage_error(loan, capsys) -> None:
    from finetune.cli import main

    assert main(["validate", str(loan["train"]), "--base", "none", "--axes", "gender",
                 "--outcome-pattern", "approve"]) == 0  # gender alone shows nothing
    out = capsys.readouterr().out
    assert "race" not in out.split("Findings")[0]
    assert main(["validate", str(loan["train"]), "--base", "none", "--axes", "zodiac"]) == 2
    assert "--axes: unknown axis 'zodiac'" in capsys.readouterr().err
    rows = [json.loads(line) for line in loan["train"].read_text().splitlines()]
    assert not any("group" in r for r in rows)  # no group column: inferred from names


def test_rebalancing_on_race_removes_the_association(loan, tmp_path) -> None:
    from finetune.data.rebalance import rebalance_file, rebalance_rows

    out = rebalance_file(loan["train"], tmp_path / "balanced.jsonl", "counterfactual",
                         axis="race", targets=["white", "black"])
    report = validate(out, base=None, outcome_pattern="approve")
    assert not report.bias["axes"]["race"]["association_flagged"]
    rates = report.bias["axes"]["race"]["outcome_rates"]
    assert rates["white"]["rates"]["approve"] == pytest.approx(rates["black"]["rates"]["approve"])
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 1200 and rows[1]["id"] == "loan-0-cf-black"  # row 0 is white
    # every race by default: one copy per other group, each written to that group
    row = {"messages": [{"role": "user", "content": "Hi, I'm Emily. Loan?"},
                        {"role": "assistant", "content": "decision: approve"}]}
    copies = rebalance_rows([row], "counterfactual", axis="race")
    assert [c["messages"][0]["content"] for c in copies] == [
        "Hi, I'm Emily. Loan?", "Hi, I'm Lakisha. Loan?", "Hi, I'm Guadalupe. Loan?",
        "Hi, I'm Priya. Loan?"]
    both = rebalance_rows([row], "counterfactual", axis=["race", "gender"],
                          targets=["white", "black"])
    assert [c["messages"][0]["content"] for c in both] == [
        "Hi, I'm Emily. Loan?", "Hi, I'm Joshua. Loan?", "Hi, I'm Lakisha. Loan?",
        "Hi, I'm Jamal. Loan?"]
