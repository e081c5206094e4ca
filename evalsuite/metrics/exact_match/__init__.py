"""Scorer type ``exact_match``: 1 when the normalised answer equals the reference, else 0.

The local ``evaluate`` module is ``exact_match.py`` beside this file; the constants below declare
the scorer to the evalsuite (``evalsuite.metrics.SCORERS`` reads them).
"""

TYPE = "exact_match"
"""The name a task's ``scorers[].type`` uses."""
BINARY = True
"""Per-row scores are 0/1 (paired comparisons use McNemar's exact test)."""
HIGHER_IS_BETTER = True
