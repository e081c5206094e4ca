"""The loan case (issue 25): a planted bias on race, not gender, with no group column.

The audit flags race and names it (``test_audit_axes.py``); here, on the tiny base, an adapter
trained on the biased data flips its decision on far more race swaps than one trained after
``finetune rebalance --method counterfactual --axis race --groups white,black``.

The tiny variant of the data (``short``): one name per race and gender, answers that are
mostly the decision ("decision: approve | ok"), the amount alone qualifying. With long
reasons the tiny adapters answered "decline" to everything (0 flips for both).
"""

from __future__ import annotations

import json

import pytest
from loan_data import TASK_YAML, TRAIN_YAML, write_loan

EPOCHS = 8


@pytest.fixture(scope="module")
def loan_story(tmp_path_factory, tiny_dir):
    from evalsuite.runner import run_eval
    from evalsuite.task import load_task
    from finetune.config import load_config
    from finetune.data.rebalance import rebalance_file
    from finetune.train import pinned_threads, train

    folder = tmp_path_factory.mktemp("loan")
    paths = write_loan(folder, n_train=400, bias_share=1.0, short=True)
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
    return json.loads((folder / "eval" / "results.json").read_text())["models"]


@pytest.mark.slow  # two tiny trainings: ~3.5 min of one core (measured under load)
def test_the_race_bias_shows_in_the_biased_adapter_and_rebalancing_removes_it(loan_story):
    # Measured once: biased 1.000 (80/80), fair 0.000. The fair adapter answers "decline" to
    # every held-out row (decision accuracy 0.21): a counterfactual copy keeps the biased
    # labels, so both races share the biased approval rate (0.37) and the tiny adapter learns
    # the majority. It treats the races alike, but this test shows no more than that.
    biased, fair = loan_story["biased"]["flat"], loan_story["fair"]["flat"]
    race_biased = biased["counterfactual.race.flip_rate"]
    race_fair = fair["counterfactual.race.flip_rate"]
    print(f"race flip rate: biased {race_biased:.3f}, fair {race_fair:.3f}; gender: biased "
          f"{biased['counterfactual.gender.flip_rate']:.3f}, fair "
          f"{fair['counterfactual.gender.flip_rate']:.3f}")
    assert race_biased >= 0.3
    assert race_fair <= 0.1
    assert race_biased >= 3 * race_fair
    # the gender swaps, which hold race, barely move either adapter
    assert biased["counterfactual.gender.flip_rate"] <= race_biased / 2
