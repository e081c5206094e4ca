"""Scorer type ``label``: 1 when the label the scorer's ``pattern`` extracts is the reference's.

The local ``evaluate`` module is ``label_match.py`` beside this file; the constants below declare
the scorer to the evalsuite (``evalsuite.metrics.SCORERS`` reads them).
"""

TYPE = "label"
"""The name a task's ``scorers[].type`` uses."""
BINARY = True
"""Per-row scores are 0/1 (paired comparisons use McNemar's exact test)."""
HIGHER_IS_BETTER = True
