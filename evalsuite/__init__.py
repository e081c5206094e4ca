"""evalsuite: score a base model and its adapters in one pass, with statistics and reports."""

from finetune import __version__

__all__ = ["__version__"]
