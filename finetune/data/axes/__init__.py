"""Axes as data: the built-in axes and a user's own, by name.

``finetune.data.lexicon`` is the public API (``infer_group``, ``swap``,
``counterfactual_variants``, ``find_terms`` for any axis); this package holds the model
(:class:`~finetune.data.axes.model.Axis`), the built-in axes, the name tables and the user's
``axes.yaml``. A user file is registered for the process with :func:`use_axes_file`; its axes
join (or replace) the built-in ones everywhere the lexicon is asked.
"""

from __future__ import annotations

from pathlib import Path

from finetune.data.axes.builtin import BUILTIN
from finetune.data.axes.model import Axis

__all__ = ["Axis", "axis_names", "get_axis", "use_axes_file", "user_axes"]

_USER: dict[str, Axis] = {}
_USER_FILE: list[str] = []


def use_axes_file(path: str | Path | None) -> list[str]:
    """Register the axes of a user's ``axes.yaml`` (None clears them); returns their names.

    Raises:
        InputError / UsageError: the file is unreadable or wrong (one line, exit 2).
    """
    from finetune.data.axes.userfile import load_axes_file

    loaded = {} if path is None else load_axes_file(path)
    _USER.clear()
    _USER.update(loaded)
    _USER_FILE[:] = [] if path is None else [str(path)]
    return list(loaded)


def user_axes() -> dict[str, Axis]:
    """The registered user axes, by name."""
    return dict(_USER)


def axes_file() -> str | None:
    """The registered user axes file, or None."""
    return _USER_FILE[0] if _USER_FILE else None


def get_axis(name: str) -> Axis | None:
    """The generic axis called ``name`` (a user's first), or None.

    ``gender`` and ``name`` are the lexicon's own unless a user file replaces them.
    """
    if name in _USER:
        return _USER[name]
    factory = BUILTIN.get(name)
    return factory() if factory is not None else None


def axis_names(builtin: tuple[str, ...]) -> tuple[str, ...]:
    """``builtin`` followed by the user's axes not among them."""
    return builtin + tuple(n for n in _USER if n not in builtin)
