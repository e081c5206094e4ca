"""THE lexicon: swaps on tricky cases, group inference, name variants."""

from __future__ import annotations

import pytest

from finetune.data.lexicon import (
    FIRST_NAMES,
    GENDER_TERMS,
    counterfactual_variants,
    find_terms,
    infer_group,
    name_variants,
    swap,
)

CASES = [
    # possessive vs object "her", pronoun "his"
    ("Her order is late.", "His order is late."),
    ("Thank her.", "Thank him."),
    ("Give her a call.", "Give him a call."),
    ("I saw her yesterday.", "I saw him yesterday."),
    ("Let her know her refund is ready.", "Let him know his refund is ready."),
    ("I told him his order shipped.", "I told her her order shipped."),
    ("The bag is his.", "The bag is hers."),
    ("That is her book, not his.", "That is his book, not hers."),
    ("Hers is blue.", "His is blue."),
    # capitalised names, possessive names, names only when capitalised
    ("Hi, I'm James.", "Hi, I'm Mary."),
    ("Mary's laptop broke.", "James's laptop broke."),
    ("Please mark my order as urgent.", "Please mark my order as urgent."),
    # names inside other words, and names not in the pool, stay
    ("Markus and Alice met Mark and Jennifer.", "Markus and Alice met Lisa and Robert."),
    ("Jamestown is far; Maryland too.", "Jamestown is far; Maryland too."),
    ("The manager sent a mandate.", "The manager sent a mandate."),
    # case preserved
    ("HE SAID HIS ORDER", "SHE SAID HER ORDER"),
    ("He asked his wife.", "She asked her husband."),
    ("JAMES", "MARY"),
    ("My Father and my mom", "My Mother and my dad"),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_swap_tricky_cases(text: str, expected: str) -> None:
    assert swap(text) == expected


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_double_swap_returns_original(text: str, expected: str) -> None:
    assert swap(swap(text)) == text


def test_every_term_and_name_round_trips() -> None:
    for male, female in GENDER_TERMS:
        for a, b in ((male, female), (female, male)):
            for word in (a, a.capitalize(), a.upper()):
                text = f"the {word} is here"
                swapped = swap(text)
                assert swapped.lower() == f"the {b} is here"
                assert swap(swapped) == text
    for male, female in zip(FIRST_NAMES["male"], FIRST_NAMES["female"], strict=True):
        assert swap(f"{male} met {female}.") == f"{female} met {male}."


def test_name_axis_swaps_names_only() -> None:
    assert swap("He is James.", "name") == "He is Mary."
    with pytest.raises(ValueError):
        swap("x", "age")


def test_find_terms_and_infer_group() -> None:
    assert find_terms("Hi, I'm James and my wife") == [("James", "male"), ("wife", "female")]
    assert infer_group("Hello, this is Carol. Where is my order?") == "female"
    assert infer_group("He wants his refund") == "male"
    assert infer_group("James and his sister Mary") is None  # two terms each: a tie
    assert infer_group("James, his son and his sister") == "male"
    assert infer_group("Where is my order?") is None


def test_name_variants_are_distinct_and_deterministic() -> None:
    text = "Hi, I'm James. Tell Mary."
    variants = name_variants(text, k=3)
    assert len(variants) == 3 and len(set(variants)) == 3
    assert variants == name_variants(text, k=3)
    for v in variants:  # each name replaced by a name of the other group, order kept
        assert [g for _, g in find_terms(v)] == ["female", "male"]
    assert counterfactual_variants("Where is my order?") == []
    assert counterfactual_variants("He is here.") == ["She is here."]
