"""Local `evaluate` module; load with `evalsuite.metrics.load_metric("label_match")`."""
