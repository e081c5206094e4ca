"""Scorer type ``rouge_l``: ROUGE-L F1 of answer and reference.

The local ``evaluate`` module is ``rouge_l.py`` beside this file; the constants below declare
the scorer to the evalsuite (``evalsuite.metrics.SCORERS`` reads them).
"""

TYPE = "rouge_l"
"""The name a task's ``scorers[].type`` uses."""
BINARY = False
"""Per-row scores are 0/1 (paired comparisons use McNemar's exact test)."""
HIGHER_IS_BETTER = True
