"""An axis as data: its groups and what signals each group in a text.

An :class:`Axis` holds, per group, the words and first names that signal it:

* ``term_sets``: aligned word sets, one word per group in the order of ``groups``
  (``("christian", "muslim", "jewish", ...)``); a swap to group *g* takes the set's *g*-th word.
* ``names``: first names with the share of their group (``"jose": ("hispanic", 0.898)``); a
  name decides its group only when the share is at least ``threshold``.
* ``name_rows``: curated names aligned by group (``("Emily", "Lakisha", ...)``); a swap keeps
  the row, so whatever else a row holds constant (the curated rows hold gender) stays.
* ``stated`` / ``restate``: optional hooks for signals that are not words (a stated age).

An axis is validated on creation; a bad one raises ``ValueError`` with the field named.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

Stated = Callable[[str], list[tuple[int, int, str]]]
"""``text -> [(start, end, group), ...]``: the spans of a text that signal a group."""
Restate = Callable[[str, str], str]
"""``(span text, target group) -> replacement``."""
RowPool = Callable[[str], tuple[int, ...]]
"""``lower-case name -> indices of name_rows`` to draw a partner from for a non-curated name."""


@dataclass(frozen=True, eq=False)  # identity hash: lookup tables are cached per axis
class Axis:
    """One demographic (or user-defined) axis.

    Attributes:
        name: The axis name (``race``, ``age``, ``region``...).
        groups: The groups, at least two, in a fixed order.
        term_sets: Aligned words, one per group.
        names: Lower-case first name -> (group, share of that group).
        threshold: Smallest share with which a name decides its group.
        name_rows: Curated names aligned by group (the swappable names).
        stated: Optional finder of non-word signals (stated ages).
        restate: Optional rewriter of a ``stated`` span to another group.
        row_pool: Optional chooser of the rows a non-curated name may swap to.
        source: Where the axis's words and names come from, for reports and docs.
    """

    name: str
    groups: tuple[str, ...]
    term_sets: tuple[tuple[str, ...], ...] = ()
    names: Mapping[str, tuple[str, float]] = field(default_factory=dict)
    threshold: float = 0.6
    name_rows: tuple[tuple[str, ...], ...] = ()
    stated: Stated | None = None
    restate: Restate | None = None
    row_pool: RowPool | None = None
    source: str = ""

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "").isalnum():
            raise ValueError(f"name: {self.name!r} must be a word (letters, digits, _)")
        if len(self.groups) < 2 or len(set(self.groups)) != len(self.groups):
            raise ValueError(f"groups: need at least two distinct groups, got {self.groups}")
        if not 0.5 < self.threshold <= 1.0:
            raise ValueError(f"threshold: must be in (0.5, 1], got {self.threshold}")
        seen: dict[str, int] = {}
        for i, words in enumerate(self.term_sets):
            if len(words) != len(self.groups):
                raise ValueError(f"term_sets[{i}]: {len(words)} words for "
                                 f"{len(self.groups)} groups")
            for word in words:
                lower = word.lower()
                if not word.isalpha():
                    raise ValueError(f"term_sets[{i}]: {word!r} is not a single word")
                if lower in seen:
                    raise ValueError(f"term_sets[{i}]: {word!r} is already in "
                                     f"term_sets[{seen[lower]}]")
                seen[lower] = i
        for i, row in enumerate(self.name_rows):
            if len(row) != len(self.groups):
                raise ValueError(f"name_rows[{i}]: {len(row)} names for "
                                 f"{len(self.groups)} groups")
        for name, (group, share) in self.names.items():
            if group not in self.groups:
                raise ValueError(f"names[{name}]: group {group!r} is not one of the groups")
            if not 0.0 <= share <= 1.0:
                raise ValueError(f"names[{name}]: share {share} is not in [0, 1]")
        if (self.stated is None) != (self.restate is None):
            raise ValueError("stated: needs restate too (and restate needs stated)")

    @property
    def binary(self) -> bool:
        """Whether the axis has exactly two groups (then a swap has one target)."""
        return len(self.groups) == 2

    def other(self, group: str) -> str:
        """The next group after ``group`` in order (the other one, on a binary axis)."""
        i = self.groups.index(group)
        return self.groups[(i + 1) % len(self.groups)]
