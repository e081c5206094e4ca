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
