"""The app's first screen: two sentences generated from model cards and the evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from finetune.card import model_card
from tuneproof_app.intro import Card, intro, pick_results, read_card


def _run(root: Path, name: str, data: str, method: str = "lora", base: str = "tiny") -> Path:
    run = {"name": name, "base": base, "method": method, "train_data": f"/x/{data}",
           "trainable_params": 1, "total_params": 2}
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "README.md").write_text(model_card(None, run))  # the card training writes
    return folder


def _gate(key: str, value: float, op: str, threshold: float, passed: bool) -> dict:
    return {"gate": f"{key} {op} {threshold}", "key": key, "op": op, "threshold": threshold,
            "value": value, "passed": passed, "reason": "",
            "status": "passes with evidence" if passed else "fails"}


def _results(flip_fails: bool = True) -> dict:
    flip = _gate("counterfactual.flip_rate", 0.81, "<=", 0.05, False)
    acc_fail = _gate("intent_accuracy", 0.4, ">=", 0.9, False)
    return {
        "task": {"name": "t", "n_rows": 300, "scorers": [{"name": "intent_accuracy"}]},
        "models": {
            "base": {"kind": "base", "metrics": {"intent_accuracy": {"value": 0.0}}},
            "biased": {"kind": "adapter", "metrics": {"intent_accuracy": {"value": 1.0}},
                       "fairness": {"counterfactual": {"axes": {"gender": {"flip_rate": 0.81}}}},
                       "gates": [_gate("intent_accuracy", 1.0, ">=", 0.9, True),
                                 flip if flip_fails else acc_fail]},
            "fair": {"kind": "adapter", "metrics": {"intent_accuracy": {"value": 1.0}},
                     "gates": [_gate("intent_accuracy", 1.0, ">=", 0.9, True)]},
        },
        "comparisons": [],
        "gates": {"checked": ["biased", "fair"]},
    }


def test_cards_are_read_from_the_runs_own_model_cards(tmp_path):
    run = _run(tmp_path, "fair", "train.balanced.jsonl", method="qlora", base="smollm2")
    assert read_card("fair", run) == Card("fair", "qlora", "smollm2", "train.balanced.jsonl")
    bare = tmp_path / "bare"
    bare.mkdir()  # no card: run.json's fields
    assert read_card("bare", bare, {"method": "full", "base": "b", "train_data": "/d/own.csv"}) \
        == Card("bare", "full", "b", "own.csv")


def test_two_sentences_name_each_model_the_finding_and_where_to_click(tmp_path):
    cards = [read_card(n, _run(tmp_path, n, d)) for n, d in
             (("biased", "train.jsonl"), ("fair", "train.balanced.jsonl"))]
    first, second = intro("tiny", cards, _results())
    assert first == ("`biased` and `fair` are LoRA adapters of the base `tiny` (a random-weights "
                     "test model, so its answers are noise), trained with tuneproof (`biased` "
                     "on train.jsonl, `fair` on train.balanced.jsonl), and answer beside it.")
    assert second.startswith("The evaluation on 300 held-out prompts ships `fair` and does "
                             "not ship `biased` (biased changes its answer on 81% of gender ")
    assert "click **Show me the bias** on the Compare tab" in second
    assert second.endswith("then open **Reports** for the numbers.")


@pytest.mark.parametrize(("results", "cards", "expected"), [
    (None, ["mine"], ["`mine` is a LoRA adapter of the base `my-model`",
                      "No evaluation is loaded", "--results DIR"]),
    ("accuracy fails", ["biased", "fair"], ["does not ship `biased` (biased intent accuracy",
                                            "send one message on the **Compare** tab"]),
    (None, [], ["Only the base `my-model` answers here", "No evaluation is loaded"]),
])
def test_other_setups_get_their_own_sentences(tmp_path, results, cards, expected):
    found = _results(flip_fails=False) if results else None
    made = [read_card(n, _run(tmp_path, n, "own.jsonl")) for n in cards]
    sentences = intro("my-model", made, found)
    assert len(sentences) == 2 and all(s.endswith(".") for s in sentences)
    text = " ".join(sentences)
    for part in expected:
        assert part in text
    assert "Show me the bias" not in text  # no flip-rate finding to show


def test_pick_results_takes_an_evaluation_of_the_served_adapters(tmp_path):
    other, mine = tmp_path / "other", tmp_path / "mine"
    for folder, models in ((other, {"base": {}, "x": {}}), (mine, {"base": {}, "fair": {}})):
        folder.mkdir()
        (folder / "results.json").write_text(json.dumps({"models": models}))
    found = {"other": other, "mine": mine}
    assert set(pick_results(found, ["fair"])["models"]) == {"base", "fair"}
    assert pick_results(found, ["nope"]) is None


def test_while_the_demo_builds_the_first_screen_says_so():
    first, second = intro("smollm2", [], None, building=True)
    assert first.startswith("Only the base `smollm2` (SmolLM2-135M-Instruct")
    assert second.startswith("The demo is being built below") and "**Compare**" in second
