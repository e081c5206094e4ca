"""Local `evaluate` module; load with `evalsuite.metrics.load_metric("rouge_l")`."""
