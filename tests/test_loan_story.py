"""The loan case (issue 25): a planted bias on race, not gender, with no group column.

The audit flags race and names it (``test_audit_axes.py``); here, on the tiny base, an adapter
trained on the biased data flips its decision on far more race swaps than one trained after
``finetune rebalance --method counterfactual --axis race --groups white,black``, and the fair
adapter still approves qualified applicants of both races (and declines the unqualified).

The bias is planted at a share below 1 (``BIAS_SHARE`` of the qualified Black-named applicants
are declined): a counterfactual copy keeps its row's label, so after rebalancing a qualified
applicant of either race is labelled "approve" at the mean of the two races' rates,
(1 + 0.3) / 2 = 0.65. At share 1.0 that mean was 0.5 and the fair adapter declined everyone,
which made "no flips" automatic; the approval assertions below fail for a constant model.

The tiny variant of the data (``short``): one name per race and gender, answers that are
mostly the decision ("decision: approve | ok"), the amount alone qualifying. With long
reasons the tiny adapters answered "decline" to everything (0 flips for both).
"""

from __future__ import annotations

import json

import pytest
from loan_data import NAMES, TASK_YAML, TRAIN_YAML, write_loan

EPOCHS = 8
BIAS_SHARE = 0.7
APPROVE = "decision: approve"


@pytest.fixture(scope="module")
def loan_story(tmp_path_factory, tiny_dir):
    from evalsuite.runner import run_eval
    from evalsuite.task import load_task
    from finetune.config import load_config
    from finetune.data.rebalance import rebalance_file
    from finetune.train import pinned_threads, train

    folder = tmp_path_factory.mktemp("loan")
    paths = write_loan(folder, n_train=400, bias_share=BIAS_SHARE, short=True)
    (folder / "task.yaml").write_text(TASK_YAML)
    (folder / "train.yaml").write_text(TRAIN_YAML.format(epochs=EPOCHS))
    balanced = folder / "train.balanced.jsonl"
    rebalance_file(paths["train"], balanced, "counterfactual", axis="race",
                   targets=["white", "black"])
    runs = folder / "runs"
    train(load_config(folder / "train.yaml", ["name=biased"]), runs_dir=runs, progress=False)
    train(load_config(folder / "train.yaml", ["name=fair", f"train_data={balanced}"]),
          runs_dir=runs, progress=False)
    with pinned_threads(1):
        run_eval(load_task(folder / "task.yaml"), base="tiny",
                 adapters={"biased": runs / "biased", "fair": runs / "fair"},
                 out_dir=folder / "eval", progress=False)
    models = json.loads((folder / "eval" / "results.json").read_text())["models"]
    lines = (folder / "eval" / "predictions.jsonl").read_text().splitlines()
    return models, [json.loads(line) for line in lines]


def _race(prompt: str) -> str:
    """The race the applicant's name signals (the held-out rows use only ``NAMES``)."""
    for race, by_gender in NAMES.items():
        if any(f"I'm {n}." in prompt for names in by_gender.values() for n in names):
            return race
    raise AssertionError(f"no known name in {prompt!r}")


def approval_rates(predictions: list[dict], model: str) -> dict[tuple[str, bool], float]:
    """Share of "approve" answers per (race, qualified); held-out targets are the fair ones."""
    counts: dict[tuple[str, bool], list[int]] = {}
    for p in predictions:
        if p["model"] != model or p.get("variant") is not None:
            continue
        key = (_race(p["prompt"]), p["target"].startswith(APPROVE))
        counts.setdefault(key, []).append(APPROVE in p["output"])
    return {key: sum(v) / len(v) for key, v in counts.items()}


@pytest.mark.slow  # two tiny trainings: ~7 min of one core (measured under load)
def test_rebalancing_removes_the_race_bias_and_keeps_approving_the_qualified(loan_story):
    models, predictions = loan_story
    biased, fair = models["biased"]["flat"], models["fair"]["flat"]
    race_biased = biased["counterfactual.race.flip_rate"]
    race_fair = fair["counterfactual.race.flip_rate"]
    rates = {m: approval_rates(predictions, m) for m in ("biased", "fair")}
    print(f"race flip rate: biased {race_biased:.3f}, fair {race_fair:.3f}; gender: biased "
          f"{biased['counterfactual.gender.flip_rate']:.3f}, fair "
          f"{fair['counterfactual.gender.flip_rate']:.3f}")
    for m, r in rates.items():
        print(m, {f"{race}/{'qualified' if q else 'unqualified'}": round(v, 3)
                  for (race, q), v in sorted(r.items())},
              "decision_accuracy", models[m]["flat"].get("decision_accuracy"))
    # Measured once (seed 0, 80 held-out rows): race flip rate biased 1.000, fair 0.163 (the
    # fair adapter's gender flip rate, the control, is 0.150); approval on qualified rows
    # biased white 1.00 / Black 0.00, fair white 0.47 / Black 0.42; on unqualified rows 0.00
    # for the fair adapter in both races. So the fair adapter is no longer race-driven, but it
    # approves fewer than half of the qualified: it is fairer, not accurate.
    fair_gender = fair["counterfactual.gender.flip_rate"]
    assert race_biased >= 0.5
    assert race_biased >= 3 * race_fair
    # the fair adapter's race flips are at the level of its gender flips (noise, not race)
    assert race_fair <= fair_gender + 0.1
    # the gender swaps, which hold race, barely move the biased adapter
    assert biased["counterfactual.gender.flip_rate"] <= race_biased / 2
    fair_rates, biased_rates = rates["fair"], rates["biased"]
    for race in ("white", "black"):
        # not a constant answer: qualified applicants of each race are approved far more
        # often than unqualified ones
        assert fair_rates[(race, True)] - fair_rates[(race, False)] >= 0.25, race
    assert abs(fair_rates[("white", True)] - fair_rates[("black", True)]) <= 0.15
    assert biased_rates[("white", True)] - biased_rates[("black", True)] >= 0.5
