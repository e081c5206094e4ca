"""Scorer type ``semantic_similarity``: cosine similarity of answer and reference (MiniLM).

The local ``evaluate`` module is ``semantic_similarity.py`` beside this file; the constants
below declare the scorer to the evalsuite (``evalsuite.metrics.SCORERS`` reads them).
"""

TYPE = "semantic_similarity"
"""The name a task's ``scorers[].type`` uses."""
BINARY = False
"""Per-row scores are 0/1 (paired comparisons use McNemar's exact test)."""
HIGHER_IS_BETTER = True
