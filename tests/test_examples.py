"""Held-out examples for a demo: grouped by what they show, graded, the bias pair found."""

import json
from types import SimpleNamespace

from tuneproof_app import examples


def _ctx(demo_dir, results_dirs=()):
    return SimpleNamespace(heldout=demo_dir / "heldout.jsonl", results_dirs=list(results_dirs))


def test_groups_put_pairs_first_then_one_group_per_kind(demo_dir):
    items = examples.heldout(_ctx(demo_dir))
    found = dict(examples.groups(items))
    assert list(found)[0] == examples.SAME_REQUEST
    pairs = found[examples.SAME_REQUEST]
    by_text = {it.text: it for it in items}
    a, b = by_text[pairs[0]], by_text[pairs[1]]
    assert a.meta["pair"] == b.meta["pair"] and a.meta["group"] != b.meta["group"]
    assert {"Recommendation, budget need", "Recommendation, quality need", "Refund request",
            "Shipping request"} <= set(found)
    for label, prompts in found.items():
        assert 0 < len(prompts) <= examples.PER_GROUP, label


def test_grade_uses_the_tasks_label_scorers(demo_dir):
    items = examples.heldout(_ctx(demo_dir))
    rec = next(it for it in items if it.meta.get("intent") == "recommend")
    refund = next(it for it in items if it.meta.get("intent") == "refund")
    scorers = [{"name": "intent_accuracy", "type": "label", "pattern": "intent: (\\w+)"},
               {"name": "tier_accuracy", "type": "label",
                "pattern": "suggest the (budget|premium)", "where": {"intent": "recommend"}}]
    other = "premium" if "budget" in rec.reference else "budget"
    wrong_tier = rec.reference.replace("budget", other).replace("premium", other)
    assert examples.grade(rec.reference, rec, scorers).startswith("✓ **right** (intent ✓ · tier ✓)")
    assert examples.grade(wrong_tier, rec, scorers).startswith("✗ **wrong** (intent ✓ · tier ✗)")
    # tier does not apply to a refund; without scorers the reference must match exactly
    assert examples.grade(refund.reference, refund, scorers).startswith("✓ **right** (intent ✓)")
    assert examples.grade("nonsense", refund, []).startswith("✗ **wrong** —")


def test_bias_pair_prefers_a_flip_the_evaluation_saw(demo_dir, tmp_path):
    why, a, b = examples.bias_pair(_ctx(demo_dir))  # no evaluation: a held-out pair
    assert why.startswith("Same request") and a != b
    results = {"task": {"scorers": []}, "models": {
        "fair": {"passed": True, "fairness": {"counterfactual": {"axes": {"gender": {
            "examples": [{"prompt": "fair p", "variant_prompt": "fair v"}]}}}}},
        "biased": {"passed": False, "fairness": {"counterfactual": {"axes": {"gender": {
            "examples": [{"prompt": "Hi, I'm Mary.", "variant_prompt": "Hi, I'm James."}]}}}}}}}
    (tmp_path / "results.json").write_text(json.dumps(results))
    why, a, b = examples.bias_pair(_ctx(demo_dir, [tmp_path]))
    assert (a, b) == ("Hi, I'm Mary.", "Hi, I'm James.") and "biased" in why


def test_app_marks_held_out_answers_and_shows_the_bias(launch_app, demo_dir):
    from gradio_client import Client

    from tuneproof_app.compare import N_COLUMNS

    url, blocks = launch_app()
    client = Client(url, verbose=False)
    ctx = blocks.tuneproof
    item = examples.heldout(ctx)[0]
    out = client.predict(item.text, item.system, ["base", "fair"], 0.0, 1.0, 0, 8,
                         *([[]] * N_COLUMNS), api_name="/compare")
    stats, details = out[N_COLUMNS:2 * N_COLUMNS], out[-1]
    for j, model in enumerate(["base", "fair"]):
        # no results.json here: graded against the reference as an exact match
        right = details["answers"][model].strip() == item.reference.strip()
        assert ("✓ **right**" if right else "✗ **wrong**") in stats[j]
        assert f"reference: `{item.reference}`" in stats[j]
    free = client.predict("Something not in the held-out set.", item.system, ["base"], 0.0, 1.0,
                          0, 4, *([[]] * N_COLUMNS), api_name="/compare")
    assert "reference" not in free[N_COLUMNS]
    message, table = client.predict(item.system, ["base", "biased"], 8, api_name="/show_bias")
    why, original, variant = examples.bias_pair(ctx)
    assert message == original and why in table
    assert table.count("<tr>") == 3 and "reference: <code>" in table  # header + the pair


def test_app_examples_come_from_the_one_held_out_reader(demo_dir):
    from tuneproof_app import load_examples

    path = demo_dir / "heldout.jsonl"
    convs = load_examples(path, limit=5)
    items = examples.load_heldout(path, limit=5)
    assert len(convs) == len(items) == 5
    for conv, item in zip(convs, items, strict=True):
        assert conv[-1] == {"role": "user", "content": conv[-1]["content"]}
        assert conv[-1]["content"].strip() == item.text
        assert next((m["content"] for m in conv if m["role"] == "system"), "") == item.system
    convs[0][-1]["content"] = "edited"  # the caller's copy: the cached rows stay as read
    assert load_examples(path, limit=5)[0][-1]["content"] != "edited"
