"""THE demographic lexicon: gendered terms, pronouns and first names by group.

One module, used by everyone who needs demographics: the data audit (which group does a row
speak about), counterfactual re-balancing (swap every demographic term), counterfactual
evaluation (variants of each held-out prompt) and the app's live probe.

Swaps are word-boundary aware ("Mark" never matches inside "Markus"), case preserving
("He" -> "She", "HIS" -> "HER") and use one consistent name table (the i-th male name <-> the
i-th female name), so swapping twice gives the original text back. The ambiguous pronouns are
resolved from the next word: "her" is possessive before a noun ("her order" -> "his order")
and an object otherwise ("thank her." -> "thank him.", "let her know" -> "let him know");
"his" alone becomes "hers" ("the bag is his." -> "the bag is hers."). First names are only
names when capitalised ("mark my order" stays), so a capitalised verb that is also a name
("Mark my words") is swapped: a known limit of a word list without a parser.

The gender data (word pairs, pronouns, the curated ``FIRST_NAMES`` and the first names
Faker ships, ``package_names``) lives in ``finetune.data.axes.gender`` and is re-exported
here. A package name swaps to a curated name of the other group chosen by a stable hash, so
swapping it twice does not give the original back (only curated names round-trip).
"""

from __future__ import annotations

import re
import zlib
from collections import Counter
from functools import cache

from finetune.data.axes import axis_names, get_axis, use_axes_file
from finetune.data.axes import text as axis_text
from finetune.data.axes.builtin import RACE_THRESHOLD
from finetune.data.axes.gender import (
    AFTER_OBJECT_HER,
    AMBIGUOUS,
    FIRST_NAMES,
    GENDER_TERMS,
    NAME_LOCALES,
    common_words,
    lookup_tables,
    name_group,
    package_names,
)
from finetune.data.axes.names import (
    FEMALE_ROWS,
    MALE_ROWS,
    RACE_GROUPS,
    census_names,
    core,
    core_gender,
    core_gender_partner,
)
from finetune.data.axes.text import case_like as _case_like
from finetune.data.axes.text import fold

__all__ = ["AMBIGUOUS", "AXES", "FIRST_NAMES", "GENDER_TERMS", "NAME_LOCALES", "axes",
           "common_words", "counterfactual_variants", "find_terms", "groups", "infer_group",
           "name_group", "package_names", "swap", "use_axes_file"]

AXES = ("gender", "name", "race", "age", "religion")
"""The built-in counterfactual axes: ``gender`` swaps terms, pronouns and names together
(keeping a name's race where the lexicon knows it); ``name`` swaps first names only, to
several names of the other gender; ``race`` swaps first names within gender; ``age`` swaps
words and stated ages; ``religion`` swaps words. A user's ``axes.yaml``
(:func:`use_axes_file`) adds its own; :func:`axes` lists them all."""

GROUPS: dict[str, tuple[str, ...]] = {"gender": ("male", "female")}


def _partner_pool(lower: str, group: str) -> tuple[str, ...]:
    """Curated names of the other gender for a package name.

    Of its race when the census table gives it one other than white (above the threshold),
    else the demo's table.
    """
    other = "female" if group == "male" else "male"
    race, share = census_names().get(fold(lower), (None, 0.0))
    if race is not None and race != "white" and share >= RACE_THRESHOLD:
        rows = FEMALE_ROWS if other == "female" else MALE_ROWS
        return tuple(row[RACE_GROUPS.index(race)] for row in rows)
    return FIRST_NAMES[other]


def _package_partner(lower: str, group: str, offset: int = 0) -> str:
    """A curated name of the other group for a package name, by a stable hash of the name."""
    pool = _partner_pool(lower, group)
    return pool[(zlib.crc32(lower.encode("utf-8")) + offset) % len(pool)]


# Letters of any script: "Markéta" is one word, so "Mark" never matches inside it.
_WORD = re.compile(r"[^\W\d_]+")


def _next_word(text: str, end: int) -> str | None:
    """The word that follows position ``end``, or None when punctuation or the end comes first."""
    match = re.match(r"\s*([^\W\d_]+)", text[end:])
    if match is None:
        return None
    between = text[end : end + match.start(1)]
    return match.group(1).lower() if between.strip() == "" else None


def _is_pronoun_use(text: str, end: int) -> bool:
    """True when the word ending at ``end`` stands alone (object "her", pronoun "his")."""
    following = _next_word(text, end)
    return following is None or following in AFTER_OBJECT_HER


def _swap_her(text: str, end: int) -> str:
    return "him" if _is_pronoun_use(text, end) else "his"


def axes() -> tuple[str, ...]:
    """Every axis the lexicon knows now: the built-in ones, then the user's (``axes.yaml``)."""
    return axis_names(AXES)


def groups(axis: str) -> tuple[str, ...]:
    """The groups of ``axis`` (``name`` has gender's)."""
    if _own(axis):
        return GROUPS["gender"]
    return _generic(axis).groups


def _own(axis: str) -> bool:
    """Whether ``axis`` runs on this module's gender rules rather than the generic engine."""
    return axis in ("gender", "name") and get_axis(axis) is None


def _generic(axis: str):  # noqa: ANN202 - an Axis; imported lazily by callers that need it
    found = get_axis(axis)
    if found is None:
        raise ValueError(f"unknown axis {axis!r}; choose one of {', '.join(axes())}")
    return found


def swap(text: str, axis: str = "gender", to: str | None = None) -> str:
    """Swap every demographic term of ``axis`` in ``text``.

    Args:
        text: Any text.
        axis: ``gender`` swaps gendered terms, pronouns and first names (a name to one of the
            same race or origin where the lexicon knows it); ``name`` swaps first names only;
            any other axis (``race``, ``age``, ``religion``, a user's) rewrites its signals.
        to: The target group on a generic axis; default the group after the text's own (the
            other group on a two-group axis).

    Returns:
        The counterfactual text; words not in the lexicon and ambiguous names are left
        untouched.
    """
    if not _own(axis):
        spec = _generic(axis)
        if to is None:
            own = axis_text.infer(spec, text)
            found = axis_text.find(spec, text)
            if not found:
                return text
            to = spec.other(own or found[0][1])
        elif to not in spec.groups:
            raise ValueError(f"unknown group {to!r} of axis {axis}; choose one of "
                             f"{', '.join(spec.groups)}")
        return axis_text.swap_to(spec, text, to)
    swap_terms, _, names = lookup_tables()
    package = package_names()

    def replace(match: re.Match[str]) -> str:
        word = match.group(0)
        lower = word.lower()
        if lower in names:
            return _case_like(word, names[lower]) if word[0].isupper() else word
        partner = core_gender_partner(fold(word)) if word[0].isupper() else None
        if partner is not None:
            return _case_like(word, partner)
        if word[0].isupper() and lower in package:
            group = package[lower]
            if group != AMBIGUOUS:
                return _case_like(word, _package_partner(lower, group))
        if axis != "gender":
            return word
        if lower == "her":
            return _case_like(word, _swap_her(text, match.end()))
        if lower == "his" and _is_pronoun_use(text, match.end()):
            return _case_like(word, "hers")
        if lower in swap_terms:
            return _case_like(word, swap_terms[lower])
        return word

    return _WORD.sub(replace, text)


def find_terms(text: str, axis: str = "gender") -> list[tuple[str, str]]:
    """List the demographic words of ``text`` as (word, group) pairs, in order.

    Package names count when capitalised and not ambiguous. On a generic axis the words
    are its terms, names and stated spans (``"67"`` of "I'm 67").
    """
    if not _own(axis):
        return axis_text.find(_generic(axis), text)
    _, group_of, names = lookup_tables()
    package = package_names()
    curated = core()
    found = []
    for word in _WORD.findall(text):  # findall + a set lookup: the audit reads every row
        lower = word.lower()
        if lower not in group_of:
            if word[0].isupper():
                gender = core_gender(fold(word)) if fold(word) in curated or \
                    package.get(lower) in (None, AMBIGUOUS) else None
                if gender is not None:
                    found.append((word, gender))
                    continue
            group = package.get(lower)
            if group is not None and group != AMBIGUOUS and word[0].isupper():
                found.append((word, group))  # ambiguous names decide nothing
            continue
        if lower in names and not word[0].isupper():
            continue  # "mark my order" is not Mark
        if axis == "name" and lower not in names:
            continue
        found.append((word, group_of[lower]))
    return found


def infer_group(text: str, axis: str = "gender") -> str | None:
    """The group a text speaks about, by majority of its demographic words; None if unclear."""
    if not _own(axis):
        return axis_text.infer(_generic(axis), text)
    counts = Counter(group for _, group in find_terms(text, axis))
    if not counts:
        return None
    (top, n), *rest = counts.most_common()
    if rest and rest[0][1] == n:
        return None
    return top


def name_variants(text: str, k: int = 3) -> list[str]:
    """Variants of ``text`` with its first names replaced by ``k`` names of the other group.

    The i-th variant maps every name to the name i places after its counterpart, so the
    variants differ from each other and stay deterministic. A package name's counterpart is
    its curated partner (see ``swap``).
    """
    _, group_of, _ = lookup_tables()
    variants = []
    for i in range(k):

        def replace(match: re.Match[str], i: int = i) -> str:
            word = match.group(0)
            lower = word.lower()
            if not word[0].isupper():
                return word
            if lower not in _name_index():
                partner = core_gender_partner(fold(word))
                if partner is not None:
                    return _case_like(word, _core_variant(fold(word), i))
                group = package_names().get(lower) if lower not in group_of else None
                if group not in GROUPS["gender"]:
                    return word
                return _case_like(word, _package_partner(lower, group, i))
            group = group_of[lower]
            other = "female" if group == "male" else "male"
            pool = FIRST_NAMES[other]
            return _case_like(word, pool[(_name_index()[lower] + i) % len(pool)])

        variants.append(_WORD.sub(replace, text))
    return [v for v in dict.fromkeys(variants) if v != text]


def _core_variant(key: str, offset: int) -> str:
    """The ``offset``-th curated name after a curated name's partner.

    Other gender, same race (or, for a name curated for its gender only, its partner).
    """
    hit = core().get(key)
    if hit is None:
        partner = core_gender_partner(key)
        assert partner is not None
        return partner
    gender, race, i = hit
    rows = MALE_ROWS if gender == "female" else FEMALE_ROWS
    return rows[(i + offset) % len(rows)][RACE_GROUPS.index(race)]


@cache
def _name_index() -> dict[str, int]:
    return {
        name.lower(): i for names in FIRST_NAMES.values() for i, name in enumerate(names)
    }


def counterfactual_variants(text: str, axis: str = "gender", k: int = 3) -> list[str]:
    """Counterfactual variants of ``text`` along ``axis``; empty when nothing would change.

    ``gender`` gives one swap; ``name`` ``k`` names of the other gender; a generic axis one
    variant per other group (at most ``k``), each holding every other axis where it can.
    """
    if axis == "gender" and _own(axis):
        swapped = swap(text, "gender")
        return [swapped] if swapped != text else []
    if axis == "name" and _own(axis):
        return name_variants(text, k)
    return axis_text.variants(_generic(axis), text, k)
