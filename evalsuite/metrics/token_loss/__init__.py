"""Local `evaluate` module; load with `evalsuite.metrics.load_metric("token_loss")`."""
