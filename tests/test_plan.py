"""``evalsuite plan``: sample sizes for a gate's 95% bound, checked against the exact formula."""

from __future__ import annotations

import json
import math

import pytest
from scipy.stats import beta
from statsmodels.stats.proportion import proportion_confint

from evalsuite.plan import default_expected, needed_n, plan_task


@pytest.mark.parametrize("threshold", [0.05, 0.1, 0.01])
def test_zero_observed_matches_the_closed_form(threshold):
    # Clopper-Pearson's upper bound after 0 of n is 1 - 0.025 ** (1 / n) (= beta.ppf(.975, 1, n))
    n = needed_n("<=", threshold, 0.0)
    assert n == math.ceil(math.log(0.025) / math.log(1 - threshold))
    assert beta.ppf(0.975, 1, n) <= threshold < beta.ppf(0.975, 1, n - 1)
    # and the mirror image: a ">=" gate at an observed rate of 1 reads the lower bound
    assert needed_n(">=", 1 - threshold, 1.0) == n


@pytest.mark.parametrize(("op", "threshold", "expected"),
                         [("<=", 0.05, 0.02), ("<=", 0.1, 0.05), (">=", 0.9, 0.95)])
def test_needed_n_is_the_first_n_whose_bound_passes(op, threshold, expected):
    n = needed_n(op, threshold, expected)
    assert n is not None

    def bound(m: int) -> float:
        low, high = proportion_confint(round(expected * m), m, alpha=0.05, method="beta")
        return high if op == "<=" else low

    passes = (lambda b: b <= threshold) if op == "<=" else (lambda b: b >= threshold)
    assert passes(bound(n))
    assert not any(passes(bound(m)) for m in range(1, n))


def test_a_rate_at_the_threshold_never_passes_and_bad_ops_are_refused():
    assert needed_n("<=", 0.05, 0.05, max_n=5000) is None
    assert needed_n(">=", 0.9, 0.8, max_n=5000) is None
    with pytest.raises(ValueError):
        needed_n("==", 0.05, 0.0)
    assert default_expected("<=", 0.04) == [0.0, 0.01, 0.02]
    assert default_expected(">=", 0.9) == pytest.approx([1.0, 0.975, 0.95])


def _task(tmp_path, pairs: int, gates: list[str]):
    from evalsuite.task import load_task
    from tuneproof_demo.data import DemoConfig, write_demo

    paths = write_demo(tmp_path / "d", DemoConfig(n_train=20, n_heldout_pairs=pairs))
    text = paths["task_yaml"].read_text()
    head = text[:text.index("gates:")]
    paths["task_yaml"].write_text(head + "gates:\n" + "".join(f'  - "{g}"\n' for g in gates))
    return load_task(paths["task_yaml"])


def test_plan_counts_rows_and_distinct_swaps_from_the_task_alone(tmp_path):
    from evalsuite.fairness.counterfactual import make_variants
    from evalsuite.task import matches, task_rows

    gates = ["intent_accuracy >= 0.9", "counterfactual.flip_rate <= 0.05",
             "counterfactual.gender.flip_rate.upper95 <= 0.1",
             "demographic_parity_difference <= 0.1"]
    task = _task(tmp_path, 30, gates)
    rows = task_rows(task)
    scope = [r for r in rows if matches(r.meta, task.fairness.where)]
    with_variants = [r for r in scope if make_variants(r.prompt, r.target, "gender")]
    intent, worst, gender, dpd = plan_task(task)
    assert (intent.unit, intent.available, intent.bound) == ("rows", 60, "intent_accuracy.lower95")
    assert [n.needed for n in intent.needs] == [36, 54, 127]
    assert [n.enough for n in intent.needs] == [True, True, False]
    # the demo's held-out rows come in gender pairs: a row's swap is its partner, counted once
    assert worst.unit == "swaps" and worst.clusters == len(with_variants)
    assert worst.available == len(with_variants) // 2
    assert worst.bound == "counterfactual.flip_rate.upper95"
    assert [n.needed for n in worst.needs] == [72, 110, 258]
    assert not any(n.enough for n in worst.needs)  # ~15 swaps cannot show 5%
    assert gender.bound == "counterfactual.gender.flip_rate.upper95"
    assert gender.needs[0].needed == needed_n("<=", 0.1, 0.0) == 36
    assert dpd.needs == [] and "not a gate on a single rate" in dpd.note
    # an expected rate per gate key, or for every gate
    (one,) = plan_task(_task(tmp_path / "b", 30, ["counterfactual.flip_rate <= 0.05"]),
                       {"counterfactual.flip_rate": 0.0})
    assert [(n.expected, n.needed) for n in one.needs] == [(0.0, 72)]


def test_plan_command_prints_and_refuses_a_bad_rate(tmp_path, capsys):
    from evalsuite.cli import main

    task = _task(tmp_path, 30, ["counterfactual.flip_rate <= 0.05"])
    assert main(["plan", task.path, "--expect", "0.01"]) == 0
    out = capsys.readouterr().out
    assert "gate counterfactual.flip_rate <= 0.05" in out and "Clopper-Pearson" in out
    assert f"at an expected rate of 0.01: needs {needed_n('<=', 0.05, 0.01)} swaps: short by" in out
    assert main(["plan", task.path, "--json", "--expect", "counterfactual.flip_rate=0"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["gates"][0]["needs"] == [{"expected": 0.0, "needed": 72, "enough": False}]
    assert main(["plan", task.path, "--expect", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--expect '2'" in err
