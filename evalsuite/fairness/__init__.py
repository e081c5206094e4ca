"""Fairness evaluation: group metrics, counterfactual swaps and stereotype probes.

Three views on one held-out set, for every model at once:

- **Group metrics** with fairlearn's ``MetricFrame``: per-group score with bootstrap CIs and the
  largest gap; the selection rate of the favourable outcome (the task's ``outcome_pattern``
  found in the model output); demographic-parity difference and ratio (the four-fifths rule);
  equalized-odds difference where the target says what the true outcome was.
- **Counterfactual fairness**: every held-out prompt with its demographic terms swapped by THE
  lexicon (``finetune.data.lexicon``); all models answer every variant in one mixed batch; the
  flip rate of the extracted labels and outcome, the semantic similarity of original and
  swapped answers, and HELM-style worst-case accuracy (a row counts only if it is right in
  every variant).
- **Stereotype probes**: CrowS-Pairs style sentence pairs scored by log-likelihood; the share
  of pairs where a model prefers the stereotypical sentence (ideal 0.5).

The pure functions take plain sequences so they can be checked against fairlearn and the
formulas on hand-made predictions; :func:`evaluate_fairness` wires them to the engine.
"""


from evalsuite.fairness.context import has_outcome, row_groups
from evalsuite.fairness.counterfactual import make_variants
from evalsuite.fairness.evaluate import FairnessResult, evaluate_fairness, training_data_audit
from evalsuite.fairness.metrics import (
    FOUR_FIFTHS,
    flip_rate,
    group_scores,
    outcome_metrics,
    worst_case_accuracy,
)
from evalsuite.fairness.probes import score_probes, stereotype_preference

__all__ = [
    "FOUR_FIFTHS",
    "FairnessResult",
    "evaluate_fairness",
    "flip_rate",
    "group_scores",
    "has_outcome",
    "make_variants",
    "outcome_metrics",
    "row_groups",
    "score_probes",
    "stereotype_preference",
    "training_data_audit",
    "worst_case_accuracy",
]
