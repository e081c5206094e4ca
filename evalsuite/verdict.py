"""The verdict card: per adapter, one line in plain words with the numbers behind it.

``verdicts(results)`` reads only ``results.json`` (never hand-written text), so report.md,
report.html and the app's Reports tab all say the same thing:

    fair — ships: intent accuracy 1.00 vs base 0.00 (+1.00, 95% CI [0.97, 1.00], p < 0.001);
    passes 3/3 gates
    biased — do not ship: changes its answer on 88% of gender swaps (gate ≤ 5%); ...

The outcome is the gates' (``evalsuite.gates``): every gate passes with evidence (its 95%
bound, or its Holm-adjusted p-value, passes too): ships; every gate passes but some only on the
point estimate, or with no interval to read it against: more data needed; one fails: do not
ship. A model with warnings (``models[name]["warnings"]``, e.g. a no-op adapter) is never
"ships" without a look.
p-values against the base are read Holm-adjusted across the run's comparisons.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from evalsuite.gates import EVIDENCE, FAILS, NO_INTERVAL, POINT_ONLY, split_evidence

SHIPS = "ships"
NO_SHIP = "do not ship"
MORE_DATA = "more data needed"
"""Every gate passes, some only on the point estimate: their 95% bound does not (yet), or
they have no interval at all, so nothing shows the pass is more than chance."""
REVIEW = "review before shipping"
NOT_JUDGED = "not judged"
OPS_SHOWN = {">=": "≥", "<=": "≤", ">": ">", "<": "<", "==": "=", "!=": "≠"}


@dataclass(frozen=True)
class Verdict:
    """One model's verdict.

    Attributes:
        model: The model's name in results.json.
        outcome: ``ships``, ``do not ship``, ``more data needed``, ``review before shipping``
            or ``not judged``.
        evidence: Plain-words clauses, the deciding ones first, each with its numbers.
        warnings: Warnings results.json recorded for the model.
    """

    model: str
    outcome: str
    evidence: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool | None:
        """True: ships; False: do not ship; None: a person has to look."""
        return {SHIPS: True, NO_SHIP: False}.get(self.outcome)

    def line(self) -> str:
        """``name — outcome: evidence; evidence; warning: ...``."""
        clauses = [*self.evidence, *(f"warning: {w}" for w in self.warnings)]
        return f"{self.model} — {self.outcome}" + (f": {'; '.join(clauses)}" if clauses else "")


def num(v: Any) -> float | None:
    """``v`` as a float when it is a finite number, else None (missing, NaN, text)."""
    return float(v) if isinstance(v, int | float) and math.isfinite(v) else None


def format_p(p: Any, *, prefix: bool = False) -> str:
    """A p-value as reports print it: ``0.012``, ``<0.001``, or ``–`` when there is none.

    With ``prefix`` it reads ``p = 0.012``, ``p < 0.001`` or ``p –`` (the verdict sentences).
    """
    x = num(p)
    if x is None:
        return "p –" if prefix else "–"
    if x < 0.001:
        return "p < 0.001" if prefix else "<0.001"
    return f"p = {x:.3f}" if prefix else f"{x:.3f}"


def _f(v: Any) -> str:
    x = num(v)
    return "–" if x is None else f"{x:.2f}"


def _words(key: str) -> str:
    return key.replace("_", " ")


def _pct(v: float) -> str:
    # 0.049 is "4.9%", not "5%": beside a 5% gate the rounding would hide the margin
    x = 100 * v
    return f"{x:.0f}%" if abs(x - round(x)) < 0.05 else f"{x:.1f}%"


_SWAPPED = {"gender": "other name or pronouns", "name": "other name",
            "race": "a name of another race, same gender", "age": "other age words or age",
            "religion": "other religion words", "demographic": "other name or pronouns"}
"""What a swap on each axis changes, for the verdict's words (a user's axis: its words)."""


def _worst_axis(model: dict[str, Any]) -> str | None:
    axes = (((model.get("fairness") or {}).get("counterfactual") or {}).get("axes") or {})
    rated = [(a.get("flip_rate") or 0, name) for name, a in axes.items()]
    return max(rated)[1] if rated else None


def _outcome(model: dict[str, Any]) -> str | None:
    outcome = (((model.get("fairness") or {}).get("groups") or {}).get("outcome") or {})
    pattern = outcome.get("pattern")
    return pattern if isinstance(pattern, str) and pattern.isalnum() else None


def gate_words(gate: dict[str, Any], model: dict[str, Any] | None = None) -> str:
    """A checked gate (results.json ``gates`` entry) in plain words with its threshold.

    ``model`` (its results.json entry) names the swap axis and the favourable outcome.
    """
    model = model or {}
    key, value, op, t = gate["key"], num(gate.get("value")), gate["op"], gate["threshold"]
    bound = f"gate {OPS_SHOWN.get(op, op)} "
    if value is None:
        return f"{_words(key)} was not measured (gate {gate['gate']})"
    point_key, suffix = split_evidence(key)
    if suffix is not None:
        which = _EVIDENCE_WORDS[suffix]
        return f"at its {which}, " + gate_words({**gate, "key": point_key}, model)
    parts = key.split(".")
    if parts[0] == "counterfactual" and parts[-1] == "flip_rate":
        axis = parts[1] if len(parts) == 3 else (_worst_axis(model) or "demographic")
        return (f"changes its answer on {_pct(value)} of {axis} swaps (same request, "
                f"{_SWAPPED.get(axis, f'other {axis} words')}; {bound}{_pct(t)})")
    if key == "demographic_parity_difference":
        what = f"“{_outcome(model)}”" if _outcome(model) else "the favourable outcome"
        return (f"gives {what} to one group {100 * value:.0f} percentage points more often "
                f"than to another ({bound}{100 * t:.0f} points)")
    if key == "demographic_parity_ratio":
        return f"selection-rate ratio between groups {value:.2f} ({bound}{t:g})"
    if parts[-1] == "delta_vs_base":
        return f"{_words(parts[0])} {value:+.2f} vs base ({bound}{t:+g})"
    if len(parts) == 1 and key.endswith("accuracy") and 0 <= t <= 1:
        return f"{_words(key)} {value:.2f}: right on {_pct(value)} of prompts ({bound}{t:g})"
    return f"{_words(key)} {value:.4g} ({bound}{t:g})"


def _headline(results: dict[str, Any], name: str) -> str | None:
    """The first scorer against the base: value, delta, CI and paired p-value."""
    scorers = [s["name"] for s in (results.get("task") or {}).get("scorers") or []]
    if not scorers:
        return None
    metric = scorers[0]
    mine = (results["models"][name].get("metrics") or {}).get(metric, {})
    for c in results.get("comparisons", []):
        if c["a"] == "base" and c["b"] == name and c["metric"] == metric:
            base = (results["models"].get("base", {}).get("metrics") or {}).get(metric, {})
            delta = num(c.get("delta"))
            shown = "–" if delta is None else f"{delta:+.2f}"
            return (f"{_words(metric)} {_f(mine.get('value'))} vs base {_f(base.get('value'))} "
                    f"({shown}, 95% CI [{_f(c.get('ci_low'))}, {_f(c.get('ci_high'))}], "
                    f"{_holm_p(c)})")
    if "value" in mine:
        return (f"{_words(metric)} {_f(mine['value'])} (95% CI [{_f(mine.get('ci_low'))}, "
                f"{_f(mine.get('ci_high'))}])")
    return None


_EVIDENCE_WORDS = {".upper95": "95% upper bound", ".lower95": "95% lower bound",
                   ".holm": "Holm-adjusted p-value"}


def _holm_p(c: dict[str, Any]) -> str:
    """The comparison's p-value, Holm-adjusted when results.json has it (older files do not)."""
    if "p_value_holm" in c:
        return "Holm-adjusted " + format_p(c.get("p_value_holm"), prefix=True)
    return format_p(c.get("p_value"), prefix=True)


def _tally(states: list[str]) -> str:
    """``passes 3/3 gates: 2 with evidence (95% bound), 1 without an interval``."""
    n = len(states)
    parts = [f"{states.count(s)} {words}" for s, words in (
        (EVIDENCE, "with evidence (95% bound)"), (POINT_ONLY, "on the point estimate only"),
        (NO_INTERVAL, "without an interval")) if states.count(s)]
    if len(parts) == 1:
        only = parts[0].split(" ", 1)[1]
        return f"passes {n}/{n} gates " + (
            "(none has an interval)" if only.startswith("without") else only)
    return f"passes {n}/{n} gates: " + ", ".join(parts)


def gate_status(gate: dict[str, Any]) -> str:
    """A checked gate's state; results.json files from before the states read as passed/failed."""
    status = gate.get("status")
    if status in (EVIDENCE, POINT_ONLY, NO_INTERVAL, FAILS):
        return status
    return NO_INTERVAL if gate.get("passed") else FAILS


def _bound_words(gate: dict[str, Any], model: dict[str, Any]) -> str:
    """A point-only gate: the point passes, its bound (or adjusted p) does not."""
    key, ev = gate.get("evidence_key") or "", num(gate.get("evidence_value"))
    point = gate if split_evidence(gate["key"])[1] is None else {
        **gate, "key": split_evidence(gate["key"])[0],
        "value": (model.get("flat") or {}).get(split_evidence(gate["key"])[0])}
    said = gate_words(point, model)
    shown = "–" if ev is None else (f"{ev:.2g}" if key.endswith(".holm") else _bound(ev, key))
    which = _EVIDENCE_WORDS.get(split_evidence(key)[1] or "", key)
    return f"{said}, but its {which} is {shown}"


def _bound(v: float, key: str) -> str:
    rate = "flip_rate" in key or key.startswith(("demographic_parity_difference", "selection"))
    return _pct(v) if rate else f"{v:.2f}"


def _warnings(model: dict[str, Any]) -> list[str]:
    out = []
    for w in model.get("warnings") or []:
        out.append(str(w.get("message", w)) if isinstance(w, dict) else str(w))
    return out


def verdict(results: dict[str, Any], name: str) -> Verdict:
    """The verdict on one model of ``results`` (see the module docstring)."""
    model = results["models"][name]
    gates = model.get("gates")
    warnings = _warnings(model)
    headline = _headline(results, name)
    if not gates:
        evidence = [e for e in (headline, "no gates in the task to decide on") if e]
        return Verdict(name, REVIEW if warnings else NOT_JUDGED, evidence, warnings)
    states = [gate_status(g) for g in gates]
    failed = [g for g, s in zip(gates, states, strict=True) if s == FAILS]
    if failed:
        evidence = [gate_words(g, model) for g in failed]
        evidence.append(f"fails {len(failed)} of {len(gates)} gates")
        if headline:
            evidence.append(headline)
        return Verdict(name, NO_SHIP, evidence, warnings)
    short = [g for g, s in zip(gates, states, strict=True) if s == POINT_ONLY]
    bare = [g for g, s in zip(gates, states, strict=True) if s == NO_INTERVAL]
    tally = _tally(states)
    if short or bare:
        evidence = [f"passes on the point estimate only: {_bound_words(g, model)}"
                    for g in short]
        evidence += [f"passes with no 95% interval to read it against: {gate_words(g, model)}"
                     for g in bare]
        evidence += [e for e in (tally, headline) if e]
        return Verdict(name, MORE_DATA, evidence, warnings)
    evidence = [e for e in (headline, tally) if e]
    return Verdict(name, REVIEW if warnings else SHIPS, evidence, warnings)


def judged_models(results: dict[str, Any]) -> list[str]:
    """The models a verdict is given on: the adapters, else the models the gates checked."""
    models = results.get("models") or {}
    adapters = [n for n, m in models.items() if m.get("kind") == "adapter"]
    checked = [n for n in (results.get("gates") or {}).get("checked", []) if n in models]
    return adapters or checked


def verdicts(results: dict[str, Any]) -> list[Verdict]:
    """Every judged model's verdict, in results.json order."""
    return [verdict(results, n) for n in judged_models(results)]


def summary(found: list[Verdict]) -> str:
    """One sentence over all verdicts: ``Ship: fair. Do not ship: biased.``."""
    said = []
    for outcome, lead in ((SHIPS, "Ship"), (NO_SHIP, "Do not ship"),
                          (MORE_DATA, "Passes without evidence (point estimate only or "
                                      "no interval), more data needed"),
                          (REVIEW, "Look first at"),
                          (NOT_JUDGED, "Not judged (no gates)")):
        names = [v.model for v in found if v.outcome == outcome]
        if names:
            said.append(f"{lead}: {', '.join(names)}.")
    return " ".join(said) or "No adapter to judge."
