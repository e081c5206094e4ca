"""Where tuneproof keeps what it builds; every location can be moved by an environment variable.

Hugging Face Spaces have no persistent ``/data`` disk any more, so nothing is hard-wired.
"""

from __future__ import annotations

import os
from pathlib import Path


def tuneproof_home() -> Path:
    """``$TUNEPROOF_HOME``, default ``~/.cache/tuneproof``: built models and caches."""
    return Path(os.environ.get("TUNEPROOF_HOME", Path.home() / ".cache" / "tuneproof"))


def models_dir() -> Path:
    """Folder holding models tuneproof builds itself (the tiny base)."""
    return tuneproof_home() / "models"
