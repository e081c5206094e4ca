"""Local `evaluate` module; load with `evalsuite.metrics.load_metric("semantic_similarity")`."""
