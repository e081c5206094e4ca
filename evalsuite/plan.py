"""How much held-out data a gate on a rate needs before its 95% bound can pass.

A gate ``counterfactual.flip_rate <= 0.05`` passes *with evidence* only when the flip rate's
95% upper bound is under 0.05 (``evalsuite.gates``). How many swaps that takes depends on the
rate the model will actually show: at a true 0% it takes 72 swaps, at 2% about 300, at 4%
thousands. :func:`plan_task` says, for each gate on a rate, the number needed at a few
expected rates and whether the task's held-out set has them, from the task alone: rows are
counted and the lexicon's counterfactual variants generated, no model is loaded.

The bound is the exact binomial (Clopper-Pearson) interval, statsmodels'
``proportion_confint(method="beta")``, two-sided 95% as every interval of a run: it never
covers less than 95%, also at the rates near 0 that fairness gates ask for, where Wilson's and
the normal approximation's coverage dips below nominal; so the plan errs on the side of more
data. The swaps of one prompt often flip together, and the run's interval over them is
clustered by prompt, so with correlated variants the real need is higher still: the plan
counts distinct swaps (a held-out pair swapped both ways counts once) as if independent, and
prints the number of prompts beside them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from evalsuite.gates import LOWER95, UPPER95, parse_gate, split_evidence
from evalsuite.task import EvalRow, TaskSpec, matches, task_rows

CONFIDENCE = 0.95
METHOD = "Clopper-Pearson (exact binomial, statsmodels proportion_confint method='beta')"
MAX_N = 200_000
"""Largest sample size searched; a need beyond it is reported as unreachable."""


@dataclass(frozen=True)
class Need:
    """The sample size one gate needs at one expected rate (None: beyond :data:`MAX_N`)."""

    expected: float
    needed: int | None
    enough: bool


@dataclass
class GatePlan:
    """One gate on a rate: what it counts, how many the task has, how many it needs."""

    gate: str
    key: str
    unit: str
    available: int
    clusters: int | None
    bound: str
    needs: list[Need] = field(default_factory=list)
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return asdict(self)


def bound_passes(k: np.ndarray, n: np.ndarray, op: str, threshold: float) -> np.ndarray:
    """Whether the 95% Clopper-Pearson bound of ``k`` in ``n`` passes ``op threshold``.

    ``<=`` / ``<`` read the upper bound, ``>=`` / ``>`` the lower one, as gates do.
    """
    from statsmodels.stats.proportion import proportion_confint

    low, high = proportion_confint(k, n, alpha=1 - CONFIDENCE, method="beta")
    bound = high if op in ("<=", "<") else low
    return {"<=": bound <= threshold, "<": bound < threshold, ">=": bound >= threshold,
            ">": bound > threshold}[op]


def needed_n(op: str, threshold: float, expected: float, max_n: int = MAX_N) -> int | None:
    """Smallest ``n`` whose 95% bound passes the gate when the observed rate is ``expected``.

    ``k = round(expected * n)`` successes are observed. None when no ``n`` up to ``max_n``
    does (the expected rate is at or beyond the threshold, or too close to it).

    Raises:
        ValueError: ``op`` is ``==`` / ``!=`` (no one-sided bound) or a rate is outside [0, 1].
    """
    if op not in ("<=", "<", ">=", ">"):
        raise ValueError(f"a bound needs <=, <, >= or >, not {op}")
    if not (0 <= expected <= 1 and 0 <= threshold <= 1):
        raise ValueError("rates must lie in [0, 1]")
    start = 1
    while start <= max_n:  # blocks of growing size: most needs are found in the first one
        stop = min(max(4 * start, 256), max_n)
        n = np.arange(start, stop + 1, dtype=float)
        hits = np.flatnonzero(bound_passes(np.round(expected * n), n, op, threshold))
        if hits.size:
            return start + int(hits[0])
        start = stop + 1
    return None


def default_expected(op: str, threshold: float) -> list[float]:
    """The rates a plan shows when none is given: the best case and two realistic ones.

    ``<=`` gates: 0, a quarter and half of the threshold; ``>=`` gates: 1 and the points a
    quarter and half of the way from 1 down to the threshold.
    """
    if op in ("<=", "<"):
        return [0.0, threshold / 4, threshold / 2]
    return [1.0, 1 - (1 - threshold) / 4, 1 - (1 - threshold) / 2]


def _variant_counts(task: TaskSpec, rows: list[EvalRow]) -> dict[str, tuple[int, int]]:
    """Per counterfactual axis: (distinct swaps, prompts with a variant), by THE lexicon.

    A swap is an unordered pair {original prompt, variant prompt}: when a held-out row's
    variant is another held-out row (the demo's gender pairs), the two rows' swaps compare the
    same two answers and flip together, so they count once.
    """
    from evalsuite.fairness.counterfactual import make_variants

    spec = task.fairness
    if spec is None:
        return {}
    scope = [r for r in rows if matches(r.meta, spec.where)]

    def key(messages: Any) -> tuple[tuple[str, str], ...]:
        return tuple((m["role"], m["content"]) for m in messages)

    out = {}
    for axis in spec.counterfactual_axes:
        pairs, prompts = set(), 0
        for r in scope:
            variants = make_variants(r.prompt, r.target, axis, spec.name_k)
            prompts += bool(variants)
            pairs.update(frozenset((key(r.prompt), key(m))) for m, _ in variants)
        out[axis] = (len(pairs), prompts)
    return out


def _scored_rows(task: TaskSpec, rows: list[EvalRow]) -> dict[str, int]:
    """Per binary scorer, the rows it scores (as ``runner.score_model`` picks them)."""
    from evalsuite.labels import NONE, extract
    from evalsuite.metrics import SCORERS

    out = {}
    for s in task.scorers:
        if not SCORERS[s.type].binary:
            continue
        picked = [r for r in rows if matches(r.meta, s.where)]
        if s.type == "label":
            picked = [r for r in picked if extract(r.target, s.pattern or "") != NONE]
        out[s.name] = len(picked)
    return out


def _what_counts(key: str, scored: dict[str, int], variants: dict[str, tuple[int, int]]
                 ) -> tuple[str, int, int | None] | None:
    """(unit, available, clusters) for a gate key on a single proportion, else None."""
    parts = key.split(".")
    if key in scored:
        return "rows", scored[key], None
    if parts[0] == "counterfactual" and parts[-1] == "flip_rate" and variants:
        if len(parts) == 3 and parts[1] in variants:
            n, prompts = variants[parts[1]]
        else:  # the worst axis: every axis must have enough, so the smallest counts
            n, prompts = min(variants.values())
        return "swaps", n, prompts
    return None


def plan_task(task: TaskSpec, expected: dict[str, float] | None = None) -> list[GatePlan]:
    """A :class:`GatePlan` per gate of ``task`` (gates not on a single rate say so).

    Args:
        task: A loaded task; its held-out rows are read, no model is loaded.
        expected: Expected rates by gate key (or ``"*"`` for every gate); default
            :func:`default_expected`.
    """
    expected = expected or {}
    rows = task_rows(task)
    scored, variants = _scored_rows(task, rows), _variant_counts(task, rows)
    plans = []
    for text in task.gates:
        g = parse_gate(text)
        key, suffix = split_evidence(g.key)
        counted = _what_counts(key, scored, variants) if suffix != ".holm" else None
        if counted is None or g.op in ("==", "!=") or not 0 <= g.threshold <= 1:
            plans.append(GatePlan(text, g.key, "", 0, None, "", note=(
                "not a gate on a single rate (a difference, ratio, loss or p-value): "
                "no sample size planned")))
            continue
        unit, available, clusters = counted
        side = UPPER95 if g.op in ("<=", "<") else LOWER95
        rates = ([expected[k] for k in (g.key, key, "*") if k in expected][:1]
                 or default_expected(g.op, g.threshold))
        plan = GatePlan(text, g.key, unit, available, clusters, key + side)
        for rate in rates:
            n = needed_n(g.op, g.threshold, rate)
            plan.needs.append(Need(rate, n, n is not None and available >= n))
        plans.append(plan)
    return plans


def render(plans: list[GatePlan], task: TaskSpec) -> str:
    """The plan as the terminal shows it."""
    lines = [f"Plan for {task.name}: held-out rows needed for each gate's 95% bound to pass",
             f"(bound: {METHOD})", ""]
    for p in plans:
        lines.append(f"gate {p.gate}")
        if not p.needs:
            lines.append(f"  {p.note}")
            continue
        has = f"{p.available} {p.unit}"
        if p.clusters is not None:
            has += f" from {p.clusters} prompts"
        lines.append(f"  reads {p.bound}; the held-out set has {has}")
        for need in p.needs:
            if need.needed is None:
                said = f"unreachable (more than {MAX_N:,} {p.unit})"
            else:
                said = (f"needs {need.needed:,} {p.unit}: "
                        + ("enough" if need.enough else f"short by {need.needed - p.available:,}"))
            lines.append(f"  at an expected rate of {need.expected:.4g}: {said}")
        if p.clusters is not None:
            lines.append("  (distinct swaps taken as independent: swaps of one prompt that "
                         "flip together need more)")
    return "\n".join(lines)
