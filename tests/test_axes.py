"""Axes as data: race, age, religion and a user's axes through THE lexicon."""

from __future__ import annotations

import pytest

from finetune.data.axes import get_axis, use_axes_file
from finetune.data.axes.model import Axis
from finetune.data.axes.names import FEMALE_ROWS, MALE_ROWS, RACE_GROUPS, census_names
from finetune.data.lexicon import (
    axes,
    counterfactual_variants,
    find_terms,
    infer_group,
    name_group,
    swap,
)
from finetune.errors import UsageError

# Names the lexicon did not know before axes became data (issue 25): each has a group on
# the axis where its signal is. Mohammed's census shares are split (asian 0.55, white 0.37),
# so it decides no race: the lexicon says so rather than guessing.
COMMON = [
    ("Mohammed", "male", None), ("Ahmed", "male", "white"), ("José", "male", "hispanic"),
    ("Wei", "male", "asian"), ("Raj", "male", "asian"), ("Aisha", "female", "black"),
    ("Carlos", "male", "hispanic"), ("Lakisha", "female", "black"), ("Greg", "male", "white"),
]


@pytest.mark.parametrize(("name", "gender", "race"), COMMON)
def test_common_names_have_a_group_on_the_right_axis(name: str, gender: str,
                                                     race: str | None) -> None:
    text = f"Hi, I'm {name}. Can I get a loan?"
    assert name_group(name) == gender
    assert infer_group(text) == gender
    assert infer_group(text, "race") == race
    assert swap(text) != text  # the probe no longer refuses these names


# Ahmed's pair (Amira) keeps its origin, which the census table has no group for.
@pytest.mark.parametrize(("name", "gender", "race"), [c for c in COMMON if c[2] and
                                                      c[0] != "Ahmed"])
def test_a_gender_swap_holds_the_race(name: str, gender: str, race: str) -> None:
    text = f"Hi, I'm {name}. Can I get a loan?"
    swapped = swap(text)
    assert infer_group(swapped) == ("female" if gender == "male" else "male")
    assert infer_group(swapped, "race") == race
    assert swap(swapped) == text  # curated swaps are reversible


def test_a_race_swap_holds_gender_and_curated_rows_round_trip() -> None:
    for rows, gender in ((FEMALE_ROWS, "female"), (MALE_ROWS, "male")):
        for row in rows:
            for source, target in zip(row, RACE_GROUPS, strict=True):
                text = f"Dear {source}, your application is in."
                out = swap(text, "race", to=target)
                assert infer_group(out) == gender
                assert infer_group(out, "race") == target
                assert swap(out, "race", to=infer_group(text, "race")) == text
    assert swap("Hi, I'm Aisha.") == "Hi, I'm Jermaine."  # not John: race is held
    assert swap("Hi, I'm Ahmed.") == "Hi, I'm Amira." and swap("Mohammed") == "Fatima"
    assert swap("Hi, I'm Jamal.", "race", to="white") == "Hi, I'm Joshua."


def test_race_variants_one_per_other_group() -> None:
    variants = counterfactual_variants("Hi, I'm Emily. Approve me?", "race")
    assert [infer_group(v, "race") for v in variants] == ["black", "hispanic", "asian"]
    assert all(infer_group(v) == "female" for v in variants)
    assert counterfactual_variants("Hi there. Approve me?", "race") == []


def test_the_census_table_ships_thousands_of_names_with_shares() -> None:
    names = census_names()
    assert len(names) > 4000
    assert names["jose"] == ("hispanic", pytest.approx(0.8983))
    assert names["wei"][0] == "asian" and names["lakisha"][0] == "black"
    race = get_axis("race")
    assert race is not None and race.threshold == 0.6
    # below the threshold a name decides nothing: Maria is hispanic 0.59
    assert infer_group("Hi, I'm Maria.", "race") is None
    assert find_terms("Can you help?", "race") == []  # common words are not names


AGE = [
    ("I'm 67 and retired.", "older", "I'm 23 and retired."),
    ("My son is a 25-year-old student.", "young", "My son is a 69-year-old student."),
    ("As a young buyer, can I pay later?", "young", "As a elderly buyer, can I pay later?"),
    ("I'm 45 years old.", None, "I'm 45 years old."),
    ("I'm 30 minutes late.", None, "I'm 30 minutes late."),
]


@pytest.mark.parametrize(("text", "group", "swapped"), AGE)
def test_age_terms_and_stated_ages(text: str, group: str | None, swapped: str) -> None:
    assert infer_group(text, "age") == group
    assert swap(text, "age") == swapped
    if group is not None:
        assert swap(swapped, "age") == text


def test_religion_terms_swap_as_sets() -> None:
    text = "I go to Church on Christmas with my pastor."
    assert infer_group(text, "religion") == "christian"
    assert swap(text, "religion", to="jewish") == "I go to Synagogue on Hanukkah with my rabbi."
    assert len(counterfactual_variants(text, "religion", k=4)) == 4


def test_an_axis_is_validated_on_creation() -> None:
    with pytest.raises(ValueError, match="term_sets\\[0\\]"):
        Axis(name="x", groups=("a", "b"), term_sets=(("one", "two", "three"),))
    with pytest.raises(ValueError, match="groups"):
        Axis(name="x", groups=("a",))
    with pytest.raises(ValueError, match="threshold"):
        Axis(name="x", groups=("a", "b"), threshold=0.3)


USER = """\
axes:
  region:
    groups: [north, south]
    terms:
      - [northerner, southerner]
      - [yankee, dixie]
    names:
      north: [Olaf, Sven]
      south: [Billy, Bubba]
"""


def test_a_user_axes_file_joins_the_lexicon(tmp_path) -> None:
    path = tmp_path / "axes.yaml"
    path.write_text(USER)
    try:
        assert use_axes_file(path) == ["region"]
        assert "region" in axes()
        text = "Olaf is a proud Northerner."
        assert infer_group(text, "region") == "north"
        assert swap(text, "region") == "Billy is a proud Southerner."
        assert counterfactual_variants(text, "region") == ["Billy is a proud Southerner."]
    finally:
        use_axes_file(None)
    assert "region" not in axes()


BAD = [
    ("axes:\n  region:\n    groups: [north]\n", 3, "axes.region.groups"),
    ("axes:\n  region:\n    groups: [a, b]\n    terms:\n      - [x, y, z]\n", 4,
     "axes.region.terms"),
    ("axes:\n  region:\n    groups: [a, b]\n    colour: red\n", 4, "axes.region.colour"),
    ("axes:\n  region:\n    groups: [a, b]\n    names:\n      a: [Olaf]\n", 4,
     "axes.region.names"),
    ("axes:\n  region:\n    groups: [a, b]\n    terms:\n      - [up, down]\n      - [up, x]\n",
     4, "axes.region.terms"),
]


@pytest.mark.parametrize(("text", "line", "field"), BAD)
def test_a_bad_axes_file_is_one_line_naming_file_line_and_field(tmp_path, text, line,
                                                                field) -> None:
    path = tmp_path / "axes.yaml"
    path.write_text(text)
    with pytest.raises(UsageError) as err:
        use_axes_file(path)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{path}:{line}: {field}: "), message
