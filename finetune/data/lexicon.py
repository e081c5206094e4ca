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

Two name lists. ``FIRST_NAMES`` is the curated, paired list: the demo draws its customers
from it and the tiny base's tokenizer is trained on it, so it never changes. Beside it, the
first names that Faker (MIT licence) ships for many locales (``package_names``), loaded on
first use: thousands per group, so the audit and the probe know "Maria", "Priya" or "Jamal".
A package name listed for both groups ("Jordan", "Alex", "Andrea") is ambiguous and never
decides a group; one that is also a common English word ("Will", "May", "Can", "Hope") is
left out, since a capitalised sentence start would otherwise read as a name. A package name
swaps to a curated name of the other group chosen by a stable hash, so swapping it twice does
not give the original back (only curated names round-trip).
"""

from __future__ import annotations

import importlib
import re
import zlib
from collections import Counter
from functools import cache

from finetune.data.axes import axis_names, get_axis, use_axes_file
from finetune.data.axes import text as axis_text
from finetune.data.axes.builtin import RACE_THRESHOLD
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

__all__ = ["AXES", "axes", "counterfactual_variants", "find_terms", "groups", "infer_group",
           "name_group", "swap", "use_axes_file"]

AXES = ("gender", "name", "race", "age", "religion")
"""The built-in counterfactual axes: ``gender`` swaps terms, pronouns and names together
(keeping a name's race where the lexicon knows it); ``name`` swaps first names only, to
several names of the other gender; ``race`` swaps first names within gender; ``age`` swaps
words and stated ages; ``religion`` swaps words. A user's ``axes.yaml``
(:func:`use_axes_file`) adds its own; :func:`axes` lists them all."""

GROUPS: dict[str, tuple[str, ...]] = {"gender": ("male", "female")}

# Pairs (male, female); the swap is symmetric.
GENDER_TERMS: tuple[tuple[str, str], ...] = (
    ("he", "she"),
    ("himself", "herself"),
    ("man", "woman"),
    ("men", "women"),
    ("boy", "girl"),
    ("boys", "girls"),
    ("guy", "gal"),
    ("father", "mother"),
    ("fathers", "mothers"),
    ("dad", "mom"),
    ("dads", "moms"),
    ("daddy", "mommy"),
    ("husband", "wife"),
    ("husbands", "wives"),
    ("son", "daughter"),
    ("sons", "daughters"),
    ("brother", "sister"),
    ("brothers", "sisters"),
    ("uncle", "aunt"),
    ("uncles", "aunts"),
    ("nephew", "niece"),
    ("grandfather", "grandmother"),
    ("grandpa", "grandma"),
    ("grandson", "granddaughter"),
    ("gentleman", "lady"),
    ("gentlemen", "ladies"),
    ("king", "queen"),
    ("prince", "princess"),
    ("boyfriend", "girlfriend"),
    ("groom", "bride"),
    ("fiance", "fiancee"),
    ("sir", "madam"),
    ("mr", "ms"),
    ("male", "female"),
    ("males", "females"),
    ("masculine", "feminine"),
    ("paternal", "maternal"),
    ("businessman", "businesswoman"),
    ("salesman", "saleswoman"),
    ("chairman", "chairwoman"),
    ("spokesman", "spokeswoman"),
)

# Pronouns whose swap is not one-to-one: "his" -> "her" (before a noun) or "hers" (alone),
# "him" -> "her", "hers" -> "his", "her" -> "his" (possessive) or "him" (object), decided by
# the following word.
_PRONOUNS_MALE_TO_FEMALE = {"his": "her", "him": "her"}
_PRONOUNS_FEMALE_TO_MALE = {"hers": "his"}

# Words after which "her" is an object pronoun ("thank her.", "give her a ...", "let her know",
# "saw her yesterday"), not a possessive determiner ("her order"). A possessive is followed by
# a noun or adjective; these are the common words that are neither. The same words after
# "his" make it the pronoun "hers" ("the bag is his and ...").
_AFTER_OBJECT_HER = frozenset(
    """a an the to and or but nor for with from at in on of by as about than that this these
    those so if when while because then too also again back up down out over into onto off
    is was are were be been being will would can could should may might must do does did has
    have had some any every each all no one two three my your our their its her his him
    yesterday today tomorrow tonight now here there soon later already just directly
    immediately please know go see get find buy choose decide make take try come leave stay
    feel think speak understand wait sleep eat keep bring send tell give show ask""".split()
)
# First names by group, paired by position: the i-th male name maps to the i-th female name.
FIRST_NAMES: dict[str, tuple[str, ...]] = {
    "male": (
        "James", "John", "Robert", "Michael", "David", "William", "Richard", "Thomas",
        "Daniel", "Matthew", "Anthony", "Mark", "Steven", "Paul", "Andrew", "Joshua",
        "Kevin", "Brian", "George", "Edward", "Ryan", "Jacob", "Gary", "Eric",
    ),
    "female": (
        "Mary", "Patricia", "Jennifer", "Linda", "Elizabeth", "Barbara", "Susan", "Jessica",
        "Sarah", "Karen", "Nancy", "Lisa", "Betty", "Sandra", "Ashley", "Emily",
        "Donna", "Michelle", "Carol", "Amanda", "Melissa", "Deborah", "Laura", "Rebecca",
    ),
}


# Faker person-provider locales in Latin script whose first names are taken: English of six
# countries plus the US census list (``en``), Spanish, French, German, Italian, Portuguese,
# Dutch, Nordic, Polish, Romanian, Turkish, Indonesian, Irish and West/East African names.
NAME_LOCALES: tuple[str, ...] = (
    "en", "en_US", "en_GB", "en_IE", "en_IN", "en_KE", "en_NZ", "en_NG",
    "es_ES", "es_MX", "es_CO", "es_AR", "es_CL", "fr_FR", "fr_BE", "fr_CA",
    "de_DE", "de_AT", "de_CH", "it_IT", "pt_BR", "pt_PT", "nl_NL", "sv_SE", "da_DK",
    "no_NO", "fi_FI", "pl_PL", "ro_RO", "tr_TR", "id_ID", "ga_IE", "sw", "yo_NG", "ig_NG",
    "ha_NG",
)
AMBIGUOUS = "ambiguous"
"""The group of a package name listed for both genders: it never decides a group."""

# Capitalised words that open sentences or greet, missing from Faker's lists of common English
# words (2,239 words) but listed as first names in some locale.
_NOT_NAMES = frozenset(
    """hi hey hello dear thanks cheers regards sorry please yes okay sure just also so why how
    what who whom whose which where when then there here this that these those april june
    july august january march october monday friday sunday tuesday sincere hence con said
    skip edit unnamed server""".split()
)


@cache
def _tables() -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """Lower-case lookup tables: term -> swapped term, term -> group, name -> swapped name."""
    swap_terms: dict[str, str] = {}
    group_of: dict[str, str] = {}
    for male, female in GENDER_TERMS:
        swap_terms[male], swap_terms[female] = female, male
        group_of[male], group_of[female] = "male", "female"
    swap_terms.update(_PRONOUNS_MALE_TO_FEMALE)
    swap_terms.update(_PRONOUNS_FEMALE_TO_MALE)
    for word in ("his", "him"):
        group_of[word] = "male"
    for word in ("her", "hers"):
        group_of[word] = "female"
    names: dict[str, str] = {}
    for male, female in zip(FIRST_NAMES["male"], FIRST_NAMES["female"], strict=True):
        names[male.lower()], names[female.lower()] = female, male
        group_of[male.lower()], group_of[female.lower()] = "male", "female"
    return swap_terms, group_of, names


@cache
def common_words() -> frozenset[str]:
    """Lower-case common English words (Faker's word lists, 2,239 words) and greetings.

    They are never names, since a capitalised sentence start would otherwise read as one
    ("Can", "Will").
    """
    from faker.providers.lorem.en_US import Provider as EnglishWords

    words = set(_NOT_NAMES)
    for listed in (EnglishWords.word_list, *EnglishWords.parts_of_speech.values()):
        words.update(word.lower() for word in listed)
    return frozenset(words)


@cache
def package_names() -> dict[str, str]:
    """First names shipped by Faker: lower-case name -> ``male``, ``female`` or ``ambiguous``.

    Curated names, gendered terms, pronouns, common English words (Faker's own English word
    lists) and names that are not a single word of at least three letters are left out.
    Loaded on first use (reading 36 locales takes about a third of a second) and cached.
    """
    swap_terms, group_of, _ = _tables()
    skip = set(group_of) | set(swap_terms) | common_words()
    groups: dict[str, set[str]] = {}
    for locale in NAME_LOCALES:
        provider = importlib.import_module(f"faker.providers.person.{locale}").Provider
        for group in ("male", "female"):
            for name in getattr(provider, f"first_names_{group}", None) or ():
                if len(name) >= 3 and name.isalpha() and name[0].isupper():
                    groups.setdefault(name.lower(), set()).add(group)
    return {
        name: found.pop() if len(found) == 1 else AMBIGUOUS
        for name, found in sorted(groups.items())
        if name not in skip
    }


def name_group(name: str) -> str | None:
    """The group of a first name: curated first, then the package list; None if unknown.

    Returns:
        ``male``, ``female``, ``ambiguous`` (a package name listed for both) or None.
    """
    lower = name.lower()
    _, group_of, names = _tables()
    if lower in names:
        return group_of[lower]
    return core_gender(fold(name)) or package_names().get(lower)


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
    return following is None or following in _AFTER_OBJECT_HER


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
    swap_terms, _, names = _tables()
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
    _, group_of, names = _tables()
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
    _, group_of, _ = _tables()
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
