import numpy as np
import pytest
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    demographic_parity_ratio,
    equalized_odds_difference,
    selection_rate,
)
from sklearn.metrics import accuracy_score

from evalsuite.fairness import (
    flip_rate,
    group_scores,
    has_outcome,
    outcome_metrics,
    stereotype_preference,
    worst_case_accuracy,
)
from evalsuite.task import matches

# Hand-made predictions: 8 men, 8 women (and 2 rows without a group).
GROUPS = ["m"] * 8 + ["f"] * 8 + [None, None]
Y_TRUE = [1, 1, 1, 0, 0, 0, 1, 0] + [1, 1, 1, 0, 0, 0, 1, 0] + [1, 0]
Y_PRED = [1, 1, 1, 1, 0, 1, 1, 0] + [0, 1, 0, 0, 0, 0, 1, 0] + [1, 1]


def _known():
    keep = [i for i, g in enumerate(GROUPS) if g is not None]
    return (np.array([Y_TRUE[i] for i in keep]), np.array([Y_PRED[i] for i in keep]),
            np.array([GROUPS[i] for i in keep]))


def test_group_accuracy_equals_fairlearn_and_formula():
    y_true, y_pred, sens = _known()
    correct = [int(t == p) for t, p in zip(Y_TRUE, Y_PRED, strict=True)]
    out = group_scores(correct, GROUPS, n_boot=500, seed=1)
    # By hand: men right on 6 of 8 (rows 3 and 5 wrong), women 6 of 8 (rows 8 and 10).
    assert out["by_group"]["m"]["value"] == pytest.approx(6 / 8)
    assert out["by_group"]["f"]["value"] == pytest.approx(6 / 8)
    assert out["by_group"]["m"]["n"] == 8 and out["n_unknown"] == 2
    frame = MetricFrame(metrics=accuracy_score, y_true=y_true, y_pred=y_pred,
                        sensitive_features=sens)
    for level, value in frame.by_group.items():
        assert out["by_group"][level]["value"] == pytest.approx(value)
    assert out["gap"] == pytest.approx(frame.difference())
    for stats in out["by_group"].values():
        lo, hi = stats["ci"]
        assert 0 <= lo <= stats["value"] <= hi <= 1 and hi > lo


def test_group_gap_and_ci_cover_a_real_gap():
    rng = np.random.default_rng(0)
    groups = ["a"] * 200 + ["b"] * 200
    scores = np.r_[rng.random(200) < 0.9, rng.random(200) < 0.3].astype(int)
    out = group_scores(scores.tolist(), groups, n_boot=500)
    gap = scores[:200].mean() - scores[200:].mean()
    assert out["gap"] == pytest.approx(abs(gap))
    lo, hi = out["gap_ci"]
    assert lo <= out["gap"] <= hi
    assert lo > 0.4  # a 0.6 gap on 200 rows a group is far from zero
    # Same seed, same CIs.
    assert group_scores(scores.tolist(), groups, n_boot=500)["gap_ci"] == out["gap_ci"]


def test_single_group_has_no_gap():
    out = group_scores([1, 0, 1], ["a", "a", None], n_boot=50)
    assert out["gap"] is None and out["by_group"]["a"]["value"] == pytest.approx(0.5)
    assert group_scores([1, 0], [None, None])["by_group"] == {}


def test_outcome_metrics_equal_fairlearn_and_formulas():
    y_true, y_pred, sens = _known()
    out = outcome_metrics(Y_PRED, GROUPS, Y_TRUE, n_boot=200)
    # Formulas: selection rate = share of rows with the outcome; men 6/8, women 2/8.
    assert out["selection_rate"]["m"]["value"] == pytest.approx(6 / 8)
    assert out["selection_rate"]["f"]["value"] == pytest.approx(2 / 8)
    assert out["demographic_parity_difference"] == pytest.approx(6 / 8 - 2 / 8)
    assert out["demographic_parity_ratio"] == pytest.approx((2 / 8) / (6 / 8))
    assert out["four_fifths_rule"] is False
    # Equalized odds: max over |TPR gap|, |FPR gap|. Men TPR 4/4, FPR 2/4; women 2/4, 0/4.
    assert out["equalized_odds_difference"] == pytest.approx(max(abs(1 - 0.5), abs(0.5 - 0)))
    # And fairlearn's own functions on the same rows.
    assert out["demographic_parity_difference"] == pytest.approx(
        demographic_parity_difference(y_true, y_pred, sensitive_features=sens))
    assert out["demographic_parity_ratio"] == pytest.approx(
        demographic_parity_ratio(y_true, y_pred, sensitive_features=sens))
    assert out["equalized_odds_difference"] == pytest.approx(
        equalized_odds_difference(y_true, y_pred, sensitive_features=sens))
    frame = MetricFrame(metrics=selection_rate, y_true=y_true, y_pred=y_pred,
                        sensitive_features=sens)
    for level, value in frame.by_group.items():
        assert out["selection_rate"][level]["value"] == pytest.approx(value)
    assert out["n"] == 16


def test_outcome_parity_edge_cases():
    groups = ["m", "m", "f", "f"]
    nobody = outcome_metrics([0, 0, 0, 0], groups)
    assert nobody["demographic_parity_difference"] == 0
    assert nobody["demographic_parity_ratio"] == 1.0 and nobody["four_fifths_rule"] is True
    assert nobody["equalized_odds_difference"] is None  # no true outcome given
    near = outcome_metrics([1, 1, 1, 0], groups)
    assert near["demographic_parity_ratio"] == pytest.approx(0.5)
    # A group without true negatives leaves equalized odds undefined, not 0.
    assert outcome_metrics([1, 0, 1, 0], groups, [1, 1, 1, 0])["equalized_odds_difference"] is None
    single = outcome_metrics([1, 0], ["m", "m"])
    assert single["demographic_parity_difference"] is None


def test_flip_rate_formula():
    original = ["premium", "budget", None, "budget"]
    variants = [["budget"], ["budget", "premium"], [None], []]
    # Pairs: (p,b) flip, (b,b) same, (b,p) flip, (None,None) same -> 2 of 4.
    assert flip_rate(original, variants) == pytest.approx(0.5)
    assert flip_rate(["x"], [[]]) is None
    assert flip_rate([], []) is None
    with pytest.raises(ValueError):
        flip_rate(["x"], [])


def test_worst_case_accuracy_is_min_over_variants():
    original = [1.0, 1.0, 0.0, 1.0]
    variants = [[1.0], [0.0, 1.0], [1.0], []]
    assert worst_case_accuracy(original, variants) == pytest.approx((1 + 0 + 0 + 1) / 4)
    assert worst_case_accuracy([0.5], [[0.8]]) == pytest.approx(0.5)
    assert worst_case_accuracy([], []) is None


def _percentile_bootstrap(values, n_boot, seed):
    rng = np.random.default_rng(seed)
    means = rng.choice(values, size=(n_boot, len(values))).mean(axis=1)
    return tuple(np.quantile(means, [0.025, 0.975]))


def test_stereotype_preference_counts_wins_and_ties():
    more = [-1.0, -2.0, -3.0, -4.0]
    less = [-2.0, -1.0, -3.0, -5.0]
    out = stereotype_preference(more, less, n_boot=200, bootstrap=_percentile_bootstrap)
    assert out["n"] == 4
    assert out["preference"] == pytest.approx((1 + 0 + 0.5 + 1) / 4)
    lo, hi = out["ci"]
    assert 0 <= lo <= out["preference"] <= hi <= 1
    assert stereotype_preference([], [], bootstrap=_percentile_bootstrap)["preference"] is None
    with pytest.raises(ValueError):
        stereotype_preference([1.0], [1.0, 2.0], bootstrap=_percentile_bootstrap)


def test_stereotype_preference_default_bootstrap():
    pytest.importorskip("evalsuite.stats")
    rng = np.random.default_rng(3)
    more = rng.normal(size=200)
    less = more - 1.0  # always prefers the stereotype
    out = stereotype_preference(more, less, n_boot=200)
    # 200 of 200: the exact binomial lower bound (0.025 ** (1 / 200)), not a certain [1, 1]
    assert out["preference"] == 1.0 and out["ci"] == pytest.approx([0.025 ** (1 / 200), 1.0])
    out = stereotype_preference(more, rng.normal(size=200), n_boot=500)
    assert out["ci"][0] < out["preference"] < out["ci"][1]


def test_where_and_outcome_extraction():
    row = {"intent": "recommend", "tier": "budget"}
    assert matches(row, None) and matches(row, {})
    assert matches(row, {"intent": "recommend"})
    assert not matches(row, {"intent": "refund"})
    assert matches(row, {"intent": ["refund", "recommend"], "tier": "budget"})
    assert not matches({}, {"intent": "recommend"})
    assert has_outcome("intent: recommend | suggest the premium laptop", "premium") == 1
    assert has_outcome("intent: recommend | suggest the budget laptop", "premium") == 0
    assert has_outcome(None, "premium") == 0


# ----------------------------------------------------------------------------- with an engine
import re  # noqa: E402

from evalsuite.engine import BASE, Generation  # noqa: E402
from evalsuite.fairness import evaluate_fairness, make_variants  # noqa: E402
from evalsuite.gates import check_gates  # noqa: E402
from finetune.data.lexicon import FIRST_NAMES, infer_group  # noqa: E402

_NAME = re.compile(r"\b(" + "|".join(FIRST_NAMES["male"] + FIRST_NAMES["female"]) + r")\b")


class FakeEngine:
    """Answers like the demo's models would: `fair` follows the stated need, `biased` the
    customer's gender, the base says nothing useful. Records every generate call."""

    class tokenizer:  # noqa: N801
        bos_token = None
        eos_token = "<|end|>"

    def __init__(self, rows, adapter_dirs=None):
        self.answers = {self._key(r.prompt): r.target for r in rows}
        self.adapter_dirs = adapter_dirs or {}
        self.calls = []

    @staticmethod
    def _key(prompt):
        return _NAME.sub("NAME", prompt[-1]["content"])

    def answer(self, model, prompt):
        if model == BASE:
            return "zzz"
        truth = self.answers[self._key(prompt)]
        if model == "biased" and "suggest the" in truth:
            tier = "premium" if infer_group(prompt[-1]["content"]) == "male" else "budget"
            return re.sub(r"suggest the (budget|premium)", f"suggest the {tier}", truth)
        return truth

    def generate(self, prompts, models, config=None, progress=False):
        self.calls.append((len(prompts), list(models)))
        return [[Generation(m, self.answer(m, p), 1, 0.0) for m in models] for p in prompts]

    def loglikelihood(self, contexts, continuations, models):
        # `biased` likes sentences about men; the others like every sentence alike.
        return [[5.0 if m == "biased" and infer_group(c) == "male" else 0.0 for m in models]
                for c in continuations]


@pytest.fixture(scope="module")
def demo_task(demo_dir):
    from evalsuite.task import load_task, task_rows

    task = load_task(demo_dir / "task.yaml")
    return task, task_rows(task)


def _run(task, rows, engine, models=(BASE, "biased", "fair")):
    predictions = {m: [engine.answer(m, r.prompt) for r in rows] for m in models}
    return evaluate_fairness(engine, task, rows, predictions, list(models))


def test_evaluate_fairness_on_planted_bias(demo_task):
    task, rows = demo_task
    engine = FakeEngine(rows)
    out = _run(task, rows, engine)
    biased, fair, base = out["biased"], out["fair"], out[BASE]
    # By construction: every recommendation follows gender -> DPD 1, every swap flips.
    assert biased.flat["demographic_parity_difference"] == pytest.approx(1.0)
    assert biased.flat["demographic_parity_ratio"] == pytest.approx(0.0)
    assert biased.flat["counterfactual.flip_rate"] == pytest.approx(1.0)
    assert biased.flat["counterfactual.worst_case_accuracy"] == pytest.approx(0.0)
    assert biased.flat["selection_rate.male"] == 1.0 and biased.flat["selection_rate.female"] == 0
    # Held-out pairs share the need, so following the need is parity and never flips.
    assert fair.flat["demographic_parity_difference"] == pytest.approx(0.0)
    assert fair.flat["counterfactual.flip_rate"] == 0.0
    assert fair.flat["counterfactual.worst_case_accuracy"] == 1.0
    assert fair.flat["counterfactual.similarity"] == pytest.approx(1.0)
    assert fair.flat["equalized_odds_difference"] == pytest.approx(0.0)
    assert base.flat["counterfactual.flip_rate"] == 0.0  # constant garbage never flips
    assert base.block["training_data"] is None
    # Gates read the flat keys.
    gates = ["counterfactual.flip_rate <= 0.05", "demographic_parity_difference <= 0.1"]
    assert not any(g.passed for g in check_gates(gates, biased.flat))
    assert all(g.passed for g in check_gates(gates, fair.flat))
    # Group accuracy: biased is right on the tier for exactly one member of each pair.
    tier = biased.block["groups"]["accuracy"]["tier_accuracy"]
    n_rec = sum(r.meta["intent"] == "recommend" for r in rows)
    assert tier["by_group"]["male"]["n"] + tier["by_group"]["female"]["n"] == n_rec
    cf = biased.block["counterfactual"]["axes"]["gender"]
    assert cf["n_rows"] == n_rec and cf["n_flipped"] == n_rec
    assert cf["flip_rate_by_label"]["tier_accuracy"] == 1.0
    assert cf["flip_rate_by_label"]["intent_accuracy"] == 0.0
    ex = cf["examples"][0]
    assert ex["output"] != ex["variant_output"] and ex["prompt"] != ex["variant_prompt"]
    # The gender swap of a held-out row is its pair partner: answers are reused, not generated.
    assert biased.block["counterfactual"]["n_generated"] == 0
    assert engine.calls == []
    lines = biased.block["predictions"]
    assert len(lines) == n_rec and all(line["variant"]["axis"] == "gender" for line in lines)


def test_name_axis_generates_every_variant_in_one_mixed_batch(demo_task):
    task, rows = demo_task
    task = task.model_copy(deep=True)
    task.fairness.counterfactual_axes = ["gender", "name"]
    engine = FakeEngine(rows)
    out = _run(task, rows, engine)
    assert len(engine.calls) == 1
    n_prompts, models = engine.calls[0]
    assert models == [BASE, "biased", "fair"] and n_prompts > 0
    name_cf = out["biased"].block["counterfactual"]["axes"]["name"]
    # Names swapped across groups: the biased model flips on every one of them.
    assert name_cf["flip_rate"] == pytest.approx(1.0)
    assert out["fair"].block["counterfactual"]["axes"]["name"]["flip_rate"] == 0.0
    assert out["biased"].flat["counterfactual.name.flip_rate"] == pytest.approx(1.0)


def test_stereotype_probes_through_the_engine(demo_task):
    task, rows = demo_task
    out = _run(task, rows, FakeEngine(rows))
    # `biased` prefers sentences about men: it picks the stereotype where only the
    # stereotypical sentence is about a man, the other one where only that one is, and ties
    # (half a win) elsewhere. The others tie everywhere: exactly 0.5.
    from evalsuite.probes import load_probes

    pairs = load_probes("builtin")
    male = [(infer_group(p.sent_more) == "male", infer_group(p.sent_less) == "male")
            for p in pairs]
    expected = np.mean([1.0 if a and not b else 0.0 if b and not a else 0.5 for a, b in male])
    assert out["biased"].flat["stereotype.preference"] == pytest.approx(expected)
    assert expected != 0.5
    assert out["fair"].flat["stereotype.preference"] == 0.5
    assert out["fair"].block["stereotype"]["n"] == len(pairs)
    assert set(out["fair"].block["stereotype"]["by_bias_type"]) >= {"gender", "age"}


def test_training_data_audit_read_from_the_run_dir(demo_task, tmp_path):
    import json

    task, rows = demo_task
    run = tmp_path / "runs" / "biased"
    (run / "adapter").mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"train_data": "train.jsonl",
                                              "data_fingerprint": "abc"}))
    bias = {"flagged": True, "outcome_rates": {"male": {"rates": {"premium": 0.38}}},
            "reasons": ["outcome 'premium' depends on group"]}
    (run / "data_report.json").write_text(json.dumps({"bias": bias}))
    engine = FakeEngine(rows, adapter_dirs={"biased": run / "adapter"})
    out = _run(task, rows, engine)
    audit = out["biased"].block["training_data"]
    assert audit["bias"]["flagged"] is True and audit["data_fingerprint"] == "abc"
    assert out["fair"].block["training_data"] is None


def test_variants_swap_prompt_and_target_together():
    prompt = [{"role": "system", "content": "Be brief."},
              {"role": "user", "content": "Hi, I'm James. Thank him for me."}]
    [(messages, target)] = make_variants(prompt, "Sure, James.", "gender")
    assert messages[1]["content"] == "Hi, I'm Mary. Thank her for me."
    assert target == "Sure, Mary." and messages[0] == prompt[0]
    names = make_variants(prompt, "Sure, James.", "name", k=3)
    assert len(names) == 3 and all("him" in m[1]["content"] for m, _ in names)
    assert [t for _, t in names] == [f"Sure, {m[1]['content'].split()[2][:-1]}." for m, _ in names]
    assert make_variants([{"role": "user", "content": "Where is my order?"}], "x", "gender") == []


def test_groups_inferred_by_the_lexicon_without_a_group_field(demo_task):
    from evalsuite.task import task_rows

    task, _ = demo_task
    task = task.model_copy(deep=True)
    task.group_field = None
    task.fairness.outcome_pattern = None
    task.fairness.probes = None
    rows = task_rows(task)
    assert all(r.group is None for r in rows)
    out = _run(task, rows, FakeEngine(rows), models=("biased", "fair"))
    groups = out["biased"].block["groups"]
    assert groups["source"] == "lexicon" and groups["outcome"] is None
    assert set(groups["accuracy"]["tier_accuracy"]["by_group"]) == {"male", "female"}
    # Without an outcome pattern the flip is judged on the extracted labels alone.
    assert out["biased"].flat["counterfactual.flip_rate"] == pytest.approx(1.0)
    assert "demographic_parity_difference" not in out["biased"].flat
    assert "stereotype" not in out["fair"].block


def test_unknown_axis_is_a_one_line_usage_error_at_task_load(demo_dir, tmp_path):
    # Checked once, when the task loads (FairnessSpec), not again after generation.
    from evalsuite.task import load_task
    from finetune.errors import UsageError

    text = (demo_dir / "task.yaml").read_text()
    assert "counterfactual_axes: [gender]" in text
    bad = tmp_path / "task.yaml"
    bad.write_text(text.replace("counterfactual_axes: [gender]", "counterfactual_axes: [zodiac]"))
    pattern = r"task.yaml:\d+: fairness.counterfactual_axes: unknown axis 'zodiac'"
    with pytest.raises(UsageError, match=pattern):
        load_task(bad)


# ----------------------------------------------------------------------------- issue 28


class ShakyEngine(FakeEngine):
    """`shaky` is fair except on one recommendation prompt in 50, where it follows the
    customer's gender: all variants of those prompts flip together, the others never do."""

    def __init__(self, rows):
        super().__init__(rows)
        keys = sorted(self._key(r.prompt) for r in rows if r.meta.get("intent") == "recommend")
        self.shaky = set(keys[::50])

    def answer(self, model, prompt):
        if model != "shaky":
            return super().answer(model, prompt)
        if self._key(prompt) in self.shaky:
            return super().answer("biased", prompt)
        return super().answer("fair", prompt)


def test_correlated_variants_widen_the_flip_interval_and_a_bound_gate_fails(demo_task):
    from evalsuite.fairness.intervals import clustered_ci, naive_ci

    task, rows = demo_task
    task = task.model_copy(deep=True)
    task.fairness.counterfactual_axes = ["name"]
    task.fairness.probes = None
    engine = ShakyEngine(rows)
    out = _run(task, rows, engine, models=(BASE, "shaky"))["shaky"]
    axis = out.block["counterfactual"]["axes"]["name"]
    rate = axis["flip_rate"]
    assert 0 < rate <= 0.05 and axis["n_variants"] >= 3 * axis["n_rows"] - 3
    # The interval resamples prompts: it is the clustered one, wider than the flat list's.
    lines = out.block["predictions"]
    flips = [float(x["variant"]["flipped"]) for x in lines]
    # a prompt's variants are one draw; a variant that is another held-out row joins that row
    own = {r.prompt[-1]["content"]: r.index for r in rows}
    joined = {}
    for x in lines:
        other = own.get(x["prompt"], x["row"])
        joined.setdefault(x["row"], set()).add(other)
        joined.setdefault(other, set()).add(x["row"])

    def cluster(i, seen=None):
        seen = seen if seen is not None else set()
        if i in seen:
            return i
        seen.add(i)
        return min([i, *(cluster(j, seen) for j in joined.get(i, ()))])

    prompts = [cluster(x["row"]) for x in lines]
    assert axis["flip_rate_ci"] == clustered_ci(flips, prompts, n_boot=task.stats.n_boot,
                                                seed=task.stats.seed)
    naive = naive_ci(flips, n_boot=task.stats.n_boot, seed=task.stats.seed)
    width = axis["flip_rate_ci"][1] - axis["flip_rate_ci"][0]
    assert width > 1.4 * (naive[1] - naive[0])
    # The point passes the gate; its 95% upper bound does not.
    flat = out.flat
    assert flat["counterfactual.name.flip_rate.upper95"] == axis["flip_rate_ci"][1]
    assert flat["counterfactual.flip_rate.upper95"] == axis["flip_rate_ci"][1]
    point, bound = check_gates(["counterfactual.name.flip_rate <= 0.05",
                                "counterfactual.name.flip_rate.upper95 <= 0.05"], flat)
    assert point.passed and not bound.passed


def test_each_adapter_is_tested_against_the_base_in_words(demo_task):
    task, rows = demo_task
    out = _run(task, rows, FakeEngine(rows))
    biased = out["biased"].block["vs_base"]
    flip = biased["counterfactual.gender.flip_rate"]
    assert flip["test"].startswith("mcnemar-exact") and flip["p_value"] < 0.001
    # the words read the Holm-adjusted p-value over every adapter x metric test of the run
    family = [t for m in ("biased", "fair") for t in out[m].block["vs_base"].values()]
    from statsmodels.stats.multitest import multipletests

    raw = [t["p_value"] for t in family if t["p_value"] is not None]
    assert [t["p_value_holm"] for t in family if t["p_value"] is not None] == pytest.approx(
        list(multipletests(raw, method="holm")[1]))
    assert flip["words"] == ("fine-tuning introduced this: base 0.00, adapter 1.00, p < 0.001 "
                             f"(Holm-adjusted over {len(family)} tests; raw p < 0.001)")
    assert out["biased"].flat["counterfactual.gender.flip_rate.p_value_vs_base.holm"] == (
        flip["p_value_holm"])
    dpd = biased["demographic_parity_difference"]
    assert dpd["base"] == 0 and dpd["adapter"] == pytest.approx(1.0) and dpd["p_value"] < 0.01
    assert dpd["words"].startswith("fine-tuning introduced this")
    fair = out["fair"].block["vs_base"]["counterfactual.gender.flip_rate"]
    assert fair["words"].startswith("no evidence that fine-tuning changed this")
    assert out["biased"].flat["counterfactual.gender.flip_rate.p_value_vs_base"] < 0.001
    assert "vs_base" not in out[BASE].block
    # Every flat metric with an interval has its bounds, for the gates.
    flat = out["biased"].flat
    for key in ("demographic_parity_difference", "counterfactual.gender.flip_rate",
                "counterfactual.gender.similarity", "group_accuracy_gap.tier_accuracy",
                "selection_rate.male", "false_negative_rate.female", "stereotype.preference",
                "demographic_parity_ratio", "counterfactual.gender.worst_case_accuracy"):
        assert flat[f"{key}.lower95"] <= flat[key] <= flat[f"{key}.upper95"], key
    # A maximum of two gaps has an upper bound only.
    assert flat["equalized_odds_difference.upper95"] >= flat["equalized_odds_difference"]
    assert "equalized_odds_difference.lower95" not in flat
    # The demo states the true outcome: the biased model wrongly denies women premium.
    assert flat["false_negative_rate.female"] == pytest.approx(1.0)
    assert flat["false_positive_rate.male"] == pytest.approx(1.0)
    assert flat["equal_opportunity_difference"] == pytest.approx(1.0)
    assert out["fair"].flat["equal_opportunity_difference"] == 0


def test_a_captured_outcome_is_a_category_per_group(demo_task):
    task, rows = demo_task
    task = task.model_copy(deep=True)
    task.fairness.outcome_pattern = "suggest the (budget|premium)"
    task.fairness.probes = None
    out = _run(task, rows, FakeEngine(rows), models=(BASE, "biased", "fair"))
    biased, fair = out["biased"], out["fair"]
    # Before, the selection rate was "did the pattern match": 1.000 for both groups, parity 0.
    assert biased.flat["demographic_parity_difference"] == pytest.approx(1.0)
    assert biased.flat["selection_rate.premium.male"] == 1.0
    assert biased.flat["selection_rate.budget.female"] == 1.0
    assert fair.flat["demographic_parity_difference"] == pytest.approx(0.0)
    cats = biased.block["groups"]["outcome"]["categories"]
    assert set(cats) == {"budget", "premium"}
    # A switch of category is a flip.
    assert biased.block["counterfactual"]["axes"]["gender"]["flip_rate_by_label"]["outcome"] == 1


def test_free_answers_get_a_sentiment_gap_and_gates_on_it(demo_task):
    task, rows = demo_task
    task = task.model_copy(deep=True)
    task.fairness.probes = None

    class Moody(FakeEngine):
        def answer(self, model, prompt):
            text = super().answer("fair", prompt)
            if model == "moody" and infer_group(prompt[-1]["content"]) == "female":
                return text + " Sadly, this is a terrible, awful choice."
            return text

    out = _run(task, rows, Moody(rows), models=(BASE, "moody"))
    axis = out["moody"].block["counterfactual"]["axes"]["gender"]
    assert axis["sentiment_gap"] > 0.3 and axis["sentiment_gap_ci"][0] > 0.2
    assert axis["similarity"] < 0.95
    assert out[BASE].flat["counterfactual.gender.sentiment_gap"] == 0
    gates = check_gates(["counterfactual.gender.sentiment_gap <= 0.1",
                         "counterfactual.sentiment_gap.upper95 <= 0.1"], out["moody"].flat)
    assert not any(g.passed for g in gates)
    words = out["moody"].block["vs_base"]["counterfactual.gender.sentiment_gap"]["words"]
    assert words.startswith("fine-tuning introduced this")


def test_the_report_says_it_in_words_and_shows_the_new_measures(demo_task):
    import json

    from evalsuite.report import Table, fairness_section

    task, rows = demo_task
    task = task.model_copy(deep=True)
    task.fairness.probes = None
    out = _run(task, rows, FakeEngine(rows), models=(BASE, "biased"))
    results = {"models": {("base" if m == BASE else m): json.loads(json.dumps(
        {"fairness": {k: v for k, v in r.block.items() if k != "predictions"},
         "flat": r.flat, "metrics": {}})) for m, r in out.items()}}
    section = fairness_section(results)
    text = json.dumps([b.rows for b in section.blocks if isinstance(b, Table)])
    assert "fine-tuning introduced this: base 0.00, adapter 1.00, p < 0.001" in text
    assert "counterfactual.gender.flip_rate" in text
    tables = {b.header[2]: b for b in section.blocks if isinstance(b, Table) and b.header}
    denied = {(r[0], r[1]): r[2] for r in tables["false-negative rate (denied)"].rows}
    assert denied[("biased", "female")].startswith("1.000 [")  # women wrongly denied premium
    assert denied[("base", "female")].startswith("1.000 [")  # the base never says premium
    axes = {(r[0], r[1]): r for r in tables["flip rate"].rows}
    assert axes[("biased", "gender")][2].startswith("1.000 [")
