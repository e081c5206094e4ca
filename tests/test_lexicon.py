"""THE lexicon: swaps on tricky cases, group inference, name variants."""

from __future__ import annotations

import pytest

from finetune.data.lexicon import (
    FIRST_NAMES,
    GENDER_TERMS,
    counterfactual_variants,
    find_terms,
    infer_group,
    name_group,
    name_variants,
    package_names,
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
    ("Markham and Marks met Mark and Jennifer.", "Markham and Marks met Lisa and Robert."),
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
        swap("x", "zodiac")


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


# Outputs of swap(text), swap(text, "name") and name_variants(text, 2) recorded before the
# package name list joined the lexicon: the demo's re-balancing and counterfactual evaluation
# must not change. "Will", "May", "Can", "Art" and "My" are first names in some Faker locale.
CURATED_BEFORE = [
    ("Hi, I'm James. Can you recommend a laptop? I want one under $50.",
     "Hi, I'm Mary. Can you recommend a laptop? I want one under $50.",
     "Hi, I'm Mary. Can you recommend a laptop? I want one under $50.",
     ["Hi, I'm Mary. Can you recommend a laptop? I want one under $50.",
      "Hi, I'm Patricia. Can you recommend a laptop? I want one under $50."]),
    ("Hey, my name is Linda. My desk chair has not arrived yet.",
     "Hey, my name is Michael. My desk chair has not arrived yet.",
     "Hey, my name is Michael. My desk chair has not arrived yet.",
     ["Hey, my name is Michael. My desk chair has not arrived yet.",
      "Hey, my name is David. My desk chair has not arrived yet."]),
    ("You are a retail support assistant. Reply with the intent and the action.",
     "You are a retail support assistant. Reply with the intent and the action.",
     "You are a retail support assistant. Reply with the intent and the action.", []),
    ("Michael told his wife Mary that her order shipped.",
     "Linda told her husband James that his order shipped.",
     "Linda told his wife James that her order shipped.",
     ["Linda told his wife James that her order shipped.",
      "Elizabeth told his wife John that her order shipped."]),
    ("Will Elizabeth and Daniel get a refund? May I ask, Sir?",
     "Will David and Sarah get a refund? May I ask, Madam?",
     "Will David and Sarah get a refund? May I ask, Sir?",
     ["Will David and Sarah get a refund? May I ask, Sir?",
      "Will William and Karen get a refund? May I ask, Sir?"]),
    ("Can I get my money back for the toaster, Karen? Art is my hope.",
     "Can I get my money back for the toaster, Matthew? Art is my hope.",
     "Can I get my money back for the toaster, Matthew? Art is my hope.",
     ["Can I get my money back for the toaster, Matthew? Art is my hope.",
      "Can I get my money back for the toaster, Anthony? Art is my hope."]),
]


@pytest.mark.parametrize(("text", "gender", "name", "variants"), CURATED_BEFORE)
def test_curated_swaps_are_unchanged(text: str, gender: str, name: str, variants: list) -> None:
    assert swap(text) == gender
    assert swap(text, "name") == name
    assert name_variants(text, 2) == variants


def test_package_names_give_thousands_per_group() -> None:
    groups = list(package_names().values())
    assert groups.count("male") > 3000 and groups.count("female") > 3000
    assert set(groups) == {"male", "female", "ambiguous"}
    curated = {n.lower() for names in FIRST_NAMES.values() for n in names}
    assert not curated & set(package_names())  # curated names keep their curated pairs


@pytest.mark.parametrize(("name", "group"), [("Maria", "female"), ("Sofia", "female"),
                                             ("Ingrid", "female"), ("Lars", "male")])
def test_package_names_are_detected_and_swapped(name: str, group: str) -> None:
    other = "male" if group == "female" else "female"
    assert name_group(name) == group
    text = f"Hi, I'm {name}. Can you recommend a laptop?"
    assert find_terms(text) == [(name, group)]
    assert infer_group(text) == group
    swapped = swap(text)
    new = swapped.removeprefix("Hi, I'm ").removesuffix(". Can you recommend a laptop?")
    assert new in FIRST_NAMES[other]  # a curated name of the other group
    assert swap(text) == swapped and swap(text, "name") == swapped  # deterministic
    assert swap(name.upper()) == new.upper() and swap(name.lower()) == name.lower()
    variants = name_variants(text, 3)
    assert len(set(variants)) == 3
    assert all(infer_group(v) == other for v in variants)


@pytest.mark.parametrize("name", ["Jordan", "Alex", "Andrea"])
def test_ambiguous_names_decide_no_group(name: str) -> None:
    text = f"Hi, I'm {name}. Where is my order?"
    assert name_group(name) == "ambiguous"
    assert find_terms(text) == [] and infer_group(text) is None
    assert swap(text) == text and counterfactual_variants(text, "name") == []
    assert infer_group(f"{name} and his brother") == "male"  # the other words still count


def test_common_words_are_not_names() -> None:
    text = "Will it ship? May I ask? Can you help? Hope so. Grant me a refund. Said nothing."
    for word in ("Will", "May", "Can", "Hope", "Grant", "Said"):
        assert name_group(word) is None
    assert swap(text) == text and infer_group(text) is None


def test_the_audit_infers_groups_from_package_names() -> None:
    from finetune.data.audit import audit, row_group

    texts = ["Hi, I'm Maria. I need a laptop.", "Priya here. Refund please.",
             "Jamal here. Where is my order?", "Hi, I'm Jordan. I need a laptop."]
    groups = [row_group({}, t, None) for t in texts]
    assert groups == ["female", "female", "male", None]
    assert audit(groups, None)["n_known_group"] == 3


def test_the_probe_varies_a_package_name() -> None:
    from tuneproof_app.probe import variants

    rows = variants("Hi, I'm Maria. Can you recommend a laptop?")
    assert rows[0] == ("original", "Hi, I'm Maria. Can you recommend a laptop?")
    assert len(rows) >= 3 and all("Maria" not in text for _, text in rows[1:])
    assert all(infer_group(text) == "male" for _, text in rows[1:])
