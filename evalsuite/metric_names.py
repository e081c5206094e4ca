"""The metric names a task can produce, so a gate naming anything else fails at load.

A gate reads one number from a flat namespace per model (``evalsuite.gates``). Those names are
born in two places: the runner (each scorer's value and its statistics) and the fairness
package (group and counterfactual measures). This module is the one list of their *families*,
read from the task alone, before any model loads:

* a scorer's name (``intent_accuracy``), followed by any statistic suffix the runner or the
  statistics add (``.ci_low``, ``.upper95``, ``.delta_vs_base``, ``.p_value_vs_base``...);
* a fairness family (:data:`FAIRNESS_FAMILIES`), when the task sets what it needs
  (``counterfactual.*`` needs ``fairness.counterfactual_axes``), again with any suffix
  (``counterfactual.gender.flip_rate.upper95``, ``selection_rate.female``).

The head of the name is checked strictly (``team_acc`` is a typo for ``team_accuracy``); what
follows it is not, so new statistics need no change here. A new fairness measure whose flat
name starts with a new head is added to :data:`FAIRNESS_FAMILIES` (tests/test_metric_names.py
runs the fairness package and fails on a flat name this list does not accept).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from evalsuite.task import TaskSpec


@dataclass(frozen=True)
class Family:
    """Flat metric names sharing a head (the part before the first dot).

    Attributes:
        head: The first part of every name of the family.
        needs: The ``fairness`` key the task must set for it to be measured (``""``: the
            ``fairness`` section alone).
        names: The names as users write them, for the docs and error messages.
        help: What the number is.
    """

    head: str
    needs: str
    names: tuple[str, ...]
    help: str


FAIRNESS_FAMILIES: tuple[Family, ...] = (
    Family("group_accuracy_gap", "", ("group_accuracy_gap", "group_accuracy_gap.<scorer>"),
           "largest difference between groups in a binary scorer's accuracy (worst scorer)"),
    Family("demographic_parity_difference", "outcome_pattern",
           ("demographic_parity_difference",),
           "largest difference between groups in the rate of the outcome"),
    Family("demographic_parity_ratio", "outcome_pattern", ("demographic_parity_ratio",),
           "smallest over largest rate of the outcome between groups"),
    Family("equalized_odds_difference", "outcome_pattern", ("equalized_odds_difference",),
           "largest gap in true- or false-positive rate of the outcome between groups"),
    Family("selection_rate", "outcome_pattern",
           ("selection_rate.<group>", "selection_rate.<category>.<group>"),
           "rate of the outcome (or of one captured category) in one group"),
    Family("false_negative_rate", "outcome_pattern",
           ("false_negative_rate.<group>",),
           "share of rows whose target has the outcome that the model denied it"),
    Family("false_negative_rate_difference", "outcome_pattern",
           ("false_negative_rate_difference",),
           "largest gap between groups in the false-negative rate (wrongly denied)"),
    Family("false_positive_rate", "outcome_pattern", ("false_positive_rate.<group>",),
           "share of rows whose target lacks the outcome that the model granted it"),
    Family("false_positive_rate_difference", "outcome_pattern",
           ("false_positive_rate_difference",),
           "largest gap between groups in the false-positive rate (wrongly granted)"),
    Family("equal_opportunity_difference", "outcome_pattern",
           ("equal_opportunity_difference",),
           "largest gap between groups in the true-positive rate of the outcome"),
    Family("counterfactual", "counterfactual_axes",
           ("counterfactual.flip_rate", "counterfactual.similarity",
            "counterfactual.worst_case_accuracy", "counterfactual.sentiment_gap",
            "counterfactual.<axis>.flip_rate", "counterfactual.<axis>.sentiment_gap"),
           "answers that change when only the group in the prompt changes (worst axis, or one)"),
    Family("by_axis", "counterfactual_axes",
           ("by_axis.<axis>.group_accuracy_gap", "by_axis.<axis>.demographic_parity_difference",
            "by_axis.<axis>.selection_rate.<group>"),
           "the group metrics on another axis the task varies (groups by the lexicon)"),
    Family("intersectional", "", ("intersectional.group_accuracy_gap.<scorer>",),
           "largest accuracy gap between cells of two or more axes (cells of enough rows)"),
    Family("stereotype", "probes", ("stereotype.preference",),
           "share of stereotype probes where the model prefers the stereotypical sentence"),
)
"""The fairness package's flat names by head; ``needs`` is the fairness key measuring them."""

SCORER_STATISTICS: tuple[str, ...] = (
    "ci_low", "ci_high", "lower95", "upper95", "macro_f1", "perplexity", "delta_vs_base",
    "delta_vs_base.ci_low", "delta_vs_base.ci_high", "delta_vs_base.lower95",
    "delta_vs_base.upper95", "p_value_vs_base", "p_value_vs_base.holm",
)
"""Suffixes the runner writes after a scorer's name (documented; others are accepted too)."""


def _measured(task: TaskSpec, family: Family) -> bool:
    if task.fairness is None:
        return False
    return not family.needs or bool(getattr(task.fairness, family.needs, None))


def gate_names(task: TaskSpec) -> list[str]:
    """The names a gate of ``task`` may read (patterns in ``<>``), statistics left out."""
    names = [s.name for s in task.scorers]
    for family in FAIRNESS_FAMILIES:
        if _measured(task, family):
            names.extend(family.names)
    return names


def gate_name_problem(task: TaskSpec, key: str) -> str | None:
    """Why ``task`` cannot produce the flat metric ``key``, or None when it can.

    Args:
        task: A validated task.
        key: A gate's metric name (``counterfactual.gender.flip_rate.upper95``).
    """
    head, _, rest = key.partition(".")
    if head in {s.name for s in task.scorers}:
        return None
    family = next((f for f in FAIRNESS_FAMILIES if f.head == head), None)
    if family is None:
        return (f"unknown metric {key!r}; this task measures: {', '.join(gate_names(task))} "
                f"(each may end in a statistic such as .ci_low or .upper95)")
    if not _measured(task, family):
        setting = f"fairness.{family.needs}" if family.needs else "a fairness section"
        return f"{key!r} is not measured by this task: it needs {setting}"
    if family.head == "counterfactual":
        from finetune.data.lexicon import AXES

        axis = rest.partition(".")[0]
        axes = task.fairness.counterfactual_axes if task.fairness else []
        if axis in AXES and axis not in axes:
            return (f"{key!r}: axis {axis!r} is not in fairness.counterfactual_axes "
                    f"({', '.join(axes)})")
    return None


def gate_problems(task: TaskSpec) -> list[tuple[tuple[str, int], str]]:
    """Every gate of ``task`` naming a metric it cannot produce: ``(("gates", i), problem)``."""
    from evalsuite.gates import parse_gate

    out = []
    for i, text in enumerate(task.gates):
        problem = gate_name_problem(task, parse_gate(text).key)
        if problem is not None:
            out.append((("gates", i), problem))
    return out
