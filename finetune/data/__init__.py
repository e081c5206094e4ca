"""Training data: formats, validation, the bias audit, re-balancing and THE lexicon."""
