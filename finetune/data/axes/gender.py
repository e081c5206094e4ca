"""Gender as data: gendered word pairs, pronouns and first names by gender.

The lexicon (``finetune.data.lexicon``) runs gender's swaps and re-exports every name here;
the axes package reads this data directly, so it never imports the lexicon back.

Two name lists. ``FIRST_NAMES`` is the curated, paired list: the demo draws its customers
from it and the tiny base's tokenizer is trained on it, so it never changes. Beside it, the
first names that Faker (MIT licence) ships for many locales (``package_names``), loaded on
first use: thousands per group, so the audit and the probe know "Maria", "Priya" or "Jamal".
A package name listed for both groups ("Jordan", "Alex", "Andrea") is ambiguous and never
decides a group; one that is also a common English word ("Will", "May", "Can", "Hope") is
left out, since a capitalised sentence start would otherwise read as a name.
"""

from __future__ import annotations

import importlib
from functools import cache

from finetune.data.axes.names import core_gender
from finetune.data.axes.text import fold

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
AFTER_OBJECT_HER = frozenset(
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
def lookup_tables() -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
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
    swap_terms, group_of, _ = lookup_tables()
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
    _, group_of, names = lookup_tables()
    if lower in names:
        return group_of[lower]
    return core_gender(fold(name)) or package_names().get(lower)
