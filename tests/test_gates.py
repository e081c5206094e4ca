"""Gates: parsing, every operator, and unmeasured values failing."""

from __future__ import annotations

import pytest

from evalsuite.gates import check_gates, parse_gate


def test_parse():
    g = parse_gate("intent_accuracy.delta_vs_base >= 0.5")
    assert (g.key, g.op, g.threshold) == ("intent_accuracy.delta_vs_base", ">=", 0.5)
    assert parse_gate("counterfactual.flip_rate<=.05").threshold == 0.05
    assert parse_gate("loss < -1e-3").threshold == -0.001
    for bad in ("acc >= high", "acc => 0.5", ">= 0.5", "acc", 3):
        with pytest.raises(ValueError):
            parse_gate(bad)


@pytest.mark.parametrize(
    ("gate", "value", "passed"),
    [("m >= 0.5", 0.5, True), ("m >= 0.5", 0.49, False), ("m > 0.5", 0.5, False),
     ("m <= 0.1", 0.1, True), ("m < 0.1", 0.1, False), ("m == 1", 1.0, True),
     ("m != 1", 1.0, False)],
)
def test_operators(gate, value, passed):
    (result,) = check_gates([gate], {"m": value})
    assert result.passed is passed and result.value == value
    assert ("meets" if passed else "fails") in result.reason


def test_unmeasured_gate_fails_and_says_so():
    results = check_gates(["a >= 0", "b <= 1"], {"a": 1.0, "b": None})
    assert results[0].passed
    assert not results[1].passed and results[1].reason == "not measured"
    (missing,) = check_gates(["c >= 0"], {})
    assert not missing.passed and missing.value is None
    (nan,) = check_gates(["c >= 0"], {"c": float("nan")})
    assert not nan.passed


# --------------------------------------------------------------- bounds and the 3-state verdict
from evalsuite.gates import (  # noqa: E402
    EVIDENCE,
    FAILS,
    LOWER95,
    NO_INTERVAL,
    POINT_ONLY,
    UPPER95,
    add_bounds,
    check_gate,
    evidence_key,
    split_evidence,
)

FLIPS = {"counterfactual.flip_rate": 0.049, "counterfactual.flip_rate.upper95": 0.13,
         "counterfactual.flip_rate.lower95": 0.01,
         "acc": 0.95, "acc.lower95": 0.91, "acc.upper95": 0.98,
         "acc.p_value_vs_base": 0.02, "acc.p_value_vs_base.holm": 0.08,
         "demographic_parity_difference": 0.04}


@pytest.mark.parametrize(
    ("gate", "passed", "status", "ev_key"),
    [
        # 0.049 on 81 swaps passes the point, its upper bound 0.13 does not: more data
        ("counterfactual.flip_rate <= 0.05", True, POINT_ONLY, "counterfactual.flip_rate.upper95"),
        ("counterfactual.flip_rate <= 0.2", True, EVIDENCE, "counterfactual.flip_rate.upper95"),
        ("counterfactual.flip_rate <= 0.04", False, FAILS, "counterfactual.flip_rate.upper95"),
        # naming the bound: the gate reads the bound; the point still tells "more data" apart
        ("counterfactual.flip_rate.upper95 <= 0.05", False, POINT_ONLY,
         "counterfactual.flip_rate.upper95"),
        ("counterfactual.flip_rate.upper95 <= 0.04", False, FAILS,
         "counterfactual.flip_rate.upper95"),
        ("counterfactual.flip_rate.upper95 <= 0.15", True, EVIDENCE,
         "counterfactual.flip_rate.upper95"),
        ("acc >= 0.9", True, EVIDENCE, "acc.lower95"),
        ("acc >= 0.93", True, POINT_ONLY, "acc.lower95"),
        ("acc.lower95 >= 0.93", False, POINT_ONLY, "acc.lower95"),
        # a p-value's evidence is its Holm-adjusted value
        ("acc.p_value_vs_base <= 0.05", True, POINT_ONLY, "acc.p_value_vs_base.holm"),
        ("acc.p_value_vs_base <= 0.1", True, EVIDENCE, "acc.p_value_vs_base.holm"),
        ("acc.p_value_vs_base.holm <= 0.05", False, POINT_ONLY, "acc.p_value_vs_base.holm"),
        # no interval: passes on its point, and says there was no bound to read
        ("demographic_parity_difference <= 0.1", True, NO_INTERVAL, None),
        ("demographic_parity_difference <= 0.01", False, FAILS, None),
        ("acc == 0.95", True, NO_INTERVAL, None),
    ],
)
def test_three_states(gate, passed, status, ev_key):
    result = check_gate(gate, FLIPS)
    assert (result.passed, result.status, result.evidence_key) == (passed, status, ev_key)
    if ev_key is not None:
        assert result.evidence_value == FLIPS[ev_key]
    assert result.to_dict()["status"] == status


def test_unmeasured_bound_fails():
    result = check_gate("x.upper95 <= 0.1", {"x": 0.0})
    assert (result.passed, result.status, result.reason) == (False, FAILS, "not measured")


def test_evidence_names_in_one_place():
    assert (LOWER95, UPPER95) == (".lower95", ".upper95")
    assert split_evidence("counterfactual.race.flip_rate.upper95") == (
        "counterfactual.race.flip_rate", UPPER95)
    assert split_evidence("a.p_value_vs_base.holm") == ("a.p_value_vs_base", ".holm")
    assert split_evidence("intent_accuracy") == ("intent_accuracy", None)
    assert evidence_key("a", "<=") == "a.upper95" and evidence_key("a", ">") == "a.lower95"
    assert evidence_key("a", "==") is None and evidence_key("a.upper95", "<=") is None
    assert evidence_key("a.p_value_vs_base", ">=") is None


def test_add_bounds_names_every_interval_and_keeps_given_ones():
    flat = add_bounds({"a": 0.5, "a.ci_low": 0.4, "a.ci_high": 0.6, "b.ci_low": 0.1,
                       "c": 1.0, "c.ci_low": 0.9, "c.ci_high": 1.0, "c.lower95": 0.85})
    assert (flat["a.lower95"], flat["a.upper95"]) == (0.4, 0.6)
    assert "b.lower95" not in flat  # half an interval is no interval
    assert (flat["c.lower95"], flat["c.upper95"]) == (0.85, 1.0)
    assert flat["a.ci_low"] == 0.4  # the old names stay
