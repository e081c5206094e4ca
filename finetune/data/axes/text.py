"""Finding and swapping an axis's signals in text: one engine for every non-gender axis.

Words are matched on word boundaries of any script ("Markéta" is one word), case preserved
("Muslim" -> "Jewish"), accents folded for lookup ("Jose" finds "José"). First names count
only when capitalised. A curated name swaps within its row (so a race swap of "Lakisha" gives
"Emily": the row holds gender); any other decisive name swaps to a curated row chosen by a
stable hash (within the rows ``Axis.row_pool`` allows), so swapping it back does not give the
original name. The gender axis runs its pronoun rules in ``finetune.data.lexicon`` (its data
is in ``gender.py``).
"""

from __future__ import annotations

import re
import unicodedata
import zlib
from collections import Counter
from dataclasses import dataclass
from functools import cache

from finetune.data.axes.model import Axis

WORD = re.compile(r"[^\W\d_]+")


def fold(word: str) -> str:
    """Lower case without accents: the lookup key of a word ("José" -> "jose")."""
    decomposed = unicodedata.normalize("NFKD", word.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def case_like(template: str, word: str) -> str:
    """Return ``word`` in the letter case of ``template`` (UPPER, Title or lower)."""
    if template.isupper() and len(template) > 1:
        return word.upper()
    if template[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


@dataclass(frozen=True)
class _Tables:
    terms: dict[str, tuple[int, int]]
    """folded term -> (set index, group index)"""
    rows: dict[str, tuple[int, int]]
    """folded curated name -> (row index, group index)"""
    names: dict[str, int]
    """folded decisive name -> group index"""


@cache
def tables(axis: Axis) -> _Tables:
    """Lookup tables of an axis, built once per axis."""
    terms = {fold(w): (i, g) for i, words in enumerate(axis.term_sets) for g, w in enumerate(words)}
    rows = {fold(n): (i, g) for i, row in enumerate(axis.name_rows) for g, n in enumerate(row)}
    index = {g: i for i, g in enumerate(axis.groups)}
    names = {fold(n): index[g] for n, (g, share) in axis.names.items()
             if share >= axis.threshold and fold(n) not in terms}
    return _Tables(terms, rows, names)


def _signal(axis: Axis, word: str) -> tuple[str, int, int] | None:
    """(kind, index, group index) of a word, or None. Kinds: term, row, name."""
    t = tables(axis)
    key = fold(word)
    if key in t.terms:
        return ("term", *t.terms[key])
    if not word[:1].isupper():
        return None
    if key in t.rows:
        return ("row", *t.rows[key])
    if key in t.names:
        return ("name", -1, t.names[key])
    return None


def find(axis: Axis, text: str) -> list[tuple[str, str]]:
    """The words (and stated spans) of ``text`` that signal a group, as (text, group), in order."""
    found: list[tuple[int, str, str]] = []
    for match in WORD.finditer(text):
        hit = _signal(axis, match.group(0))
        if hit is not None:
            found.append((match.start(), match.group(0), axis.groups[hit[2]]))
    if axis.stated is not None:
        found += [(start, text[start:end], group) for start, end, group in axis.stated(text)]
    return [(word, group) for _, word, group in sorted(found)]


def infer(axis: Axis, text: str) -> str | None:
    """The group a text speaks about, by majority of its signals; None if none or a tie."""
    counts = Counter(group for _, group in find(axis, text))
    if not counts:
        return None
    (top, n), *rest = counts.most_common()
    return None if rest and rest[0][1] == n else top


def _row_partner(axis: Axis, key: str, target: int, offset: int) -> str | None:
    pool = axis.row_pool(key) if axis.row_pool is not None else tuple(range(len(axis.name_rows)))
    if not pool:
        return None
    row = pool[(zlib.crc32(key.encode("utf-8")) + offset) % len(pool)]
    return axis.name_rows[row][target]


def swap_to(axis: Axis, text: str, target: str, offset: int = 0) -> str:
    """``text`` with every signal of another group rewritten to ``target``.

    Args:
        axis: The axis.
        text: Any text.
        target: The group to rewrite to.
        offset: Shifts the hash choice of partners for non-curated names (for several
            distinct variants).
    """
    ti = axis.groups.index(target)

    def replace(match: re.Match[str]) -> str:
        word = match.group(0)
        hit = _signal(axis, word)
        if hit is None or hit[2] == ti:
            return word
        kind, index, _ = hit
        if kind == "term":
            return case_like(word, axis.term_sets[index][ti])
        if kind == "row":
            return case_like(word, axis.name_rows[index][ti])
        partner = _row_partner(axis, fold(word), ti, offset)
        return word if partner is None else case_like(word, partner)

    out = WORD.sub(replace, text)
    if axis.stated is None or axis.restate is None:
        return out
    pieces, last = [], 0
    for start, end, group in axis.stated(out):
        if group != target:
            pieces += [out[last:start], axis.restate(out[start:end], target)]
            last = end
    return "".join(pieces) + out[last:]


def variants(axis: Axis, text: str, k: int = 3) -> list[str]:
    """Counterfactual variants of ``text``: one per other group (at most ``k``), in group order.

    The text's own group (by majority) is skipped; a text with no signal has no variants.
    """
    found = find(axis, text)
    if not found:
        return []
    own = infer(axis, text)
    out = []
    for group in axis.groups:
        if group == own:
            continue
        swapped = swap_to(axis, text, group)
        if swapped != text and swapped not in out:
            out.append(swapped)
        if len(out) >= k:
            break
    return out
