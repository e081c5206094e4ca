"""Label extraction shared by the label scorer, the runner and the fairness module."""

from __future__ import annotations

import re

NONE = "<none>"
"""The label of a text in which the pattern finds nothing."""


def extract(text: str | None, pattern: str) -> str:
    """The label ``pattern`` finds in ``text``, lower-cased; ``<none>`` if nothing matches.

    The label is the pattern's first group, or the whole match when it has no group.
    """
    m = re.search(pattern, text or "")
    if m is None:
        return NONE
    value = m.group(1) if m.groups() else m.group(0)
    return (value or "").strip().lower() or NONE
