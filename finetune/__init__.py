"""tuneproof's training side: data checks, the tiny base, LoRA training and run artefacts."""

__version__ = "0.1.0"
