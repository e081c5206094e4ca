"""Gates: ``"<metric path> <op> <number>"`` checks a model must pass.

A gate reads one number from a flat namespace built per model: scorer metrics
(``intent_accuracy``), their statistics (``intent_accuracy.delta_vs_base``,
``intent_accuracy.ci_low``, ``intent_accuracy.p_value_vs_base``...) and the fairness keys
(``counterfactual.flip_rate``, ``demographic_parity_difference``...). A gate whose number
was not measured fails, saying so: a gate that cannot fail would prove nothing.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass

OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
    "==": operator.eq,
    "!=": operator.ne,
}
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_GATE = re.compile(rf"^\s*([A-Za-z_][\w.\-]*)\s*(>=|<=|==|!=|>|<)\s*({_NUMBER})\s*$")


@dataclass(frozen=True)
class Gate:
    """A parsed gate."""

    text: str
    key: str
    op: str
    threshold: float


@dataclass(frozen=True)
class GateResult:
    """A gate checked against one model: ``value`` None when it was not measured."""

    gate: str
    key: str
    op: str
    threshold: float
    value: float | None
    passed: bool
    reason: str

    def to_dict(self) -> dict[str, object]:
        """JSON-able form."""
        return asdict(self)


def parse_gate(text: str) -> Gate:
    """Parse ``"intent_accuracy.delta_vs_base >= 0.5"``.

    Raises:
        ValueError: the text is not ``<path> <op> <number>``.
    """
    if not isinstance(text, str):
        raise ValueError(f"gate {text!r}: expected a string like 'intent_accuracy >= 0.9'")
    m = _GATE.match(text)
    if not m:
        raise ValueError(
            f"gate {text!r}: expected '<metric> <op> <number>' with op one of "
            + " ".join(OPS)
        )
    return Gate(text.strip(), m.group(1), m.group(2), float(m.group(3)))


def check_gates(gates: list[str], flat: Mapping[str, float | None]) -> list[GateResult]:
    """Check every gate against one model's flat metrics."""
    out = []
    for text in gates:
        g = parse_gate(text)
        value = flat.get(g.key)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            out.append(GateResult(g.text, g.key, g.op, g.threshold, None, False, "not measured"))
            continue
        value = float(value)
        passed = OPS[g.op](value, g.threshold)
        reason = f"{g.key} = {value:.4g} {'meets' if passed else 'fails'} {g.op} {g.threshold:g}"
        out.append(GateResult(g.text, g.key, g.op, g.threshold, value, passed, reason))
    return out
