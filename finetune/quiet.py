"""Library output that is ours to silence, silenced in one place.

Two warnings come from the libraries talking to each other, not from anything a user can
change, and repeat until they bury the lines that matter:

* peft's "Setting `save_embedding_layers` to `True`": said on every checkpoint of a run that
  adapts ``embed_tokens`` (23 times in one demo log). Saving them is what such a run asks for.
* transformers' FutureWarning that ``is_gradient_checkpointing`` is deprecated: peft reads the
  old name whenever an adapter is attached, so on every evaluation.

``--quiet`` also switches off the progress bars the libraries draw themselves (transformers'
"Loading weights", datasets' and the hub's), besides our own.
"""

from __future__ import annotations

import warnings

NOISE: tuple[tuple[str, type[Warning]], ...] = (
    (r"Setting `save_embedding_layers` to `True`", UserWarning),
    (r"`is_gradient_checkpointing` is deprecated", FutureWarning),
)
"""(message regex, category) of the warnings silenced by :func:`silence_known_warnings`."""


def silence_known_warnings() -> None:
    """Ignore the warnings in :data:`NOISE` (idempotent; other warnings stay as they are)."""
    for message, category in NOISE:
        warnings.filterwarnings("ignore", message=message, category=category)


def quiet_progress() -> None:
    """Switch off the progress bars of transformers, datasets and huggingface_hub."""
    from huggingface_hub.utils import disable_progress_bars

    disable_progress_bars()
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover - transformers is a dependency
        pass
    try:
        import datasets

        datasets.disable_progress_bars()
    except ImportError:  # pragma: no cover - datasets is a dependency
        pass
