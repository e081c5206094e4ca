"""Gates: ``"<metric path> <op> <number>"`` checks a model must pass.

A gate reads one number from a flat namespace built per model: scorer metrics
(``intent_accuracy``), their statistics (``intent_accuracy.delta_vs_base``,
``intent_accuracy.ci_low``, ``intent_accuracy.p_value_vs_base``...) and the fairness keys
(``counterfactual.flip_rate``, ``demographic_parity_difference``...). A gate whose number
was not measured fails, saying so: a gate that cannot fail would prove nothing.

Every flat metric with a 95% interval also has ``<name>.lower95`` / ``<name>.upper95``
companions, and every p-value against the base its Holm-adjusted ``<name>.holm``; a gate may
name either. A gate on the point estimate is also read against its evidence companion (the
upper bound for ``<=``, the lower bound for ``>=``, the adjusted p-value for a p-value), which
gives each gate one of three states: passes with evidence, passes on the point estimate only
(more data needed), fails.
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
LOWER95 = ".lower95"
"""Suffix of a metric's 95% lower bound in the flat namespace."""
UPPER95 = ".upper95"
"""Suffix of a metric's 95% upper bound in the flat namespace."""
BOUND_SUFFIXES = (LOWER95, UPPER95)
HOLM = ".holm"
"""Suffix of a p-value's Holm-adjusted value (across the run's comparisons)."""
EVIDENCE_SUFFIXES = (*BOUND_SUFFIXES, HOLM)
"""Every suffix a gate may add to a flat metric name (``split_evidence`` strips it)."""

EVIDENCE = "passes with evidence"
POINT_ONLY = "passes on the point estimate only"
NO_INTERVAL = "passes (no interval)"
FAILS = "fails"
STATUSES = (EVIDENCE, POINT_ONLY, NO_INTERVAL, FAILS)

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
    """A gate checked against one model: ``value`` None when it was not measured.

    ``status`` is one of :data:`STATUSES`; ``evidence_key`` / ``evidence_value`` name the
    bound (or adjusted p-value) that decided between "with evidence" and "point estimate
    only", None when the metric has none.
    """

    gate: str
    key: str
    op: str
    threshold: float
    value: float | None
    passed: bool
    reason: str
    status: str = FAILS
    evidence_key: str | None = None
    evidence_value: float | None = None

    def to_dict(self) -> dict[str, object]:
        """JSON-able form."""
        return asdict(self)


def split_evidence(key: str) -> tuple[str, str | None]:
    """``("x.flip_rate", ".upper95")`` for ``x.flip_rate.upper95``; ``(key, None)`` otherwise."""
    for suffix in EVIDENCE_SUFFIXES:
        if key.endswith(suffix) and len(key) > len(suffix):
            return key[: -len(suffix)], suffix
    return key, None


def evidence_key(key: str, op: str) -> str | None:
    """The companion that says whether a gate on ``key`` passes with evidence.

    ``<=`` / ``<`` read the upper bound, ``>=`` / ``>`` the lower bound; a p-value
    (``*.p_value_vs_base``) under ``<=`` / ``<`` reads its Holm-adjusted value. None for
    ``==`` / ``!=`` and for keys that already name a companion.
    """
    if split_evidence(key)[1] is not None or op in ("==", "!="):
        return None
    if key.rsplit(".", 1)[-1].startswith("p_value"):
        return key + HOLM if op in ("<=", "<") else None
    return key + (UPPER95 if op in ("<=", "<") else LOWER95)


def add_bounds(flat: dict[str, float | None]) -> dict[str, float | None]:
    """Give every ``K.ci_low`` / ``K.ci_high`` pair its ``K.lower95`` / ``K.upper95`` names.

    Companions already present are kept. Returns ``flat`` (changed in place).
    """
    for key in [k for k in flat if k.endswith(".ci_low")]:
        name = key[: -len(".ci_low")]
        if f"{name}.ci_high" in flat:
            flat.setdefault(name + LOWER95, flat[key])
            flat.setdefault(name + UPPER95, flat[f"{name}.ci_high"])
    return flat


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


def _measured(flat: Mapping[str, float | None], key: str | None) -> float | None:
    value = None if key is None else flat.get(key)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value)


def check_gate(text: str, flat: Mapping[str, float | None]) -> GateResult:
    """Check one gate against one model's flat metrics (see the module docstring)."""
    g = parse_gate(text)
    value = _measured(flat, g.key)
    if value is None:
        return GateResult(g.text, g.key, g.op, g.threshold, None, False, "not measured")
    ok = OPS[g.op]
    passed = ok(value, g.threshold)
    base, suffix = split_evidence(g.key)
    point = None
    if suffix is not None:  # the gate names the bound itself: its point is the fallback
        point = _measured(flat, base)
        status = EVIDENCE if passed else (
            POINT_ONLY if point is not None and ok(point, g.threshold) else FAILS)
        ev_key, ev_value = g.key, value
    else:
        ev_key = evidence_key(g.key, g.op)
        ev_value = _measured(flat, ev_key)
        if ev_value is None:
            ev_key = None
        status = FAILS if not passed else (
            NO_INTERVAL if ev_value is None else
            EVIDENCE if ok(ev_value, g.threshold) else POINT_ONLY)
    reason = f"{g.key} = {value:.4g} {'meets' if passed else 'fails'} {g.op} {g.threshold:g}"
    if suffix is None and ev_key is not None:
        reason += f"; {ev_key} = {ev_value:.4g}"
    elif suffix is not None and point is not None:
        reason += f"; point estimate {base} = {point:.4g}"
    return GateResult(g.text, g.key, g.op, g.threshold, value, passed, reason, status, ev_key,
                      ev_value)


def check_gates(gates: list[str], flat: Mapping[str, float | None]) -> list[GateResult]:
    """Check every gate against one model's flat metrics."""
    return [check_gate(text, flat) for text in gates]
