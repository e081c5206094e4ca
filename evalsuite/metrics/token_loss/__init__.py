"""Scorer type ``loss``: the per-token negative log-likelihood of the reference (lower is better).

The local ``evaluate`` module is ``token_loss.py`` beside this file; the constants below declare
the scorer to the evalsuite (``evalsuite.metrics.SCORERS`` reads them).
"""

TYPE = "loss"
"""The name a task's ``scorers[].type`` uses."""
BINARY = False
"""Per-row scores are 0/1 (paired comparisons use McNemar's exact test)."""
HIGHER_IS_BETTER = False
