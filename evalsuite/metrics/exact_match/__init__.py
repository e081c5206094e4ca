"""Local `evaluate` module; load with `evalsuite.metrics.load_metric("exact_match")`."""
